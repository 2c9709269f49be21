/** g. A `\r` progress bar renders as one line that updates, in the runner's page and a watcher's. */
import { Page } from '@playwright/test';
import { cellEditor, expect, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';

const CODE = [
  'import sys, time',
  'for i in range(1, 13):',
  '    sys.stdout.write(f"\\rprogress {i}/12")',
  '    sys.stdout.flush()',
  '    time.sleep(0.4)',
  'print("\\ndone")'
].join('\n');

async function streamText(page: Page): Promise<string> {
  const outputs = outputArea(page, 0).locator('.jp-OutputArea-output');
  return (await outputs.allInnerTexts()).join('\n').trim();
}

test('g. a \\r progress bar renders as one line that updates', async ({ lab }) => {
  const docPath = await lab.newNotebook('g-progress', [CODE]);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  for (const page of [alice, bob]) {
    await expect(cellEditor(page, 0)).toContainText('progress');
  }
  await waitForKernelIdle(alice);

  await runCell(alice, 0);
  // While it runs, the watcher's page always shows a single progress line, and it moves.
  const seen = new Set<string>();
  await expect(prompt(bob, 0)).toHaveText('[*]:');
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && (await prompt(bob, 0).innerText()).includes('*')) {
    const text = await streamText(bob);
    if (text) {
      seen.add(text);
      expect(text.split('progress').length - 1, `watcher shows: ${JSON.stringify(text)}`).toBeLessThanOrEqual(1);
      expect(text.split('\n').length, `watcher shows: ${JSON.stringify(text)}`).toBeLessThanOrEqual(2);
    }
    await bob.waitForTimeout(150);
  }
  await lab.note('what the watcher showed while it ran', [...seen].map(t => JSON.stringify(t)).join('\n'));
  const progressStates = [...seen].filter(t => !t.includes('done'));
  expect(progressStates.length, `states seen: ${JSON.stringify([...seen])}`).toBeGreaterThanOrEqual(2);

  for (const page of [alice, bob]) {
    await expect(prompt(page, 0)).toHaveText('[1]:');
    await expect.poll(() => streamText(page)).toBe('progress 12/12\ndone');
  }
});
