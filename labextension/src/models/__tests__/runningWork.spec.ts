import {
  groupFindings,
  groupHeading,
  processSummary,
  retireBlocker,
  retireMessage,
  retirePlan,
  retireRequest,
  stopReportMessage
} from '../retirePlan';
import { applyEvent, INITIAL_STATE } from '../reducer';
import { clockTime, runtimeBadge, runtimeWarningMessage } from '../runtimeWarning';
import { IAudit, IFinding, IOverview } from '../types';
import { inFolder, projectFolder, unsavedIn } from '../unsaved';

const NOW = 1795929062.3; // UNIX seconds
const nowMs = NOW * 1000;

// Shaped like core/processes.py's process_findings (Finding.to_dict with its extra fields).
const job: IFinding = {
  path: 'python3 /workspace/train.py (pid 23)',
  kind: 'process',
  size: 0,
  source: 'process',
  detail: 'running for 2 h 0 min, busy (97% CPU), with 2 child process(es)',
  notebook: null,
  cell: null,
  files: 3,
  pid: 23,
  command: 'python3 /workspace/train.py',
  started: NOW - 7200,
  cpu_seconds: 7012.5,
  cpu_percent: 97.0,
  busy: true,
  processes: 3,
  uid: 1000
};
const idleJob: IFinding = {
  ...job,
  path: 'sleep 1000 (pid 40)',
  pid: 40,
  command: 'sleep 1000',
  started: NOW - 60,
  busy: false,
  cpu_percent: 0,
  processes: 1,
  files: 1
};
const cell: IFinding = {
  ...job,
  path: 'python3 -m ipykernel_launcher -f /tmp/k.json (pid 51)',
  pid: 51,
  command: 'python3 -m ipykernel_launcher -f /tmp/k.json',
  detail: 'cell running for 5 min in notebooks/train.ipynb',
  notebook: 'notebooks/train.ipynb',
  cell: 3,
  cell_started: NOW - 300,
  started: NOW - 3600,
  busy: false,
  cpu_percent: 0,
  processes: 1,
  files: 1
};
const kernel: IFinding = {
  path: 'kernel of notebooks/a.ipynb (pid 60)',
  kind: 'kernel',
  size: 0,
  source: 'process',
  detail: 'idle kernel of notebooks/a.ipynb, up 1 h 0 min: its variables are lost',
  notebook: 'notebooks/a.ipynb',
  files: 1,
  pid: 60,
  command: 'python3 -m ipykernel_launcher',
  started: NOW - 3600,
  busy: false,
  processes: 1
};
const work: IFinding = { path: '/tmp/result.csv', kind: 'work', size: 8, source: 'writable-layer' };
const caches: IFinding[] = [
  { path: '/root/.cache/pip', kind: 'cache', size: 5000, source: 'writable-layer', files: 12 },
  { path: '/root/.cache/torch', kind: 'cache', size: 3000, source: 'writable-layer', files: 2 }
];

const audit: IAudit = {
  project: 'alpha',
  container: 'alpha._.ada',
  state: 'running',
  at_risk: 4,
  summary: { process: { count: 3 }, kernel: { count: 1 } },
  findings: [work, caches[0], kernel, idleJob, job, cell, caches[1]]
};

describe('running work in the findings', () => {
  it('lists processes first (executing cells, then busy, then longest-running), kernels before caches', () => {
    const groups = groupFindings(audit.findings);
    expect(groups.map(g => g.kind)).toEqual(['process', 'work', 'kernel', 'cache']);
    expect(groups[0].items.map(f => f.pid)).toEqual([51, 23, 40]);
    expect(groups[0].atRisk).toBe(true);
    expect(groups[2].atRisk).toBe(false);
    expect(groupHeading(groups[0])).toBe('Running processes: 3 (5 processes with children)');
    expect(groupHeading(groups[2])).toBe('Idle kernels (their variables are lost): 1');
    expect(groupHeading(groups[3])).toBe('Caches (rebuilt when needed): 14 files, 7.8 KB');
  });

  it('says how long each has run and whether it is busy', () => {
    expect(processSummary(job, nowMs)).toBe('running for 2h 0m, busy (97% CPU), with 2 child processes');
    expect(processSummary(idleJob, nowMs)).toBe('running for 1m, idle');
    expect(processSummary(cell, nowMs)).toBe('cell 3 running for 5m in notebooks/train.ipynb, idle');
    expect(processSummary(kernel, nowMs)).toBe('idle kernel of notebooks/a.ipynb, up 1h 0m');
    expect(processSummary({ ...job, gpu_memory: 2 * 2 ** 30, processes: 2 }, nowMs)).toBe(
      'running for 2h 0m, busy (97% CPU), with 1 child process, 2.0 GB of GPU memory'
    );
    // Without a start time, the server's own words.
    expect(processSummary({ ...job, started: undefined }, nowMs)).toBe(job.detail);
  });
});

describe('retire plan with processes and caches', () => {
  const plan = retirePlan(audit);

  it('counts files apart from processes, and the caches that would be dropped', () => {
    expect(plan.processes.map(f => f.pid)).toEqual([51, 23, 40]);
    expect(plan.atRiskFiles).toBe(1);
    expect(plan.atRiskBytes).toBe(8);
    expect(plan.caches).toEqual({ count: 2, files: 14, bytes: 8000 });
    expect(plan.clean).toBe(false);
  });

  it('is not clean while only a process runs', () => {
    const only = retirePlan({ ...audit, at_risk: 1, findings: [cell, ...caches] });
    expect(only.clean).toBe(false);
    expect(only.atRiskFiles).toBe(0);
    expect(retirePlan({ ...audit, at_risk: 0, findings: [kernel, ...caches] }).clean).toBe(true);
  });

  it('builds the request body from the choices', () => {
    expect(retireRequest(plan, { mode: 'rescue', stopProcesses: true, includeCaches: true })).toEqual({
      mode: 'rescue',
      include_caches: true,
      stop_processes: true
    });
    // Discard drops everything: the server refuses include_caches with it.
    expect(retireRequest(plan, { mode: 'discard', stopProcesses: true, includeCaches: true })).toEqual({
      mode: 'discard',
      include_caches: false,
      stop_processes: true
    });
    // Nothing to stop or copy: the flags stay off.
    const calm = retirePlan({ ...audit, at_risk: 1, findings: [work] });
    expect(retireRequest(calm, { mode: 'rescue', stopProcesses: true, includeCaches: true })).toEqual({
      mode: 'rescue',
      include_caches: false,
      stop_processes: false
    });
    // A clean plan retires without a mode, caches included when asked.
    const clean = retirePlan({ ...audit, at_risk: 0, findings: caches });
    expect(retireRequest(clean, { mode: 'rescue', stopProcesses: false, includeCaches: true })).toEqual({
      mode: null,
      include_caches: true,
      stop_processes: false
    });
  });

  it('says why a choice would be refused while processes run', () => {
    expect(retireBlocker(plan, { mode: 'rescue', stopProcesses: false, includeCaches: false })).toContain(
      '3 processes still run: tick "Stop processes"'
    );
    expect(retireBlocker(plan, { mode: 'rescue', stopProcesses: true, includeCaches: false })).toBe('');
  });
});

describe('what stopping did', () => {
  const report = {
    count: 3,
    ended: 1,
    killed: 1,
    left: 1,
    seconds: 31.2,
    processes: [
      { pid: 51, command: 'python3 -m ipykernel_launcher', processes: 1, outcome: 'ended' },
      { pid: 23, command: 'python3 /workspace/train.py', processes: 3, outcome: 'killed' },
      { pid: 7, command: 'rootd', processes: 1, outcome: 'left' }
    ]
  };

  it('names which ended by themselves and which were killed', () => {
    expect(stopReportMessage(report)).toBe(
      'Stopped 3 processes in 31s: ended by themselves: python3 -m ipykernel_launcher (pid 51); ' +
        'killed after the grace period: python3 /workspace/train.py (pid 23); ' +
        'left to end with the container (not yours to signal): rootd (pid 7).'
    );
    expect(stopReportMessage(null)).toBe('');
    expect(stopReportMessage({ ...report, count: 0, processes: [] })).toBe('');
  });

  it('adds the rescue, the stop report and the dropped caches to the retire message', () => {
    expect(
      retireMessage('alpha', {
        rescued: {
          folder: '/home/ada/workspace/alpha/.rescued/20260101T000000Z',
          files: 1,
          bytes: 8,
          skipped: [],
          packages: []
        },
        processes: { ...report, count: 1, processes: [report.processes[0]] },
        dropped_caches: [{ path: '/root/.cache/pip', why: 'a cache', size: 5000, kind: 'cache' }]
      })
    ).toBe(
      'Retired alpha. Rescued files are in /home/ada/workspace/alpha/.rescued/20260101T000000Z. ' +
        'Stopped 1 process in 31s: ended by themselves: python3 -m ipykernel_launcher (pid 51). ' +
        'Dropped 1 cache (4.9 KB): /root/.cache/pip.'
    );
    expect(retireMessage('alpha', { rescued: null, processes: null, dropped_caches: [] })).toBe('Retired alpha.');
  });
});

describe('max_runtime warning', () => {
  const warning = {
    project: 'alpha',
    container: 'alpha._.ada',
    message: 'running 47 h 30 min; max_runtime 48 h stops it in 30 min',
    stops_at: NOW + 1800
  };

  it('names the project, the time it stops and what to do', () => {
    const at = clockTime(NOW + 1800);
    expect(at).toMatch(/^\d\d:\d\d$/);
    expect(runtimeWarningMessage(warning, nowMs)).toBe(
      `alpha: the container (alpha._.ada) reaches its maximum runtime and stops at ${at} (in 30m). ` +
        'running 47 h 30 min; max_runtime 48 h stops it in 30 min. ' +
        'Save your work: running processes get SIGTERM, then SIGKILL after the grace period.'
    );
    expect(runtimeBadge(warning, nowMs)).toBe(`Max runtime: stops at ${at} (in 30m)`);
    expect(runtimeBadge(warning, nowMs + 3600 * 1000)).toBe(`Max runtime: stopping now (max runtime reached at ${at})`);
    expect(runtimeWarningMessage({ project: 'beta' }, nowMs)).toContain('beta: the container reaches');
  });

  it('is kept per project until its container stops', () => {
    const overview: IOverview = {
      user: 'ada',
      engine: { available: true },
      projects: [
        {
          name: 'alpha',
          path: '/w/alpha',
          container: { project: 'alpha', name: 'alpha._.ada', id: 'c1', state: 'running', running: true },
          image: null,
          size: null
        }
      ]
    };
    let state = applyEvent(INITIAL_STATE, { type: 'snapshot', ...overview });
    state = applyEvent(state, { type: 'warning', kind: 'max_runtime', ...warning });
    expect(state.runtimeWarnings.alpha).toEqual(warning);
    expect(state.atRisk).toEqual({});
    // A reconnect keeps it while the container runs.
    state = applyEvent(state, { type: 'snapshot', ...overview });
    expect(state.runtimeWarnings.alpha?.stops_at).toBe(NOW + 1800);
    state = applyEvent(state, { type: 'container', action: 'die', project: 'alpha' });
    expect(state.runtimeWarnings).toEqual({});
  });
});

describe('unsaved notebooks of a project', () => {
  it('finds the project folder relative to the server root', () => {
    expect(projectFolder('/home/ada/workspace/alpha', '/home/ada')).toBe('workspace/alpha');
    expect(projectFolder('/home/ada/workspace/alpha', '/home/ada/')).toBe('workspace/alpha');
    expect(projectFolder('/home/ada/workspace/alpha', '/home/ada/workspace/alpha')).toBe('');
    expect(projectFolder('/srv/alpha', '/home/ada')).toBeNull();
    expect(projectFolder('/home/adam/x', '/home/ada')).toBeNull();
  });

  it('lists the dirty documents inside it only', () => {
    const docs = [
      { path: 'workspace/alpha/notebooks/a.ipynb', dirty: true },
      { path: 'workspace/alpha/notebooks/b.ipynb', dirty: false },
      { path: 'workspace/alphabet/c.ipynb', dirty: true },
      { path: 'RTC:workspace/alpha/d.ipynb', dirty: true },
      { path: 'workspace/alpha/notebooks/a.ipynb', dirty: true }
    ];
    expect(unsavedIn(docs, 'workspace/alpha')).toEqual([
      'RTC:workspace/alpha/d.ipynb',
      'workspace/alpha/notebooks/a.ipynb'
    ]);
    expect(unsavedIn(docs, null)).toEqual([]);
    expect(inFolder('x.ipynb', '')).toBe(true);
  });
});
