import { gitBadge } from '../gitBadge';
import { IGitState } from '../types';

const pushed: IGitState = {
  repository: true,
  commits: true,
  branch: 'main',
  changed: 0,
  untracked: 0,
  remote: true,
  upstream: true,
  ahead: 0,
  behind: 0,
  problem: '',
  summary: 'committed and pushed'
};

describe('gitBadge', () => {
  it('says nothing when the server did not say (an older server, a hub server inside its container)', () => {
    expect(gitBadge(undefined)).toBeNull();
    expect(gitBadge(null)).toBeNull();
    // project-init's answer carries git as a sentence, not a state: never shown as one.
    expect(gitBadge('git: made the first commit' as unknown as IGitState)).toBeNull();
  });

  it('is quiet only when everything is committed and pushed', () => {
    const badge = gitBadge(pushed)!;
    expect(badge.text).toBe('committed and pushed');
    expect(badge.level).toBe('ok');
    expect(badge.title).toContain('(main)');
  });

  it('warns with what is missing, in the order the server summarises it', () => {
    expect(gitBadge({ ...pushed, repository: false, commits: false })).toMatchObject({
      text: 'not a git repository',
      level: 'warn'
    });
    expect(gitBadge({ ...pushed, commits: false, remote: false, upstream: false })).toMatchObject({
      text: 'no commit yet',
      level: 'warn'
    });
    expect(gitBadge({ ...pushed, changed: 2, untracked: 1 })!.text).toBe('3 uncommitted changes');
    expect(gitBadge({ ...pushed, untracked: 1 })!.text).toBe('1 uncommitted change');
    expect(gitBadge({ ...pushed, remote: false, upstream: false })!.text).toBe('no remote');
    expect(gitBadge({ ...pushed, upstream: false })!.text).toBe('branch not pushed');
    expect(gitBadge({ ...pushed, ahead: 2 })!.text).toBe('2 commits not pushed');
    expect(gitBadge({ ...pushed, ahead: 1 })!.text).toBe('1 commit not pushed');
    expect(gitBadge({ ...pushed, changed: 3, remote: false, upstream: false })).toMatchObject({
      text: '3 uncommitted changes, no remote',
      level: 'warn'
    });
  });

  it('says in its tooltip why it matters and what to do', () => {
    const noRemote = gitBadge({ ...pushed, remote: false, upstream: false })!;
    expect(noRemote.title).toContain('git remote add origin');
    expect(noRemote.title).toContain('not a disk failure');
    expect(gitBadge({ ...pushed, ahead: 2 })!.title).toContain('git push');
    expect(gitBadge({ ...pushed, commits: false })!.title).toContain('git commit');
    expect(gitBadge({ ...pushed, changed: 1, untracked: 2 })!.title).toContain('1 changed file and 2 new files');
    // Behind is worth saying but is no risk to the code here.
    const behind = gitBadge({ ...pushed, behind: 4 })!;
    expect(behind.level).toBe('ok');
    expect(behind.title).toContain('4 commits not pulled');
  });

  it("shows git's own problem without claiming anything about the code", () => {
    const badge = gitBadge({ ...pushed, problem: 'git took longer than 5 s to answer' })!;
    expect(badge).toMatchObject({ text: 'git took longer than 5 s to answer', level: 'unknown' });
  });
});
