/**
 * The confirm dialogs of the storage view's cleanups: a project's cleanup (the
 * DS01 guide's tmp/, *.tmp, caches, and old checkpoints when asked) and the
 * image prune. Each shows the server's preview (counts and sizes per kind, the
 * paths or images) before anything is deleted.
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { describeError } from '../models/errors';
import {
  cleanCount,
  cleanRequest,
  cleanRows,
  imageName,
  imageReason,
  prunePlan,
  pruneSummary
} from '../models/housekeeping';
import { ICleanPlan, ICleanRequest, IImageInfo, IImagePrune } from '../models/types';
import { formatBytes } from '../models/units';

function CleanPreview(props: {
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
    props.onRequest(request);
    props
      .preview(request)
      .then(next => current && (setPlan(next), setError('')))
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

class CleanBody extends ReactWidget {
  private request: ICleanRequest = {};

  constructor(
    private initial: ICleanPlan,
    private preview: (request: ICleanRequest) => Promise<ICleanPlan>
  ) {
    super();
  }

  render(): JSX.Element {
    return <CleanPreview initial={this.initial} preview={this.preview} onRequest={r => (this.request = r)} />;
  }

  getValue(): ICleanRequest {
    return this.request;
  }
}

/**
 * Show a project's cleanup preview; the request to confirm (with the checkpoint policy chosen in
 * the dialog), or null when cancelled.
 */
export async function askClean(
  initial: ICleanPlan,
  preview: (request: ICleanRequest) => Promise<ICleanPlan>
): Promise<ICleanRequest | null> {
  const answer = await showDialog({
    title: `Clean up ${initial.project}`,
    body: new CleanBody(initial, preview),
    buttons: [
      Dialog.cancelButton(),
      Dialog.warnButton({ label: 'Delete', ariaLabel: `Delete these files of ${initial.project}` })
    ]
  });
  return answer.button.accept ? (answer.value ?? {}) : null;
}

function ImageList(props: { images: IImageInfo[]; label: string; action: 'delete' | 'keep' }): JSX.Element {
  return (
    <ul className="jp-ds01-plan-list" aria-label={props.label}>
      {props.images.map(i => (
        <li key={i.id} className={`jp-ds01-plan-${props.action}`}>
          <span className="jp-ds01-plan-action">{props.action === 'delete' ? 'remove' : 'keep'}</span>{' '}
          <span className="jp-ds01-plan-path">{imageName(i)}</span>{' '}
          <span className="jp-ds01-muted">{formatBytes(i.size)}</span>
          <div className="jp-ds01-plan-reason">{imageReason(i)}</div>
        </li>
      ))}
    </ul>
  );
}

/** Show what an image prune would remove and keep; true to remove them. */
export async function askPruneImages(prune: IImagePrune, images: IImageInfo[]): Promise<boolean> {
  const { doomed, kept } = prunePlan(prune, images);
  const body = (
    <div className="jp-ds01-dialog" data-test-id="ds01-prune-images-dialog">
      <p>{pruneSummary(prune)}</p>
      <p className="jp-ds01-muted">
        Only your superseded and untagged images that no container uses; a project&apos;s current build and an image a
        container runs on stay. Layers shared with other images are freed only when no image needs them.
      </p>
      {doomed.length > 0 && <ImageList images={doomed} label="Images that would be removed" action="delete" />}
      {kept.length > 0 && <ImageList images={kept} label="Images that stay" action="keep" />}
    </div>
  );
  const buttons = doomed.length
    ? [Dialog.cancelButton(), Dialog.warnButton({ label: `Remove ${doomed.length}` })]
    : [Dialog.okButton({ label: 'Close' })];
  const answer = await showDialog({ title: 'Prune images', body, buttons });
  return doomed.length > 0 && answer.button.accept;
}
