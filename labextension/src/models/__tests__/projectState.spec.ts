import { actionsFor, phaseOf } from '../projectState';
import { parseWriteWarnings } from '../writeWarning';
import { IProject } from '../types';

const base: IProject = { name: 'p', path: '/w/p', container: null, image: null, size: null };
const container = (state: string, exit_code: number | null = null) => ({
  project: 'p',
  name: 'p._.u',
  id: 'c',
  state,
  exit_code
});

describe('project state and actions', () => {
  it('names the states people reason in', () => {
    expect(phaseOf(base)).toBe('not-built');
    expect(phaseOf({ ...base, image: { tag: 't' } })).toBe('built');
    expect(phaseOf({ ...base, container: container('running') })).toBe('running');
    expect(phaseOf({ ...base, container: container('exited', 0) })).toBe('stopped');
    expect(phaseOf({ ...base, container: container('exited', 143) })).toBe('stopped');
    expect(phaseOf({ ...base, container: container('exited', 1) })).toBe('error');
    expect(phaseOf({ ...base, container: { ...container('exited', 137), error: 'out of memory' } })).toBe('error');
    expect(phaseOf(base, { id: 'o', kind: 'deploy', project: 'p', state: 'running' })).toBe('deploying');
  });

  it('offers the actions that make sense, none while busy, only notebook, terminal and stop in container mode', () => {
    expect(actionsFor('not-built')).toEqual(['build', 'deploy']);
    expect(actionsFor('running')).toEqual(['notebook', 'terminal', 'stop', 'retire']);
    expect(actionsFor('error')).toEqual(['build', 'start', 'retire']);
    expect(actionsFor('building')).toEqual([]);
    expect(actionsFor('running', 'container')).toEqual(['notebook', 'terminal', 'stop']);
    expect(actionsFor('built', 'container')).toEqual([]);
    expect(actionsFor('stopped', 'container')).toEqual([]);
  });
});

describe('write warnings from the container kernel', () => {
  it('reads every path the hook warned about', () => {
    const text =
      'ds01 warning: /tmp/result.csv is outside /workspace and will be lost when this container is retired. Save it...\n' +
      'other output\nds01 warning: /root/data/x y.npy is outside /workspace and will be lost\n';
    expect(parseWriteWarnings(text)).toEqual(['/tmp/result.csv', '/root/data/x y.npy']);
    expect(parseWriteWarnings('nothing here')).toEqual([]);
  });
});
