// Count the requests an idle JupyterLab page makes to its server, by endpoint family.
// Used by idle_network.py:  node idle_network.cjs PLAYWRIGHT_CORE_DIR CHROMIUM URL TOKEN SETTLE_S WINDOW_S
// Prints one JSON object: requests per family during the window, and the open long-lived streams.
const [playwrightDir, chromiumPath, url, token, settleS, windowS] = process.argv.slice(2);
const { chromium } = require(playwrightDir);

function family(path) {
  if (path.startsWith('/ds01/')) return 'ds01';
  if (path.startsWith('/api/metrics/')) return 'resource_usage';
  return 'jupyterlab';
}

(async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run']
  });
  try {
    const page = await browser.newPage();
    let counting = false;
    const counts = { ds01: 0, resource_usage: 0, jupyterlab: 0 };
    const paths = {};
    const atLoad = {};  // /ds01/* requests while the page and sidebar loaded: shows the sidebar was live
    page.on('request', request => {
      const u = new URL(request.url());
      if (u.origin !== new URL(url).origin) return;
      if (!counting) {
        if (u.pathname.startsWith('/ds01/')) atLoad[u.pathname] = (atLoad[u.pathname] || 0) + 1;
        return;
      }
      const f = family(u.pathname);
      counts[f] += 1;
      const key = u.pathname.replace(/[0-9a-f-]{36}/g, '<id>');
      paths[key] = (paths[key] || 0) + 1;
    });
    await page.goto(`${url}/lab?token=${token}`);
    await page.waitForSelector('#jp-main-dock-panel', { timeout: 60000 });
    const tab = page.locator('.jp-SideBar [data-id="ds01-sidebar"]');
    await tab.waitFor({ timeout: 30000 });
    const opened = await page.locator('#ds01-sidebar').isVisible();
    if (!opened) await tab.click();
    await page.locator('#ds01-sidebar').waitFor({ state: 'visible', timeout: 30000 });
    const usage = (await page.locator('#jp-top-bar, .jp-StatusBar-Widget').allInnerTexts()).join(' ');
    await page.waitForTimeout(Number(settleS) * 1000);
    counting = true;
    await page.waitForTimeout(Number(windowS) * 1000);
    counting = false;
    console.log(JSON.stringify({ counts, paths, ds01_at_load: atLoad, window_s: Number(windowS), usage_visible: /Mem|CPU/.test(usage) }));
  } finally {
    await browser.close();
  }
})().catch(err => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
