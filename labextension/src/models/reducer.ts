/**
 * The sidebar's state as a pure function of what happened: the event stream
 * (a snapshot first, then changes), and the answers the model fetched. Every
 * change goes through `reduce`; pure so Jest can replay a stream and check it.
 */
import { IGpuHistory, withSamples } from './gpuHistory';
import { DEFAULT_SETTINGS, IDS01Settings } from './settings';
import { DS01Event, IAudit, IEngine, IGpus, ILimits, IOperation, IProject, IRuntimeWarning, IVersion } from './types';

/** The event stream's connection: connecting, open, retrying (after a drop), missing (no server extension), stopped. */
export type StreamStatus = 'connecting' | 'open' | 'retrying' | 'missing' | 'stopped';

/** A project's last audit, or why it failed. */
export type AuditState = IAudit | { error: string };

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
  /** The event stream's connection, and what went wrong ("" when nothing did). */
  connection: { status: StreamStatus; detail: string };
  /** GET /version; null until it answered (or when it failed). */
  version: IVersion | null;
  /** Each project's last audit (dropped when its container goes). */
  audits: { [project: string]: AuditState };
  /** GET /gpus and /limits: null until first fetched. */
  gpus: IGpus | null;
  limits: ILimits | null;
  /** Recent GPU readings for the sparklines. */
  gpuHistory: IGpuHistory;
  /** The user's settings (schema/plugin.json) over the defaults. */
  settings: IDS01Settings;
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
  frameworks: [],
  connection: { status: 'connecting', detail: '' },
  version: null,
  audits: {},
  gpus: null,
  limits: null,
  gpuHistory: {},
  settings: DEFAULT_SETTINGS
};

/** Everything that changes the state: an event, or what the model fetched or was told. */
export type DS01Action =
  | { type: 'event'; event: DS01Event }
  | { type: 'connection'; status: StreamStatus; detail?: string }
  | { type: 'version'; version: IVersion | null }
  | { type: 'settings'; settings: Partial<IDS01Settings> }
  /** GET /projects/<name> answered. */
  | { type: 'project'; project: IProject }
  /** GET /operations/<id> answered for an operation that began before we connected. */
  | { type: 'followed'; operation: IOperation }
  /** A build or deploy this page started (its events follow). */
  | { type: 'started'; operation: IOperation }
  | { type: 'audit'; project: string; audit: AuditState }
  /** GPUs and limits fetched at `time` (either may have failed: left as it was). */
  | { type: 'resources'; gpus?: IGpus; limits?: ILimits; time: number };

export function reduce(state: IDS01State, action: DS01Action): IDS01State {
  switch (action.type) {
    case 'event':
      return applyEvent(state, action.event);
    case 'connection':
      return { ...state, connection: { status: action.status, detail: action.detail ?? '' } };
    case 'version':
      return { ...state, version: action.version };
    case 'settings':
      return { ...state, settings: { ...DEFAULT_SETTINGS, ...action.settings } };
    case 'project':
      return withProject(state, action.project);
    case 'followed':
      return withFollowed(state, action.operation);
    case 'started':
      return { ...state, operations: withOperation(state.operations, action.operation) };
    case 'audit':
      return { ...state, audits: { ...state.audits, [action.project]: action.audit } };
    case 'resources':
      return {
        ...state,
        gpus: action.gpus ?? state.gpus,
        limits: action.limits ?? state.limits,
        gpuHistory: action.gpus ? withSamples(state.gpuHistory, action.gpus.gpus, action.time) : state.gpuHistory
      };
  }
}

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
      let operations: { [id: string]: IOperation } = {};
      // Keep what we know of finished operations; take the server's running ones.
      for (const op of Object.values(state.operations)) {
        if (op.state !== 'running') {
          operations[op.id] = op;
        }
      }
      for (const op of event.operations ?? []) {
        operations = withOperation(operations, op, state.operations[op.id]);
      }
      const atRisk: { [project: string]: number } = {};
      // A notice stays while its project's container still runs (the reconnect did not stop it).
      const runtimeWarnings: { [project: string]: IRuntimeWarning } = {};
      for (const p of event.projects) {
        if (p.warnings) {
          atRisk[p.name] = p.warnings;
        }
        if (state.runtimeWarnings[p.name] && p.container?.running) {
          runtimeWarnings[p.name] = state.runtimeWarnings[p.name];
        }
      }
      return {
        ...state,
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
      // An audit of a removed container no longer applies; a max_runtime notice ends with the run.
      const audits = event.action === 'destroy' ? without(state.audits, event.project) : state.audits;
      const runtimeWarnings = ENDS_RUN.has(event.action)
        ? without(state.runtimeWarnings, event.project)
        : state.runtimeWarnings;
      return { ...state, projects, audits, runtimeWarnings };
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

/** The map without `key` (the same object when it had none, so nothing re-renders for it). */
function without<T>(map: { [key: string]: T }, key: string): { [key: string]: T } {
  if (!(key in map)) {
    return map;
  }
  const rest = { ...map };
  delete rest[key];
  return rest;
}

/** Record an operation as the server describes it, keeping the progress lines already shown. */
function withOperation(
  operations: { [id: string]: IOperation },
  op: IOperation,
  known: IOperation | undefined = operations[op.id]
): { [id: string]: IOperation } {
  return { ...operations, [op.id]: { ...op, lines: known?.lines ?? op.lines ?? [] } };
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
