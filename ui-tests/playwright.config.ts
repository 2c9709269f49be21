/**
 * Browser tests: the stock JupyterLab 4.6 collaboration frontend against collab_kernels,
 * in Debian's headless Chromium. `make test-ui` (or `npx playwright test` in ui-tests/).
 *
 * One JupyterLab serves the whole run (webServer below), started by start-lab.sh on a
 * fresh temporary folder created here; the restart scenario starts its own.
 */
import { defineConfig } from '@playwright/test';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BASE_URL, CHROMIUM_ARGS, PORT, REPORT_DIR, TOKENS, chromiumPath } from './tests/helpers/constants';

// The main process creates the folder; test workers inherit the variable and so know
// where the server's files are (to check what reached the disk).
if (!process.env.CK_UI_ROOT) {
  // Only in the main process (workers inherit CK_UI_ROOT): screenshots of this run only.
  fs.rmSync(path.join(REPORT_DIR, 'screenshots'), { recursive: true, force: true });
  process.env.CK_UI_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-kernels-ui-'));
}
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
    command: `bash ./start-lab.sh > "${path.join(REPORT_DIR, `jupyter-server-${PORT}.log`)}" 2>&1`,
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
