import * as React from 'react';

import { ILaidOutPoint, IPlot, layoutPlot, pointLines } from '../models/checkpointPlot';
import { useWidth } from './useWidth';

const HEIGHT = 160;
const SERIES_CLASSES = 6;

/**
 * One line per run of the chosen metric, with value axes; a checkpoint's point
 * says its value on hover and on keyboard focus, and each run's best is ringed.
 */
export function CheckpointPlot(props: { plot: IPlot; mode: 'min' | 'max' }): JSX.Element {
  const { plot } = props;
  const [ref, width] = useWidth(240);
  const [active, setActive] = React.useState<ILaidOutPoint | null>(null);
  const layout = layoutPlot(plot, width, HEIGHT);
  const anyBest = layout.series.some(s => s.points.some(p => p.best));
  const show = (p: ILaidOutPoint | null) => () => setActive(p);
  const order = props.mode === 'max' ? 'higher is better' : 'lower is better';
  return (
    <div className="jp-ds01-plot-box" ref={ref} data-test-id="ds01-checkpoint-plot">
      <svg
        className="jp-ds01-plot"
        width={width}
        height={HEIGHT}
        viewBox={`0 0 ${width} ${HEIGHT}`}
        role="group"
        aria-label={`${plot.metric} by ${layout.xLabel}, one line per run (${order})`}
        onMouseLeave={show(null)}
      >
        <g className="jp-ds01-plot-grid">
          {layout.yTicks.map(t => (
            <line key={t.value} x1={layout.left} x2={layout.right} y1={t.pos} y2={t.pos} />
          ))}
        </g>
        <g className="jp-ds01-plot-axis" aria-hidden="true">
          <line x1={layout.left} x2={layout.right} y1={layout.bottom} y2={layout.bottom} />
          <line x1={layout.left} x2={layout.left} y1={layout.top} y2={layout.bottom} />
          {layout.yTicks.map(t => (
            <g key={t.value} data-test-id="ds01-plot-ytick">
              <line x1={layout.left - 3} x2={layout.left} y1={t.pos} y2={t.pos} />
              <text x={layout.left - 5} y={t.pos} textAnchor="end" dominantBaseline="middle">
                {t.label}
              </text>
            </g>
          ))}
          {layout.xTicks.map((t, i) => (
            <g key={t.value} data-test-id="ds01-plot-xtick">
              <line x1={t.pos} x2={t.pos} y1={layout.bottom} y2={layout.bottom + 3} />
              <text
                x={t.pos}
                y={layout.bottom + 13}
                textAnchor={i === layout.xTicks.length - 1 && layout.xTicks.length > 1 ? 'end' : 'middle'}
              >
                {t.label}
              </text>
            </g>
          ))}
          <text className="jp-ds01-plot-label" x={(layout.left + layout.right) / 2} y={HEIGHT - 3} textAnchor="middle">
            {layout.xLabel}
          </text>
          <text className="jp-ds01-plot-label" x={2} y={10} textAnchor="start">
            {layout.yLabel} ({props.mode === 'max' ? 'higher' : 'lower'} is better)
          </text>
        </g>
        {layout.series.map(s => (
          <g
            key={s.run}
            className={`jp-ds01-plot-series jp-ds01-series-${s.index % SERIES_CLASSES}`}
            data-test-id={`ds01-plot-series-${s.run || 'top'}`}
          >
            <polyline points={s.points.map(p => `${p.px.toFixed(1)},${p.py.toFixed(1)}`).join(' ')} />
            {s.points.map((p, i) => (
              <React.Fragment key={i}>
                {p.best && <circle className="jp-ds01-plot-best" cx={p.px} cy={p.py} r={7} />}
                <circle
                  className={p.checkpoint ? 'jp-ds01-plot-checkpoint' : 'jp-ds01-plot-logged'}
                  cx={p.px}
                  cy={p.py}
                  r={p.checkpoint ? 3.5 : 1.5}
                />
                <circle
                  className="jp-ds01-plot-hit"
                  cx={p.px}
                  cy={p.py}
                  r={7}
                  // Checkpoints are reachable by keyboard; logged values between them only by pointer.
                  tabIndex={p.checkpoint ? 0 : undefined}
                  role={p.checkpoint ? 'img' : undefined}
                  aria-label={p.checkpoint ? p.label : undefined}
                  data-test-id={p.checkpoint ? 'ds01-plot-point' : undefined}
                  onMouseEnter={show(p)}
                  onFocus={show(p)}
                  onBlur={show(null)}
                />
              </React.Fragment>
            ))}
          </g>
        ))}
      </svg>
      {active && <Tooltip point={active} plot={plot} width={width} />}
      <ul className="jp-ds01-plot-legend" aria-label="Runs plotted">
        {layout.series.map(s => (
          <li key={s.run} className={`jp-ds01-series-${s.index % SERIES_CLASSES}`}>
            <span className="jp-ds01-plot-swatch" aria-hidden="true" />
            {s.label}
          </li>
        ))}
        {anyBest && (
          <li className="jp-ds01-plot-legend-best">
            <span className="jp-ds01-plot-ring" aria-hidden="true" />
            best of its run
          </li>
        )}
      </ul>
      {plot.hidden > 0 && (
        <div className="jp-ds01-muted">
          {plot.hidden} value(s) without {plot.axis === 'time' ? 'a save time' : `an ${plot.axis}`} not plotted.
        </div>
      )}
    </div>
  );
}

function Tooltip(props: { point: ILaidOutPoint; plot: IPlot; width: number }): JSX.Element {
  const { point, width } = props;
  const lines = pointLines(point, props.plot);
  // Beside the point on the side with more room; above it when it is low in the plot.
  const style: React.CSSProperties = {
    maxWidth: Math.max(120, width - 16),
    ...(point.px > width / 2 ? { right: width - point.px + 8 } : { left: point.px + 8 }),
    ...(point.py > HEIGHT / 2 ? { top: point.py - 8, transform: 'translateY(-100%)' } : { top: point.py + 8 })
  };
  return (
    <div className="jp-ds01-plot-tip" style={style} role="status" data-test-id="ds01-plot-tooltip">
      <div className="jp-ds01-plot-tip-source">{lines.source}</div>
      <div>{lines.value}</div>
      {lines.at && <div className="jp-ds01-muted">{lines.at}</div>}
    </div>
  );
}
