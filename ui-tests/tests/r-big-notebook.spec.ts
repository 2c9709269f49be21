/**
 * r. A notebook of many cells (more than RoomManager.progressive_sync_cells) reaches the
 * first browser in two parts (its first cells, then the rest as an update): the page ends
 * with every cell in order, not dirty, and a second browser gets the same notebook.
 */
import { cell, cellEditor, cells, expect, test, typeAtEnd } from './helpers/lab';

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
