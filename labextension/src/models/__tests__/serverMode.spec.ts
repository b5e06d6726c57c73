import { applyEvent, INITIAL_STATE } from '../reducer';
import { findingsTitle, limitsNote, rescueMessage, serverMode, stopMessage } from '../serverMode';
import { DS01Event, ILimits } from '../types';

const inside: DS01Event = {
  type: 'snapshot',
  user: 'alice',
  mode: 'container',
  engine: { available: false, reason: "This server runs inside its project's container." },
  projects: [{ name: 'demo', path: '/workspace', container: null, image: null, size: null }],
  operations: []
};

describe('server mode', () => {
  it('comes from /ds01/version, else from the snapshot, else is the host', () => {
    expect(serverMode({ version: '0.1.0', api: 1, mode: 'container' })).toBe('container');
    expect(serverMode({ version: '0.1.0', api: 1 })).toBe('host');
    expect(serverMode(null, 'container')).toBe('container');
    expect(serverMode(null, null)).toBe('host');
    expect(serverMode({ version: '0.1.0', api: 1, mode: 'host' }, 'container')).toBe('host');
    expect(serverMode({ version: '0.1.0', api: 1, mode: 'something-new' })).toBe('host');
  });

  it('is kept by the reducer from the snapshot, and a host snapshot says host', () => {
    const state = applyEvent(INITIAL_STATE, inside);
    expect(state.mode).toBe('container');
    expect(serverMode(null, state.mode)).toBe('container');
    const { mode, ...host } = inside as any;
    expect(mode).toBe('container');
    expect(applyEvent(state, host).mode).toBe('host');
  });
});

describe('limits', () => {
  const unknown: ILimits = {
    user: 'alice',
    limits: null,
    limits_readable: null,
    containers: null as unknown as number,
    running: null as unknown as number,
    gpu_slots: null as unknown as number,
    gpus: [],
    disk: null,
    engine: { available: false, reason: "This server runs inside its project's container." }
  };

  it('says plainly when the server cannot know them (inside a hub server)', () => {
    expect(limitsNote(unknown)).toBe(
      "Your limits are not known here. This server runs inside its project's container."
    );
    expect(limitsNote({ ...unknown, engine: undefined })).toBe('Your limits are not known here.');
  });

  it('leaves known limits to the bars', () => {
    const known = { ...unknown, limits: { max_containers_per_user: 3 }, containers: 1, gpu_slots: 0 };
    expect(limitsNote(known)).toBeNull();
  });
});

describe('messages', () => {
  it('names where findings go in each mode', () => {
    expect(findingsTitle('host')).toBe('Outside /workspace (lost on retire):');
    expect(findingsTitle('container')).toContain('copied into .rescued/ when this server stops');
  });

  it('reports a rescue, with what was skipped, and that a hub server keeps running', () => {
    const result = {
      folder: '/workspace/.rescued/20260101T000000Z',
      files: 1,
      skipped: [{ path: '/tmp/link.csv', why: 'a link: not followed' }]
    };
    expect(rescueMessage('demo', result, 'container')).toBe(
      'Rescued 1 file(s) of demo into /workspace/.rescued/20260101T000000Z. Skipped 1 (see MANIFEST.json). ' +
        'This server keeps running.'
    );
    expect(rescueMessage('demo', { folder: '/x', files: 2 }, 'host')).toBe('Rescued 2 file(s) of demo into /x.');
  });

  it("shows the hub's answer to Stop server", () => {
    expect(stopMessage({ message: 'The hub is stopping this server.' })).toBe('The hub is stopping this server.');
    expect(stopMessage(undefined)).toContain('rescued into .rescued/');
  });
});
