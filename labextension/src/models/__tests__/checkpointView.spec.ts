import {
  checkpointView,
  CheckpointViewAction,
  ICheckpointViewState,
  INITIAL_VIEW,
  listOptions,
  prunePolicy,
  shownMetric,
  shownMode
} from '../checkpointView';
import { LISTING } from './fixtures/checkpoints';

const run = (...actions: CheckpointViewAction[]): ICheckpointViewState => actions.reduce(checkpointView, INITIAL_VIEW);
const PLAN = { project: 'alpha', would_delete: [], kept: [], bytes: 0 };

describe('checkpoint view state', () => {
  it("shows the server's metric and mode until the user chooses, and asks for the user's choice", () => {
    const loaded = run({ type: 'loading' }, { type: 'loaded', data: LISTING });
    expect(loaded.loading).toBe(false);
    expect(shownMetric(loaded)).toBe('eval_loss');
    expect(shownMode(loaded)).toBe('min');
    expect(listOptions(loaded)).toEqual({});
    const chosen = checkpointView(checkpointView(loaded, { type: 'metric', metric: 'loss' }), {
      type: 'mode',
      mode: 'max'
    });
    expect(listOptions(chosen)).toEqual({ metric: 'loss', mode: 'max' });
    // A new answer does not undo the choice.
    expect(shownMetric(checkpointView(chosen, { type: 'loaded', data: LISTING }))).toBe('loss');
  });

  it('drops a preview whose settings changed, and lists again after a prune or a refresh', () => {
    const planned = run({ type: 'loaded', data: LISTING }, { type: 'planned', plan: PLAN });
    expect(planned.plan).toBe(PLAN);
    expect(checkpointView(planned, { type: 'keepLast', value: 5 }).plan).toBeNull();
    expect(checkpointView(planned, { type: 'metric', metric: 'loss' }).plan).toBeNull();
    expect(checkpointView(planned, { type: 'metric', metric: '' })).toBe(planned);
    const pruned = checkpointView(planned, { type: 'pruned', result: { ...PLAN, deleted: [] } });
    expect(pruned.plan).toBeNull();
    expect(pruned.generation).toBe(planned.generation + 1);
    expect(checkpointView(pruned, { type: 'refresh' }).generation).toBe(pruned.generation + 1);
  });

  it('keeps counts whole and not negative', () => {
    expect(run({ type: 'keepLast', value: -2 }).keepLast).toBe(0);
    expect(run({ type: 'keepLast', value: NaN }).keepLast).toBe(0);
    expect(run({ type: 'keepBest', value: 2.7 }).keepBest).toBe(2);
  });

  it('asks to keep the best by the metric shown, and only the newest without one', () => {
    const loaded = run({ type: 'loaded', data: LISTING }, { type: 'keepLast', value: 2 });
    expect(prunePolicy(loaded)).toEqual({ keep_last: 2, keep_best: 1, metric: 'eval_loss', mode: 'min' });
    const none = run({ type: 'loaded', data: { ...LISTING, metric: null, metrics: [] } });
    expect(prunePolicy(none)).toEqual({ keep_last: 3 });
  });

  it('keeps the listing when a request fails, with the error', () => {
    const failed = run({ type: 'loaded', data: LISTING }, { type: 'loading' }, { type: 'failed', error: 'gone' });
    expect(failed.data).toBe(LISTING);
    expect(failed.error).toBe('gone');
    expect(failed.loading).toBe(false);
  });
});
