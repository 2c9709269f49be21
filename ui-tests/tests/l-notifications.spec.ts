/**
 * l. Notifications of the companion extension, and its settings in JupyterLab's settings
 * registry: a run longer than the threshold ends, whoever started it (a collaborator
 * through the REST API with no browser, a headless `collab-kernels run` of a notebook
 * nobody has open); the file changed on disk and the document took it: a notification,
 * never a dialog.
 */
import { Page } from '@playwright/test';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { BASE_URL, TOKENS, UI_TESTS_DIR } from './helpers/constants';
import { cellEditor, expect, outputArea, test, waitForKernelIdle } from './helpers/lab';
import { notebookJSON, notebooksDir } from './helpers/server';

const SETTINGS = '/lab/api/settings/collab-kernels-labextension:plugin';
const SLOW = 'import time\ntime.sleep(2.5)\nprint("slow cell done")';

function toasts(page: Page) {
  return page.locator('.Toastify__toast');
}

test('l. notifications: long runs by others and headless runs end, file reloaded @companion', async ({ lab }) => {
  // The settings registry holds the extension's settings (schema/plugin.json); everyone reads
  // them, the instructor may change them (the server asks the authorizer): a threshold of
  // 2 s and a look at the run list every second, as in the settings editor.
  const teacher = lab.api('teacher');
  const schema = await lab.api('alice').request('GET', SETTINGS);
  expect(schema.schema.properties.notifyRunSeconds.default).toBe(30);
  await teacher.request('PUT', SETTINGS, { raw: JSON.stringify({ notifyRunSeconds: 2, pollSeconds: 1 }) });
  try {
    const docPath = await lab.newNotebook('l-notify', [SLOW, 'quick = 1']);
    const other = await lab.newNotebook('l-headless', [SLOW]);
    const page = await lab.open('alice', docPath);
    await waitForKernelIdle(page);
    const readIds = () =>
      page.evaluate(() => {
        const w = (window as any).jupyterapp.shell.currentWidget;
        return {
          kernel: w?.sessionContext?.session?.kernel?.id as string | undefined,
          document: w?.context?.model?.sharedModel?.getState('document_id') as string | undefined,
          cells: (w?.content?.widgets || []).map((c: any) => c.model.id) as string[]
        };
      });
    await expect.poll(async () => { const i = await readIds(); return Boolean(i.kernel && i.document); }).toBe(true);
    const ids = await readIds();

    // Bob runs the slow cell through the REST API, with no browser: Alice is told when it ends.
    await lab.api('bob').request('POST', `/api/kernels/${ids.kernel}/execute`, {
      cell_id: ids.cells[0],
      document_id: ids.document
    });
    await expect(outputArea(page, 0)).toContainText('slow cell done');
    await expect(toasts(page).filter({ hasText: /l-notify.*the run by bob finished after \d+ s/ })).toBeVisible();
    // A short run (under the threshold) ends without one.
    await lab.api('bob').request('POST', `/api/kernels/${ids.kernel}/execute`, {
      cell_id: ids.cells[1],
      document_id: ids.document
    });
    await expect(page.locator('.jp-Cell').nth(1).locator('.jp-InputArea-prompt')).toHaveText('[2]:');
    await lab.screenshot(page, 'alice-told-bobs-run-ended');

    // A headless run of a notebook nobody has open.
    const venv = process.env.CK_UI_VENV || path.join(path.dirname(UI_TESTS_DIR), '.venv');
    await new Promise<void>((resolve, reject) =>
      execFile(
        path.join(venv, 'bin', 'collab-kernels'),
        ['run', other, '--server', lab.baseURL, '--token', TOKENS.bob, '--no-progress'],
        { env: { ...process.env, PYTHONPATH: path.dirname(UI_TESTS_DIR) } },
        (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stdout}\n${stderr}`)) : resolve())
      )
    );
    await expect(toasts(page).filter({ hasText: /l-headless.*the run by bob finished after \d+ s/ })).toBeVisible();
    await lab.screenshot(page, 'alice-told-headless-run-ended');

    // The file changes on disk while nobody has unsaved edits: the document takes the new
    // content, and Alice is told so by a notification, with no dialog in her way.
    const file = path.join(notebooksDir(), docPath);
    const changed = notebookJSON(['print("changed on disk")']) as any;
    fs.writeFileSync(file, JSON.stringify(changed));
    await expect(cellEditor(page, 0)).toHaveText('print("changed on disk")');
    await expect(toasts(page).filter({ hasText: /changed on disk/ })).toBeVisible();
    await expect(page.locator('.jp-Dialog')).toHaveCount(0);
    await lab.screenshot(page, 'alice-told-file-reloaded');
  } finally {
    await teacher.request('PUT', SETTINGS, { raw: '{}' });
  }
});
