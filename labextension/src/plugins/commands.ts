/**
 * Every sidebar action as a command (so the palette, the panel's buttons and
 * keyboard users share one path); each takes {project} or asks for one.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, Notification, showDialog } from '@jupyterlab/apputils';
import { PageConfig, PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { askProjectName } from '../dialogs/newProject';
import { askRetire } from '../dialogs/retire';
import { IUnsavedDocuments } from '../dialogs/runningWork';
import { askStop } from '../dialogs/stop';
import { ApiError, describeError } from '../models/errors';
import { retireMessage, retirePlan, retireRequest, stopReportMessage } from '../models/retirePlan';
import { IFinding, IStopResult, IUnsavedWorkBody } from '../models/types';
import { projectFolder, unsavedIn } from '../models/unsaved';
import { rescueMessage, stopMessage } from '../models/serverMode';
import { formatBytes } from '../models/units';
import { frameworkChoices } from '../models/workspaceNotes';
import { CommandIDs, IDS01Model, PLUGIN_ID } from '../tokens';

type Args = { project?: string };

export async function pickProject(model: IDS01Model, args: Args, verb: string): Promise<string | null> {
  if (typeof args.project === 'string' && args.project) {
    return args.project;
  }
  const items = model.state.projects.map(p => p.name);
  if (!items.length) {
    Notification.info('There are no DS01 projects yet: create one first.', { autoClose: 5000 });
    return null;
  }
  const result = await InputDialog.getItem({ title: `${verb}: which project?`, items });
  return result.button.accept ? result.value : null;
}

/** Run an action; its error becomes a notification with the server's message and hint. */
export async function attempt<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    Notification.error(`${what}: ${describeError(error)}`, { autoClose: false });
    return undefined;
  }
}

/** The project's folder relative to the server's root (where its notebooks go), or null when outside it. */
function folderOf(model: IDS01Model, project: string): string | null {
  const path = model.state.projects.find(p => p.name === project)?.path ?? '';
  return projectFolder(path, PageConfig.getOption('serverRoot'));
}

/** The project's open notebooks with unsaved changes (from the notebook tracker), and saving them. */
function unsavedNotebooks(tracker: INotebookTracker | null, folder: string | null): IUnsavedDocuments {
  const open = (): NotebookPanel[] => {
    const panels: NotebookPanel[] = [];
    tracker?.forEach(panel => panels.push(panel));
    return panels;
  };
  const dirty = () => {
    const paths = new Set(
      unsavedIn(
        open().map(p => ({ path: p.context.path, dirty: !!p.context.model?.dirty })),
        folder
      )
    );
    return open().filter(p => paths.has(p.context.path));
  };
  return {
    list: () => [...new Set(dirty().map(p => p.context.path))].sort(),
    saveAll: async () => {
      await Promise.all(dirty().map(p => p.context.save()));
    }
  };
}

/** The running processes a 409 UnsavedWork names, or null for any other error. */
function runningProcesses(error: unknown): IFinding[] | null {
  if (!(error instanceof ApiError) || error.status !== 409) {
    return null;
  }
  const processes = (error.body as IUnsavedWorkBody).processes;
  return Array.isArray(processes) && processes.length ? processes : null;
}

/** Wait for a "Save all" started in a dialog; false (after saying so) when it failed. */
async function saved(project: string, saving: Promise<void>, verb: string): Promise<boolean> {
  try {
    await saving;
    return true;
  } catch (error) {
    Notification.error(`Not all notebooks of ${project} were saved (${describeError(error)}); did not ${verb}.`, {
      autoClose: false
    });
    return false;
  }
}

export const commandsPlugin: JupyterFrontEndPlugin<void> = {
  id: `${PLUGIN_ID}:commands`,
  description: 'Commands for every DS01 action, in the palette.',
  autoStart: true,
  requires: [IDS01Model],
  optional: [ICommandPalette, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    model: IDS01Model,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null
  ) => {
    const { commands } = app;
    const client = model.client;
    const hostOnly = () => model.mode !== 'container';

    commands.addCommand(CommandIDs.newProject, {
      label: 'DS01: New Project…',
      caption: 'Create a project with a workspace folder and a Dockerfile',
      isEnabled: hostOnly,
      execute: async () => {
        const name = await askProjectName();
        if (!name) {
          return;
        }
        const created = await attempt(`Cannot create ${name}`, () => client.createProject(name));
        if (created) {
          await model.refreshProject(name);
          Notification.success(`Created project ${name} in ${created.path}.`, { autoClose: 4000 });
        }
      }
    });

    for (const kind of ['build', 'deploy'] as const) {
      commands.addCommand(kind === 'build' ? CommandIDs.build : CommandIDs.deploy, {
        label: args =>
          args.project
            ? `DS01: ${kind === 'build' ? 'Build' : 'Deploy'} ${args.project}`
            : `DS01: ${kind === 'build' ? 'Build Image' : 'Deploy Container'}…`,
        caption:
          kind === 'build'
            ? "Build the project's image from its Dockerfile"
            : 'Build if needed, then create and start the container',
        isEnabled: () => kind === 'build' || hostOnly(),
        execute: async args => {
          const project = await pickProject(model, args as Args, kind === 'build' ? 'Build' : 'Deploy');
          if (project) {
            await attempt(`Cannot ${kind} ${project}`, () => model.startOperation(kind, project));
          }
        }
      });
    }

    commands.addCommand(CommandIDs.deployOnFramework, {
      label: args =>
        args.project ? `DS01: Deploy ${args.project} on a Framework Image…` : 'DS01: Deploy on a Framework Image…',
      caption: 'Run the project on a framework image the admin configured while it has no image of its own',
      isEnabled: () => hostOnly(),
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Deploy on a framework image');
        const found = model.state.projects.find(p => p.name === project);
        const items = found ? frameworkChoices(found, model.state.frameworks) : [];
        if (!project || !items.length) {
          return;
        }
        const chosen = await InputDialog.getItem({ title: `Deploy ${project} on which framework image?`, items });
        if (chosen.button.accept && chosen.value) {
          const framework = chosen.value;
          await attempt(`Cannot deploy ${project}`, () => model.startOperation('deploy', project, framework));
        }
      }
    });

    for (const action of ['start', 'stop'] as const) {
      commands.addCommand(action === 'start' ? CommandIDs.start : CommandIDs.stop, {
        label: args =>
          args.project
            ? `DS01: ${action === 'start' ? 'Start' : 'Stop'} ${args.project}`
            : `DS01: ${action === 'start' ? 'Start' : 'Stop'} Container…`,
        isEnabled: () => action === 'stop' || hostOnly(),
        execute: async args => {
          const project = await pickProject(model, args as Args, action === 'start' ? 'Start' : 'Stop');
          if (!project) {
            return;
          }
          if (action === 'stop' && !hostOnly()) {
            await stopThisServer(project);
            return;
          }
          if (action === 'stop') {
            await stopContainer(project);
          } else {
            await attempt(`Cannot start ${project}`, () => client.start(project));
          }
          await model.refreshProject(project);
        }
      });
    }

    /**
     * Stop a container: unsaved notebooks of the project are offered to save
     * first; when the server refuses because work runs (409 with processes),
     * the dialog lists it and its own confirm stops it, then says what ended.
     */
    async function stopContainer(project: string): Promise<void> {
      const documents = unsavedNotebooks(tracker, folderOf(model, project));
      if (documents.list().length) {
        const answer = await askStop(project, [], documents);
        if (answer === 'cancel' || !(await saved(project, answer.saved, 'stop'))) {
          return;
        }
      }
      let stopProcesses = false;
      let result: IStopResult | undefined;
      while (!result) {
        try {
          result = await withProgress(project, stopProcesses, () => client.stop(project, stopProcesses));
        } catch (error) {
          const running = stopProcesses ? null : runningProcesses(error);
          if (!running) {
            Notification.error(`Cannot stop ${project}: ${describeError(error)}`, { autoClose: false });
            return;
          }
          const answer = await askStop(project, running, documents);
          if (answer === 'cancel' || !(await saved(project, answer.saved, 'stop'))) {
            return;
          }
          stopProcesses = answer.stopProcesses;
        }
      }
      const report = stopReportMessage(result.processes);
      if (report) {
        Notification.success(`Stopped ${project}. ${report}`, { autoClose: false });
      }
    }

    /** Stopping processes takes up to the grace period: say so while it runs. */
    async function withProgress<T>(project: string, stopping: boolean, work: () => Promise<T>): Promise<T> {
      if (!stopping) {
        return work();
      }
      const id = Notification.emit(
        `Stopping the running processes of ${project} (SIGTERM, then SIGKILL after the grace period)…`,
        'in-progress',
        { autoClose: false }
      );
      try {
        return await work();
      } finally {
        Notification.dismiss(id);
      }
    }

    /** Inside a hub server: the hub stops it, rescuing files outside /workspace first; this page then loses its server. */
    async function stopThisServer(project: string): Promise<void> {
      const answer = await showDialog({
        title: `Stop this server (${project})?`,
        body:
          'JupyterHub stops it and removes its container. Files outside /workspace are rescued into ' +
          `${project}/.rescued/ first; unsaved notebooks are lost.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop server' })]
      });
      if (!answer.button.accept) {
        return;
      }
      const done = await attempt(`Cannot stop ${project}`, () => client.stopServer(project));
      if (done) {
        Notification.info(stopMessage(done), { autoClose: false });
      }
    }

    commands.addCommand(CommandIDs.retire, {
      label: args => (args.project ? `DS01: Retire ${args.project}` : 'DS01: Retire Container…'),
      caption: 'Remove the container after showing what would be lost; the workspace stays',
      isEnabled: hostOnly,
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Retire');
        if (!project) {
          return;
        }
        const audit = await attempt(`Cannot check ${project} before retiring`, () => client.audit(project));
        if (!audit) {
          return;
        }
        const plan = retirePlan(audit);
        const answer = await askRetire(plan, unsavedNotebooks(tracker, folderOf(model, project)));
        if (answer === 'cancel' || !(await saved(project, answer.saved, 'retire'))) {
          return;
        }
        const request = retireRequest(plan, answer);
        const result = await attempt(`Cannot retire ${project}`, () =>
          withProgress(project, request.stop_processes, () => client.retire(project, request))
        );
        if (result) {
          // What stopping did (which processes ended by themselves) stays until read.
          Notification.success(retireMessage(project, result), {
            autoClose: result.processes?.count || result.dropped_caches?.length ? false : 8000
          });
          await model.refreshProject(project);
        }
      }
    });

    commands.addCommand(CommandIDs.rescue, {
      label: args =>
        args.project ? `DS01: Rescue Files of ${args.project}` : 'DS01: Rescue Files Outside /workspace…',
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Rescue');
        if (!project) {
          return;
        }
        const result = await attempt(`Cannot rescue ${project}`, () => client.rescue(project));
        if (result) {
          Notification.success(rescueMessage(project, result, model.mode), { autoClose: 8000 });
          await model.loadAudit(project);
        }
      }
    });

    commands.addCommand(CommandIDs.audit, {
      label: args => (args.project ? `DS01: Check Files of ${args.project}` : 'DS01: Check Files Outside /workspace…'),
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Check');
        if (project) {
          await model.loadAudit(project);
        }
      }
    });

    commands.addCommand(CommandIDs.prune, {
      label: args => (args.project ? `DS01: Prune Checkpoints of ${args.project}` : 'DS01: Prune Checkpoints…'),
      caption: 'Delete old checkpoints, keeping the newest N of each run, after a preview that says why',
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Prune checkpoints');
        if (!project) {
          return;
        }
        const keep = await InputDialog.getNumber({
          title: `Keep how many of the newest checkpoints of each run of ${project}?`,
          value: 3
        });
        if (!keep.button.accept || keep.value === null || keep.value < 0) {
          return;
        }
        const policy = { keep_last: Math.floor(keep.value) };
        const plan = await attempt(`Cannot plan pruning ${project}`, () => client.prune(project, policy));
        const doomed = plan?.would_delete ?? [];
        if (!plan || !doomed.length) {
          if (plan) {
            Notification.info(`Nothing to prune in ${project}.`, { autoClose: 4000 });
          }
          return;
        }
        const answer = await showDialog({
          title: `Delete ${doomed.length} checkpoint(s) of ${project} (${formatBytes(plan.bytes)})?`,
          body: doomed.map(c => `${c.relpath ?? c.name}${c.reason ? ` (${c.reason})` : ''}`).join('; '),
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
        });
        if (answer.button.accept) {
          const done = await attempt(`Cannot prune ${project}`, () => client.prune(project, policy, true));
          if (done) {
            Notification.success(`Deleted ${done.deleted?.length ?? 0} checkpoint(s) of ${project}.`, {
              autoClose: 4000
            });
          }
        }
      }
    });

    commands.addCommand(CommandIDs.terminal, {
      label: args => (args.project ? `DS01: Terminal in ${args.project}` : 'DS01: Open Terminal in Container…'),
      caption: "Open a terminal with a shell inside the project's running container",
      isEnabled: () => commands.hasCommand('terminal:create-new'),
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Terminal');
        if (!project) {
          return;
        }
        if (!hostOnly()) {
          await commands.execute('terminal:create-new'); // this server's terminals already run inside
          return;
        }
        const shell = await attempt(`Cannot open a terminal in ${project}`, () => client.terminal(project));
        if (!shell) {
          return;
        }
        const widget: any = await commands.execute('terminal:create-new');
        widget.title.caption = `Shell inside the container of ${project}`;
        // `exec` so that leaving the container's shell closes the terminal too.
        widget.content.session.send({ type: 'stdin', content: [`exec ${shell.line}\r`] });
      }
    });

    commands.addCommand(CommandIDs.notebook, {
      label: args => (args.project ? `DS01: New Notebook in ${args.project}` : 'DS01: New Notebook in Container…'),
      caption: "Open a new notebook whose kernel runs inside the project's container",
      execute: async args => {
        const project = await pickProject(model, args as Args, 'Notebook');
        if (!project) {
          return;
        }
        // Inside a hub server the default kernel already runs in the container.
        const kernelName = hostOnly()
          ? `ds01-${project}`
          : (app.serviceManager.kernelspecs.specs?.default ?? 'python3');
        await app.serviceManager.kernelspecs.refreshSpecs();
        if (hostOnly() && !app.serviceManager.kernelspecs.specs?.kernelspecs[kernelName]) {
          Notification.error(`No kernel ${kernelName} yet: deploy ${project} first.`, { autoClose: 8000 });
          return;
        }
        const base = folderOf(model, project) ?? '';
        const folder = base ? PathExt.join(base, 'notebooks') : '';
        const created: any = await attempt('Cannot create the notebook', async () => {
          try {
            return await commands.execute('docmanager:new-untitled', { path: folder, type: 'notebook' });
          } catch {
            return await commands.execute('docmanager:new-untitled', { path: base, type: 'notebook' });
          }
        });
        if (created) {
          await commands.execute('docmanager:open', {
            path: created.path,
            factory: 'Notebook',
            kernel: { name: kernelName }
          });
        }
      }
    });

    commands.addCommand(CommandIDs.refresh, {
      label: 'DS01: Refresh',
      execute: async () => {
        model.reconnect();
        await model.refreshResources();
      }
    });

    commands.addCommand(CommandIDs.openPanel, {
      label: 'DS01: Show Projects Panel',
      execute: () => app.shell.activateById('ds01-sidebar')
    });

    if (palette) {
      const category = 'DS01';
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category });
      }
    }
  }
};
