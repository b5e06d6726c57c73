import * as React from 'react';

import { DS01Client } from '../client';
import { plotData, scalePoints } from '../models/checkpointPlot';
import { describeError } from '../models/errors';
import { ICheckpoints, IPrunePlan } from '../models/types';
import { formatAge, formatBytes } from '../models/units';

/** A project's checkpoints: the list (latest and best marked), a metric plot and a prune preview. */
export function CheckpointsView(props: { client: DS01Client; project: string }): JSX.Element {
  const { client, project } = props;
  const [data, setData] = React.useState<ICheckpoints | null>(null);
  const [error, setError] = React.useState('');
  const [metric, setMetric] = React.useState('');
  const [keepLast, setKeepLast] = React.useState(3);
  const [plan, setPlan] = React.useState<IPrunePlan | null>(null);

  const load = React.useCallback(() => {
    client
      .checkpoints(project, metric || undefined)
      .then(d => {
        setData(d);
        setMetric(metric || d.metric || '');
        setError('');
      })
      .catch(e => setError(describeError(e)));
  }, [client, project, metric]);
  React.useEffect(load, [load]);

  if (error) {
    return <div className="jp-ds01-error">{error}</div>;
  }
  if (!data) {
    return <div className="jp-ds01-muted">Loading checkpoints…</div>;
  }
  if (!data.checkpoints.length) {
    return <div className="jp-ds01-muted">No checkpoints in models/ yet.</div>;
  }
  const preview = () =>
    client
      .prune(project, { keep_last: keepLast, metric: metric || undefined })
      .then(setPlan)
      .catch(e => setError(describeError(e)));
  const confirm = () =>
    client
      .prune(project, { keep_last: keepLast, metric: metric || undefined }, true)
      .then(() => {
        setPlan(null);
        load();
      })
      .catch(e => setError(describeError(e)));
  return (
    <div className="jp-ds01-checkpoints" data-test-id={`ds01-checkpoint-list-${project}`}>
      <table className="jp-ds01-table">
        <caption>
          Checkpoints of {project} ({formatBytes(data.bytes)})
        </caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Epoch</th>
            <th scope="col">{metric || 'Metric'}</th>
            <th scope="col">Size</th>
            <th scope="col">Age</th>
          </tr>
        </thead>
        <tbody>
          {data.checkpoints.map(c => (
            <tr key={c.name} className={c.complete ? '' : 'jp-ds01-incomplete'}>
              <td>
                {c.name}
                {c.name === data.latest && <span className="jp-ds01-tag"> latest</span>}
                {c.name === data.best && <span className="jp-ds01-tag"> best</span>}
                {!c.complete && (
                  <span className="jp-ds01-tag jp-ds01-warn" title={c.problem}>
                    {' '}
                    incomplete
                  </span>
                )}
              </td>
              <td>{c.epoch ?? '–'}</td>
              <td>{metric && typeof c.metrics[metric] === 'number' ? c.metrics[metric].toPrecision(4) : '–'}</td>
              <td>{formatBytes(c.size)}</td>
              <td>{formatAge(c.mtime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data.metrics.length > 0 && (
        <label className="jp-ds01-field">
          Plot
          <select value={metric} onChange={e => setMetric(e.target.value)} aria-label="Metric to plot">
            {data.metrics.map(m => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
      )}
      {metric && <MetricPlot data={data} metric={metric} />}
      <div className="jp-ds01-prune">
        <label className="jp-ds01-field">
          Keep newest
          <input
            type="number"
            min={0}
            value={keepLast}
            aria-label="Number of newest checkpoints to keep"
            onChange={e => setKeepLast(Math.max(0, parseInt(e.target.value || '0', 10)))}
          />
        </label>
        <button
          className="jp-mod-styled jp-ds01-button"
          onClick={preview}
          aria-label={`Preview pruning checkpoints of ${project}`}
        >
          Preview prune
        </button>
      </div>
      {plan && (
        <div className="jp-ds01-prune-plan" role="region" aria-label="Prune preview">
          {plan.would_delete && plan.would_delete.length ? (
            <>
              <div>
                Would delete {plan.would_delete.length} checkpoint(s), {formatBytes(plan.bytes)}:
              </div>
              <ul>
                {plan.would_delete.map(c => (
                  <li key={c.name}>{c.name}</li>
                ))}
              </ul>
              <button
                className="jp-mod-styled jp-mod-warn jp-ds01-button"
                onClick={confirm}
                aria-label="Delete these checkpoints"
              >
                Delete them
              </button>
            </>
          ) : (
            <div>Nothing would be deleted.</div>
          )}
        </div>
      )}
    </div>
  );
}

function MetricPlot(props: { data: ICheckpoints; metric: string }): JSX.Element {
  const plot = plotData(props.data, props.metric);
  const width = 240;
  const height = 100;
  const points = scalePoints(plot, width, height);
  if (!points.length) {
    return <div className="jp-ds01-muted">No complete checkpoint recorded {props.metric}.</div>;
  }
  return (
    <svg
      className="jp-ds01-plot"
      viewBox={`0 0 ${width} ${height}`}
      width="100%"
      height={height}
      preserveAspectRatio="none"
      role="img"
      aria-label={`${plot.metric} by ${plot.xLabel}`}
    >
      <title>
        {plot.metric} by {plot.xLabel}: {plot.yMin.toPrecision(3)} to {plot.yMax.toPrecision(3)}
      </title>
      <polyline points={points.map(p => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ')} />
      {points.map((p, i) => (
        <circle
          key={plot.points[i].name}
          cx={p.x}
          cy={p.y}
          r={plot.points[i].best ? 4 : 2.5}
          className={plot.points[i].best ? 'jp-ds01-plot-best' : plot.points[i].latest ? 'jp-ds01-plot-latest' : ''}
        >
          <title>
            {plot.points[i].name}: {plot.points[i].y}
          </title>
        </circle>
      ))}
    </svg>
  );
}
