/**
 * Data for the checkpoint plot: one point per complete checkpoint that
 * recorded the chosen metric, ordered by epoch (or step, or time).
 */
import { ICheckpoint, ICheckpoints } from './types';

export interface IPlotPoint {
  x: number;
  y: number;
  name: string;
  latest: boolean;
  best: boolean;
}

export interface IPlotData {
  metric: string;
  xLabel: 'epoch' | 'step' | 'time';
  points: IPlotPoint[];
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
}

function xOf(c: ICheckpoint, axis: IPlotData['xLabel']): number | null {
  if (axis === 'epoch') {
    return c.epoch ?? null;
  }
  if (axis === 'step') {
    return c.step ?? null;
  }
  return c.mtime;
}

export function plotData(data: ICheckpoints, metric: string): IPlotData {
  const usable = data.checkpoints.filter(c => c.complete && typeof c.metrics?.[metric] === 'number');
  const axis: IPlotData['xLabel'] = usable.every(c => c.epoch !== null && c.epoch !== undefined)
    ? 'epoch'
    : usable.every(c => c.step !== null && c.step !== undefined)
      ? 'step'
      : 'time';
  const points = usable
    .map(c => ({
      x: xOf(c, axis) as number,
      y: c.metrics[metric],
      name: c.name,
      latest: c.name === data.latest,
      best: c.name === data.best && data.metric === metric
    }))
    .sort((a, b) => a.x - b.x);
  const xs = points.map(p => p.x);
  const ys = points.map(p => p.y);
  return {
    metric,
    xLabel: axis,
    points,
    xMin: xs.length ? Math.min(...xs) : 0,
    xMax: xs.length ? Math.max(...xs) : 1,
    yMin: ys.length ? Math.min(...ys) : 0,
    yMax: ys.length ? Math.max(...ys) : 1
  };
}

/** Scale the plot into a width x height box (SVG coordinates, y down). */
export function scalePoints(plot: IPlotData, width: number, height: number, pad = 4): { x: number; y: number }[] {
  const dx = plot.xMax - plot.xMin || 1;
  const dy = plot.yMax - plot.yMin || 1;
  return plot.points.map(p => ({
    x: pad + ((p.x - plot.xMin) / dx) * (width - 2 * pad),
    y: height - pad - ((p.y - plot.yMin) / dy) * (height - 2 * pad)
  }));
}
