/**
 * The checkpoint plot as pure data: one series per run of the chosen metric
 * (a trainer's logged values and the checkpoints that recorded it), the x axis
 * the points share, nice ticks and the scales into an SVG box. The component
 * (components/CheckpointPlot.tsx) only draws what these functions return.
 */
import { formatMetric, formatNumber, runLabel } from './checkpointTable';
import { ICheckpoints } from './types';

export type Axis = 'epoch' | 'step' | 'time';

export interface IPlotPoint {
  x: number;
  y: number;
  run: string;
  epoch: number | null;
  step: number | null;
  /** relpath of the checkpoint this value was recorded with; null for a logged value between checkpoints. */
  checkpoint: string | null;
  /** The run's best checkpoint by this metric (as the server chose it). */
  best: boolean;
}

export interface ISeries {
  run: string;
  label: string;
  points: IPlotPoint[];
}

export interface IPlot {
  metric: string;
  axis: Axis;
  series: ISeries[];
  /** Values left out because they have no value on the chosen axis (a role file without an epoch). */
  hidden: number;
  xDomain: [number, number];
  yDomain: [number, number];
}

interface IRawPoint {
  run: string;
  y: number;
  epoch: number | null;
  step: number | null;
  mtime: number | null;
  checkpoint: string | null;
  best: boolean;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && isFinite(v);

/**
 * Choose the x axis: the one of epoch or step most values have (epoch on a tie: it compares runs of
 * different batch sizes); the save time only when no value has either (checkpoints only, logs have no time).
 */
export function chooseAxis(points: { epoch: number | null; step: number | null }[]): Axis {
  const epochs = points.filter(p => isNumber(p.epoch)).length;
  const steps = points.filter(p => isNumber(p.step)).length;
  if (!epochs && !steps) {
    return 'time';
  }
  return epochs >= steps ? 'epoch' : 'step';
}

/** The values of `metric` per run: the run's logged history, and its complete checkpoints that recorded it. */
export function plotData(data: ICheckpoints, metric: string): IPlot {
  const runs = (data.runs ?? []).map(r => r.run);
  for (const c of data.checkpoints) {
    if (!runs.includes(c.run ?? '')) {
      runs.push(c.run ?? '');
    }
  }
  // is_best says best by the metric the server was asked for; it says nothing of another metric.
  const bestApplies = data.metric === metric;
  const raw: IRawPoint[] = [];
  for (const run of data.runs ?? []) {
    for (const entry of run.history ?? []) {
      if (isNumber(entry.metrics?.[metric])) {
        raw.push({
          run: run.run,
          y: entry.metrics[metric],
          epoch: entry.epoch ?? null,
          step: entry.step ?? null,
          mtime: null,
          checkpoint: null,
          best: false
        });
      }
    }
  }
  for (const c of data.checkpoints) {
    if (c.state === 'complete' && isNumber(c.metrics?.[metric])) {
      raw.push({
        run: c.run ?? '',
        y: c.metrics[metric],
        epoch: c.epoch ?? null,
        step: c.step ?? null,
        mtime: c.mtime,
        checkpoint: c.relpath,
        best: bestApplies && !!c.is_best
      });
    }
  }
  const axis = chooseAxis(raw);
  const xOf = (p: IRawPoint): number | null =>
    axis === 'epoch' ? p.epoch : axis === 'step' ? p.step : p.checkpoint ? p.mtime : null;
  let hidden = 0;
  const series: ISeries[] = [];
  for (const run of runs) {
    const points: IPlotPoint[] = [];
    for (const p of raw.filter(r => r.run === run)) {
      const x = xOf(p);
      if (!isNumber(x)) {
        hidden += 1;
        continue;
      }
      points.push({ x, y: p.y, run, epoch: p.epoch, step: p.step, checkpoint: p.checkpoint, best: p.best });
    }
    const merged = dropLoggedDuplicates(points);
    if (merged.length) {
      series.push({ run, label: runLabel(run), points: merged });
    }
  }
  const xs = series.flatMap(s => s.points.map(p => p.x));
  const ys = series.flatMap(s => s.points.map(p => p.y));
  return {
    metric,
    axis,
    series,
    hidden,
    xDomain: xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1],
    yDomain: ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1]
  };
}

/**
 * Sort by x; a logged value that a checkpoint at the same x also recorded is dropped, so the
 * checkpoint's point (hoverable, maybe best) is the one drawn.
 */
function dropLoggedDuplicates(points: IPlotPoint[]): IPlotPoint[] {
  const saved = points.filter(p => p.checkpoint);
  const kept = points.filter(p => p.checkpoint || !saved.some(c => c.x === p.x && c.y === p.y));
  return kept.sort((a, b) => a.x - b.x || Number(!!a.checkpoint) - Number(!!b.checkpoint));
}

export interface ITicks {
  /** The tick values, from the first at or below the data to the first at or above it. */
  ticks: number[];
  step: number;
  domain: [number, number];
}

const TIME_STEPS = [60, 300, 600, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400];

/** About `count` ticks at 1, 2 or 5 times a power of ten covering [min, max]; whole numbers with `integer`. */
export function niceTicks(min: number, max: number, count = 4, integer = false): ITicks {
  if (!isNumber(min) || !isNumber(max)) {
    return { ticks: [0, 1], step: 1, domain: [0, 1] };
  }
  if (min > max) {
    [min, max] = [max, min];
  }
  if (min === max) {
    // One value: centre it in a range of its own size (or of 1 around zero or an integer).
    const pad = integer || min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, count);
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / magnitude;
  // The nearest of 1, 2, 5 and 10 on a log scale (as d3's ticks choose), so the count stays near `count`.
  let step = (norm >= Math.sqrt(50) ? 10 : norm >= Math.sqrt(10) ? 5 : norm >= Math.sqrt(2) ? 2 : 1) * magnitude;
  if (integer) {
    step = Math.max(1, Math.round(step));
  }
  return ticksFor(min, max, step);
}

/** Ticks for the save-time axis: minutes, hours or days (UNIX seconds). */
export function timeTicks(min: number, max: number, count = 4): ITicks {
  if (min === max) {
    min -= 60;
    max += 60;
  }
  const raw = (max - min) / Math.max(1, count);
  const step = TIME_STEPS.find(s => s >= raw) ?? Math.ceil(raw / 86400) * 86400;
  return ticksFor(min, max, step);
}

function ticksFor(min: number, max: number, step: number): ITicks {
  const decimals = decimalsOf(step);
  const round = (v: number) => Number(v.toFixed(Math.min(20, decimals + 2)));
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) {
    ticks.push(round(i * step));
  }
  return { ticks, step, domain: [ticks[0], ticks[ticks.length - 1]] };
}

/** Decimals needed to tell ticks `step` apart (0.05: 2, 0.5: 1, 5: 0). */
function decimalsOf(step: number): number {
  return step >= 1 ? 0 : Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
}

/** A tick's label, as short as its step allows: 0.25, 1500, 20k, 5e-5. */
export function formatTick(value: number, step: number): string {
  if (value === 0) {
    return '0';
  }
  if (step < 1e-3) {
    return value.toExponential(Math.max(0, decimalsOf(step / Math.pow(10, Math.floor(Math.log10(Math.abs(value)))))));
  }
  if (Math.abs(value) >= 1e6 && step >= 1e5) {
    return `${trim((value / 1e6).toFixed(decimalsOf(step / 1e6)))}M`;
  }
  if (Math.abs(value) >= 1e4 && step >= 100) {
    return `${trim((value / 1e3).toFixed(decimalsOf(step / 1e3)))}k`;
  }
  return value.toFixed(decimalsOf(step));
}

function trim(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** A save time as a tick label: HH:MM within a day's steps, else the month and day (local time). */
export function formatTime(unixSeconds: number, step: number): string {
  const d = new Date(unixSeconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return step < 86400 ? `${two(d.getHours())}:${two(d.getMinutes())}` : `${two(d.getMonth() + 1)}-${two(d.getDate())}`;
}

/** Map [d0, d1] onto [r0, r1] linearly (a zero-width domain maps to the middle). */
export function linearScale(domain: [number, number], range: [number, number]): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  if (d1 === d0) {
    return () => (r0 + r1) / 2;
  }
  return v => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

export interface ILaidOutPoint extends IPlotPoint {
  px: number;
  py: number;
  /** What hovering or focusing the point says. */
  label: string;
}

export interface ILayout {
  width: number;
  height: number;
  /** The plotting area inside the axes. */
  left: number;
  right: number;
  top: number;
  bottom: number;
  xTicks: { value: number; pos: number; label: string }[];
  yTicks: { value: number; pos: number; label: string }[];
  xLabel: string;
  yLabel: string;
  series: { run: string; label: string; index: number; points: ILaidOutPoint[] }[];
}

const CHAR = 6; // px per character of a tick label at the sidebar's small font

/** Lay the plot out in a width x height SVG box (y down), with room for the axes' labels. */
export function layoutPlot(plot: IPlot, width: number, height: number): ILayout {
  const integer = plot.axis === 'step' || plot.series.every(s => s.points.every(p => Number.isInteger(p.x)));
  const xt =
    plot.axis === 'time' ? timeTicks(...plot.xDomain, 3) : niceTicks(...plot.xDomain, width < 300 ? 4 : 5, integer);
  const yt = niceTicks(...plot.yDomain, height < 200 ? 3 : 5);
  const yLabels = yt.ticks.map(v => formatTick(v, yt.step));
  const left = 6 + CHAR * Math.max(...yLabels.map(l => l.length));
  const top = 22;
  const right = width - 10;
  const bottom = height - 30;
  const sx = linearScale(xt.domain, [left, right]);
  const sy = linearScale(yt.domain, [bottom, top]);
  const xLabel = plot.axis === 'time' ? 'saved at' : plot.axis;
  return {
    width,
    height,
    left,
    right,
    top,
    bottom,
    xTicks: xt.ticks.map(value => ({
      value,
      pos: sx(value),
      label: plot.axis === 'time' ? formatTime(value, xt.step) : formatTick(value, xt.step)
    })),
    yTicks: yt.ticks.map((value, i) => ({ value, pos: sy(value), label: yLabels[i] })),
    xLabel,
    yLabel: plot.metric,
    series: plot.series.map((s, index) => ({
      run: s.run,
      label: s.label,
      index,
      points: s.points.map(p => ({ ...p, px: sx(p.x), py: sy(p.y), label: pointLabel(p, plot) }))
    }))
  };
}

/** What a point's tooltip says, line by line: where the value comes from, the value, and when. */
export function pointLines(p: IPlotPoint, plot: IPlot): { source: string; value: string; at: string } {
  const where = [
    p.step !== null && p.step !== undefined ? `step ${formatNumber(p.step)}` : '',
    p.epoch !== null && p.epoch !== undefined ? `epoch ${formatNumber(p.epoch)}` : ''
  ].filter(Boolean);
  return {
    source: p.checkpoint ?? `${runLabel(p.run)}, logged`,
    value: `${plot.metric} ${formatMetric(p.y)}${p.best ? ' (best)' : ''}`,
    at: where.join(', ')
  };
}

/** "bert/exp1/checkpoint-500: eval_loss 0.412 (best) at step 500, epoch 1"; a logged value says so instead. */
export function pointLabel(p: IPlotPoint, plot: IPlot): string {
  const { source, value, at } = pointLines(p, plot);
  return `${source}: ${value}${at ? ` at ${at}` : ''}`;
}
