import * as React from 'react';
import { act } from 'react';
import { createRoot, Root } from 'react-dom/client';

import { Bar } from '../Bar';
import { Findings } from '../Findings';
import { OperationLog } from '../OperationLog';
import { IAudit } from '../../models/types';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

let host: HTMLDivElement;
let root: Root;

beforeEach(() => {
  host = document.createElement('div');
  document.body.appendChild(host);
  root = createRoot(host);
});

afterEach(() => {
  act(() => root.unmount());
  host.remove();
});

const audit: IAudit = {
  project: 'alpha',
  container: 'alpha._.ada',
  state: 'running',
  at_risk: 1,
  summary: {},
  findings: [{ path: '/tmp/result.csv', kind: 'work', size: 8, source: 'writable-layer', notebook: 'a.ipynb', cell: 2 }]
};

describe('Findings', () => {
  it('lists findings by kind and offers a rescue that calls back', () => {
    const onRescue = jest.fn();
    act(() => root.render(<Findings audit={audit} onRescue={onRescue} />));
    expect(host.textContent).toContain('Work files: 1 file, 8 B');
    expect(host.textContent).toContain('/tmp/result.csv');
    expect(host.textContent).toContain('a.ipynb, cell 2');
    const button = host.querySelector('button[aria-label="Rescue files of alpha now"]') as HTMLButtonElement;
    act(() => button.click());
    expect(onRescue).toHaveBeenCalledTimes(1);
  });

  it('says plainly when nothing would be lost, and shows errors as text', () => {
    act(() => root.render(<Findings audit={{ ...audit, at_risk: 0, findings: [] }} onRescue={() => undefined} />));
    expect(host.textContent).toContain('Nothing outside /workspace would be lost');
    expect(host.querySelector('button')).toBeNull();
    act(() => root.render(<Findings audit={{ error: 'Docker is not available' }} onRescue={() => undefined} />));
    expect(host.textContent).toContain('Docker is not available');
  });
});

describe('Findings with running work', () => {
  it('lists processes first, open, with runtime and busy state; idle kernels quietly, closed', () => {
    const started = Date.now() / 1000 - 7260;
    const running: IAudit = {
      ...audit,
      at_risk: 2,
      findings: [
        ...audit.findings,
        {
          path: 'kernel of notebooks/a.ipynb (pid 60)',
          kind: 'kernel',
          size: 0,
          source: 'process',
          notebook: 'notebooks/a.ipynb',
          started,
          busy: false,
          processes: 1
        },
        {
          path: 'python3 /workspace/train.py (pid 23)',
          kind: 'process',
          size: 0,
          source: 'process',
          started,
          busy: true,
          cpu_percent: 97,
          processes: 3
        }
      ]
    };
    act(() => root.render(<Findings audit={running} onRescue={() => undefined} />));
    const groups = [...host.querySelectorAll('details')];
    expect(groups.map(g => g.getAttribute('data-test-id'))).toEqual([
      'ds01-findings-process',
      'ds01-findings-work',
      'ds01-findings-kernel'
    ]);
    expect(groups[0].open).toBe(true);
    expect(groups[0].textContent).toContain('Running processes: 1 (3 processes with children)');
    expect(groups[0].textContent).toContain('running for 2h 1m, busy (97% CPU), with 2 child processes');
    expect(groups[2].open).toBe(false);
    expect(groups[2].className).toBe('jp-ds01-findings-kernel');
    expect(groups[2].textContent).toContain('idle kernel of notebooks/a.ipynb, up 2h 1m');
  });
});

describe('Findings inside a hub server', () => {
  it('says the hub rescues on stop, and offers a rescue now', () => {
    const onRescue = jest.fn();
    act(() => root.render(<Findings audit={audit} mode="container" onRescue={onRescue} />));
    expect(host.textContent).toContain('/tmp/result.csv');
    expect(host.textContent).toContain('copied into .rescued/ when this server stops');
    expect(host.textContent).not.toContain('lost on retire');
    const button = host.querySelector('button[aria-label="Rescue files of alpha now"]') as HTMLButtonElement;
    act(() => button.click());
    expect(onRescue).toHaveBeenCalledTimes(1);
  });

  it('without a rescue callback, says the hub rescues on stop', () => {
    act(() => root.render(<Findings audit={audit} mode="container" />));
    expect(host.querySelector('button')).toBeNull();
    expect(host.textContent).toContain('Rescued into .rescued/ when this server stops');
  });
});

describe('Bar and OperationLog', () => {
  it('exposes values to screen readers', () => {
    act(() => root.render(<Bar label="Memory" value={40} max={80} text="40 GB / 80 GB" />));
    const meter = host.querySelector('[role="meter"]') as HTMLElement;
    expect(meter.getAttribute('aria-label')).toBe('Memory');
    expect(meter.getAttribute('aria-valuenow')).toBe('40');
    expect((meter.firstChild as HTMLElement).style.width).toBe('50.0%');
  });

  it('shows a failed operation with the server message and hint', () => {
    const op = {
      id: 'o',
      kind: 'deploy',
      project: 'alpha',
      state: 'failed',
      lines: ['Allocating GPU'],
      error: { error: 'LimitExceeded', message: 'You hold 1 of 1 GPU slots.', hint: 'Stop another container.' }
    };
    act(() => root.render(<OperationLog operation={op} />));
    expect(host.querySelector('[role="status"]')?.textContent).toContain(
      'You hold 1 of 1 GPU slots. Stop another container.'
    );
    expect(host.querySelector('pre')?.textContent).toBe('Allocating GPU');
  });
});
