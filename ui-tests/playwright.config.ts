/**
 * Browser tests: the stock JupyterLab 4.6 collaboration frontend against collab_kernels,
 * in Debian's headless Chromium. `make test-ui` (or `npx playwright test` in ui-tests/).
 *
 * Two JupyterLabs serve the whole run (webServer below), each started by start-lab.sh on
 * a fresh temporary folder created here: one with the stock frontend alone (project
 * "stock"), one with the companion extension of labextension/ (project "companion").
 * The restart scenario starts its own.
 *
 * A scenario's title says where it runs: "@companion" only with the companion extension
 * (its features), "@both" in both projects (stock scenarios that must keep working with the
 * extension loaded), untagged only with the stock frontend.
 */
import { defineConfig } from '@playwright/test';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** A port nobody listens on now (other servers may run on this machine). */
function freePort(): string {
  const probe = 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])';
  return execFileSync('python3', ['-c', probe]).toString().trim();
}

// The main process decides the temporary folder and the ports; test workers inherit the
// variables, so they know where the server's files are and where it listens.
if (!process.env.CK_UI_ROOT) {
  // This run's screenshots and server logs only.
  for (const old of ['screenshots', 'jupyter-server.log', 'jupyter-server-restart.log']) {
    fs.rmSync(path.join(__dirname, 'playwright-report', old), { recursive: true, force: true });
  }
  process.env.CK_UI_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-kernels-ui-'));
  process.env.CK_UI_COMPANION_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-kernels-ui-companion-'));
  process.env.CK_UI_PORT = process.env.CK_UI_PORT || freePort();
  process.env.CK_UI_COMPANION_PORT = process.env.CK_UI_COMPANION_PORT || freePort();
  process.env.CK_UI_RESTART_PORT = process.env.CK_UI_RESTART_PORT || freePort();
}
// Read after the ports are chosen.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { BASE_URL, CHROMIUM_ARGS, COMPANION_BASE_URL, COMPANION_PORT, PORT, REPORT_DIR, TOKENS, chromiumPath } =
  require('./tests/helpers/constants') as typeof import('./tests/helpers/constants');
fs.mkdirSync(REPORT_DIR, { recursive: true });

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 120_000,
  expect: { timeout: 30_000 },
  reporter: [
    ['list'],
    ['html', { outputFolder: path.join(REPORT_DIR, 'html'), open: 'never' }],
    ['junit', { outputFile: path.join(REPORT_DIR, 'junit.xml') }]
  ],
  use: {
    baseURL: BASE_URL,
    browserName: 'chromium',
    headless: true,
    actionTimeout: 30_000,
    navigationTimeout: 60_000,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: chromiumPath(),
      args: CHROMIUM_ARGS
    }
  },
  projects: [
    {
      name: 'stock',
      grepInvert: /@companion\b/,
      metadata: { root: process.env.CK_UI_ROOT },
      use: { baseURL: BASE_URL }
    },
    {
      name: 'companion',
      grep: /@companion\b|@both\b/,
      metadata: { root: process.env.CK_UI_COMPANION_ROOT },
      use: { baseURL: COMPANION_BASE_URL }
    }
  ],
  webServer: [
    labServer('stock', PORT, process.env.CK_UI_ROOT!, '0'),
    labServer('companion', COMPANION_PORT, process.env.CK_UI_COMPANION_ROOT!, '1')
  ]
});

function labServer(name: string, port: number, root: string, companion: string) {
  const log = path.join(REPORT_DIR, name === 'stock' ? 'jupyter-server.log' : `jupyter-server-${name}.log`);
  return {
    command: `bash ./start-lab.sh > "${log}" 2>&1`,
    // /api/me answers 403 until a token is given: Playwright counts 403 as "up".
    url: `http://127.0.0.1:${port}/api/me`,
    timeout: 120_000,
    reuseExistingServer: false,
    gracefulShutdown: { signal: 'SIGTERM' as const, timeout: 15_000 },
    env: {
      ...(process.env as Record<string, string>),
      CK_UI_PORT: String(port),
      CK_UI_ROOT: root,
      CK_UI_COMPANION: companion,
      CK_UI_TOKEN_ALICE: TOKENS.alice,
      CK_UI_TOKEN_BOB: TOKENS.bob,
      CK_UI_TOKEN_VIEWER: TOKENS.viewer,
      CK_UI_TOKEN_TEACHER: TOKENS.teacher
    }
  };
}
