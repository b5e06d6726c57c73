/**
 * The sidebar's live model: the event stream folded into state (see
 * models/reducer.ts), plus what is fetched on demand (audits, GPUs, limits,
 * checkpoints). It lives in the plugin, not in the panel, so closing and
 * reopening the panel keeps following long work.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { DS01Client } from './client';
import { EventStream, StreamStatus } from './eventStream';
import { GpuHistory } from './models/gpuHistory';
import { applyEvent, IDS01State, INITIAL_STATE, withFollowed, withProject } from './models/reducer';
import { serverMode, ServerMode } from './models/serverMode';
import { DEFAULT_SETTINGS, IDS01Settings } from './models/settings';
import { DS01Event, IAudit, IGpus, ILimits, IOperation, IVersion } from './models/types';

export interface IWarningEvent {
  project: string;
  kind?: string;
  at_risk?: number;
  new?: { path: string; size: number; kind: string; notebook?: string | null }[];
  [key: string]: unknown;
}

export class DS01Model {
  readonly history = new GpuHistory();
  state: IDS01State = INITIAL_STATE;
  status: StreamStatus = 'connecting';
  statusDetail = '';
  version: IVersion | null = null;
  audits: { [project: string]: IAudit | { error: string } } = {};
  gpus: IGpus | null = null;
  limits: ILimits | null = null;
  settings: IDS01Settings = DEFAULT_SETTINGS;

  private stream: EventStream | null = null;
  private refreshTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private _changed = new Signal<this, void>(this);
  private _warning = new Signal<this, IWarningEvent>(this);
  private _operationFinished = new Signal<this, IOperation>(this);

  constructor(readonly client: DS01Client) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }
  /** A server scan found new files at risk (or a checkpoint warning). */
  get warning(): ISignal<this, IWarningEvent> {
    return this._warning;
  }
  get operationFinished(): ISignal<this, IOperation> {
    return this._operationFinished;
  }
  /** "host" unless the server says it runs inside a container (JupyterHub in-container mode). */
  get mode(): ServerMode {
    return serverMode(this.version, this.state.ready ? this.state.mode : null);
  }

  async start(): Promise<void> {
    try {
      this.version = await this.client.version();
    } catch (error) {
      this.version = null;
    }
    this.stream = new EventStream({
      url: this.client.eventsUrl(),
      settings: this.client.serverSettings,
      onEvent: event => this.apply(event),
      onStatus: (status, detail) => {
        this.status = status;
        this.statusDetail = detail ?? '';
        this._changed.emit();
      }
    });
    this.stream.start();
  }

  dispose(): void {
    this.stream?.stop();
    this.refreshTimers.forEach(t => clearTimeout(t));
  }

  setSettings(settings: Partial<IDS01Settings>): void {
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    this._changed.emit();
  }

  reconnect(): void {
    this.stream?.reconnect();
  }

  /** Fold one event into the state, then fetch whatever it made stale. */
  apply(event: DS01Event): void {
    const before = this.state;
    this.state = applyEvent(this.state, event);
    switch (event.type) {
      case 'snapshot':
        for (const op of event.operations ?? []) {
          void this.followOperation(op.id);
        }
        break;
      case 'container':
        this.refreshProjectSoon(event.project);
        if (event.action === 'destroy') {
          delete this.audits[event.project];
        }
        if (this.gpus) {
          void this.refreshResources();
        }
        break;
      case 'gpu':
        void this.refreshResources();
        break;
      case 'operation':
        if (event.state !== 'running' && before.operations[event.id]?.state !== event.state) {
          this.refreshProjectSoon(event.project, 0);
          this._operationFinished.emit(this.state.operations[event.id]);
        }
        break;
      case 'warning':
        this._warning.emit(event as IWarningEvent);
        if (event.kind !== 'checkpoint') {
          // For max_runtime too: the card then lists what runs, before it is stopped.
          void this.loadAudit(event.project);
        }
        break;
    }
    this._changed.emit();
  }

  /** Fill in lines of an operation that started before we connected. */
  async followOperation(id: string): Promise<void> {
    try {
      const op = await this.client.operation(id);
      this.state = withFollowed(this.state, op);
      this._changed.emit();
    } catch (error) {
      console.warn('ds01: cannot follow operation', id, error);
    }
  }

  refreshProjectSoon(name: string, delay = 300): void {
    const timer = this.refreshTimers.get(name);
    if (timer) {
      clearTimeout(timer);
    }
    this.refreshTimers.set(
      name,
      setTimeout(() => {
        this.refreshTimers.delete(name);
        void this.refreshProject(name);
      }, delay)
    );
  }

  async refreshProject(name: string): Promise<void> {
    try {
      const project = await this.client.project(name);
      this.state = withProject(this.state, project);
      this._changed.emit();
    } catch (error) {
      console.warn('ds01: cannot refresh', name, error);
    }
  }

  async loadAudit(project: string): Promise<IAudit | null> {
    try {
      const audit = await this.client.audit(project);
      this.audits = { ...this.audits, [project]: audit };
      this._changed.emit();
      return audit;
    } catch (error) {
      this.audits = { ...this.audits, [project]: { error: String((error as Error).message ?? error) } };
      this._changed.emit();
      return null;
    }
  }

  /** GPUs and limits: fetched when shown, after GPU events, and on the refresh interval while visible. */
  async refreshResources(): Promise<void> {
    const [gpus, limits] = await Promise.allSettled([this.client.gpus(), this.client.limits()]);
    if (gpus.status === 'fulfilled') {
      this.gpus = gpus.value;
      this.history.add(gpus.value.gpus);
    }
    if (limits.status === 'fulfilled') {
      this.limits = limits.value;
    }
    this._changed.emit();
  }

  /** Start a build or deploy and record its operation at once (events then follow it). */
  async startOperation(kind: 'build' | 'deploy', project: string, framework?: string): Promise<IOperation> {
    const answer =
      kind === 'build' ? await this.client.build(project) : await this.client.deploy(project, undefined, framework);
    const op = answer.operation;
    this.state = {
      ...this.state,
      operations: {
        ...this.state.operations,
        [op.id]: { ...op, lines: this.state.operations[op.id]?.lines ?? op.lines ?? [] }
      }
    };
    this._changed.emit();
    return op;
  }
}
