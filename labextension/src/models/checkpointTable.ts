/**
 * What the checkpoint table shows, as pure functions: checkpoints grouped by
 * run, the columns worth their width in a sidebar, short numbers, and the tags
 * that say a checkpoint's role and state.
 */
import { ICheckpoint, ICheckpoints, IPrunePlan } from './types';

/** A metric's value in at most about six characters: 0.4123, 12.35, 12345, 1.2e-4. */
export function formatMetric(value: number | null | undefined): string {
  if (typeof value !== 'number' || isNaN(value)) {
    return '–';
  }
  const abs = Math.abs(value);
  if (value === 0) {
    return '0';
  }
  if (!isFinite(value)) {
    return value > 0 ? '∞' : '-∞';
  }
  if (abs >= 1e6 || abs < 1e-3) {
    const [mantissa, exponent] = value.toExponential(1).split('e');
    return `${trimZeros(mantissa)}e${Number(exponent)}`;
  }
  if (abs >= 1e4) {
    return String(Math.round(value));
  }
  return trimZeros(value.toPrecision(4));
}

/** An epoch or step: whole numbers as they are, a trainer's fractional epoch (1.4992...) to two decimals. */
export function formatNumber(value: number | null | undefined): string {
  if (typeof value !== 'number' || isNaN(value)) {
    return '–';
  }
  return Number.isInteger(value) ? String(value) : trimZeros(value.toFixed(2));
}

function trimZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** A name cut after its separators (- _ = /), where a narrow column may break it rather than mid-word. */
export function breakable(name: string): string[] {
  return name.split(/(?<=[-_=/])/).filter(Boolean);
}

/** A run as people read it: its folder under models/, or models/ itself. */
export function runLabel(run: string | null | undefined): string {
  return run ? run : 'models/';
}

const KIND_LABEL: Record<string, string> = {
  file: 'file',
  huggingface: 'Hugging Face',
  distributed: 'torch.distributed',
  lightning: 'Lightning',
  keras: 'Keras',
  folder: 'folder'
};

export function kindLabel(kind: string | null | undefined): string {
  return KIND_LABEL[kind ?? ''] ?? kind ?? '';
}

export interface ITag {
  text: string;
  /** A longer explanation (title and accessible description). */
  title: string;
  kind: 'resume' | 'best' | 'role' | 'incomplete' | 'in_progress';
}

/** The tags of a checkpoint: its state when not complete, what resume loads, the best, and a role. */
export function checkpointTags(c: ICheckpoint, data: ICheckpoints): ITag[] {
  const tags: ITag[] = [];
  const multiple = (data.runs ?? []).length > 1;
  const where = multiple ? ` in ${runLabel(c.run)}` : '';
  if (c.state === 'in_progress') {
    tags.push({ text: 'in progress', title: c.problem || 'Being written by a trainer right now', kind: 'in_progress' });
  } else if (c.state === 'incomplete' || c.complete === false) {
    tags.push({ text: 'incomplete', title: c.problem || 'Incomplete: it cannot be loaded', kind: 'incomplete' });
  }
  if (c.is_latest) {
    const overall = multiple && data.latest === c.relpath ? ' (and overall)' : '';
    tags.push({ text: 'resume', title: `What a resume${where} loads${overall}`, kind: 'resume' });
  }
  if (c.is_best) {
    const overall = multiple && data.best === c.relpath ? ' (and overall)' : '';
    const order = data.mode === 'max' ? 'highest' : 'lowest';
    // Where no checkpoint of the run recorded the metric, the server takes the one named best.
    const why =
      data.metric && typeof c.metrics?.[data.metric] === 'number'
        ? `Best ${data.metric}${where} (${order})`
        : `Best${where} by its name or its trainer's record (no ${data.metric ?? 'metric'} recorded)`;
    tags.push({ text: 'best', title: `${why}${overall}`, kind: 'best' });
  }
  if (c.role === 'best' || c.role === 'latest') {
    // A role comes from the name (best-model.pt, last.ckpt) or from the trainer's own record of its best.
    const what = c.role === 'best' ? 'the best model' : 'the latest checkpoint';
    tags.push({
      text: `role: ${c.role}`,
      title: `A role file, ${what} by its name or its trainer's record: never deleted by a retention rule`,
      kind: 'role'
    });
  }
  return tags;
}

export interface IRunGroup {
  run: string;
  label: string;
  count: number;
  bytes: number;
  checkpoints: ICheckpoint[];
}

/** Checkpoints by run, in the server's order of runs (a checkpoint of a run it did not list gets its own group). */
export function groupByRun(data: ICheckpoints): IRunGroup[] {
  const groups: IRunGroup[] = (data.runs ?? []).map(r => ({
    run: r.run,
    label: runLabel(r.run),
    count: r.count,
    bytes: r.bytes,
    checkpoints: []
  }));
  for (const c of data.checkpoints) {
    const run = c.run ?? '';
    let group = groups.find(g => g.run === run);
    if (!group) {
      group = { run, label: runLabel(run), count: 0, bytes: 0, checkpoints: [] };
      groups.push(group);
    }
    group.checkpoints.push(c);
  }
  for (const g of groups) {
    g.count = Math.max(g.count ?? 0, g.checkpoints.length);
    g.bytes = g.bytes || g.checkpoints.reduce((sum, c) => sum + (c.size || 0), 0);
  }
  return groups.filter(g => g.checkpoints.length);
}

export interface IColumns {
  epoch: boolean;
  step: boolean;
  /** The metric shown, or null for none. */
  metric: string | null;
  /** Epoch and step said in each checkpoint's second line instead of in columns (a narrow sidebar). */
  inline: boolean;
}

/**
 * Below this table width, epoch and step columns leave the names too little room (at JupyterLab's
 * default sidebar width a name like checkpoint-010.pt would break): they move into the second line.
 */
export const COLUMNS_FROM_WIDTH = 320;

/** Only the columns some checkpoint fills, and epoch and step as columns only where there is room. */
export function tableColumns(data: ICheckpoints, metric: string | null, width = Infinity): IColumns {
  const has = (key: 'epoch' | 'step') => data.checkpoints.some(c => typeof c[key] === 'number');
  const inline = width < COLUMNS_FROM_WIDTH;
  return {
    epoch: !inline && has('epoch'),
    step: !inline && has('step'),
    metric: metric && data.checkpoints.some(c => typeof c.metrics?.[metric] === 'number') ? metric : null,
    inline
  };
}

/** "epoch 2 · step 1000": what a checkpoint's second line says of its progress ("" when it says nothing). */
export function progressText(c: ICheckpoint): string {
  return [
    typeof c.epoch === 'number' ? `epoch ${formatNumber(c.epoch)}` : '',
    typeof c.step === 'number' ? `step ${formatNumber(c.step)}` : ''
  ]
    .filter(Boolean)
    .join(' · ');
}

/** A prune preview (or result), each checkpoint with what happens to it and why. */
export interface IPlanRow {
  relpath: string;
  run: string;
  action: 'delete' | 'keep';
  reason: string;
  size: number | null;
}

export function planRows(plan: IPrunePlan): IPlanRow[] {
  const doomed = (plan.would_delete ?? plan.deleted ?? []).map(c => ({
    relpath: c.relpath ?? c.name,
    run: c.run ?? '',
    action: 'delete' as const,
    reason: c.reason ?? '',
    size: c.size ?? null
  }));
  const kept = (plan.kept ?? []).map(k => ({
    relpath: k.relpath,
    run: k.run ?? '',
    action: 'keep' as const,
    reason: k.reason ?? '',
    size: null
  }));
  return [...doomed, ...kept];
}
