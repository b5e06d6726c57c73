/**
 * The sidebar's state as a pure function of the event stream: a snapshot
 * first, then changes. Pure so Jest can replay a stream and check the result.
 */
import { DS01Event, IEngine, IOperation, IProject, IRuntimeWarning } from './types';

export interface IDS01State {
  /** Whether a snapshot has arrived on the current connection. */
  ready: boolean;
  user: string;
  engine: IEngine;
  projects: IProject[];
  /** Operations by id; lines grow as progress events arrive. */
  operations: { [id: string]: IOperation };
  /** Paths at risk reported by the server's scans, per project. */
  atRisk: { [project: string]: number };
  /** What the last snapshot said of where the server runs ("host" when it said nothing). */
  mode: string;
  /** The reaper's max_runtime notices, per project, until its container stops or goes. */
  runtimeWarnings: { [project: string]: IRuntimeWarning };
  /** Framework images a deploy may fall back to (from the snapshot). */
  frameworks: string[];
}

export const INITIAL_STATE: IDS01State = {
  ready: false,
  user: '',
  engine: { available: true },
  projects: [],
  operations: {},
  atRisk: {},
  mode: 'host',
  runtimeWarnings: {},
  frameworks: []
};

const MAX_LINES = 400;

/** Container actions after which a max_runtime notice no longer applies. */
const ENDS_RUN = new Set(['die', 'stop', 'destroy', 'oom']);

/** Container state after an engine action (until the next fetch fills in the details). */
const ACTION_STATE: { [action: string]: string } = {
  create: 'created',
  start: 'running',
  unpause: 'running',
  pause: 'paused',
  die: 'exited',
  stop: 'exited',
  oom: 'exited'
};

export function applyEvent(state: IDS01State, event: DS01Event): IDS01State {
  switch (event.type) {
    case 'snapshot': {
      const operations: { [id: string]: IOperation } = {};
      // Keep what we know of finished operations; take the server's running ones.
      for (const op of Object.values(state.operations)) {
        if (op.state !== 'running') {
          operations[op.id] = op;
        }
      }
      for (const op of event.operations ?? []) {
        operations[op.id] = { ...op, lines: state.operations[op.id]?.lines ?? op.lines ?? [] };
      }
      const atRisk: { [project: string]: number } = {};
      for (const p of event.projects) {
        if (p.warnings) {
          atRisk[p.name] = p.warnings;
        }
      }
      // A notice stays while its project's container still runs (the reconnect did not stop it).
      const runtimeWarnings: { [project: string]: IRuntimeWarning } = {};
      for (const p of event.projects) {
        if (state.runtimeWarnings[p.name] && p.container?.running) {
          runtimeWarnings[p.name] = state.runtimeWarnings[p.name];
        }
      }
      return {
        ready: true,
        user: event.user,
        engine: event.engine,
        projects: event.projects,
        operations,
        atRisk,
        mode: event.mode ?? 'host',
        runtimeWarnings,
        frameworks: event.frameworks ?? []
      };
    }
    case 'container': {
      const projects = applyContainerAction(state.projects, event);
      if (!state.runtimeWarnings[event.project] || !ENDS_RUN.has(event.action)) {
        return { ...state, projects };
      }
      const runtimeWarnings = { ...state.runtimeWarnings };
      delete runtimeWarnings[event.project];
      return { ...state, projects, runtimeWarnings };
    }
    case 'operation':
      return { ...state, operations: applyOperation(state.operations, event) };
    case 'engine':
      return { ...state, engine: { available: event.available, reason: event.reason } };
    case 'warning':
      if (event.kind === 'max_runtime') {
        const warning: IRuntimeWarning = {
          project: event.project,
          container: typeof event.container === 'string' ? event.container : undefined,
          message: typeof event.message === 'string' ? event.message : undefined,
          stops_at: typeof event.stops_at === 'number' ? event.stops_at : undefined
        };
        return { ...state, runtimeWarnings: { ...state.runtimeWarnings, [event.project]: warning } };
      }
      if (event.kind === 'checkpoint' || typeof event.at_risk !== 'number') {
        return state;
      }
      return { ...state, atRisk: { ...state.atRisk, [event.project]: event.at_risk } };
    default:
      return state;
  }
}

function applyContainerAction(
  projects: IProject[],
  event: { action: string; project: string; id?: string; name?: string; exit_code?: number | null; time?: number }
): IProject[] {
  return projects.map(p => {
    if (p.name !== event.project) {
      return p;
    }
    if (event.action === 'destroy') {
      return { ...p, container: null, warnings: 0 };
    }
    const next = ACTION_STATE[event.action];
    if (!next) {
      return p;
    }
    const base = p.container ?? { project: p.name, name: event.name ?? '', id: event.id ?? '', state: next };
    return {
      ...p,
      container: {
        ...base,
        state: next,
        running: next === 'running',
        exit_code: next === 'exited' ? (event.exit_code ?? base.exit_code ?? null) : null,
        uptime_seconds: next === 'running' ? (base.uptime_seconds ?? 0) : null,
        started_at:
          event.action === 'start' && event.time ? new Date(event.time * 1000).toISOString() : (base.started_at ?? null)
      }
    };
  });
}

function applyOperation(
  operations: { [id: string]: IOperation },
  event: IOperation & { line?: string }
): { [id: string]: IOperation } {
  const known = operations[event.id];
  const lines = [...(known?.lines ?? event.lines ?? [])];
  if (event.line !== undefined) {
    lines.push(event.line);
    if (lines.length > MAX_LINES) {
      lines.splice(0, lines.length - MAX_LINES);
    }
  }
  const rest: { [key: string]: unknown } = { ...event };
  delete rest.line;
  delete rest.type;
  return { ...operations, [event.id]: { ...known, ...(rest as unknown as IOperation), lines } };
}

/** Replace one project's data (after fetching /projects/<name>). */
export function withProject(state: IDS01State, project: IProject): IDS01State {
  const known = state.projects.some(p => p.name === project.name);
  const projects = known
    ? state.projects.map(p => (p.name === project.name ? project : p))
    : [...state.projects, project].sort((a, b) => a.name.localeCompare(b.name));
  return { ...state, projects };
}

/** The running (or else latest) operation of a project. */
export function operationOf(state: IDS01State, project: string): IOperation | undefined {
  const ops = Object.values(state.operations).filter(o => o.project === project);
  const running = ops.find(o => o.state === 'running');
  if (running) {
    return running;
  }
  return ops.sort((a, b) => (b.started ?? 0) - (a.started ?? 0))[0];
}

/**
 * Merge an operation fetched from /operations/<id> (its lines so far) with
 * what events already brought: lines that arrived while fetching are newer.
 */
export function withFollowed(state: IDS01State, op: IOperation): IDS01State {
  const known = state.operations[op.id];
  const lines = op.lines ?? [];
  const extra = (known?.lines ?? []).filter(line => !lines.includes(line));
  // An event may already say the operation finished; never go back to "running".
  const finished =
    known && known.state !== 'running' ? { state: known.state, error: known.error, result: known.result } : {};
  return {
    ...state,
    operations: { ...state.operations, [op.id]: { ...known, ...op, ...finished, lines: [...lines, ...extra] } }
  };
}
