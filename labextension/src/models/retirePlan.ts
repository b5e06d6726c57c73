/**
 * What the retire and stop dialogs show, from an audit: running processes
 * first, then the findings that would be lost grouped by kind (work,
 * environment), idle kernels and caches quietly; the request body the
 * dialog's choices make; and what a retire or stop then reports.
 */
import { IAudit, IFinding, IRetireRequest, IRetireResult, IStopReport } from './types';
import { formatBytes, formatDuration } from './units';

export interface IFindingGroup {
  kind: string;
  label: string;
  /** Processes, work and environment are lost on retire unless stopped or rescued; kernels and caches are quiet. */
  atRisk: boolean;
  /** Files (for processes and kernels: processes, children included). */
  files: number;
  bytes: number;
  items: IFinding[];
}

const LABELS: { [kind: string]: string } = {
  process: 'Running processes',
  work: 'Work files',
  environment: 'Environment changes (packages installed by hand)',
  kernel: 'Idle kernels (their variables are lost)',
  cache: 'Caches (rebuilt when needed)'
};

/** Running work first: it is what a retire or stop ends, and what a person most wants to know. */
const ORDER = ['process', 'work', 'environment', 'kernel', 'cache'];
const AT_RISK = new Set(['process', 'work', 'environment']);
/** Kinds whose findings are processes, not files. */
const RUNNING = new Set(['process', 'kernel']);

/** Executing cells first, then busy processes, then the longest-running. */
function processRank(a: IFinding, b: IFinding): number {
  const score = (f: IFinding) => (typeof f.cell_started === 'number' ? 0 : f.busy ? 1 : 2);
  return score(a) - score(b) || (a.started ?? Infinity) - (b.started ?? Infinity);
}

export function groupFindings(findings: IFinding[]): IFindingGroup[] {
  const groups = new Map<string, IFindingGroup>();
  for (const f of findings) {
    if (f.kind === 'noise') {
      continue;
    }
    const group = groups.get(f.kind) ?? {
      kind: f.kind,
      label: LABELS[f.kind] ?? f.kind,
      atRisk: AT_RISK.has(f.kind),
      files: 0,
      bytes: 0,
      items: []
    };
    group.files += RUNNING.has(f.kind) ? (f.processes ?? f.files ?? 1) : (f.files ?? 1);
    group.bytes += f.size ?? 0;
    group.items.push(f);
    groups.set(f.kind, group);
  }
  for (const kind of RUNNING) {
    groups.get(kind)?.items.sort(processRank);
  }
  const rank = (kind: string) => (ORDER.indexOf(kind) < 0 ? ORDER.length : ORDER.indexOf(kind));
  return [...groups.values()].sort((a, b) => rank(a.kind) - rank(b.kind));
}

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

const processes = (n: number) => plural(n, 'process', 'processes');

/** A group's heading: "Work files: 2 files, 2.0 KB", "Running processes: 1 (3 processes)". */
export function groupHeading(group: IFindingGroup): string {
  if (RUNNING.has(group.kind)) {
    const n = group.items.length;
    return `${group.label}: ${n}${group.files > n ? ` (${processes(group.files)} with children)` : ''}`;
  }
  return `${group.label}: ${plural(group.files, 'file')}, ${formatBytes(group.bytes)}`;
}

/**
 * One process finding as a person reads it: how long it (or its cell) has
 * run, measured from its start time so it stays current, and whether it is busy.
 */
export function processSummary(f: IFinding, now = Date.now()): string {
  if (typeof f.started !== 'number') {
    return f.detail ?? '';
  }
  const seconds = (since: number) => formatDuration(now / 1000 - since);
  const parts: string[] = [];
  if (f.kind === 'kernel') {
    parts.push(`idle kernel${f.notebook ? ` of ${f.notebook}` : ''}, up ${seconds(f.started)}`);
  } else if (typeof f.cell_started === 'number') {
    const cell = typeof f.cell === 'number' ? `cell ${f.cell}` : 'cell';
    parts.push(`${cell} running for ${seconds(f.cell_started)} in ${f.notebook ?? 'a notebook'}`);
  } else {
    parts.push(`running for ${seconds(f.started)}`);
  }
  if (f.kind !== 'kernel') {
    parts.push(f.busy ? `busy (${Math.round(f.cpu_percent ?? 0)}% CPU)` : 'idle');
  }
  if ((f.processes ?? 1) > 1) {
    parts.push(`with ${plural((f.processes ?? 1) - 1, 'child process', 'child processes')}`);
  }
  if (f.gpu_memory) {
    parts.push(`${formatBytes(f.gpu_memory)} of GPU memory`);
  }
  return parts.join(', ');
}

export interface IRetirePlan {
  project: string;
  groups: IFindingGroup[];
  atRiskFiles: number;
  atRiskBytes: number;
  /** Running work (kind process), executing cells first: ended by a retire or stop. */
  processes: IFinding[];
  /** Caches outside /workspace: dropped with the container unless "Include caches". */
  caches: { count: number; files: number; bytes: number };
  /** Nothing would be lost and nothing runs: retiring needs no choice. */
  clean: boolean;
  notes: string[];
  truncated: boolean;
}

export function retirePlan(audit: IAudit): IRetirePlan {
  const groups = groupFindings(audit.findings);
  const files = groups.filter(g => g.atRisk && !RUNNING.has(g.kind));
  const atRiskFiles = files.reduce((n, g) => n + g.files, 0);
  const running = groups.find(g => g.kind === 'process')?.items ?? [];
  const cache = groups.find(g => g.kind === 'cache');
  return {
    project: audit.project,
    groups,
    atRiskFiles,
    atRiskBytes: files.reduce((n, g) => n + g.bytes, 0),
    processes: running,
    caches: { count: cache?.items.length ?? 0, files: cache?.files ?? 0, bytes: cache?.bytes ?? 0 },
    clean: audit.at_risk === 0 && atRiskFiles === 0 && running.length === 0,
    notes: audit.notes ?? [],
    truncated: !!audit.truncated
  };
}

/** What the person chose in the retire dialog. */
export interface IRetireChoice {
  mode: 'rescue' | 'discard' | null;
  stopProcesses: boolean;
  includeCaches: boolean;
}

/**
 * The body of POST /retire for a choice: stop_processes only where processes
 * run, include_caches only where there are caches and not with discard (the
 * server refuses that pair: discard drops everything).
 */
export function retireRequest(plan: IRetirePlan, choice: IRetireChoice): IRetireRequest {
  const mode = plan.clean ? null : choice.mode;
  return {
    mode,
    include_caches: choice.includeCaches && plan.caches.count > 0 && mode !== 'discard',
    stop_processes: choice.stopProcesses && plan.processes.length > 0
  };
}

/** Why the retire buttons would be refused as chosen, or '' when the server will go ahead. */
export function retireBlocker(plan: IRetirePlan, choice: IRetireChoice): string {
  const n = plan.processes.length;
  if (n && !choice.stopProcesses) {
    const [runs, them] = n === 1 ? ['runs', 'it'] : ['run', 'them'];
    return (
      `${processes(n)} still ${runs}: tick "Stop processes" to stop ${them} first ` +
      `(SIGTERM, then SIGKILL after the grace period), or let ${them} finish.`
    );
  }
  return '';
}

/** "Stopped 2 processes in 3s: ended by themselves: ...; killed after the grace period: ...". */
export function stopReportMessage(report: IStopReport | null | undefined): string {
  if (!report || !report.count) {
    return '';
  }
  const names = (outcome: string) =>
    report.processes
      .filter(p => p.outcome === outcome)
      .map(p => `${p.command} (pid ${p.pid})`)
      .join(', ');
  const parts: string[] = [];
  const ended = names('ended');
  const killed = names('killed');
  const left = names('left');
  if (ended) {
    parts.push(`ended by themselves: ${ended}`);
  }
  if (killed) {
    parts.push(`killed after the grace period: ${killed}`);
  }
  if (left) {
    parts.push(`left to end with the container (not yours to signal): ${left}`);
  }
  const took = typeof report.seconds === 'number' ? ` in ${formatDuration(report.seconds)}` : '';
  return `Stopped ${processes(report.count)}${took}: ${parts.join('; ')}.`;
}

/** The notification after a retire: where the rescue went, what stopping did, which caches were dropped. */
export function retireMessage(project: string, result: IRetireResult): string {
  const parts = [`Retired ${project}.`];
  if (result.rescued?.folder) {
    parts.push(`Rescued files are in ${result.rescued.folder}.`);
  }
  const stopped = stopReportMessage(result.processes);
  if (stopped) {
    parts.push(stopped);
  }
  const dropped = result.dropped_caches ?? [];
  if (dropped.length) {
    const bytes = dropped.reduce((n, c) => n + (c.size ?? 0), 0);
    const shown = dropped
      .slice(0, 3)
      .map(c => c.path)
      .join(', ');
    parts.push(
      `Dropped ${plural(dropped.length, 'cache')} (${formatBytes(bytes)}): ${shown}${dropped.length > 3 ? ` and ${dropped.length - 3} more` : ''}.`
    );
  }
  return parts.join(' ');
}
