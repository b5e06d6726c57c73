import {
  groupMatches,
  INITIAL_WHERE,
  matchLabel,
  MAX_SHOWN,
  openablePath,
  openTarget,
  resultSummary,
  whereView
} from '../whereView';
import { IWhere, IWhereMatch } from '../types';

const root = '/home/ada';
const workspace: IWhereMatch = {
  where: 'workspace',
  path: '/workspace/results/run1.csv',
  host_path: '/home/ada/workspace/demo/results/run1.csv',
  size: 120,
  mtime: 1700000000,
  how: 'safe in the workspace'
};
const rescued: IWhereMatch = {
  where: 'rescued',
  path: '/tmp/run1.csv',
  stamp: '20261129T050000Z',
  host_path: '/home/ada/workspace/demo/.rescued/20261129T050000Z/tmp/run1.csv',
  size: 99,
  how: 'a copy rescued at 20261129T050000Z'
};
const container: IWhereMatch = { where: 'container', path: '/tmp/run2.csv', size: 10, kind: 'work', how: 'at risk' };
const retired: IWhereMatch = {
  where: 'retired',
  path: '/root/run0.csv',
  retired_at: '2026-11-28T10:00:00Z',
  how: 'went with it (discard)'
};

const answer = (matches: IWhereMatch[], truncated = false): IWhere => ({
  project: 'demo',
  pattern: 'run*.csv',
  matches,
  truncated,
  notes: []
});

describe('where view', () => {
  it('groups matches safe first, then at risk, then gone, leaving out empty groups', () => {
    const groups = groupMatches([retired, container, rescued, workspace]);
    expect(groups.map(g => g.where)).toEqual(['workspace', 'rescued', 'container', 'retired']);
    expect(groups.map(g => g.level)).toEqual(['safe', 'safe', 'risk', 'gone']);
    expect(groupMatches([container]).map(g => g.label)).toEqual(['In the container only (at risk)']);
    // A kind a newer server adds still shows, last.
    expect(groupMatches([{ ...retired, where: 'backup' }, workspace]).map(g => g.where)).toEqual([
      'workspace',
      'backup'
    ]);
  });

  it(`shows at most ${MAX_SHOWN} and says when there were more`, () => {
    const many = Array.from({ length: 250 }, (_, i) => ({ ...workspace, path: `/workspace/f${i}.csv` }));
    expect(groupMatches(many)[0].matches).toHaveLength(MAX_SHOWN);
    expect(resultSummary(answer(many))).toBe('The first 200 matches of run*.csv; there are more: narrow the pattern.');
    expect(resultSummary(answer([workspace], true))).toContain('there are more');
    expect(resultSummary(answer([workspace]))).toBe('1 match of run*.csv.');
    expect(resultSummary(answer([workspace, rescued]))).toBe('2 matches of run*.csv.');
    expect(resultSummary(answer([]))).toMatch(/^Nothing matches run\*\.csv/);
  });

  it('opens workspace and rescued files under the server root, never container or retired ones', () => {
    expect(openablePath(workspace, root)).toBe('workspace/demo/results/run1.csv');
    expect(openablePath(rescued, root + '/')).toBe('workspace/demo/.rescued/20261129T050000Z/tmp/run1.csv');
    expect(openablePath(workspace, '/srv/other')).toBeNull();
    expect(openablePath(workspace, '')).toBeNull();
    expect(openablePath(container, '/')).toBeNull();
    expect(openablePath(retired, '/')).toBeNull();
    // A server inside the project's container: its root is /workspace and files are under it.
    expect(openablePath({ ...workspace, host_path: undefined }, '/workspace')).toBe('results/run1.csv');
    expect(openablePath({ ...rescued, host_path: undefined }, '/workspace')).toBeNull();
  });

  it('opens small files and shows big ones in the file browser', () => {
    expect(openTarget(workspace, root)).toEqual({
      path: 'workspace/demo/results/run1.csv',
      command: 'docmanager:open'
    });
    expect(openTarget({ ...workspace, size: 2 * 2 ** 30 }, root)?.command).toBe('filebrowser:go-to-path');
    expect(openTarget(container, root)).toBeNull();
  });

  it('names a rescued copy with its rescue', () => {
    expect(matchLabel(rescued)).toBe('/tmp/run1.csv (rescued 20261129T050000Z)');
    expect(matchLabel(workspace)).toBe('/workspace/results/run1.csv');
  });

  it('keeps the typed pattern, the last answer and an inline error', () => {
    let state = whereView(INITIAL_WHERE, { type: 'pattern', pattern: '*.csv' });
    state = whereView(state, { type: 'searching' });
    expect(state).toMatchObject({ pattern: '*.csv', searching: true, error: '' });
    state = whereView(state, { type: 'found', result: answer([workspace]) });
    expect(state.result?.matches).toHaveLength(1);
    expect(state.searching).toBe(false);
    state = whereView(state, { type: 'failed', error: 'A pattern is a glob of 1 to 512 characters' });
    expect(state).toMatchObject({ result: null, searching: false, pattern: '*.csv' });
    expect(state.error).toContain('glob');
    expect(whereView(state, { type: 'clear' })).toEqual(INITIAL_WHERE);
  });
});
