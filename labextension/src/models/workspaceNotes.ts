/**
 * What a project card says about the image a container runs on and a workspace its user
 * cannot write (issue 17), and which framework images a deploy may fall back to.
 * Pure functions of the server's answers: the card and the commands only render them.
 */
import { IContainer, IProject } from './types';

/** "running on the pytorch fallback image" for a container on a framework image; null otherwise. */
export function fallbackNote(container: IContainer | null | undefined): string | null {
  if (!container?.fallback) {
    return null;
  }
  const verb = container.running ? 'running' : 'deployed';
  return `${verb} on the ${container.fallback} fallback image: build the project's image, then retire and deploy to use it`;
}

/** The DS01 guide's fix for a workspace its user cannot write. */
export function chownFix(project: IProject): string {
  return `sudo chown -R $(whoami):$(whoami) ${project.path}`;
}

/** What of the project's folder the user cannot write, with the fix; null when all is writable. */
export function unwritableNote(project: IProject): string | null {
  const bad = project.unwritable?.length ? project.unwritable : (project.container?.unwritable ?? []);
  if (!bad.length) {
    return null;
  }
  const what = bad.map(b => (b === '.' ? 'the workspace folder' : `${b}/`)).join(', ');
  return `You cannot write ${what}: deploy is refused and saving would fail. Fix: ${chownFix(project)}`;
}

/**
 * The framework images to offer for a deploy of ``project``: only while it has no image of its own
 * (a deploy uses its image when it has one), and never while it has a container.
 */
export function frameworkChoices(project: IProject, frameworks: string[] | undefined): string[] {
  if (project.image || project.container || !frameworks?.length) {
    return [];
  }
  return ['base', ...frameworks.filter(f => f !== 'base').sort()];
}
