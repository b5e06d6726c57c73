import * as React from 'react';

import { IDS01Client } from '../client';
import { diskLine, imagesLine, INITIAL_USAGE, projectRows, usageView } from '../models/housekeeping';
import { IProject } from '../models/types';
import { formatBytes } from '../models/units';
import { projectFolder } from '../models/unsaved';
import { Bar } from './Bar';
import { useListing } from './useListing';

/**
 * Storage and cleanup, loaded when opened (it measures every workspace): the
 * disk's free space, each project's workspace and checkpoints with "Clean up…",
 * the images with shared layers counted once and "Prune images…", and a finder
 * of the files over a size. The cleanups are commands with a confirm dialog;
 * when one deleted something the view loads again.
 */
export function UsageSection(props: {
  client: IDS01Client;
  projects: IProject[];
  serverRoot: string;
  execute: (command: string, args?: { project?: string; path?: string }) => unknown;
}): JSX.Element {
  const { client } = props;
  const [open, setOpen] = React.useState(false);
  const [state, dispatch] = React.useReducer(usageView, INITIAL_USAGE);
  const { generation, largerThan } = state;

  useListing(dispatch, open ? () => client.usage(largerThan ?? undefined) : null, [
    client,
    open,
    generation,
    largerThan
  ]);

  const run = (command: string, project?: string) => {
    void Promise.resolve(props.execute(command, project ? { project } : {})).then(
      done => done && dispatch({ type: 'refresh' })
    );
  };
  const pathOf = (project: string, relpath: string) => {
    const folder = projectFolder(props.projects.find(p => p.name === project)?.path ?? '', props.serverRoot);
    return folder === null ? null : folder ? `${folder}/${relpath}` : relpath;
  };

  const { data: usage } = state;
  const disk = diskLine(usage?.disk);
  return (
    <section className="jp-ds01-section jp-ds01-usage" aria-label="Storage and cleanup" data-test-id="ds01-usage">
      <h3 className="jp-ds01-heading">
        <button
          className="jp-ds01-disclosure"
          aria-expanded={open}
          data-test-id="ds01-usage-toggle"
          onClick={() => setOpen(!open)}
        >
          <span className="jp-ds01-disclosure-mark" aria-hidden="true">
            {open ? '▾' : '▸'}
          </span>{' '}
          Storage and cleanup
        </button>
        {open && (
          <button
            className="jp-mod-styled jp-ds01-button jp-ds01-usage-refresh"
            aria-label="Measure the storage again"
            disabled={state.loading}
            onClick={() => dispatch({ type: 'refresh' })}
          >
            Refresh
          </button>
        )}
      </h3>
      {open && state.error && (
        <div className="jp-ds01-error" role="alert">
          {state.error}
        </div>
      )}
      {open && !usage && !state.error && <div className="jp-ds01-muted">Measuring the workspaces…</div>}
      {open && usage && (
        <>
          {disk && <Bar label="Disk" value={disk.used} max={disk.total} text={disk.text} testId="ds01-usage-disk" />}
          <div className="jp-ds01-usage-total">
            Workspaces: {formatBytes(usage.total_bytes)}
            {usage.quota_bytes ? ` of ${formatBytes(usage.quota_bytes)} quota` : ' (no quota)'}
            {usage.over_quota && <span className="jp-ds01-warn"> · over quota</span>}
          </div>
          <ul className="jp-ds01-usage-projects" aria-label="Workspaces">
            {projectRows(usage).map(row => (
              <li key={row.project} data-test-id={`ds01-usage-${row.project}`}>
                <span className="jp-ds01-usage-name">{row.project}</span>{' '}
                <span className="jp-ds01-muted">
                  {formatBytes(row.bytes)}
                  {row.checkpointBytes > 0 && ` · checkpoints ${formatBytes(row.checkpointBytes)}`}
                </span>
                <button
                  className="jp-mod-styled jp-ds01-button"
                  data-test-id={`ds01-clean-${row.project}`}
                  aria-label={`Clean up ${row.project}: preview what would be deleted`}
                  onClick={() => run('ds01:clean', row.project)}
                >
                  Clean up…
                </button>
              </li>
            ))}
          </ul>
          <div className="jp-ds01-usage-images" data-test-id="ds01-usage-images">
            <span>Images: {imagesLine(usage.images)}</span>
            <button
              className="jp-mod-styled jp-ds01-button"
              data-test-id="ds01-prune-images"
              aria-label="Prune images: preview which of your images would be removed"
              onClick={() => run('ds01:prune-images')}
            >
              Prune images…
            </button>
          </div>
          <form
            className="jp-ds01-usage-find"
            aria-label="Find large files"
            onSubmit={e => {
              e.preventDefault();
              dispatch({ type: 'find' });
            }}
          >
            <label className="jp-ds01-field">
              Files over
              <input
                type="text"
                value={state.threshold}
                aria-label="Size of the files to list, e.g. 500 MB or 1 GB"
                onChange={e => dispatch({ type: 'threshold', text: e.target.value })}
              />
            </label>
            <button type="submit" className="jp-mod-styled jp-ds01-button" disabled={state.loading}>
              Find
            </button>
          </form>
          {largerThan !== null && usage.large_files && (
            <div role="status" data-test-id="ds01-large-files">
              {usage.large_files.length === 0 ? (
                <div className="jp-ds01-muted">No file of {formatBytes(largerThan)} or more.</div>
              ) : (
                <ul className="jp-ds01-plan-list" aria-label={`Files of ${formatBytes(largerThan)} or more`}>
                  {usage.large_files.map(([project, relpath, bytes]) => {
                    const path = pathOf(project, relpath);
                    const label = `${project}/${relpath}`;
                    return (
                      <li key={label}>
                        {path !== null ? (
                          <button
                            className="jp-ds01-link"
                            title={`Show ${path} in the file browser`}
                            onClick={() => props.execute('filebrowser:go-to-path', { path })}
                          >
                            {label}
                          </button>
                        ) : (
                          <span className="jp-ds01-plan-path">{label}</span>
                        )}{' '}
                        <span className="jp-ds01-muted">{formatBytes(bytes)}</span>
                      </li>
                    );
                  })}
                </ul>
              )}
            </div>
          )}
        </>
      )}
    </section>
  );
}
