/**
 * The DS01 sidebar against a real Jupyter server and a real Docker engine:
 * create a project, build and deploy it from the panel, run a notebook cell in
 * its container kernel that writes outside /workspace, see the notification
 * and the finding, retire with rescue from the dialog, find the rescued file.
 * Screenshots of the panel in each state go to ui-tests/screenshots/.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';
import { findFile, HOME, removeProject, SHOTS, USER } from './helpers';

const README_SHOT = path.resolve(__dirname, '..', '..', '..', 'docs', 'sidebar.png');
const PROJECT = `ui${Date.now().toString(36)}`;

test.use({ autoGoto: true });

/** Reload and wait for JupyterLab: galata's page.reload() allows it 15 s to start, too little on a busy 2-CPU host.
 * Only where no galata notebook helper follows (they read in-page state galata's own reload sets up). */
async function reload(page: IJupyterLabPageFixture): Promise<void> {
  await Promise.all([
    page.waitForEvent('domcontentloaded', { timeout: 120_000 }),
    page.evaluate(() => {
      setTimeout(() => window.location.reload(), 0);
    })
  ]);
  await page.waitForFunction(() => typeof (window as any).jupyterapp === 'object', null, { timeout: 120_000 });
  await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    await app.started;
    await app.restored;
  });
}

test.afterAll(() => {
  // Only what this test made: its container (if a failure left it) and its image.
  removeProject(PROJECT);
});

test('project lifecycle from the sidebar, with a rescued write outside /workspace', async ({ page }) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const panel = page.locator('#ds01-sidebar');
  const shot = (name: string) => panel.screenshot({ path: path.join(SHOTS, `${name}.png`) });

  await page.sidebar.openTab('ds01-sidebar');
  await page.sidebar.setWidth(380);
  await expect(panel.getByRole('heading', { name: 'DS01 projects' })).toBeVisible();
  if (test.info().retry === 0) {
    // A retry finds the project folder its first try made (retire keeps a project's files).
    await expect(panel.getByText('No projects yet')).toBeVisible();
  }
  await expect(panel.locator('[data-test-id="ds01-gpus"]')).toContainText('2 free of 2');
  await shot('01-empty');

  // Every action is a palette command too.
  await page.keyboard.press('Control+Shift+C');
  await page.locator('#command-palette .lm-CommandPalette-input').fill('DS01:');
  const items = page.locator('#command-palette .lm-CommandPalette-item');
  for (const label of [
    'DS01: New Project…',
    'DS01: Deploy Container…',
    'DS01: Retire Container…',
    'DS01: Open Terminal in Container…'
  ]) {
    await expect(items.filter({ hasText: label })).toHaveCount(1);
  }
  await page.keyboard.press('Escape');

  // New project dialog.
  await panel.locator('[data-test-id="ds01-new-project"]').click();
  await page.locator('[data-test-id="ds01-new-project-name"]').fill(PROJECT);
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Create', exact: true }).click();
  const card = panel.locator(`[data-test-id="ds01-project-${PROJECT}"]`);
  const state = card.locator(`[data-test-id="ds01-state-${PROJECT}"]`);
  await expect(state).toHaveText('not built');
  await shot('02-not-built');

  // Build: progress with its log; a slow step lets us reload the page and follow it again.
  const dockerfile = path.join(HOME, 'dockerfiles', `${PROJECT}.Dockerfile`);
  fs.appendFileSync(dockerfile, '\nRUN for i in 1 2 3 4 5 6; do echo ds01-ui-wait-$i; sleep 1; done\n');
  await card.locator(`[data-test-id="ds01-build-${PROJECT}"]`).click();
  const log = card.locator('.jp-ds01-log');
  await expect(log).toContainText('ds01-ui-wait-1', { timeout: 120000 });
  await expect(state).toHaveText('building');
  await shot('03-building');
  await page.reload(); // galata's: the notebook helpers below need the in-page state it sets up
  await page.sidebar.openTab('ds01-sidebar');
  await expect(panel).toBeVisible();
  await expect(state).toHaveText('building');
  await expect(log).toContainText('Step 1/', { timeout: 10000 }); // lines from before the reload
  await expect(log).toContainText('ds01-ui-wait-6', { timeout: 60000 }); // and the new ones
  await expect(state).toHaveText('built, not deployed', { timeout: 60000 });
  await shot('04-built');

  // Deploy: the container runs with one of the configured GPUs.
  await card.locator(`[data-test-id="ds01-deploy-${PROJECT}"]`).click();
  await expect(state).toHaveText('running', { timeout: 180000 });
  await expect(card).toContainText('GPU-ui-');
  await expect(panel.locator('[data-test-id="ds01-gpus"]')).toContainText('1 free of 2');
  await shot('05-running');

  // Stop and start again from the panel.
  await card.locator(`[data-test-id="ds01-stop-${PROJECT}"]`).click();
  await expect(state).toHaveText('stopped', { timeout: 60000 });
  await shot('05b-stopped');
  await card.locator(`[data-test-id="ds01-start-${PROJECT}"]`).click();
  await expect(state).toHaveText('running', { timeout: 60000 });

  // A terminal with a shell inside the container (its cwd is /workspace, the project's folder on the host).
  const before = await page.locator('.jp-Terminal').count();
  await card.locator(`[data-test-id="ds01-terminal-${PROJECT}"]`).click();
  await expect(page.locator('.jp-Terminal')).toHaveCount(before + 1);
  const marker = path.join(HOME, 'workspace', PROJECT, 'terminal-was-here');
  await expect(async () => {
    await page.locator('.jp-Terminal').last().click();
    await page.keyboard.type('touch terminal-was-here\n');
    expect(fs.existsSync(marker)).toBe(true);
  }).toPass({ timeout: 30000 });
  fs.unlinkSync(marker);
  await page.screenshot({ path: path.join(SHOTS, '05c-terminal-page.png') });
  await page.keyboard.type('exit\n');

  // A notebook in the container kernel writes outside /workspace.
  await card.locator(`[data-test-id="ds01-notebook-${PROJECT}"]`).click();
  await expect(page.locator('.jp-NotebookPanel')).toBeVisible();
  await expect(page.locator('[data-test-id="ds01-status"]')).toContainText(`${PROJECT}._.${USER}`, { timeout: 60000 });
  await page.notebook.setCell(0, 'code', "open('/tmp/result.csv', 'w').write('a,b\\n1,2\\n')");
  await page.notebook.runCell(0);
  await expect(page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')).toContainText(
    '/tmp/result.csv is outside /workspace',
    {
      timeout: 120000
    }
  );

  // The notification names the notebook and the path, with a rescue action.
  const toast = page
    .locator('.jp-Notification-Toast-warning, .Toastify__toast')
    .filter({ hasText: 'wrote /tmp/result.csv' });
  await expect(toast.first()).toBeVisible();
  await expect(toast.first()).toContainText('.ipynb');
  await expect(toast.first().getByRole('button', { name: 'Rescue now' })).toBeVisible();
  // The static check marks the cell; the guard's finding shows in the panel.
  await expect(page.locator('[data-test-id="ds01-cell-note"]')).toContainText('/tmp/result.csv');
  const findings = card.locator('[data-test-id="ds01-findings"]');
  await expect(findings).toContainText('/tmp/result.csv');
  await shot('06-finding');
  await page.screenshot({ path: path.join(SHOTS, '06-notification-page.png') });
  fs.mkdirSync(path.dirname(README_SHOT), { recursive: true });
  await panel.screenshot({ path: README_SHOT });

  // Checkpoints saved inside the container: the list, the plot and a prune preview.
  await page.notebook.setCell(
    1,
    'code',
    "from ds01_jupyter import checkpoints\nfor e in (1, 2, 3):\n    checkpoints.save({'w': e}, epoch=e, metrics={'loss': 1.0 / e})"
  );
  await page.notebook.runCell(1);
  await expect(page.locator('.jp-Cell').nth(1).locator('.jp-InputPrompt')).toHaveText('[2]:', { timeout: 60000 });
  await card.locator(`[data-test-id="ds01-checkpoints-${PROJECT}"]`).click();
  const checkpoints = card.locator(`[data-test-id="ds01-checkpoint-list-${PROJECT}"]`);
  await expect(checkpoints.locator('tbody.jp-ds01-checkpoint')).toHaveCount(3, { timeout: 30000 });
  await expect(checkpoints).toContainText('resume');
  await expect(checkpoints).toContainText('best');
  await expect(checkpoints.locator('[data-test-id="ds01-plot-point"]')).toHaveCount(3);
  await checkpoints.getByLabel('Number of newest checkpoints to keep').fill('1');
  await checkpoints.getByRole('button', { name: `Preview pruning checkpoints of ${PROJECT}` }).click();
  // Saved seconds ago: a trainer may still be writing them, so none is deleted, and the preview says why.
  const preview = checkpoints.getByRole('region', { name: 'Prune preview' });
  await expect(preview).toContainText('Nothing would be deleted');
  await expect(preview).toContainText('a trainer may be writing it');
  await shot('06b-checkpoints');
  await card.locator(`[data-test-id="ds01-checkpoints-${PROJECT}"]`).click();

  // Retire with rescue from the dialog.
  await card.locator(`[data-test-id="ds01-retire-${PROJECT}"]`).click();
  const dialog = page.locator('[data-test-id="ds01-retire-dialog"]');
  await expect(dialog).toContainText('/tmp/result.csv');
  await page.locator('.jp-Dialog-content').screenshot({ path: path.join(SHOTS, '07-retire-dialog.png') });
  await page.getByRole('button', { name: `Rescue the files and retire ${PROJECT}` }).click();
  await expect(state).toHaveText('built, not deployed', { timeout: 120000 });
  await expect(panel.locator('[data-test-id="ds01-gpus"]')).toContainText('2 free of 2');
  await shot('08-retired');

  await page.theme.setDarkTheme();
  await shot('09-retired-dark-theme');

  const rescued = findFile(path.join(HOME, 'workspace', PROJECT, '.rescued'), 'result.csv');
  expect(rescued).not.toBeNull();
  expect(fs.readFileSync(rescued as string, 'utf-8')).toBe('a,b\n1,2\n');
});

test('says plainly when the server extension is missing', async ({ page }) => {
  // What a Jupyter server without ds01_jupyter answers for every /ds01 route.
  await page.route('**/ds01/**', route => route.fulfill({ status: 404, body: 'Not Found' }));
  await reload(page);
  await page.sidebar.openTab('ds01-sidebar');
  const banner = page.locator('#ds01-sidebar [data-test-id="ds01-banner"]');
  await expect(banner).toContainText('ds01 server extension is not running');
  await expect(banner).toHaveAttribute('role', 'alert');
  await page.locator('#ds01-sidebar').screenshot({ path: path.join(SHOTS, '10-extension-missing.png') });
});
