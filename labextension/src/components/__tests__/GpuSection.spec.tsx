import * as React from 'react';
import { act } from 'react';
import { createRoot } from 'react-dom/client';

import { GpuSection } from '../GpuSection';
import { ILimits } from '../../models/types';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

function render(element: JSX.Element): HTMLElement {
  const host = document.createElement('div');
  const root = createRoot(host);
  act(() => root.render(element));
  return host;
}

const known: ILimits = {
  user: 'ada',
  limits: { max_containers_per_user: 3, max_mig_instances: 2 },
  containers: 1,
  running: 1,
  gpu_slots: 1,
  gpus: []
};

describe('GpuSection', () => {
  it('draws the limit bars on the host', () => {
    const host = render(<GpuSection gpus={{ gpus: [] }} limits={known} history={{}} user="ada" />);
    expect(host.textContent).toContain('Your limits');
    expect(host.querySelector('[role="meter"][aria-label="Containers"]')?.getAttribute('aria-valuetext')).toBe('1 / 3');
    expect(host.querySelector('[data-test-id="ds01-limits-unknown"]')).toBeNull();
  });

  it("inside a hub server: the container's own GPU without NVML details, and limits it cannot know", () => {
    const inside: ILimits = {
      ...known,
      limits: null,
      containers: null as unknown as number,
      gpu_slots: null as unknown as number,
      engine: { available: false, reason: "This server runs inside its project's container." }
    };
    const gpus = {
      gpus: [
        {
          uuid: 'GPU-1',
          index: '0',
          name: 'GPU',
          memory_total: 0,
          memory_used: 0,
          utilization: null,
          holder: { user: 'alice', project: 'demo', container: 'demo._.alice' }
        }
      ],
      notice: 'GPU details need NVML inside the container.'
    };
    const host = render(<GpuSection gpus={gpus} limits={inside} history={{}} user="alice" />);
    expect(host.textContent).toContain('your project demo');
    expect(host.querySelector('[role="meter"][aria-label="Memory"]')?.getAttribute('aria-valuetext')).toBe('n/a');
    expect(host.querySelector('[data-test-id="ds01-limits-unknown"]')?.textContent).toContain(
      'Your limits are not known here.'
    );
    expect(host.textContent).not.toContain('Containers');
  });
});
