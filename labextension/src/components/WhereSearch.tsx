import * as React from 'react';

import { IDS01Client } from '../client';
import { describeError } from '../models/errors';
import { formatAge, formatBytes } from '../models/units';
import {
  groupMatches,
  INITIAL_WHERE,
  IOpenTarget,
  matchLabel,
  openTarget,
  resultSummary,
  whereView
} from '../models/whereView';

/**
 * "Where are my files?" for one project: a name or glob searched in the workspace,
 * past rescues, the container (at risk) and retired containers' records; matches
 * grouped by where, each with how to get it back. A workspace or rescued file
 * opens in JupyterLab; a file only in the container offers "Rescue now".
 */
export function WhereSearch(props: {
  client: IDS01Client;
  project: string;
  /** The Jupyter server's root, which JupyterLab's paths are relative to. */
  serverRoot: string;
  onOpen: (target: IOpenTarget) => void;
  /** Rescue the container's files now; resolves when done (the search then runs again). */
  onRescue: () => Promise<unknown>;
}): JSX.Element {
  const { client, project } = props;
  const [state, dispatch] = React.useReducer(whereView, INITIAL_WHERE);
  const latest = React.useRef(0); // an older search's answer must not overwrite a newer one

  const search = (pattern: string) => {
    const ticket = ++latest.current;
    dispatch({ type: 'searching' });
    client
      .where(project, pattern)
      .then(result => ticket === latest.current && dispatch({ type: 'found', result }))
      .catch(e => ticket === latest.current && dispatch({ type: 'failed', error: describeError(e) }));
  };
  const rescue = () => {
    const pattern = state.result?.pattern ?? state.pattern;
    void props.onRescue().then(() => search(pattern));
  };

  const { result } = state;
  return (
    <div className="jp-ds01-where" data-test-id={`ds01-where-${project}`}>
      <form
        className="jp-ds01-where-form"
        role="search"
        aria-label={`Find files of ${project}`}
        onSubmit={e => {
          e.preventDefault();
          search(state.pattern);
        }}
      >
        <input
          type="search"
          className="jp-ds01-where-input"
          value={state.pattern}
          placeholder="results.csv, *.pt, /tmp/*"
          aria-label={`File name or glob to find in ${project}`}
          title="A name or glob: matched against file names, or against the path when it has a /"
          onChange={e => dispatch({ type: 'pattern', pattern: e.target.value })}
        />
        <button type="submit" className="jp-mod-styled jp-ds01-button" disabled={state.searching}>
          {state.searching ? 'Finding…' : 'Find'}
        </button>
      </form>
      {state.error && (
        <div className="jp-ds01-error" role="alert">
          {state.error}
        </div>
      )}
      {result && (
        <div role="status" aria-live="polite">
          <div className="jp-ds01-muted jp-ds01-where-summary">{resultSummary(result)}</div>
          {result.notes.map(note => (
            <div key={note} className="jp-ds01-muted">
              {note}
            </div>
          ))}
          {groupMatches(result.matches).map(group => (
            <section
              key={group.where}
              className={`jp-ds01-where-group jp-ds01-where-${group.level}`}
              aria-label={group.label}
              data-test-id={`ds01-where-group-${group.where}`}
            >
              <h4 className="jp-ds01-where-heading">
                {group.label} <span className="jp-ds01-muted">{group.matches.length}</span>
                {group.where === 'container' && (
                  <button
                    className="jp-mod-styled jp-mod-warn jp-ds01-button jp-ds01-where-rescue"
                    aria-label={`Rescue the files of ${project}'s container now`}
                    onClick={rescue}
                  >
                    Rescue now
                  </button>
                )}
              </h4>
              <ul className="jp-ds01-where-list">
                {group.matches.map(m => {
                  const target = openTarget(m, props.serverRoot);
                  const label = matchLabel(m);
                  const facts = [
                    typeof m.size === 'number' ? formatBytes(m.size) : '',
                    typeof m.mtime === 'number' ? formatAge(m.mtime) : ''
                  ].filter(Boolean);
                  return (
                    <li key={`${m.where}:${m.stamp ?? m.retired_at ?? ''}:${m.path}`}>
                      {target ? (
                        <button
                          className="jp-ds01-link"
                          title={
                            target.command === 'docmanager:open'
                              ? `Open ${target.path}`
                              : `Show ${target.path} in the file browser`
                          }
                          onClick={() => props.onOpen(target)}
                        >
                          {label}
                        </button>
                      ) : (
                        <span className="jp-ds01-where-path">{label}</span>
                      )}
                      {facts.length > 0 && <span className="jp-ds01-muted"> · {facts.join(' · ')}</span>}
                      <div className="jp-ds01-where-how">{m.how}</div>
                    </li>
                  );
                })}
              </ul>
            </section>
          ))}
        </div>
      )}
    </div>
  );
}
