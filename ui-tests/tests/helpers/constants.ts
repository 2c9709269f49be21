/** Values shared by playwright.config.ts, the tests and start-lab.sh (through the environment). */
import * as path from 'path';

export const UI_TESTS_DIR = path.resolve(__dirname, '..', '..');
export const START_LAB = path.join(UI_TESTS_DIR, 'start-lab.sh');
export const REPORT_DIR = path.join(UI_TESTS_DIR, 'playwright-report');
export const SCREENSHOT_DIR = path.join(REPORT_DIR, 'screenshots');

/** Port of the server Playwright's webServer starts for the whole run. */
export const PORT = Number(process.env.CK_UI_PORT || 8890);
export const BASE_URL = `http://127.0.0.1:${PORT}`;
/** Port of the server with the companion extension (project "companion"). */
export const COMPANION_PORT = Number(process.env.CK_UI_COMPANION_PORT || 8892);
export const COMPANION_BASE_URL = `http://127.0.0.1:${COMPANION_PORT}`;
/** Port of the server that the restart scenario starts and kills itself. */
export const RESTART_PORT = Number(process.env.CK_UI_RESTART_PORT || 8891);

/** Login tokens; jupyter_server_test_config.py maps them to users and roles. */
export const TOKENS = {
  alice: process.env.CK_UI_TOKEN_ALICE || 'ui-alice-token',
  bob: process.env.CK_UI_TOKEN_BOB || 'ui-bob-token',
  viewer: process.env.CK_UI_TOKEN_VIEWER || 'ui-viewer-token',
  teacher: process.env.CK_UI_TOKEN_TEACHER || 'ui-teacher-token'
};
export type UserName = keyof typeof TOKENS;

/** The browser: Debian's chromium (Playwright cannot download its own here). */
export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) {
    return process.env.CHROMIUM_PATH;
  }
  // The real binary; /usr/bin/chromium is a wrapper script around it.
  const fs = require('fs') as typeof import('fs');
  for (const candidate of ['/usr/lib/chromium/chromium', '/usr/bin/chromium']) {
    if (fs.existsSync(candidate)) {
      return candidate;
    }
  }
  return '/usr/bin/chromium';
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update'
];
