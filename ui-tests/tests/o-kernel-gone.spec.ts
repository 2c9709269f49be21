/**
 * o. A run the server refuses says why (companion extension): the notebook's kernel was shut
 * down by someone else, then a cell is run. The stock executor ignores the 404 (the server
 * writes a KernelGone error into the cell, see n.); the companion also shows a notification,
 * with an action to choose another kernel.
 */
import { expect, notebookKernelId, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';

test('o. running a cell after someone shut its kernel down: a notification says so @companion', async ({ lab }) => {
  const docPath = await lab.newNotebook('o-kernel-gone', ['print("before")', 'print("after")']);
  const alice = await lab.open('alice', docPath);
  await waitForKernelIdle(alice);
  const kernel = await notebookKernelId(alice);
  await runCell(alice, 0);
  await expect(outputArea(alice, 0)).toContainText('before');
  await lab.api('bob').request('DELETE', `/api/kernels/${kernel}`);

  await runCell(alice, 1);
  const toast = alice.locator('.Toastify__toast').filter({ hasText: /kernel is gone/ });
  await expect(toast).toBeVisible();
  await expect(toast.locator('button', { hasText: 'Choose a kernel' })).toBeVisible();
  await expect(prompt(alice, 1)).toHaveText('[ ]:');
  await expect(alice.locator('.jp-Dialog')).toHaveCount(0);
  await lab.screenshot(alice, 'alice-told-the-kernel-is-gone');
});
