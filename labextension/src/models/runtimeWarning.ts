/**
 * The reaper's max_runtime notice (a `warning` event of kind max_runtime,
 * 30 minutes before it stops a container) as the notification and the
 * project card say it: the clock time it stops, and how long is left.
 */
import { IRuntimeWarning } from './types';
import { formatDuration } from './units';

/** "14:05": a UNIX time as the local wall-clock time, hours and minutes. */
export function clockTime(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** "stops at 14:05 (in 30m)", or "stops soon" without a time; "stopping now" once past it. */
export function stopsAt(warning: IRuntimeWarning, now = Date.now()): string {
  if (typeof warning.stops_at !== 'number') {
    return 'stops soon';
  }
  const left = warning.stops_at - now / 1000;
  return left > 0
    ? `stops at ${clockTime(warning.stops_at)} (in ${formatDuration(left)})`
    : `stopping now (max runtime reached at ${clockTime(warning.stops_at)})`;
}

/** The notification's text: which project, when it stops, and what to do before. */
export function runtimeWarningMessage(warning: IRuntimeWarning, now = Date.now()): string {
  const container = warning.container ? ` (${warning.container})` : '';
  const why = warning.message ? ` ${warning.message.replace(/\.?$/, '.')}` : '';
  return (
    `${warning.project}: the container${container} reaches its maximum runtime and ${stopsAt(warning, now)}.${why} ` +
    'Save your work: running processes get SIGTERM, then SIGKILL after the grace period.'
  );
}

/** The project card's line. */
export function runtimeBadge(warning: IRuntimeWarning, now = Date.now()): string {
  const text = stopsAt(warning, now);
  return `Max runtime: ${text}`;
}
