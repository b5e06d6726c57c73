/**
 * The stop dialog, shown when stopping would end running work or leave
 * unsaved notebooks: the processes (executing cells first) with their own
 * confirm, "Stop processes and stop", and the unsaved documents with "Save all".
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { IFinding } from '../models/types';
import { IUnsavedDocuments, ProcessList, UnsavedList } from './runningWork';

export interface IStopAnswer {
  /** Send stop_processes: the person confirmed ending the listed processes. */
  stopProcesses: boolean;
  /** The save started with "Save all", awaited before stopping. */
  saved: Promise<void>;
}

class StopBody extends ReactWidget implements Dialog.IBodyWidget<Promise<void>> {
  private saved: Promise<void> = Promise.resolve();

  constructor(
    private project: string,
    private processes: IFinding[],
    private documents: IUnsavedDocuments
  ) {
    super();
  }

  getValue(): Promise<void> {
    return this.saved;
  }

  protected render(): JSX.Element {
    return (
      <div className="jp-ds01-dialog" data-test-id="ds01-stop-dialog">
        {this.processes.length > 0 && (
          <section aria-label="Running processes">
            <p>
              These run in the container of <strong>{this.project}</strong>. Stopping them sends SIGTERM, waits a grace
              period (a trainer that checkpoints on SIGTERM saves then), then SIGKILL:
            </p>
            <ProcessList processes={this.processes} />
          </section>
        )}
        <UnsavedList documents={this.documents} onSaving={saving => (this.saved = saving)} />
        <p className="jp-ds01-muted">Files in /workspace stay; the container can be started again.</p>
      </div>
    );
  }
}

export async function askStop(
  project: string,
  processes: IFinding[],
  documents: IUnsavedDocuments
): Promise<IStopAnswer | 'cancel'> {
  const confirm = processes.length
    ? Dialog.warnButton({
        label: 'Stop processes and stop',
        ariaLabel: `Stop the running processes and the container of ${project}`
      })
    : Dialog.warnButton({ label: 'Stop', ariaLabel: `Stop the container of ${project}` });
  const result = await showDialog({
    title: processes.length ? `Stop ${project} and its running work?` : `Stop ${project}?`,
    body: new StopBody(project, processes, documents),
    buttons: [Dialog.cancelButton(), confirm]
  });
  if (!result.button.accept && result.button.displayType !== 'warn') {
    return 'cancel';
  }
  return { stopProcesses: processes.length > 0, saved: result.value ?? Promise.resolve() };
}
