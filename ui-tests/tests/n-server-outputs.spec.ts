/**
 * n. Outputs of server-side runs as the stock frontend shows a user's own run: JavaScript
 * outputs of a notebook loaded from disk run (trusted) for the one who ran it and for the
 * others, also after a reload; `update_display_data` re-renders live in every page; an
 * empty cell keeps `[ ]`; running a cell after its kernel was shut down says so. (The server
 * side of these is the execution stage's; here in both projects.)
 */
import * as fs from 'fs';
import * as path from 'path';
import { cell, cellEditor, expect, notebookKernelId, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';
import { notebookJSON, notebooksDir } from './helpers/server';

const JS = [
  'from IPython.display import Javascript, display',
  'display(Javascript("document.body.dataset.ckJsRan = \'yes\'"))',
  'print("displayed")'
].join('\n');

const UPDATES = [
  'import time',
  'from IPython.display import display',
  'h = display("starting...", display_id=True)',
  'for i in range(1, 6):',
  '    time.sleep(0.2)',
  '    h.update(f"step {i} of 5")'
].join('\n');

test('n. JavaScript output of a notebook from disk runs for everyone, also after a reload @both', async ({ lab }) => {
  // Written straight to disk, as git or a copy would: not signed, so not trusted (a
  // notebook saved through the contents API is signed by jupyter_server).
  const docPath = `n-trust-${Date.now().toString(36)}.ipynb`;
  fs.writeFileSync(path.join(notebooksDir(), docPath), JSON.stringify(notebookJSON([JS])));
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  for (const page of [alice, bob]) {
    await expect(outputArea(page, 0)).toContainText('displayed');
    await expect(page.locator('body')).toHaveAttribute('data-ck-js-ran', 'yes');
    await expect(outputArea(page, 0)).not.toContainText('IPython.core.display.Javascript object');
  }
  // A late joiner, and Bob after a reload: trusted still (the server signed the file).
  const carol = await lab.open('bob', docPath, 'bob-second-device');
  await bob.reload();
  for (const page of [bob, carol]) {
    await expect(outputArea(page, 0)).toContainText('displayed');
    await expect(page.locator('body')).toHaveAttribute('data-ck-js-ran', 'yes');
  }
});

test('n. update_display_data re-renders live for collaborators @both', async ({ lab }) => {
  const docPath = await lab.newNotebook('n-update-display', [UPDATES]);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  for (const page of [alice, bob]) {
    // The one display output, updated in place: its last value, no trace of the first.
    await expect(outputArea(page, 0)).toContainText('step 5 of 5');
    await expect(outputArea(page, 0)).not.toContainText('starting');
    await expect(outputArea(page, 0).locator('.jp-OutputArea-output')).toHaveCount(1);
    await expect(prompt(page, 0)).toHaveText('[1]:');
  }
  await lab.screenshot(bob, 'bob-sees-the-last-update-live');
});

test('n. an empty cell keeps [ ] when run @both', async ({ lab }) => {
  const docPath = await lab.newNotebook('n-empty', ['', 'after = "ran"\nprint(after)']);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  await runCell(alice, 1);
  for (const page of [alice, bob]) {
    await expect(outputArea(page, 1)).toContainText('ran');
    await expect(prompt(page, 1)).toHaveText('[1]:');
    await expect(prompt(page, 0)).toHaveText('[ ]:');
  }
  await expect(cellEditor(bob, 0)).toHaveText('');
});

test('n. running a cell after its kernel was shut down says so @both', async ({ lab }) => {
  const docPath = await lab.newNotebook('n-shutdown', ['print("before")', 'print("after")']);
  const alice = await lab.open('alice', docPath);
  await waitForKernelIdle(alice);
  const kernel = await notebookKernelId(alice);
  await runCell(alice, 0);
  await expect(outputArea(alice, 0)).toContainText('before');
  // Someone else shuts the kernel down (Bob from his kernel list, the culler, the API).
  await lab.api('bob').request('DELETE', `/api/kernels/${kernel}`);
  await runCell(alice, 1);
  // The cell says so (the server writes a KernelGone error into it), for everyone.
  await expect(outputArea(alice, 1)).toContainText('KernelGone');
  await expect(outputArea(alice, 1)).toContainText(kernel);
  await expect(cell(alice, 1).locator('.jp-InputArea-prompt')).toHaveText('[ ]:');
  await lab.screenshot(alice, 'run-after-kernel-shutdown');
});
