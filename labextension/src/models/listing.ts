/**
 * What the sidebar's on-demand views share (checkpoints, storage): an answer
 * fetched through the typed client, whether it is loading, the error, and a
 * generation bumped to fetch again. One sub-reducer their reducers delegate to.
 */

export interface IListing<T> {
  data: T | null;
  loading: boolean;
  error: string;
  /** Bumped to fetch again with the same settings (Refresh, after a change). */
  generation: number;
}

export type ListingAction<T> =
  { type: 'refresh' } | { type: 'loading' } | { type: 'loaded'; data: T } | { type: 'failed'; error: string };

export function listing<T, S extends IListing<T>>(state: S, action: ListingAction<T>): S {
  switch (action.type) {
    case 'refresh':
      return { ...state, generation: state.generation + 1 };
    case 'loading':
      return { ...state, loading: true };
    case 'loaded':
      return { ...state, data: action.data, loading: false, error: '' };
    case 'failed':
      return { ...state, loading: false, error: action.error };
  }
}
