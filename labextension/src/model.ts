/**
 * The sidebar's live model: the event stream and the answers fetched on demand
 * (audits, GPUs, limits), folded into one state by one reducer
 * (models/reducer.ts `reduce`). It lives in the plugin, not in the panel, so
 * closing and reopening the panel keeps following long work.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IDS01Client } from './client';
import { EventStream } from './eventStream';
import { DS01Action, IDS01State, INITIAL_STATE, reduce } from './models/reducer';
import { serverMode, ServerMode } from './models/serverMode';
import { IDS01Settings } from './models/settings';
import { DS01Event, IAudit, IOperation, IWarningEvent } from './models/types';
import { IDS01Model } from './tokens';

export class DS01Model implements IDS01Model {
  private _state: IDS01State = INITIAL_STATE;
  private stream: EventStream | null = null;
  private refreshTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private _changed = new Signal<this, void>(this);
  private _warning = new Signal<this, IWarningEvent>(this);
  private _operationFinished = new Signal<this, IOperation>(this);

  constructor(readonly client: IDS01Client) {}

  /** The whole state; replaced (never changed in place) by each action. */
  get state(): IDS01State {
    return this._state;
  }
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
    return serverMode(this._state.version, this._state.ready ? this._state.mode : null);
  }

  /** The one way the state changes. */
  private dispatch(action: DS01Action): void {
    this._state = reduce(this._state, action);
    this._changed.emit();
  }

  async start(): Promise<void> {
    let version = null;
    try {
      version = await this.client.version();
    } catch {
      // An old or missing server extension: the event stream says which.
    }
    this.dispatch({ type: 'version', version });
    this.stream = new EventStream({
      open: signal => this.client.events(signal),
      onEvent: event => this.apply(event),
      onStatus: (status, detail) => this.dispatch({ type: 'connection', status, detail })
    });
    this.stream.start();
  }

  dispose(): void {
    this.stream?.stop();
    this.refreshTimers.forEach(t => clearTimeout(t));
  }

  setSettings(settings: Partial<IDS01Settings>): void {
    this.dispatch({ type: 'settings', settings });
  }

  reconnect(): void {
    this.stream?.reconnect();
  }

  /** Fold one event into the state, then fetch whatever it made stale. */
  apply(event: DS01Event): void {
    const before = this._state;
    this.dispatch({ type: 'event', event });
    switch (event.type) {
      case 'snapshot':
        for (const op of event.operations ?? []) {
          void this.followOperation(op.id);
        }
        break;
      case 'container':
        this.refreshProjectSoon(event.project);
        if (this._state.gpus) {
          void this.refreshResources();
        }
        break;
      case 'gpu':
        void this.refreshResources();
        break;
      case 'operation':
        if (event.state !== 'running' && before.operations[event.id]?.state !== event.state) {
          this.refreshProjectSoon(event.project, 0);
          this._operationFinished.emit(this._state.operations[event.id]);
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
  }

  /** Fill in lines of an operation that started before we connected. */
  async followOperation(id: string): Promise<void> {
    try {
      this.dispatch({ type: 'followed', operation: await this.client.operation(id) });
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
      this.dispatch({ type: 'project', project: await this.client.project(name) });
    } catch (error) {
      console.warn('ds01: cannot refresh', name, error);
    }
  }

  async loadAudit(project: string): Promise<IAudit | null> {
    try {
      const audit = await this.client.audit(project);
      this.dispatch({ type: 'audit', project, audit });
      return audit;
    } catch (error) {
      this.dispatch({ type: 'audit', project, audit: { error: String((error as Error).message ?? error) } });
      return null;
    }
  }

  /** GPUs and limits: fetched when shown, after GPU events, and on the refresh interval while visible. */
  async refreshResources(): Promise<void> {
    const [gpus, limits] = await Promise.allSettled([this.client.gpus(), this.client.limits()]);
    this.dispatch({
      type: 'resources',
      gpus: gpus.status === 'fulfilled' ? gpus.value : undefined,
      limits: limits.status === 'fulfilled' ? limits.value : undefined,
      time: Date.now()
    });
  }

  /** Start a build or deploy and record its operation at once (events then follow it). */
  async startOperation(kind: 'build' | 'deploy', project: string, framework?: string): Promise<IOperation> {
    const answer =
      kind === 'build' ? await this.client.build(project) : await this.client.deploy(project, undefined, framework);
    this.dispatch({ type: 'started', operation: answer.operation });
    return answer.operation;
  }
}
