/**
 * q. Shift+Enter through the cells of a notebook that is not trusted yet (one from git or a
 * download: it has outputs and no signature). Each press runs the next cell once, in order,
 * as in stock JupyterLab, although a server-side run shows its outputs trusted.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cell, expect, outputArea, prompt, test, waitForKernelIdle } from './helpers/lab';
import { notebookJSON, notebooksDir } from './helpers/server';

test('q. Shift+Enter runs each cell of an untrusted notebook once, in order @both', async ({ lab }) => {
  const sources = ['print("c0")', 'print("c1")', 'print("c2")', 'print("c3")'];
  const nb: any = notebookJSON(sources);
  for (const c of nb.cells) {
    // An output from an earlier run and no signature: the notebook opens untrusted.
    c.outputs = [{ output_type: 'stream', name: 'stdout', text: 'old\n' }];
    c.execution_count = 7;
  }
  const docPath = `q-untrusted-${Date.now().toString(36)}.ipynb`;
  fs.writeFileSync(path.join(notebooksDir(), docPath), JSON.stringify(nb));
  const alice = await lab.open('alice', docPath);
  await expect(outputArea(alice, 0)).toContainText('old');
  await waitForKernelIdle(alice);
  await cell(alice, 0).locator('.jp-InputPrompt').click();
  await alice.keyboard.press('Escape');
  for (let i = 0; i < 3; i++) {
    await alice.keyboard.press('Shift+Enter');
    await expect(outputArea(alice, i)).toHaveText(`c${i}`);
    await expect(prompt(alice, i)).toHaveText(`[${i + 1}]:`);
    await waitForKernelIdle(alice);
  }
  // The cell after the last one run was never run.
  await expect(prompt(alice, 3)).toHaveText('[7]:');
  await expect(outputArea(alice, 3)).toContainText('old');
});
