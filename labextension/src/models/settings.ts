/** The sidebar's user settings (schema/plugin.json), with their defaults. */

/** User settings (schema/plugin.json). */
export interface IDS01Settings {
  /** Which notifications to show: all (progress too), warnings (files at risk, failures) or none. */
  notificationLevel: 'all' | 'warnings' | 'none';
  /** Seconds between GPU and limit refreshes while the panel is visible; 0 = on events only. */
  gpuRefreshSeconds: number;
  /** Check open notebooks for paths outside /workspace and mark the cells. */
  staticCheck: boolean;
}

export const DEFAULT_SETTINGS: IDS01Settings = {
  notificationLevel: 'all',
  gpuRefreshSeconds: 10,
  staticCheck: true
};
