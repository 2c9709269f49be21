/**
 * m. Save failures and edit conflicts.
 *
 * The server's "conflict" message (raw `{"type":"conflict"}` on the room websocket: the
 * file changed on disk while the document had unsaved edits). The stock docprovider opens a
 * modal "Edit Conflict" dialog whose focused button takes the next keystrokes; with the
 * companion extension it is a notification and typing goes on in the notebook.
 *
 * The message is injected into the page's room websocket (Playwright routes it and forwards
 * everything else both ways), byte for byte what the server sends.
 */
import { BrowserContext, WebSocketRoute } from '@playwright/test';
import { cellEditor, expect, test, typeAtEnd } from './helpers/lab';

/** y-websocket raw message: varUint 2, then the JSON as a varString. */
function rawMessage(json: object): Buffer {
  const text = Buffer.from(JSON.stringify(json), 'utf-8');
  if (text.length > 127) {
    throw new Error('keep the JSON under 128 bytes: one-byte varUint length');
  }
  return Buffer.concat([Buffer.from([2, text.length]), text]);
}

test('m. the server reports an edit conflict: a dialog in stock, a notification with the companion @both', async ({ lab }, testInfo) => {
  const companion = testInfo.project.name === 'companion';
  const docPath = await lab.newNotebook('m-conflict', ['x = 1']);
  let room: WebSocketRoute | null = null;
  const route = async (context: BrowserContext) => {
    await context.routeWebSocket(/\/api\/collaboration\/room\/json:notebook:/, ws => {
      ws.connectToServer();
      room = ws;
    });
  };
  const alice = await lab.open('alice', docPath, 'alice', route);
  await expect(cellEditor(alice, 0)).toHaveText('x = 1');
  await expect.poll(() => room !== null).toBe(true);

  room!.send(rawMessage({ type: 'conflict' }));
  if (!companion) {
    // Stock: a modal dialog, its button focused.
    await expect(alice.locator('.jp-Dialog')).toContainText('Edit Conflict');
    await lab.screenshot(alice, 'stock-edit-conflict-dialog');
    await alice.locator('.jp-Dialog button', { hasText: 'Dismiss' }).click();
    await expect(alice.locator('.jp-Dialog')).toHaveCount(0);
    return;
  }
  const toast = alice.locator('.Toastify__toast').filter({ hasText: 'Edit conflict' });
  await expect(toast).toBeVisible();
  await expect(toast.locator('button', { hasText: 'Reload' })).toBeVisible();
  await expect(alice.locator('.jp-Dialog')).toHaveCount(0);
  // Typing goes on in the notebook, not into a dialog.
  await typeAtEnd(alice, cellEditor(alice, 0), '  # typed after the conflict');
  await expect(cellEditor(alice, 0)).toHaveText('x = 1  # typed after the conflict');
  await lab.screenshot(alice, 'companion-edit-conflict-notification');
});

/** The client's save request: varUint 2, varString "save", varUint request id. */
function saveRequestId(data: Buffer): number | null {
  if (data.length < 7 || data[0] !== 2 || data[1] !== 4 || data.subarray(2, 6).toString() !== 'save') {
    return null;
  }
  return data[6] < 128 ? data[6] : null;
}

test('m. a save the server reports failed: an error dialog in stock, a notification with the companion @both', async ({ lab }, testInfo) => {
  const companion = testInfo.project.name === 'companion';
  const docPath = await lab.newNotebook('m-save-failed', ['y = 2']);
  // The server's answer to each Ctrl+S becomes "failed" (as when the disk is full).
  const route = async (context: BrowserContext) => {
    await context.routeWebSocket(/\/api\/collaboration\/room\/json:notebook:/, ws => {
      const server = ws.connectToServer();
      ws.onMessage(message => {
        const data = typeof message === 'string' ? Buffer.from(message) : message;
        const id = saveRequestId(data);
        if (id === null) {
          server.send(message);
        } else {
          ws.send(rawMessage({ type: 'save', responseTo: id, status: 'failed' }));
        }
      });
    });
  };
  const alice = await lab.open('alice', docPath, 'alice', route);
  await expect(cellEditor(alice, 0)).toHaveText('y = 2');
  await typeAtEnd(alice, cellEditor(alice, 0), '  # unsaved');
  await alice.keyboard.press('Control+s');
  if (!companion) {
    await expect(alice.locator('.jp-Dialog')).toContainText('File Save Error');
    await lab.screenshot(alice, 'stock-save-error-dialog');
    return;
  }
  await expect(alice.locator('.Toastify__toast').filter({ hasText: 'File Save Error' })).toBeVisible();
  await expect(alice.locator('.jp-Dialog')).toHaveCount(0);
  await typeAtEnd(alice, cellEditor(alice, 0), ' and more');
  await expect(cellEditor(alice, 0)).toHaveText('y = 2  # unsaved and more');
  await lab.screenshot(alice, 'companion-save-failed-notification');
});
