import * as React from 'react';

import { describeError } from '../models/errors';
import { cleanCount, cleanRequest, cleanRows } from '../models/housekeeping';
import { ICleanPlan, ICleanRequest } from '../models/types';
import { formatBytes } from '../models/units';

/**
 * A project's cleanup preview (in the confirm dialog, dialogs/clean.tsx): counts and sizes per
 * kind, the paths, and a checkpoint policy that, when chosen, asks the server for a new preview.
 */
export function CleanPreview(props: {
  initial: ICleanPlan;
  preview: (request: ICleanRequest) => Promise<ICleanPlan>;
  onRequest: (request: ICleanRequest) => void;
}): JSX.Element {
  const [plan, setPlan] = React.useState(props.initial);
  const [withCheckpoints, setWithCheckpoints] = React.useState(false);
  const [keepLast, setKeepLast] = React.useState(3);
  const [error, setError] = React.useState('');
  const first = React.useRef(true);

  React.useEffect(() => {
    if (first.current) {
      first.current = false; // the dialog opens with the plain preview already fetched
      return;
    }
    let current = true;
    const request = cleanRequest(withCheckpoints ? keepLast : null);
    // The request to confirm changes only with the preview shown: Delete deletes what was previewed.
    props
      .preview(request)
      .then(next => {
        if (current) {
          setPlan(next);
          setError('');
          props.onRequest(request);
        }
      })
      .catch(e => current && setError(describeError(e)));
    return () => {
      current = false;
    };
  }, [withCheckpoints, keepLast]);

  const rows = cleanRows(plan);
  const victims = plan.checkpoints?.would_delete ?? [];
  return (
    <div className="jp-ds01-dialog" data-test-id="ds01-clean-dialog">
      <p>
        The DS01 guide&apos;s cleanup: the project&apos;s <code>tmp/</code>, <code>*.tmp</code> and <code>*.pyc</code>{' '}
        files, <code>__pycache__</code> and <code>.ipynb_checkpoints</code>. <code>.rescued/</code> and{' '}
        <code>.git</code> are never touched.
      </p>
      {rows.length ? (
        <table className="jp-ds01-table jp-ds01-clean-counts" aria-label="What would be deleted, by kind">
          <thead>
            <tr>
              <th scope="col">What</th>
              <th scope="col" className="jp-ds01-num">
                Items
              </th>
              <th scope="col" className="jp-ds01-num">
                Size
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map(r => (
              <tr key={r.kind}>
                <th scope="row">{r.kind}</th>
                <td className="jp-ds01-num">{r.count}</td>
                <td className="jp-ds01-num">{formatBytes(r.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="jp-ds01-muted">Nothing to clean.</p>
      )}
      {plan.items.length > 0 && (
        <details open={cleanCount(plan) <= 20}>
          <summary>
            Paths ({plan.items.length}
            {plan.truncated ? ' listed; there are more' : ''})
          </summary>
          <ul className="jp-ds01-plan-list" aria-label="Paths that would be deleted">
            {plan.items.map(i => (
              <li key={i.path} className="jp-ds01-plan-delete">
                <span className="jp-ds01-plan-path">
                  {i.path}
                  {i.folder ? '/' : ''}
                </span>{' '}
                <span className="jp-ds01-muted">
                  {i.kind} · {formatBytes(i.bytes)}
                </span>
              </li>
            ))}
            {victims.map(c => (
              <li key={`ckpt:${c.relpath}`} className="jp-ds01-plan-delete">
                <span className="jp-ds01-plan-path">models/{c.relpath}</span>{' '}
                <span className="jp-ds01-muted">
                  checkpoint · {formatBytes(c.size)} · {c.reason}
                </span>
              </li>
            ))}
          </ul>
        </details>
      )}
      <label className="jp-ds01-check">
        <input
          type="checkbox"
          checked={withCheckpoints}
          onChange={e => setWithCheckpoints(e.currentTarget.checked)}
          data-test-id="ds01-clean-checkpoints"
        />{' '}
        Old checkpoints too: keep the newest{' '}
        <input
          type="number"
          min={0}
          value={keepLast}
          disabled={!withCheckpoints}
          className="jp-ds01-clean-keep"
          aria-label="Checkpoints to keep in each run"
          onChange={e => setKeepLast(Math.max(0, parseInt(e.currentTarget.value || '0', 10)))}
        />{' '}
        of each run (the resume point and role files always stay).
      </label>
      {error && (
        <p className="jp-ds01-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
