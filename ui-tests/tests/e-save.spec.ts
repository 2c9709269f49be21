/** e. Ctrl+S saves without a "File Changed" dialog, and the file on disk has the content. */
import { cellEditor, expect, saveWithCtrlS, test, typeAtEnd } from './helpers/lab';
import { joinText, notebookOnDisk } from './helpers/server';

test('e. Ctrl+S saves without a file-changed dialog; the file on disk has the content', async ({ lab }) => {
  const docPath = await lab.newNotebook('e-save', ['a = 1']);
  const alice = await lab.open('alice', docPath);
  await expect(cellEditor(alice, 0)).toHaveText('a = 1');

  // Twice: the second save is where a stale hash in the browser shows "File Changed".
  for (const round of [1, 2]) {
    const line = `saved_in_round_${round} = ${round}`;
    await typeAtEnd(alice, cellEditor(alice, 0), `\n${line}`);
    await expect(cellEditor(alice, 0)).toContainText(line);

    expect(await saveWithCtrlS(alice), `Ctrl+S number ${round}`).toBe('completed');
    await expect(alice.locator('.jp-Dialog')).toHaveCount(0);
    await expect
      .poll(() => joinText(notebookOnDisk(docPath)?.[0]?.source), { message: 'cell source on disk' })
      .toContain(line);
  }
  // Ctrl+S out of habit on a document that has nothing new to write: still no error.
  expect(await saveWithCtrlS(alice), 'Ctrl+S with nothing new to save').toBe('completed');
  await expect(alice.locator('.jp-Dialog')).toHaveCount(0);

  // The document is clean after the save: no unsaved-changes mark on its tab.
  await expect(alice.locator('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current')).not.toHaveClass(
    /jp-mod-dirty/
  );
});
