/**
 * Notifications (JupyterLab's notification system) for what needs attention:
 * a notebook writing outside /workspace (seen in its kernel's output, naming
 * the notebook and the path), new files at risk found by the server's scans,
 * the reaper's notice that max_runtime is about to stop a container (with
 * the time it stops), and finished or failed builds and deploys.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

import { runtimeWarningMessage } from '../models/runtimeWarning';
import { IRuntimeWarning } from '../models/types';
import { parseWriteWarnings } from '../models/writeWarning';
import { CommandIDs, IDS01Model, PLUGIN_ID } from '../tokens';

function rescueAction(app: JupyterFrontEnd, project: string): Notification.IAction {
  return {
    label: 'Rescue now',
    caption: `Copy files of ${project} outside /workspace into its .rescued/ folder`,
    callback: () => void app.commands.execute(CommandIDs.rescue, { project })
  };
}

/** Watch one notebook's kernel output for the container hook's warnings. */
function watchNotebook(app: JupyterFrontEnd, model: IDS01Model, panel: NotebookPanel): void {
  const seen = new Set<string>();
  const onMessage = (_: unknown, msg: KernelMessage.IMessage) => {
    if (msg.channel !== 'iopub' || msg.header.msg_type !== 'stream') {
      return;
    }
    const kernel = panel.sessionContext.session?.kernel?.name ?? '';
    if (!kernel.startsWith('ds01-')) {
      return;
    }
    const project = kernel.slice('ds01-'.length);
    for (const path of parseWriteWarnings((msg.content as KernelMessage.IStreamMsg['content']).text)) {
      if (seen.has(path)) {
        continue;
      }
      seen.add(path);
      void model.loadAudit(project);
      if (model.state.settings.notificationLevel === 'none') {
        continue;
      }
      Notification.warning(
        `${panel.context.path} wrote ${path} outside /workspace (lost when ${project} is retired).`,
        { autoClose: false, actions: [rescueAction(app, project)] }
      );
    }
  };
  panel.sessionContext.iopubMessage.connect(onMessage);
  panel.disposed.connect(() => panel.sessionContext.iopubMessage.disconnect(onMessage));
}

export const notificationsPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_ID}:notifications`,
  description: 'Notifications for writes outside /workspace and for finished builds and deploys.',
  autoStart: true,
  requires: [IDS01Model],
  optional: [INotebookTracker],
  activate: (app: JupyterFrontEnd, model: IDS01Model, tracker: INotebookTracker | null) => {
    if (tracker) {
      tracker.widgetAdded.connect((_, panel) => watchNotebook(app, model, panel));
    }
    model.warning.connect((_, warning) => {
      if (model.state.settings.notificationLevel === 'none') {
        return;
      }
      if (warning.kind === 'max_runtime') {
        // Stays until read: the container stops at that time, with whatever is unsaved.
        Notification.warning(runtimeWarningMessage(warning as unknown as IRuntimeWarning), {
          autoClose: false,
          actions: [
            {
              label: 'Show project',
              caption: `Show ${warning.project} in the DS01 panel`,
              callback: () => void app.commands.execute(CommandIDs.openPanel)
            }
          ]
        });
        return;
      }
      if (warning.kind === 'checkpoint') {
        Notification.warning(`${warning.project}: ${String(warning.message ?? 'no new checkpoint for a while.')}`, {
          autoClose: 15000
        });
        return;
      }
      const paths = (warning.new ?? []).map(f => f.path);
      if (!paths.length) {
        return;
      }
      const shown = paths.slice(0, 3).join(', ') + (paths.length > 3 ? ` and ${paths.length - 3} more` : '');
      Notification.warning(`${warning.project}: new files outside /workspace would be lost on retire: ${shown}.`, {
        autoClose: false,
        actions: [rescueAction(app, warning.project)]
      });
    });
    model.operationFinished.connect((_, op) => {
      const level = model.state.settings.notificationLevel;
      if (op.state === 'failed' && level !== 'none') {
        Notification.error(`${op.kind} of ${op.project} failed: ${op.error?.message ?? ''} ${op.error?.hint ?? ''}`, {
          autoClose: false
        });
      } else if (op.state === 'done' && level === 'all') {
        Notification.success(`${op.kind === 'build' ? 'Built' : 'Deployed'} ${op.project}.`, { autoClose: 4000 });
      }
    });
  }
};
