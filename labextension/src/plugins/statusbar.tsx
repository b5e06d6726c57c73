/** A status bar item: the current notebook's container (state) and GPU, for DS01 kernels. */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ReactWidget } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import * as React from 'react';

import { CommandIDs, IDS01Model, PLUGIN_ID } from '../tokens';

export function describeContainer(model: IDS01Model, kernelName: string): string | null {
  if (!kernelName.startsWith('ds01-')) {
    return null;
  }
  const project = kernelName.slice('ds01-'.length);
  const c = model.state.projects.find(p => p.name === project)?.container;
  if (!c) {
    return `${project}: no container`;
  }
  const gpu = c.gpus && c.gpus.length ? `GPU ${c.gpus.map(g => g.slice(0, 12)).join(', ')}` : 'CPU only';
  return `${c.name} · ${c.state} · ${gpu}`;
}

class ContainerStatus extends ReactWidget {
  private kernelName = '';

  constructor(
    private model: IDS01Model,
    private tracker: INotebookTracker,
    private app: JupyterFrontEnd
  ) {
    super();
    this.addClass('jp-ds01-status');
    model.changed.connect(() => this.update());
    tracker.currentChanged.connect(this.follow, this);
    this.follow();
  }

  private follow(): void {
    const panel = this.tracker.currentWidget;
    const read = () => {
      this.kernelName =
        panel?.sessionContext.session?.kernel?.name ?? panel?.sessionContext.kernelPreference.name ?? '';
      this.update();
    };
    panel?.sessionContext.kernelChanged.connect(read);
    panel?.sessionContext.ready.then(read).catch(() => undefined);
    read();
  }

  render(): JSX.Element | null {
    const text = describeContainer(this.model, this.kernelName);
    if (!text) {
      return null;
    }
    return (
      <button
        className="jp-ds01-status-button"
        title="DS01 container of this notebook's kernel (click for the DS01 panel)"
        aria-label={`DS01 container: ${text}`}
        data-test-id="ds01-status"
        onClick={() => void this.app.commands.execute(CommandIDs.openPanel)}
      >
        {text}
      </button>
    );
  }
}

export const statusBarPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_ID}:statusbar`,
  description: "Shows the current notebook's DS01 container and GPU in the status bar.",
  autoStart: true,
  requires: [IDS01Model, INotebookTracker],
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, model: IDS01Model, tracker: INotebookTracker, statusBar: IStatusBar | null) => {
    if (!statusBar) {
      return;
    }
    const item = new ContainerStatus(model, tracker, app);
    statusBar.registerStatusItem(`${PLUGIN_ID}:statusbar`, {
      item,
      align: 'left',
      rank: 4,
      isActive: () => !!describeContainer(model, tracker.currentWidget?.sessionContext.session?.kernel?.name ?? '')
    });
  }
};
