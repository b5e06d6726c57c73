/**
 * Public interfaces of the sidebar: one token for the shared live model (which
 * carries the API client), consumed by the small plugins in plugins/.
 */
import { Token } from '@lumino/coreutils';

import { DS01Model } from './model';

export const PLUGIN_ID = '@ds01/jupyterlab-ds01';

/** The DS01 live model: server state from events, plus `client` for the REST API. */
export const IDS01Client = new Token<DS01Model>(
  `${PLUGIN_ID}:IDS01Client`,
  'The DS01 API client and live model of projects, operations, GPUs and findings.'
);

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
