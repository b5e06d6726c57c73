/**
 * Galata's Playwright settings, with Debian's chromium (Playwright cannot
 * download its own browser here) and a Jupyter server started for the tests.
 */
const { execSync } = require('child_process');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

function chromium() {
  if (process.env.DS01_CHROMIUM) {
    return process.env.DS01_CHROMIUM;
  }
  try {
    return execSync('command -v chromium || command -v chromium-browser', { shell: '/bin/sh' }).toString().trim();
  } catch {
    throw new Error('Debian chromium is needed: apt-get install -y --no-install-recommends chromium');
  }
}

const root = process.getuid && process.getuid() === 0 ? ' --allow-root' : '';
// Not 8888, so a JupyterLab already running for people (.ci/start) is left alone.
const port = process.env.DS01_UI_PORT || '8765';

module.exports = {
  ...baseConfig,
  timeout: 240 * 1000,
  expect: { timeout: 30 * 1000 },
  // One retry: under load (2 cores shared with Docker builds) JupyterLab once failed to load its own
  // terminal chunk (ChunkLoadError); a second failure is a real one.
  retries: 1,
  workers: 1,
  outputDir: 'test-results',
  reporter: [['list']],
  use: {
    ...baseConfig.use,
    baseURL: `http://localhost:${port}`,
    trace: 'off',
    video: 'off',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: chromium(),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    }
  },
  webServer: {
    command: `jlpm start --port=${port} --ServerApp.port_retries=0${root}`,
    url: `http://localhost:${port}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe'
  }
};
