import { chownFix, fallbackNote, frameworkChoices, unwritableNote } from '../workspaceNotes';
import { applyEvent, INITIAL_STATE } from '../reducer';
import { IProject } from '../types';

const project: IProject = { name: 'p', path: '/home/u/workspace/p', container: null, image: null, size: null };
const running = { project: 'p', name: 'p._.u', id: 'c', state: 'running', running: true };

describe('workspace notes', () => {
  it('says which fallback image a container runs on, and nothing for its own image', () => {
    expect(fallbackNote({ ...running, fallback: 'pytorch' })).toMatch(/^running on the pytorch fallback image/);
    expect(fallbackNote({ ...running, state: 'exited', running: false, fallback: 'base' })).toMatch(
      /^deployed on the base/
    );
    expect(fallbackNote({ ...running, fallback: '' })).toBeNull();
    expect(fallbackNote(null)).toBeNull();
  });

  it("names what cannot be written with the DS01 guide's fix", () => {
    expect(unwritableNote(project)).toBeNull();
    const note = unwritableNote({ ...project, unwritable: ['.', 'models'] });
    expect(note).toContain('the workspace folder, models/');
    expect(note).toContain('sudo chown -R $(whoami):$(whoami) /home/u/workspace/p');
    expect(unwritableNote({ ...project, container: { ...running, unwritable: ['results'] } })).toContain('results/');
    expect(chownFix(project)).toBe('sudo chown -R $(whoami):$(whoami) /home/u/workspace/p');
  });

  it('offers framework images only while the project has no image and no container', () => {
    expect(frameworkChoices(project, ['tiny', 'base', 'pytorch'])).toEqual(['base', 'pytorch', 'tiny']);
    expect(frameworkChoices({ ...project, image: { tag: 't' } }, ['base'])).toEqual([]);
    expect(frameworkChoices({ ...project, container: running }, ['base'])).toEqual([]);
    expect(frameworkChoices(project, undefined)).toEqual([]);
  });
});

describe('the snapshot carries the framework images', () => {
  it('keeps them in the state for the deploy choice', () => {
    const state = applyEvent(INITIAL_STATE, {
      type: 'snapshot',
      user: 'u',
      engine: { available: true },
      projects: [project],
      frameworks: ['base', 'tiny']
    });
    expect(state.frameworks).toEqual(['base', 'tiny']);
    expect(
      applyEvent(INITIAL_STATE, { type: 'snapshot', user: 'u', engine: { available: true }, projects: [] }).frameworks
    ).toEqual([]);
  });
});
