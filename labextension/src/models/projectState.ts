/**
 * What a project's card says about it: one of the states people reason in
 * (not built, building, stopped, running, exited with an error), and which
 * buttons make sense in that state.
 */
import { IOperation, IProject } from './types';

export type ProjectPhase = 'not-built' | 'built' | 'building' | 'deploying' | 'running' | 'stopped' | 'error';

export const PHASE_LABEL: { [phase in ProjectPhase]: string } = {
  'not-built': 'not built',
  built: 'built, not deployed',
  building: 'building',
  deploying: 'deploying',
  running: 'running',
  stopped: 'stopped',
  error: 'exited with an error'
};

/** Exit codes of a container that was stopped (docker stop: SIGTERM, or SIGKILL after the grace time), not one that failed. */
const STOPPED_CODES = [0, 130, 137, 143];

export function phaseOf(project: IProject, operation?: IOperation): ProjectPhase {
  if (operation && operation.state === 'running') {
    return operation.kind === 'build' ? 'building' : 'deploying';
  }
  const c = project.container;
  if (c) {
    if (c.state === 'running') {
      return 'running';
    }
    if (c.state === 'dead' || c.error || !STOPPED_CODES.includes(c.exit_code ?? 0)) {
      return 'error';
    }
    return 'stopped';
  }
  return project.image ? 'built' : 'not-built';
}

export type ProjectAction = 'build' | 'deploy' | 'start' | 'stop' | 'retire' | 'terminal' | 'notebook';

/**
 * Actions offered in a phase. Inside a hub server's container (mode "container") there is no Docker:
 * the one running project offers a notebook, a terminal (both already inside) and stopping the server.
 */
export function actionsFor(phase: ProjectPhase, mode: string = 'host'): ProjectAction[] {
  const busy = phase === 'building' || phase === 'deploying';
  const out: ProjectAction[] = [];
  if (busy) {
    return out;
  }
  if (mode === 'container') {
    return phase === 'running' ? ['notebook', 'terminal', 'stop'] : [];
  }
  if (phase !== 'running') {
    out.push('build');
  }
  if (phase === 'not-built' || phase === 'built') {
    out.push('deploy');
  }
  if (phase === 'stopped' || phase === 'error') {
    out.push('start');
  }
  if (phase === 'running') {
    out.push('notebook', 'terminal', 'stop');
  }
  if (phase === 'running' || phase === 'stopped' || phase === 'error') {
    out.push('retire');
  }
  return out;
}
