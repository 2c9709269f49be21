/**
 * f. The server restarts while a page is open. The page must end up with the notebook
 * once, not duplicated: either it offers a reload (the server refuses to merge the page's
 * old Y history into the document it rebuilt from disk) or it resyncs cleanly. Either way
 * it is live again afterwards.
 *
 * This test starts and stops its own JupyterLab (LabServer) on another port.
 */
import { Page } from '@playwright/test';
import { REPORT_DIR, RESTART_PORT } from './helpers/constants';
import { Lab, cellEditor, cells, expect, test, typeAtEnd } from './helpers/lab';
import { LabServer, joinText, notebookOnDisk } from './helpers/server';

const SOURCES = ['first = 1', 'second = 2', 'third = 3'];

/**
 * Lets the page settle after the restart as a person would: answers the dialogs JupyterLab
 * raises while its server is away (kernel errors, server connection errors), takes the
 * reload when it is offered, and returns once what the page types reaches a fresh context.
 */
async function waitUntilLiveAgain(lab: Lab, page: Page, docPath: string, events: string[]): Promise<void> {
  const deadline = Date.now() + 150_000;
  let attempt = 0;
  while (Date.now() < deadline) {
    const dialog = page.locator('.jp-Dialog');
    // Dialogs come one after the other (JupyterLab queues them): wait a little for the next.
    const shown = await dialog
      .first()
      .waitFor({ state: 'visible', timeout: 5_000 })
      .then(
        () => true,
        () => false
      );
    if (shown) {
      const text = (await dialog.first().innerText()).replace(/\s+/g, ' ').trim();
      events.push(`dialog: ${text}`);
      if (events.filter(e => e.startsWith('dialog:')).length === 1) {
        await lab.screenshot(page, 'alice-first-dialog-after-restart');
      }
      const reload = dialog.first().locator('button', { hasText: 'Reload' });
      if (await reload.count()) {
        await Promise.all([page.waitForEvent('load', { timeout: 60_000 }), reload.first().click()]);
        events.push('reloaded the page');
        await expect(cellEditor(page, 0)).toContainText('first = 1', { timeout: 60_000 });
      } else {
        // The default button (Ok, Close, Select) is the last one.
        await dialog.first().locator('.jp-Dialog-footer button').last().click();
      }
      continue;
    }
    // No dialog: is the page live? Type a marker and look for it from a fresh context.
    const marker = `# live after restart ${++attempt}`;
    try {
      await typeAtEnd(page, cellEditor(page, 2), `  ${marker}`);
      const probe = await lab.open('bob', docPath, `bob-probe-${attempt}`);
      await expect(cellEditor(probe, 2)).toContainText(marker, { timeout: 20_000 });
      await lab.close(probe);
      events.push(`live: attempt ${attempt} reached a fresh context`);
      return;
    } catch (err) {
      events.push(`attempt ${attempt} not live: ${String(err).split('\n')[0]}`);
    }
  }
  throw new Error(`the page did not come back after the restart: ${events.join('; ')}`);
}

test('f. server restarted while a page is open: no duplicated cells', async ({ browser }, testInfo) => {
  test.setTimeout(300_000);
  const server = new LabServer(RESTART_PORT, REPORT_DIR);
  const lab = new Lab(browser, testInfo, server.baseURL);
  const events: string[] = [];
  try {
    await server.start();
    const docPath = await lab.newNotebook('f-restart', SOURCES);
    const alice = await lab.open('alice', docPath);
    await expect(cellEditor(alice, 0)).toHaveText('first = 1');
    await typeAtEnd(alice, cellEditor(alice, 0), '  # before restart');
    // On disk (the server's own save) before the restart, so the new process loads it.
    await expect.poll(() => joinText(notebookOnDisk(docPath, server.root)?.[0]?.source)).toContain('before restart');

    await server.stop();
    await server.start();
    await waitUntilLiveAgain(lab, alice, docPath, events);
    await lab.note('what the page did after the restart', events.join('\n'));

    // Exactly the three cells, in the page, for a newcomer, and on disk after a save.
    const bob = await lab.open('bob', docPath, 'bob-after-restart');
    for (const page of [alice, bob]) {
      await expect(cells(page)).toHaveCount(3);
      await expect(cellEditor(page, 0)).toHaveText('first = 1  # before restart');
      await expect(cellEditor(page, 1)).toHaveText('second = 2');
      await expect(cellEditor(page, 2)).toContainText('third = 3');
      await expect(cellEditor(page, 2)).toContainText('# live after restart');
    }
    // The server's own save writes the same three cells (Ctrl+S is scenario e's business).
    await expect
      .poll(() => notebookOnDisk(docPath, server.root)?.map(c => joinText(c.source)))
      .toEqual(['first = 1  # before restart', 'second = 2', expect.stringContaining('# live after restart')]);
  } finally {
    await lab.finish();
    await server.stop();
  }
});
