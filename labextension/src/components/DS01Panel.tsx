import { PageConfig } from '@jupyterlab/coreutils';
import * as React from 'react';

import { operationOf } from '../models/reducer';
import { IDS01Model } from '../tokens';
import { GpuSection } from './GpuSection';
import { ProjectCard } from './ProjectCard';
import { StatusBanner } from './StatusBanner';
import { UsageSection } from './UsageSection';

export interface IDS01PanelProps {
  model: IDS01Model;
  /** Run a command; resolves with what it returned when it finished. */
  execute: (command: string, args?: { project?: string; path?: string }) => unknown;
}

/** The sidebar's content: a plain status line when something is missing, else projects and GPUs. */
export function DS01Panel(props: IDS01PanelProps): JSX.Element {
  const { model, execute } = props;
  const { state } = model;
  const { status } = state.connection;
  const serverRoot = PageConfig.getOption('serverRoot');
  return (
    <div className="jp-ds01-content">
      <div className="jp-ds01-toolbar" role="toolbar" aria-label="DS01">
        <h2 className="jp-ds01-title">DS01 projects</h2>
        {model.mode !== 'container' && status !== 'missing' && (
          <button
            className="jp-mod-styled jp-mod-accept jp-ds01-button"
            data-test-id="ds01-new-project"
            aria-label="Create a new project"
            onClick={() => execute('ds01:new-project')}
          >
            New project
          </button>
        )}
        <button className="jp-mod-styled jp-ds01-button" aria-label="Refresh" onClick={() => execute('ds01:refresh')}>
          Refresh
        </button>
      </div>
      <StatusBanner
        status={state.connection.status}
        detail={state.connection.detail}
        ready={state.ready}
        engine={state.engine}
        mode={model.mode}
        project={state.projects[0]?.name}
      />
      {state.ready && (
        <>
          {state.projects.length === 0 ? (
            <p className="jp-ds01-muted">
              No projects yet. Create one to get a workspace, a Dockerfile and a GPU container.
            </p>
          ) : (
            <ul className="jp-ds01-projects" aria-label="Projects">
              {state.projects.map(p => (
                <ProjectCard
                  key={p.name}
                  project={p}
                  operation={operationOf(state, p.name)}
                  audit={state.audits[p.name]}
                  atRisk={state.atRisk[p.name] ?? 0}
                  runtimeWarning={state.runtimeWarnings[p.name]}
                  frameworks={state.frameworks}
                  mode={model.mode}
                  client={model.client}
                  serverRoot={serverRoot}
                  execute={execute}
                  onShowFindings={name => void model.loadAudit(name)}
                />
              ))}
            </ul>
          )}
          {model.mode !== 'container' && (
            <UsageSection client={model.client} projects={state.projects} serverRoot={serverRoot} execute={execute} />
          )}
          <GpuSection gpus={state.gpus} limits={state.limits} history={state.gpuHistory} user={state.user} />
        </>
      )}
      {!state.ready && status !== 'missing' && (
        <p className="jp-ds01-muted">Connecting to the ds01 server extension…</p>
      )}
    </div>
  );
}
