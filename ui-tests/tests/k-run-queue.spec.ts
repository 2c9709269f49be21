/**
 * k. The run queue above a notebook (companion extension): everyone sees what runs and what
 * is queued, who started it and since when; those allowed cancel a queued run and
 * interrupt the running one, a viewer only looks.
 */
import { cell, expect, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';

const WAIT_FOREVER = [
  'import time',
  'print("alice started a long one", flush=True)',
  'while True:',
  '    time.sleep(0.05)'
].join('\n');

test('k. run queue: who runs what since when, cancel and interrupt @companion', async ({ lab }) => {
  const docPath = await lab.newNotebook('k-run-queue', [WAIT_FOREVER, 'print("bob queued this")']);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  const viewer = await lab.open('viewer', docPath);
  await waitForKernelIdle(alice);
  for (const page of [alice, bob, viewer]) {
    await expect(page.locator('.ck-RunQueue')).toBeHidden();
  }

  await runCell(alice, 0);
  await expect(outputArea(bob, 0)).toContainText('alice started a long one');
  await runCell(bob, 1);
  for (const page of [alice, bob, viewer]) {
    const queue = page.locator('.ck-RunQueue');
    await expect(queue).toContainText('1 running, 1 queued');
    await expect(queue.locator('.ck-RunQueue-run.ck-mod-running')).toContainText(/alice · running 1 cell · for \d+ s/);
    await expect(queue.locator('.ck-RunQueue-run.ck-mod-queued')).toContainText(/bob · 1 cell queued · since \d+ s/);
    await expect(prompt(page, 1)).toHaveText('[*]:');
  }
  // A viewer sees the queue without the buttons.
  await expect(viewer.locator('.ck-RunQueue button')).toHaveCount(0);
  await lab.screenshot(viewer, 'viewer-sees-the-queue');
  await lab.screenshot(bob, 'bob-sees-the-queue');

  // Bob takes his run back out of the queue: gone for everyone, his cell back to [ ].
  await bob.locator('.ck-RunQueue-run.ck-mod-queued button', { hasText: 'Cancel' }).click();
  for (const page of [alice, bob, viewer]) {
    await expect(page.locator('.ck-RunQueue-run')).toHaveCount(1);
    await expect(prompt(page, 1)).toHaveText('[ ]:');
  }

  // Alice interrupts hers: KeyboardInterrupt in the cell, the queue is empty.
  await alice.locator('.ck-RunQueue-run.ck-mod-running button', { hasText: 'Interrupt' }).click();
  for (const page of [alice, bob, viewer]) {
    await expect(outputArea(page, 0)).toContainText('KeyboardInterrupt');
    await expect(page.locator('.ck-RunQueue')).toBeHidden();
    await expect(outputArea(page, 1)).not.toContainText('bob queued this');
  }
  await expect(cell(alice, 0).locator('.jp-InputArea-prompt')).not.toHaveText('[*]:');
});
