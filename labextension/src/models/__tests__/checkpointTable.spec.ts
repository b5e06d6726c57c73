import {
  breakable,
  checkpointTags,
  formatMetric,
  formatNumber,
  groupByRun,
  kindLabel,
  planRows,
  progressText,
  runLabel,
  tableColumns
} from '../checkpointTable';
import { ckpt, LISTING } from './fixtures/checkpoints';

const find = (relpath: string) => LISTING.checkpoints.find(c => c.relpath === relpath)!;

describe('checkpoint table', () => {
  it('formats metrics in a few characters, without trailing zeros', () => {
    expect(formatMetric(0.5)).toBe('0.5');
    expect(formatMetric(0.41234567)).toBe('0.4123');
    expect(formatMetric(1 / 3)).toBe('0.3333');
    expect(formatMetric(12.3456)).toBe('12.35');
    expect(formatMetric(12345.6)).toBe('12346');
    expect(formatMetric(0.000123)).toBe('1.2e-4');
    expect(formatMetric(2.5e7)).toBe('2.5e7');
    expect(formatMetric(0)).toBe('0');
    expect(formatMetric(undefined)).toBe('–');
    expect(formatMetric(NaN)).toBe('–');
    expect(formatMetric(Infinity)).toBe('∞');
  });

  it("formats epochs and steps: whole numbers as they are, a trainer's fractional epoch briefly", () => {
    expect(formatNumber(30)).toBe('30');
    expect(formatNumber(12000)).toBe('12000');
    expect(formatNumber(1.4992503748125936)).toBe('1.5');
    expect(formatNumber(0.3333)).toBe('0.33');
    expect(formatNumber(null)).toBe('–');
  });

  it('lets a narrow column break names after their separators, not mid-word', () => {
    expect(breakable('epoch=1-step=400.ckpt')).toEqual(['epoch=', '1-', 'step=', '400.ckpt']);
    expect(breakable('checkpoint-010.pt')).toEqual(['checkpoint-', '010.pt']);
    expect(breakable('model')).toEqual(['model']);
  });

  it('names runs and kinds as people read them', () => {
    expect(runLabel('')).toBe('models/');
    expect(runLabel('bert/exp1')).toBe('bert/exp1');
    expect(kindLabel('huggingface')).toBe('Hugging Face');
    expect(kindLabel('distributed')).toBe('torch.distributed');
    expect(kindLabel('something-new')).toBe('something-new');
  });

  it('groups checkpoints by run in the order the server lists runs', () => {
    const groups = groupByRun(LISTING);
    expect(groups.map(g => [g.label, g.checkpoints.length])).toEqual([
      ['models/', 4],
      ['bert/exp1', 4],
      ['bert/exp2', 2]
    ]);
    const orphan = groupByRun({ ...LISTING, runs: [], checkpoints: [ckpt('x/a.pt', { size: 5 })] });
    expect(orphan).toEqual([{ run: 'x', label: 'x', count: 1, bytes: 5, checkpoints: [orphan[0].checkpoints[0]] }]);
  });

  it('shows only the columns some checkpoint fills', () => {
    expect(tableColumns(LISTING, 'eval_loss')).toEqual({ epoch: true, step: true, metric: 'eval_loss', inline: false });
    const plain = { ...LISTING, checkpoints: LISTING.checkpoints.slice(0, 4) };
    expect(tableColumns(plain, 'eval_loss')).toEqual({ epoch: true, step: false, metric: null, inline: false });
    expect(tableColumns(LISTING, null).metric).toBeNull();
  });

  it('says epoch and step in the second line where a narrow sidebar has no room for their columns', () => {
    expect(tableColumns(LISTING, 'eval_loss', 230)).toEqual({
      epoch: false,
      step: false,
      metric: 'eval_loss',
      inline: true
    });
    expect(tableColumns(LISTING, 'eval_loss', 400).inline).toBe(false);
    expect(progressText(find('bert/exp1/checkpoint-1000'))).toBe('epoch 2 · step 1000');
    expect(progressText(find('checkpoint-030.pt'))).toBe('epoch 30');
    expect(progressText(find('best-model.pt'))).toBe('');
  });

  it('tags the state, what resume loads, the best and a role by name', () => {
    const text = (relpath: string) => checkpointTags(find(relpath), LISTING).map(t => t.text);
    expect(text('checkpoint-030.pt')).toEqual(['resume']);
    expect(text('best-model.pt')).toEqual(['role: best']);
    expect(text('bert/exp1/checkpoint-1000')).toEqual(['resume', 'best']);
    expect(text('bert/exp1/checkpoint-1500')).toEqual(['incomplete']);
    expect(text('bert/exp1/tmp-checkpoint-2000')).toEqual(['in progress']);
    expect(text('checkpoint-010.pt')).toEqual([]);
    const tags = checkpointTags(find('bert/exp1/checkpoint-1000'), LISTING);
    expect(tags[0].title).toBe('What a resume in bert/exp1 loads (and overall)');
    expect(tags[1].title).toBe('Best eval_loss in bert/exp1 (lowest) (and overall)');
    expect(checkpointTags(find('bert/exp1/checkpoint-1500'), LISTING)[0].title).toContain('trainer_state.json');
    const last = ckpt('lightning/last.ckpt', { role: 'latest' });
    expect(checkpointTags(last, LISTING).map(t => t.text)).toEqual(['role: latest']);
  });

  it("lists a prune's checkpoints, deleted and kept, each with its reason", () => {
    const plan = {
      project: 'alpha',
      would_delete: [{ ...find('checkpoint-010.pt'), reason: 'older than the 1 newest in models/' }],
      kept: [
        { relpath: 'checkpoint-030.pt', run: '', reason: 'newest 1 in models/' },
        { relpath: 'best-model.pt', run: '', reason: 'role file (best): never deleted by a rule' }
      ],
      bytes: 1000
    };
    expect(planRows(plan)).toEqual([
      {
        relpath: 'checkpoint-010.pt',
        run: '',
        action: 'delete',
        reason: 'older than the 1 newest in models/',
        size: 1000
      },
      { relpath: 'checkpoint-030.pt', run: '', action: 'keep', reason: 'newest 1 in models/', size: null },
      {
        relpath: 'best-model.pt',
        run: '',
        action: 'keep',
        reason: 'role file (best): never deleted by a rule',
        size: null
      }
    ]);
    expect(planRows({ project: 'alpha', deleted: plan.would_delete, kept: [], bytes: 1000 })[0].action).toBe('delete');
  });
});
