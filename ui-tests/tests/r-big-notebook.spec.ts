/**
 * r. A notebook of many cells (more than RoomManager.progressive_sync_cells) reaches the
 * first browser in two parts (its first cells, then the rest as an update): the page ends
 * with every cell in order, not dirty, and a second browser gets the same notebook.
 */
import { cell, cellEditor, cells, expect, outputArea, test, typeAtEnd } from './helpers/lab';
import { notebookJSON } from './helpers/server';

const CELLS = 120;

test('r. a big notebook opens with all its cells in order, not dirty @both', async ({ lab }) => {
  const sources = Array.from({ length: CELLS }, (_, i) => `x_${i} = ${i}`);
  const docPath = await lab.newNotebook('r-big', sources);
  const alice = await lab.open('alice', docPath);
  await expect(cellEditor(alice, 0)).toHaveText('x_0 = 0');
  await expect(cells(alice)).toHaveCount(CELLS);
  for (const index of [60, CELLS - 1]) {
    await cell(alice, index).scrollIntoViewIfNeeded();
    await expect(cellEditor(alice, index)).toHaveText(`x_${index} = ${index}`);
  }
  const tab = alice.locator('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current');
  await expect(tab).not.toHaveClass(/jp-mod-dirty/);

  // A second browser joins: the same notebook; an edit of one shows in the other.
  const bob = await lab.open('bob', docPath);
  await expect(cells(bob)).toHaveCount(CELLS);
  await cell(bob, CELLS - 1).scrollIntoViewIfNeeded();
  await expect(cellEditor(bob, CELLS - 1)).toHaveText(`x_${CELLS - 1} = ${CELLS - 1}`);
  await cell(alice, 0).scrollIntoViewIfNeeded();
  await typeAtEnd(alice, cellEditor(alice, 0), '  # alice');
  await cell(bob, 0).scrollIntoViewIfNeeded();
  await expect(cellEditor(bob, 0)).toHaveText('x_0 = 0  # alice');
});

/**
 * A notebook holding more output than RoomManager.progressive_sync_output_bytes (1 MB) reaches
 * the first browser as its cells first, that output right after: the page shows every cell
 * and then the whole output, and the tab is not dirty.
 */
test('r. a notebook with a big output shows its cells, then the output @both', async ({ lab }) => {
  const docPath = await lab.newNotebook('r-big-output', ['print("big")', 'x = 1']);
  const filler = 'y'.repeat(999);
  const text = Array.from({ length: 1100 }, (_, i) => `line ${i} ${filler}\n`).join('');
  const notebook: any = notebookJSON(['print("big")', 'x = 1']);
  notebook.cells[0].execution_count = 1;
  notebook.cells[0].outputs = [{ output_type: 'stream', name: 'stdout', text }];
  await lab.api().request('PUT', `/api/contents/${encodeURI(docPath)}`, {
    type: 'notebook',
    format: 'json',
    content: notebook
  });
  const alice = await lab.open('alice', docPath);
  await expect(cells(alice)).toHaveCount(2);
  await expect(cellEditor(alice, 1)).toHaveText('x = 1');
  await expect(outputArea(alice, 0)).toContainText(`line 1099 ${filler}`, { timeout: 60_000 });
  await expect(outputArea(alice, 0)).toContainText(`line 0 ${filler}`);
  const tab = alice.locator('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current');
  await expect(tab).not.toHaveClass(/jp-mod-dirty/);
});
