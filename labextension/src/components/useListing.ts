import * as React from 'react';

import { describeError } from '../models/errors';
import { ListingAction } from '../models/listing';

/**
 * Fetch with `load` whenever `deps` change (nothing while it is null), sending
 * loading, then loaded or failed; an answer to an older request is dropped so
 * it cannot overwrite a newer one.
 */
export function useListing<T>(
  dispatch: React.Dispatch<ListingAction<T>>,
  load: (() => Promise<T>) | null,
  deps: React.DependencyList
): void {
  React.useEffect(() => {
    if (!load) {
      return;
    }
    let current = true;
    dispatch({ type: 'loading' });
    load()
      .then(data => current && dispatch({ type: 'loaded', data }))
      .catch(e => current && dispatch({ type: 'failed', error: describeError(e) }));
    return () => {
      current = false;
    };
  }, deps);
}
