/** a. Two browser contexts on one notebook: what one types appears in the other. */
import { cellEditor, expect, test, typeAtEnd } from './helpers/lab';

test('a. typing in one context appears in the other', async ({ lab }) => {
  const docPath = await lab.newNotebook('a-typing', ['x = 1', '# notes']);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);

  // Both show the document as the server loaded it.
  for (const page of [alice, bob]) {
    await expect(cellEditor(page, 0)).toHaveText('x = 1');
    await expect(cellEditor(page, 1)).toHaveText('# notes');
  }

  await typeAtEnd(alice, cellEditor(alice, 0), ' + 41  # typed by alice');
  await expect(cellEditor(bob, 0)).toHaveText('x = 1 + 41  # typed by alice');

  await typeAtEnd(bob, cellEditor(bob, 1), ' from bob');
  await expect(cellEditor(alice, 1)).toHaveText('# notes from bob');
  // Each still has its own edit too (no echo or loss).
  await expect(cellEditor(alice, 0)).toHaveText('x = 1 + 41  # typed by alice');
  await expect(cellEditor(bob, 1)).toHaveText('# notes from bob');
});
