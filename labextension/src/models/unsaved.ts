/**
 * Which open documents belong to a project: the project's folder relative to
 * the Jupyter server's root (where JupyterLab's paths start), and the dirty
 * documents under it, which the retire and stop dialogs offer to save first.
 */

/** The project's folder relative to the server root ('' when it is the root), or null when outside it. */
export function projectFolder(projectPath: string, serverRoot: string): string | null {
  if (!projectPath || !serverRoot) {
    return null;
  }
  const root = serverRoot.replace(/\/+$/, '');
  const path = projectPath.replace(/\/+$/, '');
  if (path === root) {
    return '';
  }
  if (!path.startsWith(root + '/')) {
    return null;
  }
  return path.slice(root.length + 1);
}

/** Whether a JupyterLab path (relative to the server root, maybe with a drive prefix) lies in folder. */
export function inFolder(docPath: string, folder: string | null): boolean {
  if (folder === null) {
    return false;
  }
  const local = docPath.replace(/^[^/:]*:/, '').replace(/^\/+/, '');
  return folder === '' || local === folder || local.startsWith(folder.replace(/\/+$/, '') + '/');
}

/** The paths of the project's open documents with unsaved changes, each once, sorted. */
export function unsavedIn(docs: { path: string; dirty: boolean }[], folder: string | null): string[] {
  return [...new Set(docs.filter(d => d.dirty && inFolder(d.path, folder)).map(d => d.path))].sort();
}
