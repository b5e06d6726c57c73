/**
 * The checkpoint view at JupyterLab's default sidebar width, against checkpoints
 * on disk as trainers write them: the DS01 guide's torch.save names and a
 * best-model.pt at the top of models/, two Hugging Face Trainer runs
 * (checkpoint-<step>/ folders with model.safetensors and trainer_state.json,
 * one half-written, one still a tmp-checkpoint- folder) and a Lightning run
 * with last.ckpt. transformers and safetensors are too big for CI, so their
 * files are written here as those libraries write them: safetensors as its
 * format says (8-byte little-endian header length, a JSON header with
 * data_offsets, exactly that much data), trainer_state.json as
 * TrainerState.save_to_json (json.dumps(indent=2, sort_keys=True), a newline).
 * The .pt and .ckpt files are plain pickles: their names carry what is shown.
 * The screenshot, with a point hovered, is docs/checkpoints.png.
 */
import { expect, test } from '@jupyterlab/galata';
import { Locator } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';
import { HOME, removeProject, SHOTS } from './helpers';

const DOCS_SHOT = path.resolve(__dirname, '..', '..', '..', 'docs', 'checkpoints.png');
const PROJECT = `ck${Date.now().toString(36)}`;
const MODELS = path.join(HOME, 'workspace', PROJECT, 'models');
const HOUR_AGO = Date.now() / 1000 - 3600;

// Tall enough to show the whole view without scrolling; the width (so the sidebar's default width) is Galata's.
test.use({ autoGoto: true, viewport: { width: 1280, height: 2000 } });

test.afterAll(() => {
  removeProject(PROJECT, true);
});

/** A number as Python's json.dumps writes it (1.0, 4.5e-05), where JSON.stringify would not. */
class Py {
  constructor(readonly text: string) {}
}

/** json.dumps(value, indent=2, sort_keys=True), with Py numbers as written. */
function pyJson(value: unknown, indent = ''): string {
  const inner = indent + '  ';
  if (value instanceof Py) {
    return value.text;
  }
  if (Array.isArray(value)) {
    return value.length ? `[\n${value.map(v => inner + pyJson(v, inner)).join(',\n')}\n${indent}]` : '[]';
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    const items = keys.map(k => `${inner}${JSON.stringify(k)}: ${pyJson((value as any)[k], inner)}`);
    return keys.length ? `{\n${items.join(',\n')}\n${indent}}` : '{}';
  }
  return JSON.stringify(value);
}

/** A safetensors file of one float32 tensor: header length, JSON header padded to 8 bytes, the data. */
function safetensors(values: number[]): Buffer {
  const data = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  let header = JSON.stringify({
    __metadata__: { format: 'pt' },
    'classifier.weight': { dtype: 'F32', shape: [values.length], data_offsets: [0, data.length] }
  });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, Buffer.from(header), data]);
}

/** A plain pickle (protocol 2) of an empty dict: whole, as its STOP opcode says; not torch's zip format. */
const PICKLE = Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]);

interface ILog {
  step: number;
  epoch: string;
  loss?: string;
  eval_loss?: string;
}

/** trainer_state.json of a checkpoint at `step`: the log up to it, the best so far. */
function trainerState(run: string, step: number, epoch: string, logs: ILog[], best: [number, string]): string {
  const history = logs
    .filter(l => l.step <= step)
    .map(l =>
      l.eval_loss
        ? {
            epoch: new Py(l.epoch),
            eval_loss: new Py(l.eval_loss),
            eval_runtime: new Py('1.2345'),
            eval_samples_per_second: new Py('405.1'),
            eval_steps_per_second: new Py('50.64'),
            step: l.step
          }
        : {
            epoch: new Py(l.epoch),
            grad_norm: new Py('2.3412'),
            learning_rate: new Py('4.5e-05'),
            loss: new Py(l.loss as string),
            step: l.step
          }
    );
  return (
    pyJson({
      best_global_step: best[0],
      best_metric: new Py(best[1]),
      best_model_checkpoint: `models/${run}/checkpoint-${best[0]}`,
      epoch: new Py(epoch),
      eval_steps: 500,
      global_step: step,
      is_hyper_param_search: false,
      is_local_process_zero: true,
      is_world_process_zero: true,
      log_history: history,
      logging_steps: 250,
      max_steps: 2000,
      num_input_tokens_seen: 0,
      num_train_epochs: 4,
      save_steps: 500,
      stateful_callbacks: {
        TrainerControl: {
          args: {
            should_epoch_stop: false,
            should_evaluate: false,
            should_log: false,
            should_save: true,
            should_training_stop: false
          },
          attributes: {}
        }
      },
      total_flos: new Py('52434944000.0'),
      train_batch_size: 8,
      trial_name: null,
      trial_params: null
    }) + '\n'
  );
}

function write(relpath: string, content: string | Buffer): void {
  const file = path.join(MODELS, relpath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

/** A Hugging Face checkpoint folder; without trainer_state.json when `state` is false (the trainer writes it last). */
function hfCheckpoint(
  folder: string,
  run: string,
  step: number,
  epoch: string,
  logs: ILog[],
  best: [number, string],
  state = true
) {
  write(`${run}/${folder}/config.json`, JSON.stringify({ architectures: ['BertForSequenceClassification'] }, null, 2));
  write(`${run}/${folder}/model.safetensors`, safetensors([step / 1000, 0.5, -0.25, 1]));
  if (state) {
    write(`${run}/${folder}/trainer_state.json`, trainerState(run, step, epoch, logs, best));
  }
}

/** Set the times of everything under `dir` (a trainer finished writing it `seconds` ago). */
function age(dir: string, when: number): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      age(full, when);
    }
    fs.utimesSync(full, when, when);
  }
  fs.utimesSync(dir, when, when);
}

function writeCheckpoints(): void {
  // The DS01 guide: torch.save every 10 epochs, and the best model by name.
  for (const epoch of ['010', '020', '030']) {
    write(`checkpoint-${epoch}.pt`, PICKLE);
  }
  write('best-model.pt', PICKLE);
  // Hugging Face Trainer, two runs of one model; eval every 500 steps, logging every 250.
  const exp1: ILog[] = [
    { step: 250, epoch: '0.5', loss: '0.6931' },
    { step: 500, epoch: '1.0', loss: '0.5412' },
    { step: 500, epoch: '1.0', eval_loss: '0.5203' },
    { step: 750, epoch: '1.5', loss: '0.4411' },
    { step: 1000, epoch: '2.0', loss: '0.3877' },
    { step: 1000, epoch: '2.0', eval_loss: '0.4126' }
  ];
  hfCheckpoint('checkpoint-500', 'bert/exp1', 500, '1.0', exp1, [500, '0.5203']);
  hfCheckpoint('checkpoint-1000', 'bert/exp1', 1000, '2.0', exp1, [1000, '0.4126']);
  hfCheckpoint('checkpoint-1500', 'bert/exp1', 1500, '3.0', exp1, [1000, '0.4126'], false);
  const exp2: ILog[] = [
    { step: 250, epoch: '0.5', loss: '0.6523' },
    { step: 500, epoch: '1.0', loss: '0.4987' },
    { step: 500, epoch: '1.0', eval_loss: '0.4518' },
    { step: 750, epoch: '1.5', loss: '0.3321' },
    { step: 1000, epoch: '2.0', loss: '0.2409' },
    { step: 1000, epoch: '2.0', eval_loss: '0.4875' }
  ];
  hfCheckpoint('checkpoint-500', 'bert/exp2', 500, '1.0', exp2, [500, '0.4518']);
  hfCheckpoint('checkpoint-1000', 'bert/exp2', 1000, '2.0', exp2, [500, '0.4518']);
  // Lightning: ModelCheckpoint's names, and last.ckpt.
  write('lightning/epoch=0-step=200.ckpt', PICKLE);
  write('lightning/epoch=1-step=400.ckpt', PICKLE);
  write('lightning/last.ckpt', PICKLE);
  age(MODELS, HOUR_AGO);
  // The trainer is writing step 2000 of exp1 right now.
  hfCheckpoint('tmp-checkpoint-2000', 'bert/exp1', 2000, '4.0', exp1, [1000, '0.4126'], false);
}

/** How many lines an element's text takes (distinct tops of its line boxes). */
async function lines(locator: Locator): Promise<number> {
  return locator.evaluate(element => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
  });
}

test('checkpoints by run at the default sidebar width, with a plot of the metric per run', async ({ page }) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const panel = page.locator('#ds01-sidebar');
  await page.sidebar.openTab('ds01-sidebar');
  await expect(panel.getByRole('heading', { name: 'DS01 projects' })).toBeVisible();
  // JupyterLab's default: a quarter of the window less the tab bars, never under --jp-sidebar-min-width.
  const width = (await panel.boundingBox())?.width ?? 0;
  expect(width).toBeGreaterThanOrEqual(250);
  expect(width).toBeLessThan(300);

  await panel.locator('[data-test-id="ds01-new-project"]').click();
  await page.locator('[data-test-id="ds01-new-project-name"]').fill(PROJECT);
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Create', exact: true }).click();
  const card = panel.locator(`[data-test-id="ds01-project-${PROJECT}"]`);
  await expect(card).toBeVisible();
  writeCheckpoints();

  await card.locator(`[data-test-id="ds01-checkpoints-${PROJECT}"]`).click();
  const view = card.locator(`[data-test-id="ds01-checkpoint-list-${PROJECT}"]`);
  const row = (relpath: string) => view.locator(`[data-test-id="ds01-checkpoint-${relpath}"]`);
  await expect(view.locator('tbody.jp-ds01-checkpoint')).toHaveCount(13, { timeout: 30000 });

  // Runs, each with its checkpoints; the resume point and the best overall.
  await expect(view.locator('tbody.jp-ds01-run th')).toHaveText([
    /^models\//,
    /^bert\/exp1/,
    /^bert\/exp2/,
    /^lightning/
  ]);
  const summary = view.locator('[data-test-id="ds01-checkpoint-summary"]');
  await expect(summary).toContainText('eval_loss');
  await expect(summary).toContainText('bert/exp1/checkpoint-1000');

  // Epoch, step and the metric, from the names and from trainer_state.json. At the default width the
  // names need the room: epoch and step are said on each checkpoint's second line.
  await expect(view.locator('thead th')).toHaveText(['Checkpoint', 'eval_loss']);
  await expect(row('checkpoint-030.pt')).toContainText('epoch 30 · file');
  await expect(row('bert/exp1/checkpoint-1000').locator('td.jp-ds01-num')).toHaveText(['0.4126']);
  await expect(row('bert/exp1/checkpoint-1000')).toContainText('epoch 2 · step 1000 · Hugging Face');
  await expect(row('lightning/epoch=1-step=400.ckpt')).toContainText('epoch 1 · step 400');
  await expect(row('lightning/epoch=1-step=400.ckpt').locator('td.jp-ds01-num')).toHaveText(['–']);

  // Roles and states.
  await expect(row('best-model.pt')).toContainText('role: best');
  await expect(row('best-model.pt')).not.toContainText('resume');
  await expect(row('checkpoint-030.pt')).toContainText('resume');
  await expect(row('lightning/last.ckpt')).toContainText('role: latest');
  await expect(row('bert/exp1/checkpoint-1000').locator('.jp-ds01-tag')).toContainText(['resume', 'best']);
  await expect(row('bert/exp2/checkpoint-500').locator('.jp-ds01-tag-best')).toHaveText('best');
  await expect(row('bert/exp1/checkpoint-1500')).toContainText('incomplete');
  await expect(row('bert/exp1/checkpoint-1500')).toContainText('trainer_state.json');
  await expect(row('bert/exp1/tmp-checkpoint-2000')).toContainText('in progress');
  await expect(row('bert/exp1/checkpoint-500')).toContainText('Hugging Face');

  // Read well in the sidebar's width: no header, number or name broken across lines, nothing wider than the view.
  const oneLine = async () => {
    for (const cell of await view.locator('thead th, td.jp-ds01-num, .jp-ds01-checkpoint-name').all()) {
      expect(await lines(cell), await cell.innerText()).toBe(1);
    }
    const table = await view.locator('table').boundingBox();
    const box = await view.boundingBox();
    expect(table!.width).toBeLessThanOrEqual(box!.width + 0.5);
  };
  await oneLine();

  // A wider sidebar has room for epoch and step columns.
  await page.sidebar.setWidth(420);
  await expect(view.locator('thead th')).toHaveText(['Checkpoint', 'Epoch', 'Step', 'eval_loss']);
  await expect(row('bert/exp1/checkpoint-1000').locator('td.jp-ds01-num')).toHaveText(['2', '1000', '0.4126']);
  await oneLine();
  await card.screenshot({ path: path.join(SHOTS, '14b-checkpoints-wide.png') });
  await page.sidebar.setWidth(width);
  await expect(view.locator('thead th')).toHaveText(['Checkpoint', 'eval_loss']);

  // The plot: one line per Hugging Face run, axes with values and labels, each run's best ringed.
  const plot = view.locator('[data-test-id="ds01-checkpoint-plot"]');
  await expect(plot.locator('.jp-ds01-plot-series')).toHaveCount(2);
  await expect(plot.locator('.jp-ds01-plot-label')).toHaveText(['epoch', 'eval_loss (lower is better)']);
  expect(await plot.locator('[data-test-id="ds01-plot-ytick"]').count()).toBeGreaterThanOrEqual(3);
  expect(await plot.locator('[data-test-id="ds01-plot-xtick"]').count()).toBeGreaterThanOrEqual(2);
  await expect(plot.locator('circle.jp-ds01-plot-best')).toHaveCount(2);
  await expect(plot.locator('.jp-ds01-plot-legend li')).toHaveText(['bert/exp1', 'bert/exp2', 'best of its run']);

  // A point says its value on keyboard focus and on hover.
  const points = plot.locator('[data-test-id="ds01-plot-point"]');
  await expect(points).toHaveCount(4);
  await points.first().focus();
  const tooltip = plot.locator('[data-test-id="ds01-plot-tooltip"]');
  await expect(tooltip).toContainText('bert/exp1/checkpoint-500');
  await points.first().blur();
  await expect(tooltip).toHaveCount(0);
  await card.scrollIntoViewIfNeeded();
  await points.nth(1).hover();
  await expect(tooltip).toContainText('bert/exp1/checkpoint-1000');
  await expect(tooltip).toContainText('eval_loss 0.4126 (best)');
  fs.mkdirSync(path.dirname(DOCS_SHOT), { recursive: true });
  await card.screenshot({ path: DOCS_SHOT });
  await card.screenshot({ path: path.join(SHOTS, '14-checkpoints.png') });

  // Another metric: the trainer's training loss, logged between checkpoints.
  await view.getByLabel('Metric to plot and to choose the best by').selectOption('loss');
  await expect(view.locator('thead th').last()).toHaveText('loss');
  await expect(plot.locator('.jp-ds01-plot-label').last()).toHaveText('loss (lower is better)');
  expect(await plot.locator('circle.jp-ds01-plot-logged').count()).toBeGreaterThanOrEqual(4);

  // Prune preview: every checkpoint with why it goes or stays; then delete.
  await view.getByLabel('Number of newest checkpoints to keep').fill('1');
  await view.getByRole('button', { name: `Preview pruning checkpoints of ${PROJECT}` }).click();
  const preview = view.getByRole('region', { name: 'Prune preview' });
  await expect(preview).toContainText('Would delete');
  const item = (relpath: string) =>
    preview.locator('li').filter({ has: page.locator('.jp-ds01-plan-path', { hasText: new RegExp(`^${relpath}$`) }) });
  await expect(item('checkpoint-010.pt').locator('.jp-ds01-plan-action')).toHaveText('delete');
  await expect(item('best-model.pt').locator('.jp-ds01-plan-action')).toHaveText('keep');
  await expect(item('bert/exp1/tmp-checkpoint-2000').locator('.jp-ds01-plan-action')).toHaveText('keep');
  for (const li of await preview.locator('li').all()) {
    await expect(li.locator('.jp-ds01-plan-reason')).not.toBeEmpty();
  }
  await card.screenshot({ path: path.join(SHOTS, '15-checkpoints-prune.png') });
  await preview.getByRole('button', { name: 'Delete these checkpoints' }).click();
  await expect(view.locator('[role="status"]')).toContainText('Deleted');
  expect(fs.existsSync(path.join(MODELS, 'checkpoint-010.pt'))).toBe(false);
  expect(fs.existsSync(path.join(MODELS, 'best-model.pt'))).toBe(true);
  await expect(row('checkpoint-010.pt')).toHaveCount(0);
});
