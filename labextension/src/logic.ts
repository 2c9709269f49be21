/**
 * Pure functions of the companion extension: what the server's data means for a person.
 * No JupyterLab imports here, so `npm test` (node's test runner) covers them directly.
 */

/** A pending input() prompt, as the server writes it into the `execution` root map. */
export interface InputRequest {
  prompt: string;
  password: boolean;
}

/** One cell's entry of the document's `execution` root map (written by the server). */
export interface ExecutionEntry {
  status: 'running' | 'queued' | 'aborted' | string;
  request_id?: string;
  kernel_id?: string;
  position?: number;
  input_request?: InputRequest;
}

/** A prompt waiting in a cell of this document. */
export interface PendingPrompt {
  cellId: string;
  requestId: string;
  kernelId: string;
  prompt: string;
  password: boolean;
}

/** An execute request as `GET /api/kernels/{id}/requests` lists it. */
export interface RunInfo {
  request_id: string;
  kernel_id: string;
  document_id: string;
  path?: string;
  status: 'queued' | 'running' | 'done' | string;
  result?: string | null;
  username?: string | null;
  cells: { cell_id: string; status: string; result?: string | null }[];
  created?: string;
  started?: string | null;
  finished?: string | null;
  input_request?: { cell_id: string; prompt: string; password: boolean } | null;
}

/** `GET /api/me?permissions=...`'s answer, reduced to what the extension asks. */
export interface Permissions {
  [resource: string]: string[];
}

/** The prompts waiting for an answer, from the `execution` map's JSON. */
export function pendingPrompts(entries: Record<string, ExecutionEntry | unknown>): PendingPrompt[] {
  const prompts: PendingPrompt[] = [];
  for (const [cellId, value] of Object.entries(entries || {})) {
    const entry = value as ExecutionEntry;
    if (!entry || typeof entry !== 'object' || entry.status !== 'running') {
      continue;
    }
    const request = entry.input_request;
    if (!request || typeof request !== 'object') {
      continue;
    }
    prompts.push({
      cellId,
      requestId: String(entry.request_id ?? ''),
      kernelId: String(entry.kernel_id ?? ''),
      prompt: String(request.prompt ?? ''),
      password: Boolean(request.password)
    });
  }
  return prompts;
}

/** Whose rights allow typing into documents. */
export function canEdit(permissions: Permissions | null): boolean {
  // Unknown rights (an older server, a failed request): do not lock anybody out.
  if (!permissions) {
    return true;
  }
  return (permissions['contents'] || []).includes('write');
}

/** Whose rights allow running cells, answering input() and cancelling runs. */
export function canExecute(permissions: Permissions | null): boolean {
  if (!permissions) {
    return true;
  }
  return (permissions['kernels'] || []).includes('execute');
}

/** Seconds between two ISO times (`end` defaults to now). */
export function secondsBetween(start: string | null | undefined, end?: string | null, now = Date.now()): number {
  if (!start) {
    return 0;
  }
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  if (Number.isNaN(from) || Number.isNaN(to)) {
    return 0;
  }
  return Math.max(0, (to - from) / 1000);
}

/** "4 s", "2 min 5 s", "1 h 3 min". */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.floor(seconds));
  if (total < 60) {
    return `${total} s`;
  }
  const minutes = Math.floor(total / 60);
  if (minutes < 60) {
    const rest = total % 60;
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

/** The runs of one document still queued or running: the running one first, then in order. */
export function activeRuns(runs: RunInfo[], documentId: string): RunInfo[] {
  const active = runs.filter(r => r.document_id === documentId && (r.status === 'running' || r.status === 'queued'));
  const rank = (r: RunInfo) => (r.status === 'running' ? 0 : 1);
  return active.sort((a, b) => rank(a) - rank(b) || (a.created || '').localeCompare(b.created || ''));
}

/** Cells of a run not yet finished. */
export function cellsLeft(run: RunInfo): number {
  return run.cells.filter(c => c.status === 'queued' || c.status === 'running').length;
}

/** One line for the run queue: "bob · running 2 of 3 cells · for 1 min 4 s". */
export function describeRun(run: RunInfo, now = Date.now()): string {
  const who = run.username || 'someone';
  const total = run.cells.length;
  const cells = total === 1 ? '1 cell' : `${total} cells`;
  if (run.status === 'running') {
    const done = total - cellsLeft(run);
    const which = total === 1 ? cells : `cell ${Math.min(done + 1, total)} of ${total}`;
    const waiting = run.input_request ? ', waiting for input' : '';
    return `${who} · running ${which}${waiting} · for ${formatDuration(secondsBetween(run.started, null, now))}`;
  }
  return `${who} · ${cells} queued · since ${formatDuration(secondsBetween(run.created, null, now))}`;
}

/** A run that ended and deserves a notification. */
export interface EndedRun {
  run: RunInfo;
  seconds: number;
  ok: boolean;
  message: string;
}

/**
 * Follows the server's list of runs between two looks at it and says which runs ended in
 * between and took at least `thresholdSeconds`. The first look only learns what is there
 * (runs that ended before this page opened are not news); a run that began and ended
 * between two looks is reported when it ended after the first look.
 */
export class RunWatcher {
  private seen = new Map<string, string>();
  private since: number | null = null;

  constructor(public thresholdSeconds: number) {}

  update(runs: RunInfo[], now = Date.now()): EndedRun[] {
    const first = this.since === null;
    const since = this.since ?? now;
    this.since = first ? now : this.since;
    const ended: EndedRun[] = [];
    for (const run of runs) {
      const before = this.seen.get(run.request_id);
      this.seen.set(run.request_id, run.status);
      if (first || run.status !== 'done' || before === 'done') {
        continue;
      }
      const finished = run.finished ? Date.parse(run.finished) : now;
      if (before === undefined && !(finished >= since)) {
        continue;
      }
      const seconds = secondsBetween(run.started || run.created, run.finished, now);
      if (seconds < this.thresholdSeconds) {
        continue;
      }
      ended.push({ run, seconds, ok: run.result === 'ok', message: endMessage(run, seconds) });
    }
    return ended;
  }
}

/** "welcome.ipynb: the run by bob ended after 1 min 2 s (error)". */
export function endMessage(run: RunInfo, seconds: number): string {
  const name = (run.path || run.document_id).split('/').pop();
  const who = run.username ? ` by ${run.username}` : '';
  const result = run.result === 'ok' ? 'finished' : `ended (${run.result || 'unknown'})`;
  return `${name}: the run${who} ${result} after ${formatDuration(seconds)}`;
}

/** A room event of the server's event bus (schema https://collab-kernels.jupyter.org/rooms/v1). */
export interface RoomEvent {
  action: string;
  path?: string;
  room_id?: string;
  message?: string;
}

/** How a room event is shown: its notification kind and text, or null to show nothing. */
export function roomEventNotice(
  event: RoomEvent
): { kind: 'error' | 'warning' | 'info' | 'success'; text: string } | null {
  const name = (event.path || '').split('/').pop() || 'a document';
  const message = event.message || event.action;
  switch (event.action) {
    case 'save_failed':
      return { kind: 'error', text: `${name}: ${message}` };
    case 'conflict':
    case 'overwritten':
      return { kind: 'warning', text: `${name}: ${message}` };
    case 'merged':
      // A three-way merge of the file's and the document's changes; cells changed on both
      // sides kept the document's version (the message names the checkpoint).
      return { kind: /both sides/.test(message) ? 'warning' : 'info', text: `${name}: ${message}` };
    case 'saved':
      // Only sent when a document is saved again after failed saves.
      return { kind: 'success', text: `${name}: ${message}` };
    case 'reloaded':
    case 'renamed':
    case 'deleted':
      return { kind: 'info', text: `${name}: ${message}` };
    default:
      return null;
  }
}

/** What a refused run (the answer to the docprovider's POST .../execute) means for a person. */
export function executeRefusal(status: number, message: string): { text: string; chooseKernel: boolean } {
  const why = message ? `: ${message}` : '';
  switch (status) {
    case 403:
      return { text: `The cell was not run: your role does not allow running cells here${why}.`, chooseKernel: false };
    case 404:
      return {
        // Toasts show about 140 characters: what matters first.
        text: `Not run: this notebook's kernel is gone (shut down or culled). Choose or start a kernel${why}`,
        chooseKernel: true
      };
    case 409:
      return { text: `The cell was not run${why}.`, chooseKernel: false };
    default:
      return { text: `The cell was not run (${status})${why}.`, chooseKernel: false };
  }
}

/** Whether a request is the docprovider's server-side execution of a cell. */
export function isExecutePost(url: string, method: string | undefined): boolean {
  if ((method || 'GET').toUpperCase() !== 'POST') {
    return false;
  }
  const path = url.split('?')[0];
  return /\/api\/kernels\/[^/]+\/execute$/.test(path);
}
