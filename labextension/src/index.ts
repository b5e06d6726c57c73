/** The DS01 JupyterLab extension: a model token and small plugins that consume it. */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { commandsPlugin } from './plugins/commands';
import { housekeepingPlugin } from './plugins/housekeeping';
import { modelPlugin } from './plugins/model';
import { notebookCheckPlugin } from './plugins/notebookCheck';
import { notificationsPlugin } from './plugins/notifications';
import { sidebarPlugin } from './plugins/sidebar';
import { statusBarPlugin } from './plugins/statusbar';

export * from './tokens';

const plugins: JupyterFrontEndPlugin<any>[] = [
  modelPlugin,
  sidebarPlugin,
  commandsPlugin,
  housekeepingPlugin,
  notificationsPlugin,
  statusBarPlugin,
  notebookCheckPlugin
];

export default plugins;
