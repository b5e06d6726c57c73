/**
 * The confirm dialogs of the storage view's cleanups: a project's cleanup (the
 * DS01 guide's tmp/, *.tmp, caches, and old checkpoints when asked) and the
 * image prune. Each shows the server's preview (counts and sizes per kind, the
 * paths or images) before anything is deleted.
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { CleanPreview } from '../components/CleanPreview';
import { imageName, imageReason, prunePlan, pruneSummary } from '../models/housekeeping';
import { ICleanPlan, ICleanRequest, IImageInfo, IImagePrune } from '../models/types';
import { formatBytes } from '../models/units';

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
    defaultButton: 0, // Enter cancels: deleting takes a click on Delete
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
  const answer = await showDialog({ title: 'Prune images', body, buttons, defaultButton: 0 });
  return doomed.length > 0 && answer.button.accept;
}
