/**
 * "Where are my files?" in a project card: the search box's state as one pure
 * reducer, the matches grouped by where they are (safe first, at risk, gone),
 * and which of them JupyterLab can open. The component sends actions; the
 * request (GET /projects/<name>/where?pattern=) goes through the typed client.
 */
import { projectFolder } from './unsaved';
import { IWhere, IWhereMatch, WhereKind } from './types';

/** The most matches shown (the server sends at most this many and says when there were more). */
export const MAX_SHOWN = 200;

export interface IWhereViewState {
  /** What is typed in the box. */
  pattern: string;
  searching: boolean;
  /** The answer to the last search; kept while a new one runs. */
  result: IWhere | null;
  /** The server's refusal (a 400 for an empty or too long pattern) or a failure, shown inline. */
  error: string;
}

export const INITIAL_WHERE: IWhereViewState = { pattern: '', searching: false, result: null, error: '' };

export type WhereViewAction =
  | { type: 'pattern'; pattern: string }
  | { type: 'searching' }
  | { type: 'found'; result: IWhere }
  | { type: 'failed'; error: string }
  | { type: 'clear' };

export function whereView(state: IWhereViewState, action: WhereViewAction): IWhereViewState {
  switch (action.type) {
    case 'pattern':
      return { ...state, pattern: action.pattern };
    case 'searching':
      return { ...state, searching: true, error: '' };
    case 'found':
      return { ...state, searching: false, result: action.result, error: '' };
    case 'failed':
      return { ...state, searching: false, result: null, error: action.error };
    case 'clear':
      return INITIAL_WHERE;
  }
}

export interface IWhereGroup {
  where: WhereKind | string;
  label: string;
  /** safe: in the workspace or a rescue; risk: only in the container; gone: with a retired container. */
  level: 'safe' | 'risk' | 'gone';
  matches: IWhereMatch[];
}

const GROUPS: { where: WhereKind; label: string; level: IWhereGroup['level'] }[] = [
  { where: 'workspace', label: 'In the workspace (safe)', level: 'safe' },
  { where: 'rescued', label: 'Rescued copies (safe)', level: 'safe' },
  { where: 'container', label: 'In the container only (at risk)', level: 'risk' },
  { where: 'retired', label: 'In retired containers', level: 'gone' }
];

/** Matches grouped by where they are, in the order above (a kind the server adds later comes last), at most MAX_SHOWN. */
export function groupMatches(matches: IWhereMatch[]): IWhereGroup[] {
  const shown = matches.slice(0, MAX_SHOWN);
  const groups: IWhereGroup[] = GROUPS.map(g => ({ ...g, matches: shown.filter(m => m.where === g.where) }));
  const known = new Set<string>(GROUPS.map(g => g.where));
  for (const where of [...new Set(shown.map(m => m.where))].filter(w => !known.has(w))) {
    groups.push({ where, label: where, level: 'gone', matches: shown.filter(m => m.where === where) });
  }
  return groups.filter(g => g.matches.length);
}

/** The line above the groups: how many matched, and that there were more than shown. */
export function resultSummary(result: IWhere): string {
  const n = Math.min(result.matches.length, MAX_SHOWN);
  if (!n) {
    return `Nothing matches ${result.pattern} in the workspace, the rescues, the container or retired containers.`;
  }
  const more = result.truncated || result.matches.length > MAX_SHOWN;
  return more
    ? `The first ${n} matches of ${result.pattern}; there are more: narrow the pattern.`
    : `${n} match${n === 1 ? '' : 'es'} of ${result.pattern}.`;
}

/**
 * The JupyterLab path of a workspace or rescued match (relative to the server's root), or null when
 * JupyterLab cannot open it: a container or retired match, or a file outside the server's root. The
 * host path comes first; a server inside the project's container has /workspace as its files' path.
 */
export function openablePath(match: IWhereMatch, serverRoot: string): string | null {
  if (match.where !== 'workspace' && match.where !== 'rescued') {
    return null;
  }
  for (const candidate of [match.host_path, match.where === 'workspace' ? match.path : undefined]) {
    const relative = candidate ? projectFolder(candidate, serverRoot) : null;
    if (relative) {
      return relative;
    }
  }
  return null;
}

/** Files bigger than this are shown in the file browser rather than loaded into an editor. */
export const MAX_OPEN_BYTES = 50 * 2 ** 20;

export interface IOpenTarget {
  path: string;
  /** Open the file, or show it in the file browser (a big file, a checkpoint). */
  command: 'docmanager:open' | 'filebrowser:go-to-path';
}

/** How a match is opened in JupyterLab, or null when it cannot be (see openablePath). */
export function openTarget(match: IWhereMatch, serverRoot: string): IOpenTarget | null {
  const path = openablePath(match, serverRoot);
  if (path === null) {
    return null;
  }
  const big = typeof match.size !== 'number' || match.size > MAX_OPEN_BYTES;
  return { path, command: big ? 'filebrowser:go-to-path' : 'docmanager:open' };
}

/** The file's name and, for a rescued copy, which rescue it is from. */
export function matchLabel(match: IWhereMatch): string {
  return match.where === 'rescued' && match.stamp ? `${match.path} (rescued ${match.stamp})` : match.path;
}
