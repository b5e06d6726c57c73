import { applyEvent, INITIAL_STATE, operationOf, withFollowed } from '../reducer';
import { phaseOf } from '../projectState';
import { DS01Event } from '../types';
import { project } from './fixtures/projects';

const snapshot: DS01Event = {
  type: 'snapshot',
  user: 'ada',
  engine: { available: true, reason: '' },
  projects: [project('alpha', { image: { tag: 'ds01-ada/alpha:latest' } }), project('beta')],
  operations: [{ id: 'op-1-1', kind: 'build', project: 'beta', state: 'running' }]
};

function replay(events: DS01Event[]) {
  return events.reduce(applyEvent, INITIAL_STATE);
}

describe('event stream reducer', () => {
  it('applies a snapshot, then container changes, as the panel shows them', () => {
    let state = replay([snapshot]);
    expect(state.ready).toBe(true);
    expect(state.projects.map(p => phaseOf(p, operationOf(state, p.name)))).toEqual(['built', 'building']);

    state = replay([
      snapshot,
      { type: 'container', action: 'create', project: 'alpha', id: 'c1', name: 'alpha._.ada' },
      { type: 'container', action: 'start', project: 'alpha', id: 'c1', name: 'alpha._.ada' }
    ]);
    const alpha = state.projects[0];
    expect(alpha.container).toMatchObject({ name: 'alpha._.ada', state: 'running', running: true });
    expect(phaseOf(alpha)).toBe('running');

    const stopped = applyEvent(state, { type: 'container', action: 'die', project: 'alpha', exit_code: 143 });
    expect(stopped.projects[0].container).toMatchObject({ state: 'exited', exit_code: 143 });
    expect(phaseOf(stopped.projects[0])).toBe('stopped');

    state = applyEvent(state, { type: 'container', action: 'die', project: 'alpha', exit_code: 1 });
    expect(state.projects[0].container).toMatchObject({ state: 'exited', exit_code: 1 });
    expect(phaseOf(state.projects[0])).toBe('error');

    state = applyEvent(state, { type: 'container', action: 'destroy', project: 'alpha' });
    expect(state.projects[0].container).toBeNull();
  });

  it('ignores events of other projects and unknown kinds', () => {
    const state = replay([snapshot]);
    const after = replay([
      snapshot,
      { type: 'container', action: 'start', project: 'elsewhere' },
      { type: 'reaper', action: 'stop' }
    ]);
    expect(after.projects).toEqual(state.projects);
  });

  it('follows an operation: progress lines, then its end', () => {
    const state = replay([
      snapshot,
      { type: 'operation', id: 'op-1-1', project: 'beta', kind: 'build', state: 'running', line: 'Step 1/4' },
      { type: 'operation', id: 'op-1-1', project: 'beta', kind: 'build', state: 'running', line: 'Step 2/4' },
      {
        type: 'operation',
        id: 'op-1-1',
        project: 'beta',
        kind: 'build',
        state: 'failed',
        error: { error: 'BuildFailed', message: 'pip failed' }
      }
    ]);
    const op = operationOf(state, 'beta');
    expect(op?.lines).toEqual(['Step 1/4', 'Step 2/4']);
    expect(op?.state).toBe('failed');
    expect(op?.error?.message).toBe('pip failed');
    expect(phaseOf(state.projects[1], op)).toBe('not-built');
  });

  it('keeps the log of a running operation across a reconnect snapshot', () => {
    let state = replay([
      snapshot,
      { type: 'operation', id: 'op-1-1', project: 'beta', kind: 'build', state: 'running', line: 'Step 1/4' }
    ]);
    state = applyEvent(state, snapshot);
    expect(state.operations['op-1-1'].lines).toEqual(['Step 1/4']);
  });

  it('merges the fetched log of an operation with lines that arrived meanwhile', () => {
    let state = replay([
      snapshot,
      { type: 'operation', id: 'op-1-1', project: 'beta', kind: 'build', state: 'running', line: 'Step 3/4' }
    ]);
    state = withFollowed(state, {
      id: 'op-1-1',
      project: 'beta',
      kind: 'build',
      state: 'running',
      lines: ['Step 1/4', 'Step 2/4']
    });
    expect(state.operations['op-1-1'].lines).toEqual(['Step 1/4', 'Step 2/4', 'Step 3/4']);

    // A fetch answered after the end event must not bring "running" back.
    state = applyEvent(state, { type: 'operation', id: 'op-1-1', project: 'beta', kind: 'build', state: 'done' });
    state = withFollowed(state, {
      id: 'op-1-1',
      project: 'beta',
      kind: 'build',
      state: 'running',
      lines: ['Step 1/4']
    });
    expect(state.operations['op-1-1'].state).toBe('done');
  });

  it('records Docker going away and coming back, and files at risk per project', () => {
    let state = replay([snapshot, { type: 'engine', available: false, reason: 'Cannot connect to the Docker daemon' }]);
    expect(state.engine).toEqual({ available: false, reason: 'Cannot connect to the Docker daemon' });
    state = applyEvent(state, { type: 'engine', available: true });
    expect(state.engine.available).toBe(true);
    state = applyEvent(state, { type: 'warning', project: 'alpha', at_risk: 2, new: [] });
    expect(state.atRisk).toEqual({ alpha: 2 });
    state = applyEvent(state, { type: 'warning', project: 'alpha', kind: 'checkpoint', message: 'no checkpoint' });
    expect(state.atRisk).toEqual({ alpha: 2 });
  });
});
