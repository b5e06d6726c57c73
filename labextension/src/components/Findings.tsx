import * as React from 'react';

import { groupFindings, groupHeading, processSummary } from '../models/retirePlan';
import { findingsTitle, ServerMode } from '../models/serverMode';
import { IAudit } from '../models/types';
import { formatBytes } from '../models/units';

/** The persistence guard's findings for one project, grouped by kind with sizes. */
export function Findings(props: {
  audit: IAudit | { error: string } | undefined;
  /** Copy the work files into .rescued/ now; absent: only the rescue on stop is mentioned. */
  onRescue?: () => void;
  /** "container" inside a hub server, whose hub rescues when the server stops. */
  mode?: ServerMode;
}): JSX.Element | null {
  const { audit } = props;
  if (!audit) {
    return null;
  }
  if ('error' in audit) {
    return <div className="jp-ds01-muted">Persistence check unavailable: {audit.error}</div>;
  }
  const groups = groupFindings(audit.findings);
  const now = Date.now();
  if (!groups.length) {
    return (
      <div className="jp-ds01-findings jp-ds01-muted" data-test-id="ds01-findings">
        Nothing outside /workspace would be lost.
      </div>
    );
  }
  return (
    <div className="jp-ds01-findings" data-test-id="ds01-findings">
      <div className="jp-ds01-findings-title">{findingsTitle(props.mode ?? 'host')}</div>
      {groups.map(group => (
        <details
          key={group.kind}
          open={group.kind === 'work' || group.kind === 'process'}
          className={`jp-ds01-findings-${group.kind}`}
          data-test-id={`ds01-findings-${group.kind}`}
        >
          <summary>{groupHeading(group)}</summary>
          <ul>
            {group.items.slice(0, 50).map(f => (
              <li key={f.path} title={f.detail || f.source}>
                <code>{f.path}</code>{' '}
                {group.kind === 'process' || group.kind === 'kernel' ? (
                  <span className="jp-ds01-muted">{processSummary(f, now)}</span>
                ) : (
                  <span className="jp-ds01-muted">{formatBytes(f.size)}</span>
                )}
                {f.notebook && group.kind !== 'process' && group.kind !== 'kernel' && (
                  <span className="jp-ds01-muted">
                    {' '}
                    ({f.notebook}
                    {f.cell ? `, cell ${f.cell}` : ''})
                  </span>
                )}
              </li>
            ))}
          </ul>
        </details>
      ))}
      {audit.at_risk > 0 && !props.onRescue && (
        <div className="jp-ds01-muted">Rescued into .rescued/ when this server stops.</div>
      )}
      {audit.at_risk > 0 && props.onRescue && (
        <button
          className="jp-mod-styled jp-ds01-button"
          onClick={props.onRescue}
          aria-label={`Rescue files of ${audit.project} now`}
        >
          Rescue now
        </button>
      )}
    </div>
  );
}
