import * as React from 'react';

import { gitBadge } from '../models/gitBadge';
import { actionsFor, phaseOf, PHASE_LABEL, ProjectAction } from '../models/projectState';
import { ServerMode } from '../models/serverMode';
import { runtimeBadge } from '../models/runtimeWarning';
import { IAudit, IOperation, IProject, IRuntimeWarning } from '../models/types';
import { formatBytes, formatDuration, uptimeOf } from '../models/units';
import { fallbackNote, frameworkChoices, unwritableNote } from '../models/workspaceNotes';
import { CheckpointsView } from './CheckpointsView';
import { IDS01Client } from '../client';
import { Findings } from './Findings';
import { OperationLog } from './OperationLog';
import { WhereSearch } from './WhereSearch';

export interface IProjectCardProps {
  project: IProject;
  operation?: IOperation;
  audit?: IAudit | { error: string };
  atRisk: number;
  /** The reaper's max_runtime notice for this project's container, if one came. */
  runtimeWarning?: IRuntimeWarning;
  /** Framework images a deploy may fall back to (the overview's). */
  frameworks?: string[];
  mode: ServerMode;
  client: IDS01Client;
  /** The Jupyter server's root (JupyterLab's paths are relative to it). */
  serverRoot?: string;
  /** Run a command; resolves when it finished. */
  execute: (command: string, args: { project?: string; path?: string }) => unknown;
  onShowFindings: (project: string) => void;
}

const ACTION_LABEL: { [a in ProjectAction]: string } = {
  build: 'Build',
  deploy: 'Deploy',
  start: 'Start',
  stop: 'Stop',
  retire: 'Retire',
  terminal: 'Terminal',
  notebook: 'Notebook'
};

const ACTION_HELP: { [a in ProjectAction]: string } = {
  build: 'Build the image from the Dockerfile of',
  deploy: 'Deploy (build if needed, create and start) the container of',
  start: 'Start the stopped container of',
  stop: 'Stop the container of',
  retire: 'Retire (remove) the container of',
  terminal: 'Open a terminal inside the container of',
  notebook: 'Open a notebook with the container kernel of'
};

export function ProjectCard(props: IProjectCardProps): JSX.Element {
  const { project, operation, mode } = props;
  const [showCheckpoints, setShowCheckpoints] = React.useState(false);
  const [showWhere, setShowWhere] = React.useState(false);
  const now = useMinuteClock(!!project.container?.running);
  const phase = phaseOf(project, operation);
  const c = project.container;
  const actions = actionsFor(phase, mode);
  const name = project.name;
  const fallback = fallbackNote(c);
  const unwritable = unwritableNote(project);
  const onFramework = actions.includes('deploy') ? frameworkChoices(project, props.frameworks) : [];
  return (
    <li
      className={`jp-ds01-project jp-ds01-phase-${phase}`}
      data-test-id={`ds01-project-${name}`}
      aria-label={`Project ${name}`}
    >
      <div className="jp-ds01-project-header">
        <span className="jp-ds01-project-name">{name}</span>
        <span className={`jp-ds01-badge jp-ds01-badge-${phase}`} data-test-id={`ds01-state-${name}`}>
          {PHASE_LABEL[phase]}
          {phase === 'error' && c?.exit_code ? ` (${c.exit_code})` : ''}
        </span>
      </div>
      <dl className="jp-ds01-facts">
        {c && (
          <>
            <dt>GPU</dt>
            <dd>{c.gpus && c.gpus.length ? c.gpus.map(g => g.slice(0, 12)).join(', ') : 'none (CPU only)'}</dd>
          </>
        )}
        {c?.running && (
          <>
            <dt>Uptime</dt>
            <dd>{formatDuration(uptimeOf(c, now))}</dd>
          </>
        )}
        {c?.running && typeof c.idle_seconds === 'number' && (
          <>
            <dt>Idle</dt>
            <dd>{formatDuration(c.idle_seconds)}</dd>
          </>
        )}
        <dt>Workspace</dt>
        <dd>{formatBytes(project.size?.bytes as number | undefined)}</dd>
        <GitFact project={project} />
        {c?.stale_image && (
          <>
            <dt>Image</dt>
            <dd>rebuilt since deploy: retire and deploy to use it</dd>
          </>
        )}
        {fallback && (
          <>
            <dt>Image</dt>
            <dd data-test-id={`ds01-fallback-${name}`}>{fallback}</dd>
          </>
        )}
        {c?.error && (
          <>
            <dt>Error</dt>
            <dd>{c.error}</dd>
          </>
        )}
      </dl>
      {c?.running && props.runtimeWarning && (
        <div
          className="jp-ds01-runtime-warning"
          role="status"
          data-test-id={`ds01-runtime-warning-${name}`}
          title={props.runtimeWarning.message}
        >
          {runtimeBadge(props.runtimeWarning, now)}
        </div>
      )}
      {unwritable && (
        <div className="jp-ds01-runtime-warning" role="alert" data-test-id={`ds01-unwritable-${name}`}>
          {unwritable}
        </div>
      )}
      <div className="jp-ds01-actions" role="toolbar" aria-label={`Actions for ${name}`}>
        {actions.map(action => (
          <button
            key={action}
            className={`jp-mod-styled jp-ds01-button jp-ds01-action-${action}`}
            data-test-id={`ds01-${action}-${name}`}
            aria-label={`${ACTION_HELP[action]} ${name}`}
            title={`${ACTION_HELP[action]} ${name}`}
            onClick={() => props.execute(`ds01:${action}`, { project: name })}
          >
            {mode === 'container' && action === 'stop' ? 'Stop server' : ACTION_LABEL[action]}
          </button>
        ))}
        {onFramework.length > 0 && (
          <button
            className="jp-mod-styled jp-ds01-button"
            data-test-id={`ds01-deploy-on-framework-${name}`}
            title={`Deploy ${name} on a framework image (${onFramework.join(', ')}) while it has no image of its own`}
            onClick={() => props.execute('ds01:deploy-on-framework', { project: name })}
          >
            Deploy on…
          </button>
        )}
        {c && (
          <button
            className="jp-mod-styled jp-ds01-button"
            data-test-id={`ds01-audit-${name}`}
            aria-label={`Check what ${name}'s container holds outside /workspace`}
            onClick={() => props.onShowFindings(name)}
          >
            {props.atRisk ? `At risk: ${props.atRisk}` : 'Check files'}
          </button>
        )}
        <button
          className="jp-mod-styled jp-ds01-button"
          aria-expanded={showCheckpoints}
          aria-label={`Checkpoints of ${name}`}
          data-test-id={`ds01-checkpoints-${name}`}
          onClick={() => setShowCheckpoints(!showCheckpoints)}
        >
          Checkpoints
        </button>
        {mode !== 'container' && (
          <button
            className="jp-mod-styled jp-ds01-button"
            aria-expanded={showWhere}
            aria-label={`Where are my files? Find files of ${name}`}
            title="Where are my files? Search the workspace, rescued copies, the container and retired containers"
            data-test-id={`ds01-find-${name}`}
            onClick={() => setShowWhere(!showWhere)}
          >
            Find files
          </button>
        )}
      </div>
      {operation && showOperation(operation, !!c) && <OperationLog operation={operation} />}
      {c && (
        <Findings audit={props.audit} mode={mode} onRescue={() => props.execute('ds01:rescue', { project: name })} />
      )}
      {showCheckpoints && <CheckpointsView client={props.client} project={name} />}
      {showWhere && (
        <WhereSearch
          client={props.client}
          project={name}
          serverRoot={props.serverRoot ?? ''}
          onOpen={target => props.execute(target.command, { path: target.path })}
          onRescue={() => Promise.resolve(props.execute('ds01:rescue', { project: name }))}
        />
      )}
    </li>
  );
}

/** Whether the project's code is committed and pushed (the overview's git state); nothing when the server did not say. */
function GitFact(props: { project: IProject }): JSX.Element | null {
  const badge = gitBadge(props.project.git);
  if (!badge) {
    return null;
  }
  return (
    <>
      <dt>Git</dt>
      <dd>
        <span
          className={`jp-ds01-git jp-ds01-git-${badge.level}`}
          title={badge.title}
          data-test-id={`ds01-git-${props.project.name}`}
        >
          {badge.text}
        </span>
      </dd>
    </>
  );
}

/** Re-render once a minute while the container runs, so its uptime stays current (no server request). */
function useMinuteClock(active: boolean): number {
  const [now, setNow] = React.useState(Date.now());
  React.useEffect(() => {
    if (!active) {
      return;
    }
    const timer = setInterval(() => setNow(Date.now()), 60000);
    return () => clearInterval(timer);
  }, [active]);
  return active ? Math.max(now, Date.now()) : now;
}

/** A running or failed operation always shows; a finished build shows until the project is deployed. */
function showOperation(operation: IOperation, deployed: boolean): boolean {
  return operation.state === 'running' || operation.state === 'failed' || (operation.kind === 'build' && !deployed);
}
