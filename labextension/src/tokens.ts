/**
 * Public interfaces of the sidebar: the `IDS01Model` token (an interface,
 * implemented by model.ts's DS01Model) for the shared live model and its typed
 * API client, consumed by the small plugins in plugins/ and by other extensions.
 */
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import type { IDS01Client } from './client';
import type { IDS01State } from './models/reducer';
import type { ServerMode } from './models/serverMode';
import type { IAudit, IOperation, IWarningEvent } from './models/types';

export const PLUGIN_ID = '@ds01/jupyterlab-ds01';

/** The DS01 live model: server state from events and fetched answers, and `client` for the REST API. */
export interface IDS01Model {
  /** Projects, operations, findings, GPUs, limits, settings: replaced as a whole on each change. */
  readonly state: IDS01State;
  /** "container" inside a JupyterHub server's own project container, else "host". */
  readonly mode: ServerMode;
  /** The typed REST client; every request of the sidebar goes through it. */
  readonly client: IDS01Client;
  /** The state changed. */
  readonly changed: ISignal<IDS01Model, void>;
  /** A server scan found new files at risk (or a checkpoint or max_runtime warning). */
  readonly warning: ISignal<IDS01Model, IWarningEvent>;
  /** A build or deploy finished or failed. */
  readonly operationFinished: ISignal<IDS01Model, IOperation>;
  /** Reconnect the event stream now (a new snapshot follows). */
  reconnect(): void;
  /** Fetch one project again (after an action on it). */
  refreshProject(name: string): Promise<void>;
  /** Audit a project's container; null (and the error in state.audits) when it failed. */
  loadAudit(project: string): Promise<IAudit | null>;
  /** Fetch GPUs and limits. */
  refreshResources(): Promise<void>;
  /** Start a build or deploy; its operation is in state.operations at once. */
  startOperation(kind: 'build' | 'deploy', project: string, framework?: string): Promise<IOperation>;
}

export const IDS01Model = new Token<IDS01Model>(
  `${PLUGIN_ID}:IDS01Model`,
  'The DS01 live model of projects, operations, GPUs and findings, with its typed API client.'
);

export type { IDS01Client } from './client';
export type { IDS01State } from './models/reducer';
export { DEFAULT_SETTINGS } from './models/settings';
export type { IDS01Settings } from './models/settings';

export namespace CommandIDs {
  export const newProject = 'ds01:new-project';
  export const build = 'ds01:build';
  export const deploy = 'ds01:deploy';
  export const deployOnFramework = 'ds01:deploy-on-framework';
  export const start = 'ds01:start';
  export const stop = 'ds01:stop';
  export const retire = 'ds01:retire';
  export const rescue = 'ds01:rescue';
  export const terminal = 'ds01:terminal';
  export const notebook = 'ds01:notebook';
  export const audit = 'ds01:audit';
  export const prune = 'ds01:prune-checkpoints';
  export const clean = 'ds01:clean';
  export const pruneImages = 'ds01:prune-images';
  export const refresh = 'ds01:refresh';
  export const openPanel = 'ds01:open-panel';
}
