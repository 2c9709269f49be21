/**
 * The server side of the browser tests: REST calls as a given user, the files on disk, and
 * LabServer, a JupyterLab the test starts and stops itself (for the restart scenario;
 * every other test uses the server Playwright's webServer started for the whole run).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { START_LAB, TOKENS, UserName } from './constants';

export type CellSpec = string | { type: 'code' | 'markdown'; source: string };

let cellCounter = 0;

/** A notebook in nbformat 4.5 for the python3 kernel, one cell per spec. */
export function notebookJSON(cells: CellSpec[]): object {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' },
      language_info: { name: 'python' }
    },
    cells: cells.map(spec => {
      const { type, source } = typeof spec === 'string' ? { type: 'code' as const, source: spec } : spec;
      const id = `ui-cell-${process.pid}-${++cellCounter}`;
      return type === 'code'
        ? { id, cell_type: 'code', source, metadata: {}, outputs: [], execution_count: null }
        : { id, cell_type: 'markdown', source, metadata: {} };
    })
  };
}

/** jupyter_server's REST API, authenticated as one of the test users. */
export class Api {
  constructor(
    readonly baseURL: string,
    readonly user: UserName = 'alice'
  ) {}

  async request(method: string, urlPath: string, body?: unknown): Promise<any> {
    const response = await fetch(`${this.baseURL}${urlPath}`, {
      method,
      headers: {
        Authorization: `token ${TOKENS[this.user]}`,
        'Content-Type': 'application/json'
      },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    const text = await response.text();
    if (!response.ok) {
      throw new Error(`${method} ${urlPath} as ${this.user}: ${response.status} ${text}`);
    }
    return text ? JSON.parse(text) : null;
  }

  createNotebook(docPath: string, cells: CellSpec[]): Promise<any> {
    return this.request('PUT', `/api/contents/${encodeURI(docPath)}`, {
      type: 'notebook',
      format: 'json',
      content: notebookJSON(cells)
    });
  }

  createTextFile(docPath: string, text: string): Promise<any> {
    return this.request('PUT', `/api/contents/${encodeURI(docPath)}`, {
      type: 'file',
      format: 'text',
      content: text
    });
  }

  sessions(): Promise<any[]> {
    return this.request('GET', '/api/sessions');
  }
}

/** The folder the server serves (root_dir) inside a start-lab.sh state folder. */
export function notebooksDir(root: string = process.env.CK_UI_CURRENT_ROOT || process.env.CK_UI_ROOT || ''): string {
  if (!root) {
    throw new Error('CK_UI_ROOT is not set: run the tests through playwright.config.ts');
  }
  return path.join(root, 'notebooks');
}

/** A file's bytes as they are on disk right now. */
export function readOnDisk(docPath: string, root?: string): string {
  return fs.readFileSync(path.join(notebooksDir(root), docPath), 'utf-8');
}

/** The cells of a notebook file on disk (parsed JSON), or null while it is unreadable. */
export function notebookOnDisk(docPath: string, root?: string): any[] | null {
  try {
    return JSON.parse(readOnDisk(docPath, root)).cells;
  } catch {
    return null;
  }
}

/** Joins a cell's source/stream text, which nbformat may store as a list of lines. */
export function joinText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join('') : value ?? '';
}

/**
 * A JupyterLab (start-lab.sh) owned by one test: start, stop (like Ctrl+C or a service
 * manager would: SIGTERM), start again on the same state folder and port.
 */
export class LabServer {
  readonly root: string;
  readonly logPath: string;
  private proc: ChildProcess | null = null;
  private exited: Promise<void> | null = null;

  constructor(
    readonly port: number,
    logDir: string
  ) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-kernels-ui-restart-'));
    fs.mkdirSync(logDir, { recursive: true });
    this.logPath = path.join(logDir, 'jupyter-server-restart.log');
  }

  get baseURL(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(timeoutMs = 90_000): Promise<void> {
    const log = fs.openSync(this.logPath, 'a');
    fs.writeSync(log, `\n===== start-lab.sh at ${new Date().toISOString()} =====\n`);
    const proc = spawn('bash', [START_LAB], {
      env: { ...process.env, CK_UI_PORT: String(this.port), CK_UI_ROOT: this.root },
      stdio: ['ignore', log, log],
      detached: true // own process group: stop() reaches the kernels too
    });
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise(resolve => proc.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    const api = new Api(this.baseURL);
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) {
        throw new Error(`JupyterLab exited with ${proc.exitCode}; see ${this.logPath}`);
      }
      try {
        await api.request('GET', '/api/me');
        return;
      } catch {
        await new Promise(resolve => setTimeout(resolve, 250));
      }
    }
    throw new Error(`JupyterLab did not answer on port ${this.port} within ${timeoutMs} ms`);
  }

  async stop(timeoutMs = 30_000): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.pid === undefined) {
      return;
    }
    process.kill(-proc.pid, 'SIGTERM');
    const timer = new Promise<'timeout'>(resolve => setTimeout(() => resolve('timeout'), timeoutMs));
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      process.kill(-proc.pid, 'SIGKILL');
      await this.exited;
    }
    // Kernels of the process group may outlive the server by a moment.
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    this.proc = null;
  }
}

/**
 * Waits until every execute request of a document has finished (the execution stage's
 * GET /api/collaboration/requests), with no browser needed. Returns the requests.
 */
export async function waitForRequestsDone(
  api: Api,
  docPath: string,
  { atLeast = 1, timeout = 90_000 } = {}
): Promise<any[]> {
  const deadline = Date.now() + timeout;
  let mine: any[] = [];
  while (Date.now() < deadline) {
    const all: any[] = await api.request('GET', '/api/collaboration/requests');
    mine = all.filter(r => r.path === docPath);
    if (mine.length >= atLeast && mine.every(r => r.status === 'done')) {
      return mine;
    }
    await new Promise(resolve => setTimeout(resolve, 500));
  }
  throw new Error(`requests of ${docPath} not done after ${timeout} ms: ${JSON.stringify(mine)}`);
}
