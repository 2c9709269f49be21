/**
 * Browser tests: the stock JupyterLab 4.6 collaboration frontend against collab_kernels,
 * in Debian's headless Chromium. `make test-ui` (or `npx playwright test` in ui-tests/).
 *
 * One JupyterLab serves the whole run (webServer below), started by start-lab.sh on a
 * fresh temporary folder created here; the restart scenario starts its own.
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
  process.env.CK_UI_PORT = process.env.CK_UI_PORT || freePort();
  process.env.CK_UI_RESTART_PORT = process.env.CK_UI_RESTART_PORT || freePort();
}
// Read after the ports are chosen.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { BASE_URL, CHROMIUM_ARGS, PORT, REPORT_DIR, TOKENS, chromiumPath } =
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
  webServer: {
    command: `bash ./start-lab.sh > "${path.join(REPORT_DIR, 'jupyter-server.log')}" 2>&1`,
    // /api/me answers 403 until a token is given: Playwright counts 403 as "up".
    url: `${BASE_URL}/api/me`,
    timeout: 120_000,
    reuseExistingServer: false,
    gracefulShutdown: { signal: 'SIGTERM', timeout: 15_000 },
    env: {
      CK_UI_PORT: String(PORT),
      CK_UI_ROOT: process.env.CK_UI_ROOT,
      CK_UI_TOKEN_ALICE: TOKENS.alice,
      CK_UI_TOKEN_BOB: TOKENS.bob,
      CK_UI_TOKEN_VIEWER: TOKENS.viewer
    }
  }
});
