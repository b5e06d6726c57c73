/**
 * A short history of each GPU's utilisation and memory, for the sparkline on
 * its card: plain data, grown by the model's reducer on each GPU reading.
 */
import { IGpu } from './types';

export interface IGpuSample {
  time: number;
  utilization: number | null;
  memory: number;
}

/** Samples per GPU UUID, newest last. */
export interface IGpuHistory {
  [uuid: string]: IGpuSample[];
}

/** The history after one reading: a sample per GPU (at most `size` each); GPUs gone are dropped. */
export function withSamples(history: IGpuHistory, gpus: IGpu[], time: number, size = 30): IGpuHistory {
  const next: IGpuHistory = {};
  for (const gpu of gpus) {
    const memory = gpu.memory_total ? gpu.memory_used / gpu.memory_total : 0;
    next[gpu.uuid] = [...(history[gpu.uuid] ?? []), { time, utilization: gpu.utilization, memory }].slice(-size);
  }
  return next;
}

/** The samples of one GPU, oldest first. */
export function samplesOf(history: IGpuHistory, uuid: string): IGpuSample[] {
  return history[uuid] ?? [];
}

/** SVG polyline points for values in [0, 1] across a width x height box. */
export function sparklinePoints(values: (number | null)[], width: number, height: number): string {
  const known = values.map((v, i) => [i, v] as const).filter(([, v]) => v !== null) as [number, number][];
  if (!known.length) {
    return '';
  }
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return known
    .map(([i, v]) => {
      const y = height - Math.max(0, Math.min(1, v)) * height;
      return `${(i * step).toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}
