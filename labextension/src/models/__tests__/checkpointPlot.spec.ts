import {
  chooseAxis,
  formatTick,
  layoutPlot,
  linearScale,
  niceTicks,
  plotData,
  pointLabel,
  timeTicks
} from '../checkpointPlot';
import { ICheckpoints } from '../types';
import { ckpt, LISTING } from './fixtures/checkpoints';

describe('checkpoint plot: series per run', () => {
  it('draws one series per run that recorded the metric, logged values and checkpoints merged', () => {
    const plot = plotData(LISTING, 'eval_loss');
    expect(plot.axis).toBe('epoch');
    expect(plot.series.map(s => s.label)).toEqual(['bert/exp1', 'bert/exp2']);
    const exp1 = plot.series[0].points;
    // The log's eval values at epochs 1 and 2 are the checkpoints' own: drawn once, as the checkpoints.
    expect(exp1.map(p => [p.x, p.y, p.checkpoint])).toEqual([
      [1, 0.52, 'bert/exp1/checkpoint-500'],
      [2, 0.41, 'bert/exp1/checkpoint-1000']
    ]);
    expect(exp1.filter(p => p.best).map(p => p.checkpoint)).toEqual(['bert/exp1/checkpoint-1000']);
    expect(plot.series[1].points.find(p => p.best)?.checkpoint).toBe('bert/exp2/checkpoint-1000');
    expect(plot.yDomain).toEqual([0.41, 0.6]);
    expect(plot.xDomain).toEqual([1, 2]);
    expect(plot.hidden).toBe(0);
  });

  it("plots a trainer's logged values between checkpoints, which are not checkpoints", () => {
    const plot = plotData(LISTING, 'loss');
    expect(plot.series).toHaveLength(1);
    const points = plot.series[0].points;
    expect(points.map(p => p.x)).toEqual([0.5, 1, 1.5, 2]);
    expect(points.map(p => p.checkpoint)).toEqual([
      null,
      'bert/exp1/checkpoint-500',
      null,
      'bert/exp1/checkpoint-1000'
    ]);
    // Best was chosen by eval_loss: nothing is marked best for loss.
    expect(points.some(p => p.best)).toBe(false);
  });

  it('leaves out incomplete and in-progress checkpoints', () => {
    const data: ICheckpoints = {
      ...LISTING,
      runs: [],
      checkpoints: [
        ckpt('a.pt', { epoch: 1, metrics: { acc: 0.5 } }),
        ckpt('b.pt', { epoch: 2, metrics: { acc: 0.6 }, state: 'incomplete', complete: false }),
        ckpt('c.pt', { epoch: 3, metrics: { acc: 0.7 }, state: 'in_progress', complete: false })
      ]
    };
    const plot = plotData(data, 'acc');
    expect(plot.series).toHaveLength(1);
    expect(plot.series[0].label).toBe('models/');
    expect(plot.series[0].points.map(p => p.y)).toEqual([0.5]);
  });

  it('chooses the axis most values have, and counts the values it cannot place', () => {
    expect(chooseAxis([{ epoch: 1, step: 10 }])).toBe('epoch');
    expect(
      chooseAxis([
        { epoch: null, step: 10 },
        { epoch: 1, step: 20 }
      ])
    ).toBe('step');
    expect(chooseAxis([{ epoch: null, step: null }])).toBe('time');
    const data: ICheckpoints = {
      ...LISTING,
      runs: [],
      checkpoints: [
        ckpt('checkpoint-010.pt', { epoch: 10, metrics: { loss: 0.5 } }),
        ckpt('checkpoint-020.pt', { epoch: 20, metrics: { loss: 0.4 } }),
        ckpt('best-model.pt', { role: 'best', metrics: { loss: 0.4 } })
      ]
    };
    const plot = plotData(data, 'loss');
    expect(plot.axis).toBe('epoch');
    expect(plot.hidden).toBe(1);
    const times = plotData({ ...data, checkpoints: [ckpt('a.pt', { metrics: { loss: 1 }, mtime: 100 })] }, 'loss');
    expect(times.axis).toBe('time');
    expect(times.series[0].points[0].x).toBe(100);
  });
});

describe('checkpoint plot: scales and ticks', () => {
  it('makes ticks at 1, 2 or 5 times a power of ten that cover the data', () => {
    expect(niceTicks(0.41, 0.6, 4)).toEqual({ ticks: [0.4, 0.45, 0.5, 0.55, 0.6], step: 0.05, domain: [0.4, 0.6] });
    expect(niceTicks(0, 2000, 4).ticks).toEqual([0, 500, 1000, 1500, 2000]);
    expect(niceTicks(3, 97, 4).ticks).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(0.000012, 0.00005, 4).step).toBeCloseTo(0.00001, 12);
  });

  it('keeps whole-number axes whole, and gives a single value room', () => {
    expect(niceTicks(1, 2, 4, true).ticks).toEqual([1, 2]);
    expect(niceTicks(5, 5, 4, true).ticks).toEqual([4, 5, 6]);
    expect(niceTicks(0.5, 0.5, 4).domain).toEqual([0.44, 0.56]);
    expect(niceTicks(NaN, 1).ticks).toEqual([0, 1]);
  });

  it('labels ticks as briefly as their step allows', () => {
    expect(formatTick(0.45, 0.05)).toBe('0.45');
    expect(formatTick(0.5, 0.05)).toBe('0.50');
    expect(formatTick(1500, 500)).toBe('1500');
    expect(formatTick(20000, 10000)).toBe('20k');
    expect(formatTick(2500000, 500000)).toBe('2.5M');
    expect(formatTick(0, 0.1)).toBe('0');
    expect(formatTick(0.00005, 0.00001)).toBe('5e-5');
  });

  it('steps save times by minutes, hours or days', () => {
    expect(timeTicks(0, 3 * 3600, 3).step).toBe(3600);
    expect(timeTicks(0, 600, 3).step).toBe(300);
    expect(timeTicks(0, 10 * 86400, 3).step).toBe(7 * 86400);
  });

  it('scales linearly, a zero-width domain to the middle', () => {
    const s = linearScale([0, 10], [100, 0]);
    expect(s(0)).toBe(100);
    expect(s(5)).toBe(50);
    expect(linearScale([3, 3], [0, 10])(3)).toBe(5);
  });
});

describe('checkpoint plot: layout', () => {
  it('leaves room for the tick labels and keeps every point inside the axes', () => {
    const plot = plotData(LISTING, 'eval_loss');
    const layout = layoutPlot(plot, 260, 160);
    expect(layout.xLabel).toBe('epoch');
    expect(layout.yLabel).toBe('eval_loss');
    expect(layout.yTicks.map(t => t.label)).toEqual(['0.40', '0.45', '0.50', '0.55', '0.60']);
    expect(layout.xTicks.map(t => t.label)).toEqual(['1', '2']);
    expect(layout.left).toBeGreaterThanOrEqual(4 * 6);
    for (const p of layout.series.flatMap(s => s.points)) {
      expect(p.px).toBeGreaterThanOrEqual(layout.left);
      expect(p.px).toBeLessThanOrEqual(layout.right);
      expect(p.py).toBeGreaterThanOrEqual(layout.top);
      expect(p.py).toBeLessThanOrEqual(layout.bottom);
    }
    // SVG y grows downwards: the lower loss is drawn lower.
    const best = layout.series[0].points[1];
    expect(best.py).toBeGreaterThan(layout.series[0].points[0].py);
  });

  it("says on hover where a value comes from, the value, when, and whether it is the run's best", () => {
    const plot = plotData(LISTING, 'eval_loss');
    expect(pointLabel(plot.series[0].points[1], plot)).toBe(
      'bert/exp1/checkpoint-1000: eval_loss 0.41 (best) at step 1000, epoch 2'
    );
    const logged = plotData(LISTING, 'loss').series[0].points[0];
    expect(pointLabel(logged, plotData(LISTING, 'loss'))).toBe('bert/exp1, logged: loss 0.8 at step 250, epoch 0.5');
  });
});
