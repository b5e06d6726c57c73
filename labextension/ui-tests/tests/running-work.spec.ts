/**
 * Running work in the sidebar against a real Jupyter server and a real Docker
 * engine: a notebook cell on the project's container kernel sleeps with a
 * SIGTERM handler that writes /tmp/last.txt and exits; the card and the
 * retire dialog list the running cell, the dialog offers to save the unsaved
 * notebook, and retiring with "Stop processes" and rescue stops the cell
 * (which ends by itself) and rescues what its handler wrote at the last moment.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';
import { findFile, HOME, removeProject, SHOTS, USER } from './helpers';

const PROJECT = `rw${Date.now().toString(36)}`;

test.use({ autoGoto: true });
test.describe.configure({ mode: 'serial' });

test.afterAll(() => {
  // Only what this test made: its container (if a failure left it), its image, then its project, so
  // the other specs against the same server start from an empty project list whatever the order.
  removeProject(PROJECT, true);
});

// The cell: sleep for ten minutes; on SIGTERM write the time (UNIX seconds) to /tmp/last.txt and exit at once.
// No line is indented: the cell editor indents typed lines by itself, which would break a nested block.
const CELL = [
  'import os, signal, time',
  "on_term = lambda signum, frame: (os.write(os.open('/tmp/last.txt', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), repr(time.time()).encode()), os._exit(0))",
  'signal.signal(signal.SIGTERM, on_term)',
  "print('ds01-ui-sleeping', flush=True)",
  'time.sleep(600)'
].join('\n');

test('retire stops a running cell, which saves on SIGTERM, and rescues what it wrote', async ({ page }) => {
  test.setTimeout(900 * 1000);
  fs.mkdirSync(SHOTS, { recursive: true });
  const panel = page.locator('#ds01-sidebar');

  await page.sidebar.openTab('ds01-sidebar');
  await page.sidebar.setWidth(380);
  await expect(panel.getByRole('heading', { name: 'DS01 projects' })).toBeVisible();

  // A project, deployed from the panel (deploy builds the image first).
  await panel.locator('[data-test-id="ds01-new-project"]').click();
  await page.locator('[data-test-id="ds01-new-project-name"]').fill(PROJECT);
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Create', exact: true }).click();
  const card = panel.locator(`[data-test-id="ds01-project-${PROJECT}"]`);
  const state = card.locator(`[data-test-id="ds01-state-${PROJECT}"]`);
  await expect(state).toHaveText('not built', { timeout: 60000 });
  await card.locator(`[data-test-id="ds01-deploy-${PROJECT}"]`).click();
  await expect(state).toHaveText('running', { timeout: 420000 });

  // A notebook on the container kernel runs the cell (without waiting for it to finish).
  await card.locator(`[data-test-id="ds01-notebook-${PROJECT}"]`).click();
  await expect(page.locator('.jp-NotebookPanel')).toBeVisible();
  await expect(page.locator('[data-test-id="ds01-status"]')).toContainText(`${PROJECT}._.${USER}`, { timeout: 60000 });
  await page.notebook.setCell(0, 'code', CELL);
  await page.notebook.runCell(0, { wait: false });
  await expect(page.locator('.jp-Cell').first().locator('.jp-OutputArea-output')).toContainText('ds01-ui-sleeping', {
    timeout: 120000
  });

  // The card's findings list the running cell first, with how long it has run.
  await card.locator(`[data-test-id="ds01-audit-${PROJECT}"]`).click();
  const running = card.locator('[data-test-id="ds01-findings-process"]');
  await expect(running).toContainText('Running processes: 1', { timeout: 60000 });
  await expect(running).toContainText(/running for \d+[sm]/);
  await expect(card.locator('[data-test-id="ds01-findings"] details').first()).toHaveAttribute(
    'data-test-id',
    'ds01-findings-process'
  );
  await panel.screenshot({ path: path.join(SHOTS, '11-running-cell.png') });

  // The retire dialog lists the running cell and the unsaved notebook.
  await card.locator(`[data-test-id="ds01-retire-${PROJECT}"]`).click();
  const dialog = page.locator('[data-test-id="ds01-retire-dialog"]');
  const processes = dialog.locator('[data-test-id="ds01-processes"]');
  await expect(processes).toContainText(/cell( \d+)? running for \d+[sm]\S* in notebooks\/.+\.ipynb/, {
    timeout: 60000
  });
  await expect(processes.locator('li')).toHaveCount(1);
  const unsaved = dialog.locator('[data-test-id="ds01-unsaved"]');
  await expect(unsaved).toContainText(`workspace/${PROJECT}/notebooks/`);
  await page.locator('.jp-Dialog-content').screenshot({ path: path.join(SHOTS, '12-retire-running-cell.png') });

  // Save all: the notebook is written (the cell's code is in the file) and leaves the list.
  await unsaved.locator('[data-test-id="ds01-save-all"]').click();
  await expect(unsaved).toHaveCount(0, { timeout: 30000 });
  const notebook = findFile(path.join(HOME, 'workspace', PROJECT, 'notebooks'), 'Untitled.ipynb');
  expect(notebook).not.toBeNull();
  expect(fs.readFileSync(notebook as string, 'utf-8')).toContain('/tmp/last.txt');

  // Stop processes + rescue: SIGTERM reaches the cell, its handler writes /tmp/last.txt and exits.
  const before = Date.now() / 1000;
  await dialog.locator('[data-test-id="ds01-stop-processes"]').check();
  await page.getByRole('button', { name: `Rescue the files and retire ${PROJECT}` }).click();
  await expect(state).toHaveText('built, not deployed', { timeout: 240000 });
  const toast = page
    .locator('.jp-Notification-Toast-success, .Toastify__toast')
    .filter({ hasText: `Retired ${PROJECT}` });
  await expect(toast.first()).toContainText('Stopped 1 process', { timeout: 30000 });
  await panel.screenshot({ path: path.join(SHOTS, '13-retired-after-stopping.png') });

  // .rescued/<time>/tmp/last.txt holds the time the handler ran.
  const rescued = findFile(path.join(HOME, 'workspace', PROJECT, '.rescued'), 'last.txt');
  expect(rescued).not.toBeNull();
  expect(path.relative(path.join(HOME, 'workspace', PROJECT), rescued as string)).toMatch(
    /^\.rescued\/[^/]+\/tmp\/last\.txt$/
  );
  // Written when the retire stopped the cell, not before (the container shares the host's clock).
  const written = Number(fs.readFileSync(rescued as string, 'utf-8'));
  expect(written).toBeGreaterThan(before - 5);
  expect(written).toBeLessThan(Date.now() / 1000 + 5);
});
