/**
 * The server's static check of the open notebook: cells that name paths
 * outside /workspace get a mark and a note saying which path and line.
 * Runs on open and (debounced) on edits, for notebooks with a DS01 kernel.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { INotebookFinding } from '../models/types';
import { IDS01Model, PLUGIN_ID } from '../tokens';

const MARK = 'jp-ds01-cell-outside';
const NOTE = 'jp-ds01-cell-note';

function decorate(panel: NotebookPanel, findings: INotebookFinding[]): void {
  const cells = panel.content.widgets;
  cells.forEach((cell, index) => {
    cell.node.classList.remove(MARK);
    cell.node.querySelectorAll(`.${NOTE}`).forEach(n => n.remove());
    const mine = findings.filter(f => f.cell === index);
    if (!mine.length) {
      return;
    }
    cell.node.classList.add(MARK);
    const note = document.createElement('div');
    note.className = NOTE;
    note.setAttribute('role', 'note');
    note.setAttribute('data-test-id', 'ds01-cell-note');
    note.textContent = mine
      .map(f => `Line ${f.line}: ${f.path} is outside /workspace and is lost when the container is retired.`)
      .join(' ');
    const input = cell.node.querySelector('.jp-Cell-inputWrapper');
    (input ?? cell.node).insertAdjacentElement(input ? 'afterend' : 'beforeend', note);
  });
}

function watch(model: IDS01Model, panel: NotebookPanel): void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const check = async () => {
    const kernel = panel.sessionContext.session?.kernel?.name ?? panel.sessionContext.kernelPreference.name ?? '';
    if (!model.state.settings.staticCheck || !kernel.startsWith('ds01-') || panel.isDisposed) {
      decorate(panel, []);
      return;
    }
    const sources = panel.content.widgets.map(c => (c.model.type === 'code' ? c.model.sharedModel.getSource() : ''));
    try {
      const { findings } = await model.client.notebookCheck(sources);
      if (!panel.isDisposed) {
        decorate(panel, findings);
      }
    } catch (error) {
      console.warn('ds01: notebook check failed', error);
    }
  };
  const soon = () => {
    if (timer) {
      clearTimeout(timer);
    }
    timer = setTimeout(() => void check(), 800);
  };
  void panel.context.ready.then(() => {
    void check();
    panel.model?.contentChanged.connect(soon);
  });
  panel.sessionContext.kernelChanged.connect(soon);
  panel.disposed.connect(() => timer && clearTimeout(timer));
}

export const notebookCheckPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_ID}:notebook-check`,
  description: 'Marks notebook cells that write to paths outside /workspace.',
  autoStart: true,
  requires: [IDS01Model, INotebookTracker],
  activate: (_app: JupyterFrontEnd, model: IDS01Model, tracker: INotebookTracker) => {
    tracker.widgetAdded.connect((_, panel) => watch(model, panel));
  }
};
