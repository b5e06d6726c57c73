/**
 * The git line of a project card: one short text, whether it is a warning, and a
 * tooltip that says why it matters. The DS01 guide: use git for code and push
 * regularly; the workspace survives a retire, not a disk failure, so only code
 * pushed to a remote is safe from that. Pure, from the overview's `git`.
 */
import { IGitState } from './types';

export interface IGitBadge {
  text: string;
  /** ok: committed and pushed; warn: something is not; unknown: git could not say. */
  level: 'ok' | 'warn' | 'unknown';
  /** Why it matters and what to do (the tooltip and accessible description). */
  title: string;
}

const WHY =
  'The DS01 guide: use git for your code and push regularly. The workspace survives retiring the ' +
  'container, not a disk failure: only what is pushed to a remote is safe from that.';
const REFRESH = 'Refresh (at the top of the panel) reads it again.';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The badge for a project's git state; null when the server said nothing (older server, in-container mode). */
export function gitBadge(git: IGitState | null | undefined): IGitBadge | null {
  if (!git || typeof git !== 'object') {
    return null;
  }
  const title = (advice: string) => `${advice}\n\n${WHY}\n${REFRESH}`;
  if (git.problem) {
    return { text: git.problem, level: 'unknown', title: title('git could not tell whether this code is safe.') };
  }
  if (!git.repository) {
    return {
      text: 'not a git repository',
      level: 'warn',
      title: title('This project is not under git: git init, git add -A, git commit, then add a remote and push.')
    };
  }
  if (!git.commits) {
    return {
      text: 'no commit yet',
      level: 'warn',
      title: title('Nothing is committed yet: git add -A && git commit -m "…", then push to a remote.')
    };
  }
  const parts: string[] = [];
  const advice: string[] = [];
  const uncommitted = (git.changed || 0) + (git.untracked || 0);
  if (uncommitted) {
    parts.push(`${plural(uncommitted, 'uncommitted change')}`);
    advice.push(
      `${plural(git.changed || 0, 'changed file')} and ${plural(git.untracked || 0, 'new file')} not committed: ` +
        'git add and git commit them.'
    );
  }
  if (!git.remote) {
    parts.push('no remote');
    advice.push('The commits are only on this server: git remote add origin URL, then git push -u origin HEAD.');
  } else if (!git.upstream) {
    parts.push('branch not pushed');
    advice.push(`The branch${git.branch ? ` ${git.branch}` : ''} was never pushed: git push -u origin HEAD.`);
  } else if (git.ahead) {
    parts.push(`${plural(git.ahead, 'commit')} not pushed`);
    advice.push(`${plural(git.ahead, 'commit')} only on this server: git push.`);
  }
  if (git.behind) {
    advice.push(`The remote has ${plural(git.behind, 'commit')} not pulled here yet.`);
  }
  if (!parts.length) {
    return {
      text: 'committed and pushed',
      level: 'ok',
      title: title(
        `Everything is committed and pushed${git.branch ? ` (${git.branch})` : ''}. ${advice.join(' ')}`.trim()
      )
    };
  }
  return { text: parts.join(', '), level: 'warn', title: title(advice.join(' ')) };
}
