/**
 * j. View only (companion extension): a viewer's notebooks, cells and text editors are
 * read-only and marked "View only"; typing, command-mode edits and running do nothing in
 * the viewer's page (the server refuses them anyway, see d.), while the editors keep
 * editing and the viewer follows them live.
 */
import { cellEditor, cells, expect, fileEditor, test, typeAtEnd, waitForKernelIdle } from './helpers/lab';
import { joinText, notebookOnDisk } from './helpers/server';

test('j. view only: viewer notebooks and text editors are read-only and marked @companion', async ({ lab }) => {
  const docPath = await lab.newNotebook('j-view-only', ['shared = "original"', 'second = 2']);
  const alice = await lab.open('alice', docPath);
  await waitForKernelIdle(alice);
  const viewer = await lab.open('viewer', docPath);
  await expect(cellEditor(viewer, 0)).toHaveText('shared = "original"');

  // The mark, for the viewer only.
  await expect(viewer.locator('.jp-NotebookPanel-toolbar .ck-ViewOnlyMark')).toHaveText('View only');
  await expect(alice.locator('.ck-ViewOnlyMark')).toHaveCount(0);
  await expect(cellEditor(viewer, 0)).toHaveAttribute('aria-readonly', 'true');
  await expect(cellEditor(alice, 0)).not.toHaveAttribute('aria-readonly', 'true');

  // Typing changes nothing, not even in the viewer's own page.
  await typeAtEnd(viewer, cellEditor(viewer, 0), ' + "viewer was here"');
  await expect(cellEditor(viewer, 0)).toHaveText('shared = "original"');
  // Command-mode edits: insert below (b), delete (d d), cut (x): the notebook keeps its cells.
  await viewer.keyboard.press('Escape');
  for (const key of ['b', 'd', 'd', 'x', 'm']) {
    await viewer.keyboard.press(key);
  }
  await expect(cells(viewer)).toHaveCount(2);
  // Running: the page says why nothing happens, and sends nothing.
  let executes = 0;
  viewer.on('request', r => {
    if (r.url().includes('/execute')) {
      executes++;
    }
  });
  await cellEditor(viewer, 1).click();
  await viewer.keyboard.press('Shift+Enter');
  await expect(viewer.locator('.Toastify__toast').filter({ hasText: 'View only' })).toBeVisible();
  expect(executes).toBe(0);
  await lab.screenshot(viewer, 'viewer-notebook-view-only');

  // Alice edits; the viewer follows live.
  await typeAtEnd(alice, cellEditor(alice, 0), '  # alice edits');
  await expect(cellEditor(viewer, 0)).toHaveText('shared = "original"  # alice edits');
  await expect(cells(alice)).toHaveCount(2);
  // The lock is the viewer's page only: nothing of it lands in the document.
  await expect.poll(() => joinText(notebookOnDisk(docPath)?.[0]?.source)).toContain('# alice edits');
  expect(JSON.stringify(notebookOnDisk(docPath)?.map(c => c.metadata))).not.toContain('editable');

  // A text file: read-only and marked as well.
  const textPath = await lab.newTextFile('j-view-only', 'txt', 'first line\n');
  const viewerText = await lab.open('viewer', textPath, 'viewer-text');
  await expect(fileEditor(viewerText)).toContainText('first line');
  await expect(viewerText.locator('.ck-ViewOnlyMark')).toHaveText('View only');
  await typeAtEnd(viewerText, fileEditor(viewerText), 'viewer typed this');
  await expect(fileEditor(viewerText)).not.toContainText('viewer typed this');
  await lab.screenshot(viewerText, 'viewer-text-file-view-only');
});
