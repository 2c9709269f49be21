/**
 * Browser timings for bench/browser_bench.py (not a test: it asserts nothing, it measures).
 *
 *   node bench/browser/timing.js '<json job>'
 *
 * The job: {"base": "http://127.0.0.1:PORT", "token": "...", "kind": "latency"|"load",
 *           "path": "notebook.ipynb", "rounds": N, "marker": "text of the first cell"}
 * Prints one JSON line with the figures, in the page's own clock (performance.now(), whose
 * origin is the navigation start):
 *   latency: for each round, the time from the Shift+Enter keydown to the cell's expected
 *            output in the DOM ("dom") and to the next animation frame after it ("paint");
 *   load:    the time from navigation start to the first cell's source shown in its editor.
 */
'use strict';
const path = require('path');
const { chromium } = require(
  require.resolve('playwright-core', { paths: [path.join(__dirname, '..', '..', 'ui-tests')] })
);

const CHROMIUM = process.env.CHROMIUM_PATH ||
  (require('fs').existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium');
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update'];

async function openLab(browser, job) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // Arrival times of websocket messages (kernel and room websockets alike), for the trace.
  await page.addInitScript(() => {
    // JupyterLab loads more than the default 250 resources: keep the execute POSTs too.
    performance.setResourceTimingBufferSize(100000);
    window.__ckWs = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        const url = String(args[0]);
        const kind = url.includes('/api/collaboration/room/') ? 'room' :
          (url.includes('/channels') ? 'kernel' : 'other');
        window.__ckWsOpen = window.__ckWsOpen || [];
        const created = performance.now();
        this.addEventListener('open', () => window.__ckWsOpen.push([kind, created, performance.now()]));
        this.addEventListener('message', (e) => {
          const size = typeof e.data === 'string' ? e.data.length : (e.data.byteLength || e.data.size || 0);
          window.__ckWs.push([performance.now(), kind, size]);
        });
      }
    };
  });
  const url = `${job.base}/lab/tree/${encodeURIComponent(job.path)}?token=${job.token}&reset`;
  await page.goto(url, { waitUntil: 'commit', timeout: 120000 });
  return { context, page };
}

/** Waits until the page's notebook shows `marker` in its first cell: ms since navigation. */
async function firstCellShown(page, marker, timeout) {
  const handle = await page.waitForFunction(
    (m) => {
      const editor = document.querySelector(
        '.jp-NotebookPanel .jp-Notebook .jp-Cell .jp-InputArea-editor .cm-content');
      return editor && editor.textContent.includes(m) ? performance.now() : false;
    },
    marker,
    { polling: 'raf', timeout }
  );
  return handle.jsonValue();
}

async function waitKernelIdle(page) {
  // The app is exposed by --LabApp.expose_app_in_browser: the kernel's own connection
  // status, not only the toolbar's indicator (idle before the kernel is connected).
  await page.waitForFunction(() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session &&
      widget.sessionContext.session.kernel;
    return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
  }, null, { timeout: 120000 });
}

async function latency(browser, job) {
  const { context, page } = await openLab(browser, job);
  await firstCellShown(page, job.marker, 120000);
  await waitKernelIdle(page);
  // Command mode on the first cell.
  await page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell').first()
    .locator('.jp-InputPrompt').click();
  await page.keyboard.press('Escape');
  await page.evaluate(() => {
    window.__ckKey = [];
    window.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.shiftKey) {
        window.__ckKey.push(performance.now());
      }
    }, { capture: true });
  });
  const rounds = [];
  for (let i = 0; i < job.rounds; i++) {
    const expected = `${job.prefix}${i}`;
    await page.evaluate(({ index, expected }) => {
      // The notebook is observed, not the cell: a server-side run may replace the cell's
      // model (and so its widget) when it marks it trusted.
      const notebook = document.querySelector('.jp-NotebookPanel .jp-Notebook');
      window.__ckDone = new Promise((resolve) => {
        const check = () => {
          const cell = notebook.querySelectorAll('.jp-Cell')[index];
          const out = cell && cell.querySelector('.jp-OutputArea');
          if (out && out.textContent.includes(expected)) {
            observer.disconnect();
            const dom = performance.now();
            requestAnimationFrame(() => resolve({ dom, paint: performance.now() }));
          }
        };
        const observer = new MutationObserver(check);
        observer.observe(notebook, { childList: true, subtree: true, characterData: true });
        setTimeout(() => resolve({ dom: NaN, paint: NaN }), 20000);
      });
    }, { index: i, expected });
    if (job.select) {
      // Select the cell first: a server-side run re-creates an untrusted cell to trust it,
      // and the frontend's active cell then moves one too far (Shift+Enter skips a cell).
      await page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell').nth(i)
        .locator('.jp-InputPrompt').click();
      await page.keyboard.press('Escape');
      await page.waitForTimeout(job.pause || 150);
    }
    await page.keyboard.press('Shift+Enter');
    const done = await page.evaluate(() => window.__ckDone);
    const key = await page.evaluate(() => window.__ckKey[window.__ckKey.length - 1]);
    const trace = await page.evaluate((key) => {
      const post = performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('/execute') && e.startTime >= key).pop();
      const ws = window.__ckWs.filter((m) => m[0] >= key).map((m) => [m[0] - key, m[1], m[2]]);
      return {
        post: post ? [post.startTime - key, post.responseEnd - key] : null,
        ws: ws.slice(0, 12)
      };
    }, key);
    rounds.push({ dom: done.dom - key, paint: done.paint - key, ...trace });
    // The next round starts once this cell shows its count and the kernel is idle.
    await page.waitForFunction((index) => {
      const cell = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')[index];
      const p = cell.querySelector('.jp-InputArea-prompt');
      const k = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
      return p && /\[\d+\]/.test(p.textContent) && k && k.dataset.status === 'idle';
    }, i, { timeout: 30000 }).catch(async (e) => {
      await page.screenshot({ path: `/tmp/ck-browser-bench-fail.png` });
      const info = await page.evaluate((index) => {
        const cell = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')[index];
        const k = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
        return { prompt: cell && cell.querySelector('.jp-InputArea-prompt').textContent,
          out: cell && cell.querySelector('.jp-OutputArea').textContent,
          kernel: k && k.dataset.status };
      }, i);
      throw new Error(`round ${i}: ${JSON.stringify(info)} ${JSON.stringify(rounds)} ${e}`);
    });
    await page.waitForTimeout(job.pause || 150);
  }
  await context.close();
  return { rounds };
}

async function load(browser, job) {
  const { context, page } = await openLab(browser, job);
  const shown = await firstCellShown(page, job.marker, job.timeout || 180000);
  const trace = await page.evaluate(() => {
    const contents = performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/api/contents/') && e.name.includes('.ipynb')).pop();
    const session = performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/api/collaboration/session/')).pop();
    const big = window.__ckWs.filter((m) => m[1] === 'room' && m[2] > 10000)[0];
    return {
      contents: contents ? [contents.startTime, contents.responseEnd] : null,
      session: session ? [session.startTime, session.responseEnd] : null,
      step2_ms: big ? big[0] : null,
      sockets: window.__ckWsOpen || [],
      room_first: (window.__ckWs.filter((m) => m[1] === 'room')[0] || [null])[0]
    };
  });
  await context.close();
  return { first_cell_ms: shown, ...trace };
}

(async () => {
  const job = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    const result = job.kind === 'latency' ? await latency(browser, job) : await load(browser, job);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
