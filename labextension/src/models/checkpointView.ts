/**
 * The checkpoint view's state as one pure reducer: the listing, the metric and
 * mode best is chosen by, the prune settings and their preview. The component
 * sends actions; the requests they imply (through the typed client) follow
 * from the state: see `listOptions` and `prunePolicy`.
 */
import { IListing, listing, ListingAction } from './listing';
import { ICheckpoints, IPrunePlan, IPrunePolicy } from './types';

export interface ICheckpointViewState extends IListing<ICheckpoints> {
  /** The metric the user chose; "" until then (the server's choice is shown: see shownMetric). */
  metric: string;
  /** Lower or higher is better; null until the user chose (the server's default). */
  mode: 'min' | 'max' | null;
  keepLast: number;
  keepBest: number;
  /** The preview of a prune with the current settings; null when none or when the settings changed since. */
  plan: IPrunePlan | null;
  /** What the last confirmed prune deleted. */
  pruned: IPrunePlan | null;
}

export const INITIAL_VIEW: ICheckpointViewState = {
  data: null,
  loading: false,
  error: '',
  metric: '',
  mode: null,
  keepLast: 3,
  keepBest: 1,
  plan: null,
  pruned: null,
  generation: 0
};

export type CheckpointViewAction =
  | ListingAction<ICheckpoints>
  | { type: 'metric'; metric: string }
  | { type: 'mode'; mode: 'min' | 'max' }
  | { type: 'keepLast'; value: number }
  | { type: 'keepBest'; value: number }
  | { type: 'planned'; plan: IPrunePlan }
  | { type: 'pruned'; result: IPrunePlan }
  | { type: 'dismiss' };

const count = (value: number) => (isFinite(value) ? Math.max(0, Math.floor(value)) : 0);

export function checkpointView(state: ICheckpointViewState, action: CheckpointViewAction): ICheckpointViewState {
  switch (action.type) {
    case 'refresh':
    case 'loading':
    case 'loaded':
    case 'failed':
      return listing(state, action);
    case 'metric':
      return action.metric === state.metric ? state : { ...state, metric: action.metric, plan: null };
    case 'mode':
      return action.mode === state.mode ? state : { ...state, mode: action.mode, plan: null };
    case 'keepLast':
      return { ...state, keepLast: count(action.value), plan: null };
    case 'keepBest':
      return { ...state, keepBest: count(action.value), plan: null };
    case 'planned':
      return { ...state, plan: action.plan, pruned: null, error: '' };
    case 'pruned':
      // The listing changed: list again.
      return { ...state, plan: null, pruned: action.result, error: '', generation: state.generation + 1 };
    case 'dismiss':
      return { ...state, plan: null, pruned: null };
  }
}

/** The metric shown: the user's choice, else the one the server chose best by. */
export function shownMetric(state: ICheckpointViewState): string {
  return state.metric || state.data?.metric || '';
}

/** Whether lower or higher is better: the user's choice, else the server's. */
export function shownMode(state: ICheckpointViewState): 'min' | 'max' {
  return state.mode ?? state.data?.mode ?? 'min';
}

/** What to ask the listing for: the chosen metric and mode (the server's defaults before a choice). */
export function listOptions(state: Pick<ICheckpointViewState, 'metric' | 'mode'>): {
  metric?: string;
  mode?: 'min' | 'max';
} {
  return {
    ...(state.metric ? { metric: state.metric } : {}),
    ...(state.mode ? { mode: state.mode } : {})
  };
}

/** The prune request for the current settings: the newest N, and the best N by the chosen metric when there is one. */
export function prunePolicy(state: ICheckpointViewState): IPrunePolicy {
  const policy: IPrunePolicy = { keep_last: state.keepLast };
  const metric = shownMetric(state);
  if (metric) {
    policy.keep_best = state.keepBest;
    policy.metric = metric;
    policy.mode = shownMode(state);
  }
  return policy;
}
