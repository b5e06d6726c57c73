/**
 * The storage view's cleanups as commands (the panel's buttons and the palette
 * share them): a project's cleanup and the image prune, each a preview in a
 * dialog first. Both resolve with what was deleted (undefined when nothing was),
 * so the view that started one can show the new use. The commands plugin puts
 * every CommandIDs entry in the palette.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';

import { askClean, askPruneImages } from '../dialogs/clean';
import { cleanSummary, pruneSummary } from '../models/housekeeping';
import { ICleanPlan, IImagePrune } from '../models/types';
import { CommandIDs, IDS01Model, PLUGIN_ID } from '../tokens';
import { attempt, pickProject } from './commands';

export const housekeepingPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_ID}:housekeeping`,
  description: "The DS01 guide's cleanup of a project and the image prune, each previewed before it deletes.",
  autoStart: true,
  requires: [IDS01Model],
  activate: (app: JupyterFrontEnd, model: IDS01Model) => {
    const { client } = model;
    // A server inside a project's container has no engine and no cleanup routes.
    const hostOnly = () => model.mode !== 'container';

    app.commands.addCommand(CommandIDs.clean, {
      label: args => (args.project ? `DS01: Clean Up ${args.project}…` : 'DS01: Clean Up a Project…'),
      caption:
        "Delete the project's tmp/, *.tmp, __pycache__ and .ipynb_checkpoints (and old checkpoints) after a preview",
      isEnabled: hostOnly,
      execute: async (args): Promise<ICleanPlan | undefined> => {
        const project = await pickProject(model, args as { project?: string }, 'Clean up');
        if (!project) {
          return undefined;
        }
        const preview = await attempt(`Cannot preview the cleanup of ${project}`, () => client.clean(project));
        if (!preview) {
          return undefined;
        }
        const request = await askClean(preview, next => client.clean(project, next));
        if (!request) {
          return undefined;
        }
        const done = await attempt(`Cannot clean ${project}`, () => client.clean(project, request, true));
        if (done) {
          Notification.success(cleanSummary(done), { autoClose: 6000 });
          void model.refreshProject(project);
        }
        return done;
      }
    });

    app.commands.addCommand(CommandIDs.pruneImages, {
      label: 'DS01: Prune Images…',
      caption: 'Remove your superseded and untagged images that no container uses, after a preview',
      isEnabled: hostOnly,
      execute: async (): Promise<IImagePrune | undefined> => {
        const found = await attempt('Cannot list your images', () =>
          Promise.all([client.pruneImages(), client.images()])
        );
        if (!found || !(await askPruneImages(found[0], found[1].images))) {
          return undefined;
        }
        const done = await attempt('Cannot prune images', () => client.pruneImages(true));
        if (done) {
          Notification.success(pruneSummary(done), { autoClose: done.failed?.length ? false : 6000 });
        }
        return done;
      }
    });
  }
};
