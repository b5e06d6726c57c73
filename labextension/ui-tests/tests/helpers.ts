/**
 * What the browser specs share: where the test server keeps its projects, and
 * clean-up of what one spec made (and only that), so specs run in any order.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const HOME = process.env.DS01_UI_HOME ?? '/tmp/ds01-ui-home';
export const SHOTS = path.resolve(__dirname, '..', 'screenshots');
export const USER = require('os').userInfo().username;

/** The first file called `name` under `root`, depth first; null when there is none. */
export function findFile(root: string, name: string): string | null {
  if (!fs.existsSync(root)) {
    return null;
  }
  for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) {
      const found = findFile(full, name);
      if (found) {
        return found;
      }
    } else if (entry.name === name) {
      return full;
    }
  }
  return null;
}

/** Remove the project's container (if a failure left it) and image; with `files`, its folder and Dockerfile. */
export function removeProject(project: string, files = false): void {
  for (const args of [
    ['rm', '-f', `${project}._.${USER}`],
    ['image', 'rm', `ds01-${USER}/${project}:latest`]
  ]) {
    try {
      execFileSync('docker', args, { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  if (files) {
    for (const made of [
      path.join(HOME, 'workspace', project),
      path.join(HOME, 'dockerfiles', `${project}.Dockerfile`)
    ]) {
      fs.rmSync(made, { recursive: true, force: true });
    }
  }
}
