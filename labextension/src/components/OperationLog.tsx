import * as React from 'react';

import { IOperation } from '../models/types';

/** Progress of a build or deploy: its state and the last lines of its log, kept scrolled to the end. */
export function OperationLog(props: { operation: IOperation }): JSX.Element {
  const { operation } = props;
  const ref = React.useRef<HTMLPreElement>(null);
  const lines = operation.lines ?? [];
  React.useEffect(() => {
    if (ref.current) {
      ref.current.scrollTop = ref.current.scrollHeight;
    }
  }, [lines.length]);
  const title =
    operation.state === 'running'
      ? `${operation.kind === 'build' ? 'Building image' : 'Deploying'}…`
      : operation.state === 'failed'
        ? `${operation.kind} failed: ${operation.error?.message ?? ''} ${operation.error?.hint ?? ''}`
        : `${operation.kind} done`;
  return (
    <div
      className={`jp-ds01-operation jp-ds01-operation-${operation.state}`}
      data-test-id={`ds01-operation-${operation.project}`}
    >
      <div className="jp-ds01-operation-title" role="status" aria-live="polite">
        {operation.state === 'running' && <span className="jp-ds01-spinner" aria-hidden="true" />}
        {title}
      </div>
      {lines.length > 0 && (
        <pre
          ref={ref}
          className="jp-ds01-log"
          tabIndex={0}
          aria-label={`${operation.kind} log of ${operation.project}`}
        >
          {lines.slice(-200).join('\n')}
        </pre>
      )}
    </div>
  );
}
