/**
 * Where the ds01 server extension runs: on the host ("host", with Docker) or inside a
 * JupyterHub server's own project container ("container", no Docker). What the sidebar
 * says and offers in each is decided here, so Jest can check it without a browser.
 */
import { ILimits, IVersion } from './types';

export type ServerMode = 'host' | 'container';

/**
 * The mode from /ds01/version, else from the event stream's snapshot (which says it too),
 * else "host": servers before container mode say nothing and are hosts.
 */
export function serverMode(version: IVersion | null, snapshotMode?: string | null): ServerMode {
  const mode = version?.mode ?? snapshotMode;
  return mode === 'container' ? 'container' : 'host';
}

/**
 * A line instead of the limit bars when the server cannot say the user's limits or use
 * (inside a container, the use of the user's other containers is known on the host only);
 * null when the bars can be drawn.
 */
export function limitsNote(limits: ILimits): string | null {
  if (limits.limits) {
    return null;
  }
  const reason = limits.engine?.reason ? ` ${limits.engine.reason}` : '';
  return `Your limits are not known here.${reason}`.trim();
}

/** The title over the findings: what happens to them depends on where the server runs. */
export function findingsTitle(mode: ServerMode): string {
  return mode === 'container'
    ? 'Outside /workspace (copied into .rescued/ when this server stops):'
    : 'Outside /workspace (lost on retire):';
}

/** What a finished rescue says. Inside a hub server it ran while the server keeps running. */
export function rescueMessage(
  project: string,
  result: { folder: string; files: number; skipped?: { path: string; why: string }[] },
  mode: ServerMode
): string {
  const skipped = result.skipped?.length ? ` Skipped ${result.skipped.length} (see MANIFEST.json).` : '';
  const where = mode === 'container' ? ' This server keeps running.' : '';
  return `Rescued ${result.files} file(s) of ${project} into ${result.folder}.${skipped}${where}`;
}

/** The hub's answer to "Stop server" (202 with a message), or a plain one if it had none. */
export function stopMessage(answer: { message?: string } | null | undefined): string {
  return (
    answer?.message ||
    'The hub is stopping this server; files outside /workspace are rescued into .rescued/ before its container is removed.'
  );
}
