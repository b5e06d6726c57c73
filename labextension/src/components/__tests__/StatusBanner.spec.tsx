import * as React from 'react';
import { act } from 'react';
import { createRoot } from 'react-dom/client';

import { StatusBanner } from '../StatusBanner';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

function render(element: JSX.Element): HTMLElement {
  const host = document.createElement('div');
  const root = createRoot(host);
  act(() => root.render(element));
  return host;
}

describe('StatusBanner', () => {
  const up = { available: true };

  it('says so plainly when the server extension is missing', () => {
    const host = render(<StatusBanner status="missing" detail="" ready={false} engine={up} />);
    expect(host.querySelector('[role="alert"]')?.textContent).toContain('ds01 server extension is not running');
  });

  it('says Docker is down, with the reason, and that files are safe', () => {
    const engine = { available: false, reason: 'Cannot connect to the Docker daemon' };
    const text = render(<StatusBanner status="open" detail="" ready={true} engine={engine} />).textContent;
    expect(text).toContain('Docker is not available');
    expect(text).toContain('Cannot connect to the Docker daemon');
    expect(text).toContain('files are safe');
  });

  it('inside a hub server, names the project and the rescue on stop instead of "Docker is not available"', () => {
    const engine = { available: false, reason: "This server runs inside its project's container." };
    const host = render(
      <StatusBanner status="open" detail="" ready={true} engine={engine} mode="container" project="demo" />
    );
    expect(host.textContent).toContain('inside the container of project demo');
    expect(host.textContent).toContain('rescued');
    expect(host.textContent).not.toContain('Docker is not available');
    expect(host.querySelector('[role="alert"]')).toBeNull();
  });

  it('shows nothing when all is well, and a reconnect notice when the stream dropped', () => {
    expect(render(<StatusBanner status="open" detail="" ready={true} engine={up} />).textContent).toBe('');
    expect(render(<StatusBanner status="retrying" detail="HTTP 502" ready={true} engine={up} />).textContent).toContain(
      'reconnecting'
    );
  });
});
