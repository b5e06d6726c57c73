import { IDS01Client } from '../../client';
import { DS01Model } from '../../model';
import { ApiError } from '../errors';
import { IAudit, IGpus, ILimits, IOperation, IProject, IWarningEvent } from '../types';
import { project } from './fixtures/projects';

const gpus: IGpus = {
  gpus: [
    {
      uuid: 'GPU-1',
      index: '0',
      name: 'H200',
      memory_total: 100,
      memory_used: 25,
      utilization: 40,
      holder: null
    }
  ]
};

const audit: IAudit = {
  project: 'alpha',
  container: 'alpha._.ada',
  state: 'running',
  at_risk: 1,
  summary: {},
  findings: [{ path: '/tmp/result.csv', kind: 'work', size: 4, source: 'diff' }]
};

/** A client whose every method is a Jest mock; a test sets the answers it needs. */
function mockClient(): jest.Mocked<IDS01Client> {
  const unexpected = (name: string) => jest.fn(() => Promise.reject(new Error(`unexpected call: ${name}`)));
  const methods = [
    'version',
    'overview',
    'project',
    'createProject',
    'build',
    'deploy',
    'start',
    'stopServer',
    'stop',
    'retire',
    'audit',
    'rescue',
    'terminal',
    'checkpoints',
    'prune',
    'clean',
    'where',
    'usage',
    'images',
    'pruneImages',
    'gpus',
    'limits',
    'operation',
    'notebookCheck',
    'events'
  ];
  const client: Record<string, unknown> = { serverSettings: {}, url: jest.fn(() => '/ds01') };
  for (const name of methods) {
    client[name] = unexpected(name);
  }
  return client as unknown as jest.Mocked<IDS01Client>;
}

/** Let pending promises (the model's requests) settle. */
const settle = () => new Promise(resolve => setTimeout(resolve, 0));

const snapshot = (extra: { operations?: IOperation[]; projects?: IProject[] } = {}) => ({
  type: 'snapshot' as const,
  user: 'ada',
  engine: { available: true },
  projects: extra.projects ?? [project('alpha'), project('beta')],
  operations: extra.operations ?? []
});

describe('DS01Model with a mocked client', () => {
  let client: jest.Mocked<IDS01Client>;
  let model: DS01Model;
  let changes: number;

  beforeEach(() => {
    client = mockClient();
    model = new DS01Model(client);
    changes = 0;
    model.changed.connect(() => changes++);
  });

  afterEach(() => model.dispose());

  it('starts with the version and the event stream opened through the client', async () => {
    client.version.mockResolvedValue({ version: '0.1.0', api: 1, mode: 'container' });
    client.events.mockResolvedValue({ status: 404, ok: false } as Response);
    await model.start();
    await settle();
    expect(client.events).toHaveBeenCalledTimes(1);
    expect(client.events.mock.calls[0][0]).toBeInstanceOf(AbortSignal);
    expect(model.state.version).toEqual({ version: '0.1.0', api: 1, mode: 'container' });
    expect(model.mode).toBe('container');
    expect(model.state.connection.status).toBe('missing');
    expect(model.state.connection.detail).toMatch(/not enabled/);
    model.dispose();
    expect(model.state.connection).toEqual({ status: 'stopped', detail: '' });
  });

  it('carries on without a version when the server has none', async () => {
    client.version.mockRejectedValue(new ApiError(404, { error: 'NotFound', message: 'no' }));
    client.events.mockReturnValue(new Promise(() => undefined));
    await model.start();
    expect(model.state.version).toBeNull();
    expect(model.mode).toBe('host');
    expect(model.state.connection.status).toBe('connecting');
  });

  it('follows the operations a snapshot says are running, keeping lines that arrived meanwhile', async () => {
    client.operation.mockResolvedValue({
      id: 'op-1',
      kind: 'build',
      project: 'beta',
      state: 'running',
      lines: ['Step 1/3', 'Step 2/3']
    });
    model.apply(snapshot({ operations: [{ id: 'op-1', kind: 'build', project: 'beta', state: 'running' }] }));
    model.apply({ type: 'operation', id: 'op-1', kind: 'build', project: 'beta', state: 'running', line: 'Step 3/3' });
    await settle();
    expect(client.operation).toHaveBeenCalledWith('op-1');
    expect(model.state.operations['op-1'].lines).toEqual(['Step 1/3', 'Step 2/3', 'Step 3/3']);
    expect(model.state.ready).toBe(true);
  });

  it('refreshes a project after its container changed, once for a burst of events', async () => {
    jest.useFakeTimers();
    try {
      client.project.mockResolvedValue(project('alpha', { warnings: 2 }));
      model.apply(snapshot());
      model.apply({ type: 'container', action: 'create', project: 'alpha', id: 'c1', name: 'alpha._.ada' });
      model.apply({ type: 'container', action: 'start', project: 'alpha', id: 'c1', name: 'alpha._.ada' });
      expect(model.state.projects[0].container).toMatchObject({ state: 'running', running: true });
      jest.advanceTimersByTime(300);
    } finally {
      jest.useRealTimers();
    }
    await settle();
    expect(client.project).toHaveBeenCalledTimes(1);
    expect(model.state.projects[0].warnings).toBe(2);
  });

  it('drops a project audit when its container is removed', async () => {
    client.audit.mockResolvedValue(audit);
    client.project.mockResolvedValue(project('alpha'));
    model.apply(snapshot());
    expect(await model.loadAudit('alpha')).toEqual(audit);
    expect(model.state.audits.alpha).toEqual(audit);
    model.apply({ type: 'container', action: 'destroy', project: 'alpha' });
    expect(model.state.audits.alpha).toBeUndefined();
  });

  it('records a failed audit as its error', async () => {
    client.audit.mockRejectedValue(new ApiError(503, { error: 'EngineUnavailable', message: 'Docker is down' }));
    expect(await model.loadAudit('alpha')).toBeNull();
    expect(model.state.audits.alpha).toEqual({ error: 'Docker is down' });
  });

  it('says when an operation finished, once, and refreshes its project', async () => {
    client.project.mockResolvedValue(project('beta', { image: { tag: 'ds01-ada/beta:latest' } }));
    const finished: IOperation[] = [];
    model.operationFinished.connect((_, op) => finished.push(op));
    model.apply(snapshot());
    const done = { type: 'operation' as const, id: 'op-2', kind: 'build', project: 'beta', state: 'done' };
    model.apply({ ...done, state: 'running', line: 'Step 1/1' });
    model.apply(done);
    model.apply(done);
    await new Promise(resolve => setTimeout(resolve, 10));
    expect(finished.map(op => [op.id, op.state, op.lines])).toEqual([['op-2', 'done', ['Step 1/1']]]);
    expect(client.project).toHaveBeenCalledWith('beta');
    expect(model.state.projects[1].image).toEqual({ tag: 'ds01-ada/beta:latest' });
  });

  it('passes warnings on and audits the project, except for checkpoint warnings', async () => {
    client.audit.mockResolvedValue(audit);
    const warnings: IWarningEvent[] = [];
    model.warning.connect((_, w) => warnings.push(w));
    model.apply(snapshot());
    model.apply({ type: 'warning', project: 'alpha', kind: 'checkpoint', message: 'incomplete' });
    model.apply({ type: 'warning', project: 'alpha', at_risk: 3 });
    await settle();
    expect(warnings.map(w => w.kind ?? 'files')).toEqual(['checkpoint', 'files']);
    expect(client.audit).toHaveBeenCalledTimes(1);
    expect(model.state.atRisk.alpha).toBe(3);
    expect(model.state.audits.alpha).toEqual(audit);
  });

  it('keeps the last GPUs or limits when one request fails, and grows the GPU history', async () => {
    const limits: ILimits = { user: 'ada', limits: null, containers: 0, running: 0, gpu_slots: 0, gpus: [] };
    client.gpus.mockResolvedValue(gpus);
    client.limits.mockResolvedValue(limits);
    await model.refreshResources();
    expect(changes).toBe(1);
    client.limits.mockRejectedValue(new Error('down'));
    await model.refreshResources();
    expect(changes).toBe(2);
    expect(model.state.gpus).toEqual(gpus);
    expect(model.state.limits).toEqual(limits);
    expect(model.state.gpuHistory['GPU-1'].map(s => [s.utilization, s.memory])).toEqual([
      [40, 0.25],
      [40, 0.25]
    ]);
  });

  it('refreshes GPUs after a GPU event, and after container events once GPUs were shown', async () => {
    client.gpus.mockResolvedValue(gpus);
    client.limits.mockRejectedValue(new Error('down'));
    client.project.mockResolvedValue(project('alpha'));
    model.apply(snapshot());
    model.apply({ type: 'container', action: 'die', project: 'alpha' });
    expect(client.gpus).not.toHaveBeenCalled();
    model.apply({ type: 'gpu', action: 'release', uuids: ['GPU-1'] });
    await settle();
    expect(client.gpus).toHaveBeenCalledTimes(1);
    model.apply({ type: 'container', action: 'die', project: 'alpha' });
    await settle();
    expect(client.gpus).toHaveBeenCalledTimes(2);
  });

  it('records a started build at once, with the deploy framework passed on', async () => {
    const op: IOperation = { id: 'op-3', kind: 'deploy', project: 'alpha', state: 'running' };
    client.deploy.mockResolvedValue({ operation: op });
    model.apply(snapshot());
    expect(await model.startOperation('deploy', 'alpha', 'pytorch')).toEqual(op);
    expect(client.deploy).toHaveBeenCalledWith('alpha', undefined, 'pytorch');
    expect(model.state.operations['op-3']).toEqual({ ...op, lines: [] });
  });

  it('takes settings over the defaults', () => {
    model.setSettings({ gpuRefreshSeconds: 0 });
    expect(model.state.settings).toEqual({ notificationLevel: 'all', gpuRefreshSeconds: 0, staticCheck: true });
    model.setSettings({ staticCheck: false });
    expect(model.state.settings.gpuRefreshSeconds).toBe(10);
  });

  it('replaces its state on each change instead of changing it in place', async () => {
    client.audit.mockResolvedValue(audit);
    client.project.mockResolvedValue(project('alpha'));
    model.apply(snapshot());
    const before = model.state;
    const copy = JSON.parse(JSON.stringify(before));
    await model.loadAudit('alpha');
    model.apply({ type: 'container', action: 'destroy', project: 'alpha' });
    model.apply({ type: 'warning', project: 'beta', kind: 'max_runtime', stops_at: 1 });
    await settle();
    expect(model.state).not.toBe(before);
    expect(JSON.parse(JSON.stringify(before))).toEqual(copy);
  });
});
