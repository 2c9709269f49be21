/**
 * The browser side: a `lab` fixture that opens documents in JupyterLab as a given user,
 * each in its own browser context (its own cookies: a separate person or device), and at
 * the end of every test saves a screenshot of each page still open into
 * playwright-report/screenshots/ (also attached to the test in the HTML report).
 */
import { Browser, BrowserContext, Locator, Page, TestInfo, expect, test as base } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';
import { SCREENSHOT_DIR, TOKENS, UserName } from './constants';
import { Api, CellSpec } from './server';

interface Opened {
  label: string;
  context: BrowserContext;
  page: Page;
}

let workspaceCounter = 0;

export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 48)
    .replace(/-$/, '');
}

export class Lab {
  private opened: Opened[] = [];
  private consoleLines: string[] = [];
  private created = new Set<string>();

  constructor(
    private browser: Browser,
    private testInfo: TestInfo,
    public baseURL: string
  ) {}

  /** Report file names: the test's title, and the project unless it is the stock one. */
  private fileStem(): string {
    const project = this.testInfo.project.name;
    return slug(this.testInfo.title) + (project && project !== 'stock' ? `--${project}` : '');
  }

  /** REST API as a user, on this Lab's server. */
  api(user: UserName = 'alice'): Api {
    return new Api(this.baseURL, user);
  }

  /** A notebook of this test's own, with a name unique to the test (and its retry). */
  async newNotebook(name: string, cells: CellSpec[]): Promise<string> {
    const docPath = `${name}-${this.testInfo.retry}-${Date.now().toString(36)}.ipynb`;
    await this.api().createNotebook(docPath, cells);
    this.created.add(docPath);
    return docPath;
  }

  async newTextFile(name: string, ext: string, text: string): Promise<string> {
    const docPath = `${name}-${this.testInfo.retry}-${Date.now().toString(36)}.${ext}`;
    await this.api().createTextFile(docPath, text);
    this.created.add(docPath);
    return docPath;
  }

  /**
   * Opens `docPath` in a new browser context logged in as `user`, in a workspace of its
   * own (contexts sharing the default workspace would reopen each other's tabs).
   */
  async open(
    user: UserName,
    docPath: string,
    label: string = user,
    setup?: (context: BrowserContext) => Promise<void>
  ): Promise<Page> {
    const context = await this.browser.newContext({
      baseURL: this.baseURL,
      viewport: { width: 1280, height: 800 }
    });
    if (setup) {
      await setup(context);
    }
    const page = await context.newPage();
    page.on('console', msg => {
      if (['error', 'warning', 'debug'].includes(msg.type()) || /provider|session|reload/i.test(msg.text())) {
        this.consoleLines.push(`${new Date().toISOString()} [${label}] ${msg.type()}: ${msg.text()}`);
      }
    });
    page.on('pageerror', err => this.consoleLines.push(`[${label}] pageerror: ${err.message}`));
    this.opened.push({ label, context, page });
    await this.goto(page, user, docPath);
    return page;
  }

  /** Navigates an open page to `docPath` in a fresh workspace (logging in again). */
  async goto(page: Page, user: UserName, docPath: string): Promise<void> {
    const workspace = `ui-${process.pid}-${++workspaceCounter}`;
    const url = `/lab/workspaces/${workspace}/tree/${encodeURI(docPath)}?token=${TOKENS[user]}`;
    await page.goto(url);
    await expect(page.locator('#jp-main-dock-panel')).toBeVisible({ timeout: 60_000 });
  }

  /** Closes the page's browser context: every tab of that person is gone. */
  async close(page: Page): Promise<void> {
    const index = this.opened.findIndex(o => o.page === page);
    if (index >= 0) {
      const [{ context }] = this.opened.splice(index, 1);
      await context.close();
    }
  }

  /** Screenshot of one page, saved under playwright-report/screenshots and attached. */
  async screenshot(page: Page, label: string): Promise<string> {
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, `${this.fileStem()}--${slug(label)}.png`);
    await page.screenshot({ path: file, timeout: 15_000 });
    await this.testInfo.attach(label, { path: file, contentType: 'image/png' });
    return file;
  }

  /** A text note kept beside the screenshots (and attached): what the test observed. */
  async note(label: string, text: string): Promise<void> {
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, `${this.fileStem()}--${slug(label)}.txt`);
    fs.writeFileSync(file, text + '\n');
    await this.testInfo.attach(label, { path: file, contentType: 'text/plain' });
  }

  /** End of test: a screenshot of every page still open, the console log, then close. */
  async finish(): Promise<void> {
    for (const { label, page } of this.opened) {
      try {
        await this.screenshot(page, `end-${label}`);
      } catch (err) {
        this.consoleLines.push(`[${label}] screenshot failed: ${err}`);
      }
    }
    if (this.consoleLines.length) {
      fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
      fs.writeFileSync(
        path.join(SCREENSHOT_DIR, `${this.fileStem()}--console.txt`),
        this.consoleLines.join('\n') + '\n'
      );
      await this.testInfo.attach('browser console', {
        body: this.consoleLines.join('\n'),
        contentType: 'text/plain'
      });
    }
    for (const { context } of this.opened.splice(0)) {
      await context.close().catch(() => undefined);
    }
    // Shut down this test's kernels: the server lives for the whole run on 2 cores.
    try {
      for (const session of await this.api().sessions()) {
        if (this.created.has(session.path)) {
          await this.api().request('DELETE', `/api/sessions/${session.id}`);
        }
      }
    } catch {
      // the server may be gone (restart scenario)
    }
  }
}

export const test = base.extend<{ lab: Lab }>({
  lab: async ({ browser, baseURL }, use, testInfo) => {
    // notebookOnDisk() and friends read the files of this project's server.
    process.env.CK_UI_CURRENT_ROOT = String(testInfo.project.metadata.root || process.env.CK_UI_ROOT || '');
    const lab = new Lab(browser, testInfo, baseURL!);
    await use(lab);
    await lab.finish();
  }
});
export { expect };

// ---- the notebook and editor as a person sees them ------------------------------------

export function cells(page: Page): Locator {
  return page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');
}

export function cell(page: Page, index: number): Locator {
  return cells(page).nth(index);
}

/** The CodeMirror editor of a notebook cell. */
export function cellEditor(page: Page, index: number): Locator {
  return cell(page, index).locator('.jp-InputArea-editor .cm-content');
}

/** The prompt left of a cell's input: `[ ]:`, `[*]:`, `[3]:`. */
export function prompt(page: Page, index: number): Locator {
  return cell(page, index).locator('.jp-InputArea-prompt');
}

export function outputArea(page: Page, index: number): Locator {
  return cell(page, index).locator('.jp-OutputArea');
}

/** The editor of a text file opened in JupyterLab's file editor. */
export function fileEditor(page: Page): Locator {
  return page.locator('.jp-FileEditor .cm-content');
}

/** Puts the cursor at the end of an editor and types, key by key, as a person would. */
export async function typeAtEnd(page: Page, editor: Locator, text: string): Promise<void> {
  await editor.click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type(text);
}

/** Waits until the notebook's kernel is connected and idle (toolbar indicator). */
export async function waitForKernelIdle(page: Page, timeout = 60_000): Promise<void> {
  await expect(page.locator('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator')).toHaveAttribute(
    'data-status',
    'idle',
    { timeout }
  );
  // The indicator can read idle while the session's PATCH that names the kernel is still in
  // flight; the stock server-side executor then posts to /api/kernels/undefined/execute.
  // A person waits for the kernel's name in the toolbar; the test waits for its id.
  await notebookKernelId(page, timeout);
}

/** Runs a cell the way a person does: click into it, Ctrl+Enter. */
export async function runCell(page: Page, index: number): Promise<void> {
  await cellEditor(page, index).click();
  await page.keyboard.press('Control+Enter');
}

/** The tab of the document in the main area carries jp-mod-dirty while it has unsaved edits. */
export function currentTab(page: Page): Locator {
  return page.locator('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current');
}

/**
 * Presses Ctrl+S in the current document and reports how that save ended, observed on the
 * document context's saveState signal (JupyterLab exposes the app to the page in the
 * ui-test server): "completed", "failed", or "dialog" when a dialog (such as "File
 * Changed") stopped it. Times out as "pending".
 */
export async function saveWithCtrlS(page: Page, timeout = 30_000): Promise<string> {
  await page.evaluate(() => {
    const w = window as any;
    const widget = w.jupyterapp.shell.currentWidget;
    w.__ckSaveStates = [];
    widget.context.saveState.connect((_: unknown, state: string) => w.__ckSaveStates.push(state));
  });
  await page.keyboard.press('Control+s');
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const states: string[] = await page.evaluate(() => (window as any).__ckSaveStates);
    if (states.includes('completed')) {
      return 'completed';
    }
    if (states.includes('failed')) {
      // JupyterLab follows a failed save with a dialog saying why.
      const why = await page
        .locator('.jp-Dialog')
        .first()
        .innerText({ timeout: 5_000 })
        .then(
          text => text.replace(/\s+/g, ' ').trim(),
          () => 'no dialog'
        );
      return `failed: ${why}`;
    }
    const dialog = page.locator('.jp-Dialog');
    if (await dialog.count()) {
      return `dialog: ${(await dialog.first().innerText()).replace(/\s+/g, ' ').trim()}`;
    }
    await page.waitForTimeout(100);
  }
  return 'pending';
}

/** The id of the notebook's kernel, once the page's session has one. */
export async function notebookKernelId(page: Page, timeout = 60_000): Promise<string> {
  const read = () =>
    page.evaluate(() => {
      const widget = (window as any).jupyterapp.shell.currentWidget;
      return (widget?.sessionContext?.session?.kernel?.id as string | undefined) || '';
    });
  await expect.poll(read, { timeout, message: 'the notebook has a kernel' }).not.toBe('');
  return read();
}
