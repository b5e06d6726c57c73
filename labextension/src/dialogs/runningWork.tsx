/**
 * Parts the retire and stop dialogs share: the running processes (executing
 * cells first, with runtime and busy state) and the project's open documents
 * with unsaved changes, with "Save all".
 */
import * as React from 'react';

import { processSummary } from '../models/retirePlan';
import { IFinding } from '../models/types';

/** The project's open documents with unsaved changes, and a way to save them. */
export interface IUnsavedDocuments {
  /** Paths (relative to the server root) of the project's dirty open documents. */
  list(): string[];
  /** Save them all; resolves when every save finished. */
  saveAll(): Promise<void>;
}

export function ProcessList(props: { processes: IFinding[] }): JSX.Element {
  const now = Date.now();
  return (
    <ul className="jp-ds01-retire-list jp-ds01-processes" data-test-id="ds01-processes">
      {props.processes.slice(0, 30).map(f => (
        <li key={`${f.pid ?? f.path}`} className={f.busy || f.cell_started ? 'jp-ds01-process-busy' : ''}>
          <code>{f.path}</code> <span className="jp-ds01-muted">{processSummary(f, now)}</span>
        </li>
      ))}
      {props.processes.length > 30 && <li>… and {props.processes.length - 30} more</li>}
    </ul>
  );
}

/**
 * The unsaved documents with "Save all"; `onSaving` receives the save's
 * promise so the action waits for it before its request.
 */
export function UnsavedList(props: {
  documents: IUnsavedDocuments;
  onSaving: (saving: Promise<void>) => void;
}): JSX.Element | null {
  const [paths, setPaths] = React.useState(() => props.documents.list());
  const [state, setState] = React.useState<'idle' | 'saving' | 'error'>('idle');
  const [error, setError] = React.useState('');
  if (!paths.length && state !== 'error') {
    return null;
  }
  const saveAll = () => {
    setState('saving');
    const saving = props.documents.saveAll().then(
      () => {
        setState('idle');
        setPaths(props.documents.list());
      },
      reason => {
        setState('error');
        setError(String((reason as Error)?.message ?? reason));
        setPaths(props.documents.list());
      }
    );
    props.onSaving(saving);
  };
  return (
    <section aria-label="Unsaved documents" data-test-id="ds01-unsaved">
      <h4>Open documents of this project with unsaved changes: {paths.length}</h4>
      <ul className="jp-ds01-retire-list">
        {paths.map(p => (
          <li key={p}>
            <code>{p}</code>
          </li>
        ))}
      </ul>
      <button
        className="jp-mod-styled jp-mod-accept jp-ds01-button"
        data-test-id="ds01-save-all"
        disabled={state === 'saving' || !paths.length}
        onClick={saveAll}
      >
        {state === 'saving' ? 'Saving…' : 'Save all'}
      </button>
      {state === 'error' && <p className="jp-ds01-error">Not all were saved: {error}</p>}
    </section>
  );
}
