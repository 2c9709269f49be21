/**
 * i. input() in a server-side run. With the companion extension, the prompt shows under the
 * cell for everyone allowed to answer (with who asked), the first answer wins and the
 * others see it answered, a password prompt is masked, and a viewer sees it waiting without
 * being able to answer. With the stock frontend alone nobody gets a prompt: the cell stays
 * [*] until an answer comes through the REST API (as `collab-kernels attach` sends it), and
 * then the run goes on for everyone.
 */
import { Page } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';
import { notebooksDir } from './helpers/server';
import { cell, cellEditor, expect, outputArea, prompt, runCell, test, waitForKernelIdle } from './helpers/lab';

const ASK = 'name = input("Your name? ")\nprint(f"hello {name}")';
// Waits after the answer until the test creates the file: the run is still going while the
// test looks at the answered prompt.
const ASK_AND_WAIT = [
  'import os, time',
  'name = input("Your name? ")',
  'print(f"hello {name}", flush=True)',
  'while not os.path.exists("i-release-" + name):',
  '    time.sleep(0.05)'
].join('\n');
const SECRET = 'import getpass\nsecret = getpass.getpass("Password: ")\nprint("secret has", len(secret), "characters")';

function inputPrompt(page: Page, index: number) {
  return cell(page, index).locator('.ck-InputPrompt');
}

test('i. input() prompt: shown to everyone allowed, first answer wins, password masked @companion', async ({ lab }) => {
  const docPath = await lab.newNotebook('i-input', [ASK_AND_WAIT, SECRET]);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  const viewer = await lab.open('viewer', docPath);
  await waitForKernelIdle(alice);

  await runCell(alice, 0);
  for (const page of [alice, bob, viewer]) {
    await expect(prompt(page, 0)).toHaveText('[*]:');
    await expect(inputPrompt(page, 0)).toBeVisible();
    await expect(inputPrompt(page, 0)).toContainText('Your name?');
    await expect(inputPrompt(page, 0)).toContainText("asked by alice's run");
  }
  // The viewer sees the question but cannot answer it.
  await expect(inputPrompt(viewer, 0).locator('input')).toBeDisabled();
  await expect(inputPrompt(viewer, 0)).toContainText('Waiting for someone allowed to run cells');
  await lab.screenshot(bob, 'bob-sees-alices-prompt');

  // Bob answers first: everyone sees it answered and the run goes on (until the file named
  // after the answer exists: unique to this run of the test).
  const answer = `Bob${Date.now().toString(36)}`;
  await inputPrompt(bob, 0).locator('input').fill(answer);
  await inputPrompt(bob, 0).locator('input').press('Enter');
  await expect(inputPrompt(bob, 0)).toContainText('Answered by you');
  for (const page of [alice, viewer]) {
    await expect(inputPrompt(page, 0)).toContainText('Answered');
    await expect(inputPrompt(page, 0).locator('input')).toBeDisabled();
  }
  for (const page of [alice, bob, viewer]) {
    await expect(outputArea(page, 0)).toContainText(`Your name? ${answer}`);
    await expect(outputArea(page, 0)).toContainText(`hello ${answer}`);
  }
  await lab.screenshot(alice, 'alice-sees-it-answered-by-bob');
  fs.writeFileSync(path.join(notebooksDir(), `i-release-${answer}`), '');
  for (const page of [alice, bob, viewer]) {
    await expect(prompt(page, 0)).toHaveText('[1]:');
    // The run ended: the prompt is gone.
    await expect(inputPrompt(page, 0)).toHaveCount(0);
  }
  // A second answer to a prompt already answered is refused by the server (409).
  const late = await lab.api('alice').request('POST', `/api/kernels/${await kernelId(alice)}/input`, {
    document_id: await documentId(alice),
    cell_id: await cellId(alice, 0),
    value: 'Alice'
  }).then(() => 'accepted', (err: Error) => err.message);
  expect(late).toMatch(/409/);

  // A password prompt: masked for those who answer, never echoed into the output.
  await runCell(bob, 1);
  for (const page of [alice, bob]) {
    await expect(inputPrompt(page, 1).locator('input')).toHaveAttribute('type', 'password');
  }
  await expect(inputPrompt(alice, 1)).toContainText("asked by bob's run");
  await inputPrompt(alice, 1).locator('input').fill('hunter22');
  await lab.screenshot(alice, 'alice-types-a-password');
  await inputPrompt(alice, 1).locator('button', { hasText: 'Send' }).click();
  for (const page of [alice, bob, viewer]) {
    await expect(outputArea(page, 1)).toContainText('secret has 8 characters');
    await expect(outputArea(page, 1)).not.toContainText('hunter22');
    await expect(prompt(page, 1)).toHaveText('[2]:');
  }
});

test('i. input() with the stock frontend alone: no prompt, answered through the API', async ({ lab }) => {
  const docPath = await lab.newNotebook('i-input-stock', [ASK]);
  const alice = await lab.open('alice', docPath);
  const bob = await lab.open('bob', docPath);
  await waitForKernelIdle(alice);
  await runCell(alice, 0);
  for (const page of [alice, bob]) {
    await expect(prompt(page, 0)).toHaveText('[*]:');
    await expect(cell(page, 0).locator('.ck-InputPrompt')).toHaveCount(0);
  }
  // What `collab-kernels attach` does when its user types the answer.
  const kernel = await kernelId(alice);
  const body = { document_id: await documentId(alice), cell_id: await cellId(alice, 0), value: 'CLI' };
  await expect
    .poll(() => lab.api('bob').request('POST', `/api/kernels/${kernel}/input`, body).then(() => 'ok', (e: Error) => e.message))
    .toBe('ok');
  for (const page of [alice, bob]) {
    await expect(outputArea(page, 0)).toContainText('hello CLI');
    await expect(prompt(page, 0)).toHaveText('[1]:');
  }
  await expect(cellEditor(bob, 0)).toContainText('input(');
});

async function kernelId(page: Page): Promise<string> {
  return page.evaluate(() => (window as any).jupyterapp.shell.currentWidget.sessionContext.session.kernel.id);
}

async function documentId(page: Page): Promise<string> {
  return page.evaluate(() => (window as any).jupyterapp.shell.currentWidget.context.model.sharedModel.getState('document_id'));
}

async function cellId(page: Page, index: number): Promise<string> {
  return page.evaluate(i => (window as any).jupyterapp.shell.currentWidget.content.widgets[i].model.id, index);
}
