/**
 * c. A 20-second cell printing a line a second keeps running with every page closed:
 * reopened after it ended, every line and the execution count are there; reopened during
 * a run, the cell shows [*] and its output keeps growing live.
 */
import { Page } from '@playwright/test';
import { cellEditor, expect, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';
import { waitForRequestsDone } from './helpers/server';

const LINES = 20;
const CODE = [
  'import time',
  `for i in range(1, ${LINES + 1}):`,
  '    print(f"line {i}", flush=True)',
  '    time.sleep(1)'
].join('\n');
const ALL_LINES = Array.from({ length: LINES }, (_, i) => `line ${i + 1}`);

async function outputLines(page: Page): Promise<string[]> {
  const text = await outputArea(page, 0).innerText();
  return text
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean);
}

/** The highest "line N" the page shows, 0 for none. */
async function lastLine(page: Page): Promise<number> {
  const lines = await outputLines(page);
  const numbers = lines.map(l => Number(/^line (\d+)$/.exec(l)?.[1] ?? 0));
  return Math.max(0, ...numbers);
}

test('c. close every page during a 20 s run, reopen after and during it', async ({ lab }) => {
  test.setTimeout(300_000);
  const docPath = await lab.newNotebook('c-close-reopen', [CODE]);

  // 1. Start the run, see it print, close the only page.
  let alice = await lab.open('alice', docPath, 'alice-first');
  await expect(cellEditor(alice, 0)).toContainText('print(f"line {i}"');
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  await expect(outputArea(alice, 0)).toContainText('line 1');
  await lab.close(alice);

  // 2. Nobody is connected until the run has ended.
  await waitForRequestsDone(lab.api(), docPath);

  // 3. Reopen: every line, in order, once, and the execution count.
  alice = await lab.open('alice', docPath, 'alice-after-run');
  await expect(prompt(alice, 0)).toHaveText('[1]:');
  await expect.poll(() => outputLines(alice)).toEqual(ALL_LINES);
  await lab.screenshot(alice, 'reopened-after-the-run');

  // 4. Run again, close every page while it prints, reopen during the run.
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  // The server runs it (the page still shows the first run's lines until the new ones come):
  // only then may the page go, or its execute request could go with it.
  await expect
    .poll(async () => {
      const all: any[] = await lab.api().request('GET', '/api/collaboration/requests');
      return all.filter(r => r.path === docPath && r.status === 'running').length;
    })
    .toBe(1);
  await expect(outputArea(alice, 0)).toContainText('line 2');
  await lab.close(alice);

  const bob = await lab.open('bob', docPath, 'bob-during-run');
  await expect(prompt(bob, 0)).toHaveText('[*]:');
  await expect.poll(() => lastLine(bob)).toBeGreaterThan(0);
  const whenReopened = await lastLine(bob);
  expect(whenReopened, 'the run was still going when the page came back').toBeLessThan(LINES);
  // The stream continues live in the reopened page...
  await expect.poll(() => lastLine(bob)).toBeGreaterThanOrEqual(whenReopened + 2);
  await lab.screenshot(bob, 'reopened-during-the-run');
  // ... up to the end, with nothing lost or doubled across the reconnect.
  await expect(prompt(bob, 0)).toHaveText('[2]:', { timeout: 60_000 });
  await expect.poll(() => outputLines(bob)).toEqual(ALL_LINES);
});
