import * as React from 'react';

import { IDS01Client } from '../client';
import { plotData } from '../models/checkpointPlot';
import {
  breakable,
  checkpointTags,
  formatMetric,
  formatNumber,
  groupByRun,
  kindLabel,
  planRows,
  progressText,
  tableColumns
} from '../models/checkpointTable';
import {
  checkpointView,
  INITIAL_VIEW,
  listOptions,
  prunePolicy,
  shownMetric,
  shownMode
} from '../models/checkpointView';
import { describeError } from '../models/errors';
import { ICheckpoint, ICheckpoints, IPrunePlan } from '../models/types';
import { formatAge, formatBytes } from '../models/units';
import { CheckpointPlot } from './CheckpointPlot';
import { useListing } from './useListing';
import { useWidth } from './useWidth';

/**
 * A project's checkpoints by run: what resume loads and the best, each
 * checkpoint's epoch, step, metric, role and state, a plot of the chosen
 * metric per run, and a prune preview that says why each one goes or stays.
 */
export function CheckpointsView(props: { client: IDS01Client; project: string }): JSX.Element {
  const { client, project } = props;
  const [state, dispatch] = React.useReducer(checkpointView, INITIAL_VIEW);
  const { metric: chosen, mode: chosenMode, generation } = state;

  useListing(dispatch, () => client.checkpoints(project, listOptions({ metric: chosen, mode: chosenMode })), [
    client,
    project,
    chosen,
    chosenMode,
    generation
  ]);

  const { data, error } = state;
  if (!data) {
    return error ? (
      <div className="jp-ds01-error">{error}</div>
    ) : (
      <div className="jp-ds01-muted">Loading checkpoints…</div>
    );
  }
  const metric = shownMetric(state);
  const mode = shownMode(state);
  const policy = prunePolicy(state);
  const preview = () =>
    client
      .prune(project, policy)
      .then(plan => dispatch({ type: 'planned', plan }))
      .catch(e => dispatch({ type: 'failed', error: describeError(e) }));
  const confirm = () =>
    client
      .prune(project, policy, true)
      .then(result => dispatch({ type: 'pruned', result }))
      .catch(e => dispatch({ type: 'failed', error: describeError(e) }));

  return (
    <div className="jp-ds01-checkpoints" data-test-id={`ds01-checkpoint-list-${project}`}>
      <div className="jp-ds01-checkpoints-head">
        <span className="jp-ds01-checkpoints-title">
          Checkpoints: {data.checkpoints.length}, {formatBytes(data.bytes)}
        </span>
        <button
          className="jp-mod-styled jp-ds01-button"
          onClick={() => dispatch({ type: 'refresh' })}
          aria-label={`List the checkpoints of ${project} again`}
          disabled={state.loading}
        >
          Refresh
        </button>
      </div>
      {error && <div className="jp-ds01-error">{error}</div>}
      {(data.problems ?? []).map(p => (
        <div key={p} className="jp-ds01-checkpoint-problem">
          {p}
        </div>
      ))}
      {!data.checkpoints.length ? (
        <div className="jp-ds01-muted">No checkpoints in models/ yet.</div>
      ) : (
        <>
          <Summary data={data} />
          <CheckpointTable data={data} metric={metric} project={project} />
          {data.metrics.length > 0 && (
            <div className="jp-ds01-plot-controls">
              <label className="jp-ds01-field">
                Plot
                <select
                  value={metric}
                  onChange={e => dispatch({ type: 'metric', metric: e.target.value })}
                  aria-label="Metric to plot and to choose the best by"
                >
                  {!metric && <option value="">choose…</option>}
                  {data.metrics.map(m => (
                    <option key={m}>{m}</option>
                  ))}
                </select>
              </label>
              <select
                value={mode}
                onChange={e => dispatch({ type: 'mode', mode: e.target.value as 'min' | 'max' })}
                aria-label="Whether lower or higher values are better"
              >
                <option value="min">lower is better</option>
                <option value="max">higher is better</option>
              </select>
            </div>
          )}
          {metric && <Plot data={data} metric={metric} mode={mode} />}
          <div className="jp-ds01-prune">
            <label className="jp-ds01-field">
              Keep newest
              <input
                type="number"
                min={0}
                value={state.keepLast}
                aria-label="Number of newest checkpoints to keep"
                onChange={e => dispatch({ type: 'keepLast', value: parseInt(e.target.value || '0', 10) })}
              />
            </label>
            {metric && (
              <label className="jp-ds01-field">
                Keep best
                <input
                  type="number"
                  min={0}
                  value={state.keepBest}
                  aria-label={`Number of best checkpoints by ${metric} to keep`}
                  onChange={e => dispatch({ type: 'keepBest', value: parseInt(e.target.value || '0', 10) })}
                />
              </label>
            )}
            <button
              className="jp-mod-styled jp-ds01-button"
              onClick={preview}
              aria-label={`Preview pruning checkpoints of ${project}`}
            >
              Preview prune
            </button>
          </div>
        </>
      )}
      {state.plan && (
        <PrunePreview plan={state.plan} onConfirm={confirm} onCancel={() => dispatch({ type: 'dismiss' })} />
      )}
      {state.pruned && (
        <div className="jp-ds01-muted" role="status">
          Deleted {state.pruned.deleted?.length ?? 0} checkpoint(s), {formatBytes(state.pruned.bytes)}.
        </div>
      )}
    </div>
  );
}

/** Where a resume starts and which checkpoint is best, over all runs. */
function Summary(props: { data: ICheckpoints }): JSX.Element {
  const { data } = props;
  return (
    <dl className="jp-ds01-facts jp-ds01-checkpoint-facts" data-test-id="ds01-checkpoint-summary">
      <dt>Resume</dt>
      <dd title="What a resume loads (load_latest)">{data.latest ?? 'nothing complete yet'}</dd>
      {data.metric && (
        <>
          <dt>Best</dt>
          <dd>
            {data.best ?? '–'}{' '}
            <span className="jp-ds01-muted">
              by {data.metric} ({data.mode === 'max' ? 'highest' : 'lowest'})
            </span>
          </dd>
        </>
      )}
    </dl>
  );
}

function CheckpointTable(props: { data: ICheckpoints; metric: string; project: string }): JSX.Element {
  const { data } = props;
  const [ref, width] = useWidth(Infinity);
  const columns = tableColumns(data, props.metric || null, width);
  const groups = groupByRun(data);
  const span = 1 + Number(columns.epoch) + Number(columns.step) + Number(!!columns.metric);
  // A run header says which run the checkpoints below belong to; one run at the top of models/ needs none.
  const headers = groups.length > 1 || groups.some(g => g.run);
  return (
    <div ref={ref}>
      <table className="jp-ds01-table jp-ds01-checkpoint-table">
        <caption className="jp-ds01-sr-only">Checkpoints of {props.project} by run</caption>
        <thead>
          <tr>
            <th scope="col">Checkpoint</th>
            {columns.epoch && (
              <th scope="col" className="jp-ds01-num">
                Epoch
              </th>
            )}
            {columns.step && (
              <th scope="col" className="jp-ds01-num">
                Step
              </th>
            )}
            {columns.metric && (
              <th scope="col" className="jp-ds01-num" title={columns.metric}>
                <span className="jp-ds01-ellipsis">{columns.metric}</span>
              </th>
            )}
          </tr>
        </thead>
        {groups.map(g => (
          <React.Fragment key={g.run}>
            {headers && (
              <tbody className="jp-ds01-run" data-test-id={`ds01-run-${g.run || 'top'}`}>
                <tr>
                  <th scope="colgroup" colSpan={span}>
                    {g.label}{' '}
                    <span className="jp-ds01-muted">
                      {g.count} · {formatBytes(g.bytes)}
                    </span>
                  </th>
                </tr>
              </tbody>
            )}
            {g.checkpoints.map(c => (
              <Checkpoint key={c.relpath ?? c.name} c={c} data={data} columns={columns} span={span} />
            ))}
          </React.Fragment>
        ))}
      </table>
    </div>
  );
}

/**
 * A checkpoint in two rows: its name beside its numbers, then across the full width its tags,
 * what it is (kind, size, age) and any problem, which the narrow first column would break up.
 */
function Checkpoint(props: {
  c: ICheckpoint;
  data: ICheckpoints;
  columns: ReturnType<typeof tableColumns>;
  span: number;
}): JSX.Element {
  const { c, data, columns } = props;
  const tags = checkpointTags(c, data);
  const value = columns.metric ? c.metrics?.[columns.metric] : undefined;
  return (
    <tbody
      className={`jp-ds01-checkpoint jp-ds01-checkpoint-${c.state}`}
      data-test-id={`ds01-checkpoint-${c.relpath ?? c.name}`}
    >
      <tr>
        <th scope="row" className="jp-ds01-checkpoint-name" title={c.relpath}>
          {breakable(c.name).map((part, i) => (
            <React.Fragment key={i}>
              {i > 0 && <wbr />}
              {part}
            </React.Fragment>
          ))}
        </th>
        {columns.epoch && <td className="jp-ds01-num">{formatNumber(c.epoch)}</td>}
        {columns.step && <td className="jp-ds01-num">{formatNumber(c.step)}</td>}
        {columns.metric && (
          <td className="jp-ds01-num" title={typeof value === 'number' ? String(value) : undefined}>
            {formatMetric(value)}
          </td>
        )}
      </tr>
      <tr className="jp-ds01-checkpoint-detail">
        <td colSpan={props.span}>
          {tags.map(t => (
            <span key={t.text} className={`jp-ds01-tag jp-ds01-tag-${t.kind}`} title={t.title}>
              {t.text}
            </span>
          ))}
          {columns.inline && progressText(c) && (
            <span className="jp-ds01-checkpoint-progress">{progressText(c)} · </span>
          )}
          {[kindLabel(c.kind), formatBytes(c.size), formatAge(c.mtime)].filter(Boolean).join(' · ')}
          {c.problem && c.state !== 'complete' && <div className="jp-ds01-checkpoint-problem">{c.problem}</div>}
          {c.warning && <div className="jp-ds01-checkpoint-problem">{c.warning}</div>}
        </td>
      </tr>
    </tbody>
  );
}

function Plot(props: { data: ICheckpoints; metric: string; mode: 'min' | 'max' }): JSX.Element {
  const plot = plotData(props.data, props.metric);
  if (!plot.series.length) {
    return <div className="jp-ds01-muted">No complete checkpoint or trainer log recorded {props.metric}.</div>;
  }
  return <CheckpointPlot plot={plot} mode={props.mode} />;
}

function PrunePreview(props: { plan: IPrunePlan; onConfirm: () => void; onCancel: () => void }): JSX.Element {
  const { plan } = props;
  const rows = planRows(plan);
  const doomed = rows.filter(r => r.action === 'delete');
  return (
    <div className="jp-ds01-prune-plan" role="region" aria-label="Prune preview">
      <div>
        {doomed.length
          ? `Would delete ${doomed.length} checkpoint(s), ${formatBytes(plan.bytes)}:`
          : 'Nothing would be deleted.'}
      </div>
      <ul className="jp-ds01-plan-list">
        {rows.map(r => (
          <li key={`${r.action}:${r.relpath}`} className={`jp-ds01-plan-${r.action}`}>
            <span className="jp-ds01-plan-action">{r.action === 'delete' ? 'delete' : 'keep'}</span>{' '}
            <span className="jp-ds01-plan-path">{r.relpath}</span>
            {r.reason && <div className="jp-ds01-plan-reason">{r.reason}</div>}
          </li>
        ))}
      </ul>
      <div className="jp-ds01-actions">
        {doomed.length > 0 && (
          <button
            className="jp-mod-styled jp-mod-warn jp-ds01-button"
            onClick={props.onConfirm}
            aria-label="Delete these checkpoints"
          >
            Delete them
          </button>
        )}
        <button className="jp-mod-styled jp-ds01-button" onClick={props.onCancel}>
          Close
        </button>
      </div>
    </div>
  );
}
