import * as React from 'react';
import { act } from 'react';
import { createRoot } from 'react-dom/client';

import { DS01Client } from '../../client';
import { LISTING } from '../../models/__tests__/fixtures/checkpoints';
import { CheckpointsView } from '../CheckpointsView';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

function fakeClient() {
  const calls: { listed: unknown[]; pruned: unknown[] } = { listed: [], pruned: [] };
  const client = {
    checkpoints: async (_project: string, options: unknown) => {
      calls.listed.push(options);
      return LISTING;
    },
    prune: async (_project: string, policy: unknown, confirm = false) => {
      calls.pruned.push({ policy, confirm });
      return {
        project: 'alpha',
        would_delete: [{ ...LISTING.checkpoints[0], reason: 'older than the newest 1 in models/' }],
        kept: [{ relpath: 'best-model.pt', run: '', reason: 'role file (best): never deleted by a rule' }],
        bytes: 1000
      };
    }
  };
  return { client: client as unknown as DS01Client, calls };
}

async function render(element: JSX.Element): Promise<HTMLElement> {
  const host = document.createElement('div');
  document.body.appendChild(host);
  const root = createRoot(host);
  await act(async () => root.render(element));
  return host;
}

const texts = (host: HTMLElement, selector: string) =>
  Array.from(host.querySelectorAll(selector)).map(e => e.textContent?.trim());

describe('CheckpointsView', () => {
  it('lists checkpoints by run with epoch, step, the metric, roles and states', async () => {
    const { client, calls } = fakeClient();
    const host = await render(<CheckpointsView client={client} project="alpha" />);
    expect(calls.listed).toEqual([{}]);
    expect(texts(host, 'thead th')).toEqual(['Checkpoint', 'Epoch', 'Step', 'eval_loss']);
    expect(texts(host, '.jp-ds01-run th').map(t => t?.split(' ')[0])).toEqual(['models/', 'bert/exp1', 'bert/exp2']);
    const row = host.querySelector('[data-test-id="ds01-checkpoint-bert/exp1/checkpoint-1000"]')!;
    expect(texts(row as HTMLElement, 'td.jp-ds01-num')).toEqual(['2', '1000', '0.41']);
    expect(texts(row as HTMLElement, '.jp-ds01-tag')).toEqual(['resume', 'best']);
    expect(row.textContent).toContain('Hugging Face');
    const incomplete = host.querySelector('[data-test-id="ds01-checkpoint-bert/exp1/checkpoint-1500"]')!;
    expect(incomplete.className).toBe('jp-ds01-checkpoint jp-ds01-checkpoint-incomplete');
    expect(incomplete.textContent).toContain('trainer_state.json is missing');
    expect(host.querySelector('[data-test-id="ds01-checkpoint-bert/exp1/tmp-checkpoint-2000"]')!.textContent).toContain(
      'in progress'
    );
    expect(host.querySelector('[data-test-id="ds01-checkpoint-best-model.pt"]')!.textContent).toContain('role: best');
    expect(host.querySelector('[data-test-id="ds01-checkpoint-summary"]')!.textContent).toContain(
      'Resumebert/exp1/checkpoint-1000'
    );
  });

  it('plots one line per run with axes, and says a point’s value when it has focus', async () => {
    const { client } = fakeClient();
    const host = await render(<CheckpointsView client={client} project="alpha" />);
    const plot = host.querySelector('[data-test-id="ds01-checkpoint-plot"]')!;
    expect(plot.querySelectorAll('.jp-ds01-plot-series')).toHaveLength(2);
    expect(plot.querySelectorAll('[data-test-id="ds01-plot-ytick"]').length).toBeGreaterThanOrEqual(3);
    expect(texts(plot as HTMLElement, '.jp-ds01-plot-label')).toEqual(['epoch', 'eval_loss (lower is better)']);
    expect(plot.querySelectorAll('.jp-ds01-plot-best')).toHaveLength(2);
    const points = plot.querySelectorAll<SVGElement>('[data-test-id="ds01-plot-point"]');
    expect(points).toHaveLength(4);
    expect(points[1].getAttribute('tabindex')).toBe('0');
    await act(async () => points[1].dispatchEvent(new FocusEvent('focusin', { bubbles: true })));
    const tip = host.querySelector('[data-test-id="ds01-plot-tooltip"]')!;
    expect(tip.textContent).toBe('bert/exp1/checkpoint-1000eval_loss 0.41 (best)step 1000, epoch 2');
    await act(async () => points[1].dispatchEvent(new FocusEvent('focusout', { bubbles: true })));
    expect(host.querySelector('[data-test-id="ds01-plot-tooltip"]')).toBeNull();
  });

  it('asks again for the metric chosen, and previews a prune with each reason', async () => {
    const { client, calls } = fakeClient();
    const host = await render(<CheckpointsView client={client} project="alpha" />);
    const select = host.querySelector<HTMLSelectElement>(
      'select[aria-label="Metric to plot and to choose the best by"]'
    )!;
    await act(async () => {
      select.value = 'loss';
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    expect(calls.listed).toEqual([{}, { metric: 'loss' }]);
    const button = host.querySelector<HTMLButtonElement>('[aria-label="Preview pruning checkpoints of alpha"]')!;
    await act(async () => button.click());
    expect(calls.pruned).toEqual([
      { policy: { keep_last: 3, keep_best: 1, metric: 'loss', mode: 'min' }, confirm: false }
    ]);
    const preview = host.querySelector('[aria-label="Prune preview"]')!;
    expect(preview.textContent).toContain('Would delete 1 checkpoint(s)');
    expect(texts(preview as HTMLElement, '.jp-ds01-plan-reason')).toEqual([
      'older than the newest 1 in models/',
      'role file (best): never deleted by a rule'
    ]);
  });
});
