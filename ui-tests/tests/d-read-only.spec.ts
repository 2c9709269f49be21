/**
 * d. A read-only viewer (role "viewer": no contents:write, no kernels:execute): what they
 * type never reaches the others or the file, and running a cell is refused by the server.
 */
import {
  cellEditor,
  cells,
  expect,
  outputArea,
  prompt,
  runCell,
  test,
  typeAtEnd,
  waitForKernelIdle
} from './helpers/lab';
import { joinText, notebookOnDisk } from './helpers/server';

const REFUSAL = /read[- ]only|permission|not (allowed|authori[sz]ed|permitted)|forbidden|refused|403/i;

test('d. a read-only viewer cannot edit or run', async ({ lab }) => {
  const docPath = await lab.newNotebook('d-read-only', ['shared = "original"', 'print("ran the second cell")']);
  const alice = await lab.open('alice', docPath);
  await expect(cellEditor(alice, 0)).toHaveText('shared = "original"');
  await waitForKernelIdle(alice); // the session exists before the viewer comes

  const viewer = await lab.open('viewer', docPath);
  await expect(cellEditor(viewer, 0)).toHaveText('shared = "original"');
  // The viewer sees the editors' changes live...
  await typeAtEnd(alice, cellEditor(alice, 0), '  # alice edits');
  await expect(cellEditor(viewer, 0)).toHaveText('shared = "original"  # alice edits');

  // ... but what the viewer types reaches nobody.
  await typeAtEnd(viewer, cellEditor(viewer, 0), ' + "viewer was here"');
  await typeAtEnd(viewer, cellEditor(viewer, 1), '\nprint("viewer code")');
  // A later edit of Alice reaches the viewer: their connection was live all along.
  await typeAtEnd(alice, cellEditor(alice, 1), '  # alice again');
  await expect(cellEditor(viewer, 1)).toContainText('# alice again');
  await expect(cellEditor(alice, 0)).toHaveText('shared = "original"  # alice edits');
  await expect(cellEditor(alice, 1)).toHaveText('print("ran the second cell")  # alice again');
  // Someone opening the notebook now gets the server's copy: no trace of the viewer.
  const bob = await lab.open('bob', docPath);
  await expect(cellEditor(bob, 1)).toContainText('# alice again');
  for (const page of [alice, bob]) {
    await expect(cells(page)).toHaveCount(2);
    await expect(cellEditor(page, 0)).not.toContainText('viewer was here');
    await expect(cellEditor(page, 1)).not.toContainText('viewer code');
  }

  // Running a cell: the server refuses it (403). The stock frontend's server-side cell
  // executor only checks `response.ok` and shows nothing when it is false (JupyterLab has no
  // per-user read-only mode for collaborative documents, jupyterlab/jupyterlab#18369), so
  // what the viewer can be shown is what the server answered: a 403 naming the refusal.
  const refused = viewer.waitForResponse(
    r => r.url().includes('/execute') && r.request().method() === 'POST'
  );
  await runCell(viewer, 1);
  const answer = await refused;
  expect(answer.status()).toBe(403);
  expect(JSON.stringify(await answer.json())).toMatch(REFUSAL);
  await lab.screenshot(viewer, 'viewer-refused');
  // Nothing ran: Alice's run afterwards is the kernel's first execution, and the viewer's
  // cell has neither output nor execution count, anywhere.
  await runCell(alice, 0);
  for (const page of [alice, bob]) {
    await expect(prompt(page, 0)).toHaveText('[1]:');
    await expect(prompt(page, 1)).toHaveText('[ ]:');
    await expect(outputArea(page, 1)).not.toContainText('ran the second cell');
  }

  // The file on disk (the server's own save) has Alice's edits only.
  await expect.poll(() => notebookOnDisk(docPath)?.map(c => joinText(c.source))).toEqual([
    'shared = "original"  # alice edits',
    'print("ran the second cell")  # alice again'
  ]);
});
