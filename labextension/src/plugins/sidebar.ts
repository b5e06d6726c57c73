/** Puts the DS01 panel in the left sidebar. */
import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { kernelIcon } from '@jupyterlab/ui-components';

import { DS01Sidebar } from '../sidebar';
import { IDS01Model, PLUGIN_ID } from '../tokens';

export const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_ID}:sidebar`,
  description: 'The DS01 projects and GPUs panel.',
  autoStart: true,
  requires: [IDS01Model],
  optional: [ILayoutRestorer, ILabShell],
  activate: (app: JupyterFrontEnd, model: IDS01Model, restorer: ILayoutRestorer | null) => {
    const panel = new DS01Sidebar(model, app.commands);
    panel.title.icon = kernelIcon;
    panel.title.caption = 'DS01 projects'; // the tab's tooltip and its name for screen readers
    app.shell.add(panel, 'left', { rank: 250 });
    if (restorer) {
      restorer.add(panel, 'ds01-sidebar');
    }
  }
};
