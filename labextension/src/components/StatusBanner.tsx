import * as React from 'react';

import { IEngine } from '../models/types';

export interface IStatusBannerProps {
  /** The event stream's status (see EventStream). */
  status: string;
  detail: string;
  ready: boolean;
  engine: IEngine;
  /** "container" inside a JupyterHub server's own container, else "host". */
  mode?: string;
  project?: string;
}

/** Says plainly what is missing (the server extension, Docker, the connection) instead of breaking. */
export function StatusBanner(props: IStatusBannerProps): JSX.Element | null {
  if (props.status === 'missing') {
    return (
      <div className="jp-ds01-banner jp-ds01-banner-error" role="alert" data-test-id="ds01-banner">
        The ds01 server extension is not running on this Jupyter server, so projects cannot be shown. Ask your
        administrator to install ds01-jupyter and enable it (jupyter server extension enable ds01_jupyter), then restart
        JupyterLab.
      </div>
    );
  }
  if (props.mode === 'container') {
    return (
      <div className="jp-ds01-banner" role="status" data-test-id="ds01-banner">
        This server runs inside the container of project {props.project ?? ''}, started by JupyterHub. Files outside
        /workspace are rescued into the project's .rescued/ folder when the server stops.
      </div>
    );
  }
  if (props.ready && !props.engine.available) {
    return (
      <div className="jp-ds01-banner jp-ds01-banner-error" role="alert" data-test-id="ds01-banner">
        Docker is not available, so containers cannot be listed or started. Your projects and files are safe.
        {props.engine.reason ? ` (${props.engine.reason})` : ''}
      </div>
    );
  }
  if (props.status === 'retrying') {
    return (
      <div className="jp-ds01-banner" role="status" data-test-id="ds01-banner">
        Lost contact with the server; reconnecting… {props.detail}
      </div>
    );
  }
  return null;
}
