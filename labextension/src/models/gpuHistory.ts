/**
 * A short history of each GPU's utilisation and memory, for the sparkline on
 * its card. Samples are kept per UUID, newest last, at most `size` of them.
 */
import { IGpu } from './types';

export interface IGpuSample {
  time: number;
  utilization: number | null;
  memory: number;
}

export class GpuHistory {
  private samples = new Map<string, IGpuSample[]>();

  constructor(readonly size = 30) {}

  add(gpus: IGpu[], time = Date.now()): void {
    const seen = new Set<string>();
    for (const gpu of gpus) {
      seen.add(gpu.uuid);
      const list = this.samples.get(gpu.uuid) ?? [];
      const memory = gpu.memory_total ? gpu.memory_used / gpu.memory_total : 0;
      list.push({ time, utilization: gpu.utilization, memory });
      if (list.length > this.size) {
        list.splice(0, list.length - this.size);
      }
      this.samples.set(gpu.uuid, list);
    }
    for (const uuid of [...this.samples.keys()]) {
      if (!seen.has(uuid)) {
        this.samples.delete(uuid);
      }
    }
  }

  of(uuid: string): IGpuSample[] {
    return this.samples.get(uuid) ?? [];
  }
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
