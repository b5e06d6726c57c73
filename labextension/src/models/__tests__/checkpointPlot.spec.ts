import { plotData, scalePoints } from '../checkpointPlot';
import { ICheckpoint, ICheckpoints } from '../types';

const ckpt = (name: string, epoch: number | null, loss: number | undefined, complete = true): ICheckpoint => ({
  path: `/workspace/models/${name}`,
  name,
  epoch,
  metrics: loss === undefined ? {} : { loss: loss },
  complete,
  size: 1000,
  mtime: 1700000000 + (epoch ?? 0)
});

const data: ICheckpoints = {
  project: 'alpha',
  checkpoints: [
    ckpt('e3', 3, 0.4),
    ckpt('e1', 1, 0.9),
    ckpt('e2', 2, 0.3),
    ckpt('e4', 4, 0.1, false),
    ckpt('e5', 5, undefined)
  ],
  latest: 'e3',
  best: 'e2',
  metric: 'loss',
  metrics: ['loss'],
  bytes: 5000
};

describe('checkpoint plot', () => {
  it('plots complete checkpoints with the metric by epoch, marking latest and best', () => {
    const plot = plotData(data, 'loss');
    expect(plot.xLabel).toBe('epoch');
    expect(plot.points.map(p => [p.x, p.y])).toEqual([
      [1, 0.9],
      [2, 0.3],
      [3, 0.4]
    ]);
    expect(plot.points.find(p => p.best)?.name).toBe('e2');
    expect(plot.points.find(p => p.latest)?.name).toBe('e3');
    expect([plot.yMin, plot.yMax]).toEqual([0.3, 0.9]);
  });

  it('marks best only for the metric it was chosen by, and scales into the box', () => {
    const other = plotData({ ...data, metric: 'acc' }, 'loss');
    expect(other.points.some(p => p.best)).toBe(false);
    const [first, , last] = scalePoints(plotData(data, 'loss'), 100, 50, 0);
    expect(first).toEqual({ x: 0, y: 0 });
    expect(last.x).toBe(100);
  });

  it('falls back to time when epochs are missing', () => {
    const plot = plotData({ ...data, checkpoints: [ckpt('a', null, 1), ckpt('b', null, 2)] }, 'loss');
    expect(plot.xLabel).toBe('time');
    expect(plot.points).toHaveLength(2);
  });
});
