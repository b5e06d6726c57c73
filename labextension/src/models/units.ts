/** Sizes and durations as people read them. */

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || isNaN(bytes)) {
    return '–';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || isNaN(seconds)) {
    return '–';
  }
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Age of a UNIX time (seconds) relative to now (milliseconds). */
export function formatAge(unixSeconds: number, now = Date.now()): string {
  return `${formatDuration(now / 1000 - unixSeconds)} ago`;
}

/** Seconds a container has run: from its start time when known (stays current), else as last reported. */
export function uptimeOf(
  container: { started_at?: string | null; uptime_seconds?: number | null },
  now = Date.now()
): number | null {
  const started = container.started_at ? Date.parse(container.started_at) : NaN;
  if (!isNaN(started)) {
    return Math.max(0, (now - started) / 1000);
  }
  return container.uptime_seconds ?? null;
}
