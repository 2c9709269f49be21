/** b. A cell run in A: its output appears in A and in B, and B shows [*] while it runs. */
import { cellEditor, expect, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';

const CODE = [
  'import time',
  'print("started by alice", flush=True)',
  'time.sleep(4)',
  'print("finished")',
  '6 * 7'
].join('\n');

test('b. run a cell in A: output in A and B, B shows [*] while it runs @both', async ({ lab }) => {
  const docPath = await lab.newNotebook('b-run', [CODE, 'after = True']);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  for (const page of [alice, bob]) {
    await expect(cellEditor(page, 0)).toContainText('started by alice');
    await expect(prompt(page, 0)).toHaveText('[ ]:');
  }
  await waitForKernelIdle(alice);

  await runCell(alice, 0);
  // Bob did nothing, yet sees the cell running and its first line while it runs.
  await expect(prompt(bob, 0)).toHaveText('[*]:');
  await expect(outputArea(bob, 0)).toContainText('started by alice');
  await expect(prompt(bob, 0)).toHaveText('[*]:');

  for (const page of [alice, bob]) {
    await expect(prompt(page, 0)).toHaveText('[1]:');
    await expect(outputArea(page, 0)).toContainText('finished');
    await expect(outputArea(page, 0)).toContainText('42');
    // Each output once: no duplicated stream or result.
    const text = await outputArea(page, 0).innerText();
    expect(text.split('started by alice').length - 1, text).toBe(1);
    expect(text.split('finished').length - 1, text).toBe(1);
    await expect(outputArea(page, 0).locator('.jp-OutputArea-output')).toHaveCount(2);
    // The other cell was not touched.
    await expect(prompt(page, 1)).toHaveText('[ ]:');
  }
});
