import * as React from 'react';

import { IGpuHistory, samplesOf } from '../models/gpuHistory';
import { limitsNote } from '../models/serverMode';
import { IGpus, ILimits } from '../models/types';
import { formatBytes } from '../models/units';
import { Bar } from './Bar';
import { Sparkline } from './Sparkline';

/** GPU cards (utilisation, memory, history, holder) and the user's limits against their use. */
export function GpuSection(props: {
  gpus: IGpus | null;
  limits: ILimits | null;
  history: IGpuHistory;
  user: string;
}): JSX.Element {
  const { gpus, limits, history } = props;
  const free = gpus ? gpus.gpus.filter(g => !g.holder).length : 0;
  return (
    <section className="jp-ds01-section" aria-label="GPUs and limits" data-test-id="ds01-gpus">
      <h3 className="jp-ds01-heading">
        GPUs{' '}
        {gpus && gpus.gpus.length > 0 && (
          <span className="jp-ds01-muted">
            ({free} free of {gpus.gpus.length})
          </span>
        )}
      </h3>
      {!gpus && <div className="jp-ds01-muted">Loading GPUs…</div>}
      {gpus && gpus.gpus.length === 0 && (
        <div className="jp-ds01-muted">{gpus.notice || 'No GPUs on this server.'}</div>
      )}
      <ul className="jp-ds01-gpus">
        {gpus?.gpus.map(g => {
          const samples = samplesOf(history, g.uuid);
          const holder = g.holder
            ? g.holder.user === props.user
              ? `your project ${g.holder.project}`
              : `${g.holder.user ?? 'someone'} (${g.holder.project ?? g.holder.container ?? ''})`
            : 'free';
          return (
            <li
              key={g.uuid}
              className={`jp-ds01-gpu ${g.holder ? '' : 'jp-ds01-gpu-free'}`}
              aria-label={`GPU ${g.index} ${g.name}`}
            >
              <div className="jp-ds01-gpu-title">
                GPU {g.index} · {g.name}
                <span className="jp-ds01-muted"> · {holder}</span>
              </div>
              <Bar
                label="Utilisation"
                value={g.utilization ?? 0}
                max={100}
                text={g.utilization === null ? 'n/a' : `${g.utilization}%`}
              />
              <Bar
                label="Memory"
                value={g.memory_used}
                max={g.memory_total}
                text={g.memory_total ? `${formatBytes(g.memory_used)} / ${formatBytes(g.memory_total)}` : 'n/a'}
              />
              {samples.some(s => s.utilization !== null) && (
                <Sparkline
                  values={samples.map(s => (s.utilization === null ? null : s.utilization / 100))}
                  label={`Recent utilisation of GPU ${g.index}`}
                />
              )}
            </li>
          );
        })}
      </ul>
      {limits && <LimitBars limits={limits} />}
    </section>
  );
}

function LimitBars(props: { limits: ILimits }): JSX.Element {
  const { limits } = props;
  const note = limitsNote(limits);
  if (note !== null || !limits.limits) {
    return (
      <div className="jp-ds01-limits jp-ds01-muted" aria-label="Your limits" data-test-id="ds01-limits-unknown">
        {note}
      </div>
    );
  }
  const l = limits.limits;
  const maxContainers = typeof l.max_containers_per_user === 'number' ? l.max_containers_per_user : null;
  const maxGpu = typeof l.max_mig_instances === 'number' ? l.max_mig_instances : null;
  const disk = limits.disk;
  return (
    <div className="jp-ds01-limits" aria-label="Your limits and use">
      <h3 className="jp-ds01-heading">Your limits</h3>
      {maxContainers !== null ? (
        <Bar
          label="Containers"
          value={limits.containers}
          max={maxContainers}
          text={`${limits.containers} / ${maxContainers}`}
        />
      ) : (
        <div>Containers: {limits.containers} (no limit)</div>
      )}
      {maxGpu !== null ? (
        <Bar label="GPU slots" value={limits.gpu_slots} max={maxGpu} text={`${limits.gpu_slots} / ${maxGpu}`} />
      ) : (
        <div>GPU slots: {limits.gpu_slots} (no limit)</div>
      )}
      {disk && disk.quota_bytes ? (
        <Bar
          label="Workspace"
          value={disk.total_bytes}
          max={disk.quota_bytes}
          text={`${formatBytes(disk.total_bytes)} / ${formatBytes(disk.quota_bytes)}`}
        />
      ) : disk ? (
        <div>Workspace: {formatBytes(disk.total_bytes)} (no quota)</div>
      ) : null}
    </div>
  );
}
