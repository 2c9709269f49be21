/**
 * collab-kernels-labextension: what the stock JupyterLab collaboration frontend cannot show
 * of a collab_kernels server.
 *
 * - input() prompts of server-side runs, on the cell, for everyone allowed to answer;
 * - view only: viewers' notebooks, cells and text editors are read-only, with a mark;
 * - the run queue of each notebook (who, since when) with cancel and interrupt;
 * - notifications when a long run ends, when a save fails, when a file was reloaded;
 * - its settings in JupyterLab's settings registry.
 *
 * It reads the server's own data: the document's `execution` root map (written by the
 * server into the Y document), `GET /api/me?permissions=`, `GET /api/kernels/{id}/requests`
 * and the server's event bus; it answers prompts with `POST /api/kernels/{id}/input`.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { MessageLoop } from '@lumino/messaging';
import { PanelLayout, Widget } from '@lumino/widgets';

import {
  ExecutionEntry,
  PendingPrompt,
  Permissions,
  RoomEvent,
  RunInfo,
  RunWatcher,
  activeRuns,
  canEdit,
  canExecute,
  describeRun,
  executeRefusal,
  isExecutePost,
  pendingPrompts,
  roomEventNotice
} from './logic';

const PLUGIN_ID = 'collab-kernels-labextension:plugin';
const ROOM_EVENT_SCHEMA = 'https://collab-kernels.jupyter.org/rooms/v1';
const EXECUTION_MAP = 'execution';

interface Settings {
  inputPrompts: boolean;
  viewOnly: boolean;
  runQueue: boolean;
  notifyRuns: boolean;
  notifyRunSeconds: number;
  pollSeconds: number;
  roomNotifications: boolean;
}

const DEFAULTS: Settings = {
  inputPrompts: true,
  viewOnly: true,
  runQueue: true,
  notifyRuns: true,
  notifyRunSeconds: 30,
  pollSeconds: 10,
  roomNotifications: true
};

// ---- the server --------------------------------------------------------------------------

const serverSettings = ServerConnection.makeSettings();

async function api(path: string, init: RequestInit = {}): Promise<any> {
  const url = serverSettings.baseUrl.replace(/\/$/, '') + path;
  const response = await ServerConnection.makeRequest(url, init, serverSettings);
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!response.ok) {
    const message = (body && (body.message || body.reason)) || response.statusText;
    const error = new Error(`${response.status}: ${message}`) as Error & { status?: number };
    error.status = response.status;
    throw error;
  }
  return body;
}

async function fetchPermissions(): Promise<Permissions | null> {
  const asked = { contents: ['read', 'write'], kernels: ['read', 'write', 'execute'] };
  try {
    const me = await api(`/api/me?permissions=${encodeURIComponent(JSON.stringify(asked))}`);
    return (me && me.permissions) || null;
  } catch (err) {
    console.warn('collab_kernels: could not read this user\'s permissions', err);
    return null;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

// ---- input() prompts ---------------------------------------------------------------------

/** The prompt of one cell, shown under its output area. */
class InputPromptWidget extends Widget {
  private input: HTMLInputElement;
  private button: HTMLButtonElement;
  private label: HTMLElement;
  private status: HTMLElement;
  private answeredHere = false;

  constructor(
    private companion: NotebookCompanion,
    public prompt: PendingPrompt
  ) {
    super();
    this.addClass('ck-InputPrompt');
    this.node.dataset.cellId = prompt.cellId;
    const head = el('div', 'ck-InputPrompt-head');
    this.label = el('span', 'ck-InputPrompt-asker');
    head.appendChild(this.label);
    const row = el('form', 'ck-InputPrompt-row');
    const promptText = el('label', 'ck-InputPrompt-text', prompt.prompt || 'input:');
    this.input = el('input', 'ck-InputPrompt-input jp-mod-styled');
    this.input.type = prompt.password ? 'password' : 'text';
    this.input.autocomplete = 'off';
    this.input.spellcheck = false;
    this.input.setAttribute('aria-label', prompt.prompt || 'input');
    this.button = el('button', 'ck-InputPrompt-send jp-mod-styled jp-mod-accept', 'Send');
    this.button.type = 'submit';
    row.append(promptText, this.input, this.button);
    this.status = el('div', 'ck-InputPrompt-status');
    this.node.append(head, row, this.status);
    if (!companion.canExecute) {
      this.input.disabled = true;
      this.button.disabled = true;
      this.status.textContent = 'Waiting for someone allowed to run cells to answer.';
    }
    row.addEventListener('submit', event => {
      event.preventDefault();
      void this.send();
    });
    // Keys typed here belong to the prompt, not to the notebook's shortcuts.
    this.input.addEventListener('keydown', event => event.stopPropagation());
    this.setAsker(null);
  }

  setAsker(username: string | null): void {
    this.label.textContent = username ? `input() asked by ${username}'s run` : 'input() asked by a run';
  }

  focusInput(): void {
    if (!this.input.disabled) {
      this.input.focus();
    }
  }

  private async send(): Promise<void> {
    if (this.input.disabled) {
      return;
    }
    const value = this.input.value;
    this.input.disabled = true;
    this.button.disabled = true;
    this.status.textContent = 'Sending…';
    try {
      await this.companion.answer(this.prompt, value);
      this.answeredHere = true;
      this.markAnswered('Answered by you.');
    } catch (err: any) {
      if (err && err.status === 409) {
        this.markAnswered('Already answered by someone else.');
      } else {
        this.input.disabled = false;
        this.button.disabled = false;
        this.status.textContent = `Could not send: ${err && err.message ? err.message : err}`;
      }
    }
  }

  /** The prompt went away: answered here, by someone else, or the run ended. */
  markAnswered(text?: string): void {
    this.addClass('ck-mod-answered');
    this.input.disabled = true;
    this.button.disabled = true;
    if (this.prompt.password) {
      this.input.value = '';
    }
    this.status.textContent = text || (this.answeredHere ? 'Answered by you.' : 'Answered.');
  }
}

// ---- the run queue -----------------------------------------------------------------------

class RunQueueWidget extends Widget {
  constructor(private companion: NotebookCompanion) {
    super();
    this.addClass('ck-RunQueue');
    this.hide();
  }

  render(runs: RunInfo[]): void {
    this.node.textContent = '';
    if (!runs.length) {
      if (!this.isHidden) {
        this.hide();
        this.refit();
      }
      return;
    }
    const now = Date.now();
    const title = el('div', 'ck-RunQueue-title');
    const running = runs.filter(r => r.status === 'running').length;
    title.textContent = `Runs on this notebook: ${running} running, ${runs.length - running} queued`;
    this.node.appendChild(title);
    for (const run of runs) {
      const row = el('div', `ck-RunQueue-run ck-mod-${run.status}`);
      row.dataset.requestId = run.request_id;
      row.appendChild(el('span', 'ck-RunQueue-text', describeRun(run, now)));
      if (this.companion.canExecute) {
        if (run.status === 'running') {
          const interrupt = el('button', 'ck-RunQueue-interrupt jp-mod-styled', 'Interrupt');
          interrupt.title = 'Interrupt the kernel: stops the running cell; the rest of this run is not run';
          interrupt.onclick = () => void this.companion.interrupt(run);
          row.appendChild(interrupt);
        }
        const cancel = el('button', 'ck-RunQueue-cancel jp-mod-styled', 'Cancel');
        cancel.title = run.status === 'running' ? 'Stop this run (its running cell is interrupted)' : 'Remove this run from the queue';
        cancel.onclick = () => void this.companion.cancel(run);
        row.appendChild(cancel);
      }
      this.node.appendChild(row);
    }
    this.show();
    this.refit();
  }

  /** The notebook panel lays out its header by its children's minimum heights. */
  private refit(): void {
    let content = 0;
    for (const child of Array.from(this.node.children)) {
      content += (child as HTMLElement).offsetHeight;
    }
    // 8 px: the padding and the border of .ck-RunQueue.
    const height = this.isHidden ? 0 : Math.min(content + 9, 160);
    if (this.node.style.minHeight !== `${height}px`) {
      this.node.style.minHeight = `${height}px`;
      let widget: Widget | null = this.parent;
      while (widget) {
        MessageLoop.sendMessage(widget, Widget.Msg.FitRequest);
        if (widget === this.companion.panel) {
          break;
        }
        widget = widget.parent;
      }
    }
  }
}

// ---- one notebook ------------------------------------------------------------------------

class NotebookCompanion {
  private prompts = new Map<string, InputPromptWidget>();
  private queue: RunQueueWidget;
  private runs: RunInfo[] = [];
  private emap: any = null;
  private refreshTimer: number | null = null;
  private tickTimer: number | null = null;
  private disposed = false;
  private viewOnlyMark: Widget | null = null;

  constructor(
    private ext: Companion,
    public panel: NotebookPanel
  ) {
    this.queue = new RunQueueWidget(this);
    panel.contentHeader.addWidget(this.queue);
    panel.disposed.connect(() => this.dispose());
    void this.start();
  }

  get canExecute(): boolean {
    return canExecute(this.ext.permissions);
  }

  get documentId(): string {
    const shared: any = this.panel.context.model.sharedModel;
    return (shared.getState && shared.getState('document_id')) || '';
  }

  private async start(): Promise<void> {
    await this.panel.context.ready;
    if (this.disposed) {
      return;
    }
    this.applyViewOnly();
    const shared: any = this.panel.context.model.sharedModel;
    this.panel.content.model?.cells.changed.connect(() => {
      this.applyViewOnly();
      this.syncPrompts();
    });
    const ydoc = shared.ydoc;
    if (!ydoc || typeof ydoc.getMap !== 'function') {
      return; // not a collaborative document: nothing of the server to show
    }
    this.emap = ydoc.getMap(EXECUTION_MAP);
    this.emap.observe(() => this.onExecutionChanged());
    shared.changed?.connect((_: unknown, change: any) => {
      if (change && change.stateChange && change.stateChange.some((c: any) => c.name === 'document_id')) {
        this.onExecutionChanged();
      }
    });
    this.onExecutionChanged();
  }

  dispose(): void {
    this.disposed = true;
    for (const widget of this.prompts.values()) {
      widget.dispose();
    }
    this.prompts.clear();
    if (this.refreshTimer !== null) {
      window.clearTimeout(this.refreshTimer);
    }
    if (this.tickTimer !== null) {
      window.clearInterval(this.tickTimer);
    }
  }

  private entries(): Record<string, ExecutionEntry> {
    return this.emap ? (this.emap.toJSON() as Record<string, ExecutionEntry>) : {};
  }

  private onExecutionChanged(): void {
    if (this.disposed) {
      return;
    }
    this.syncPrompts();
    this.scheduleRefresh();
    this.ext.watchSoon();
  }

  // -- view only --

  applyViewOnly(): void {
    const locked = this.ext.settings.viewOnly && !canEdit(this.ext.permissions);
    const notebook = this.panel.content;
    this.panel.toggleClass('ck-mod-viewOnly', locked);
    if (this.panel.context.model) {
      this.panel.context.model.readOnly = locked;
    }
    for (const cell of notebook.widgets) {
      setCellReadOnly(cell, locked);
    }
    if (locked && !this.viewOnlyMark) {
      this.viewOnlyMark = viewOnlyMark();
      this.panel.toolbar.insertItem(0, 'ck-view-only', this.viewOnlyMark);
    } else if (!locked && this.viewOnlyMark) {
      this.viewOnlyMark.dispose();
      this.viewOnlyMark = null;
    }
  }

  // -- prompts --

  private cellWidget(cellId: string): Cell | undefined {
    return this.panel.content.widgets.find(cell => cell.model.id === cellId);
  }

  syncPrompts(): void {
    const wanted = this.ext.settings.inputPrompts ? pendingPrompts(this.entries()) : [];
    const byCell = new Map(wanted.map(p => [p.cellId, p]));
    for (const [cellId, widget] of [...this.prompts]) {
      const now = byCell.get(cellId);
      const cell = this.cellWidget(cellId);
      const same = now && now.requestId === widget.prompt.requestId && now.prompt === widget.prompt.prompt;
      if (same && cell && widget.parent === cell) {
        continue;
      }
      const entry = this.entries()[cellId];
      if (!now && entry && entry.status === 'running' && entry.request_id === widget.prompt.requestId && cell) {
        // Answered (here or by someone else); the cell still runs.
        if (!widget.hasClass('ck-mod-answered')) {
          widget.markAnswered();
        }
        continue;
      }
      widget.dispose();
      this.prompts.delete(cellId);
    }
    for (const prompt of wanted) {
      if (this.prompts.has(prompt.cellId)) {
        continue;
      }
      const cell = this.cellWidget(prompt.cellId);
      if (!cell) {
        continue;
      }
      const widget = new InputPromptWidget(this, prompt);
      insertUnderOutputs(cell, widget);
      this.prompts.set(prompt.cellId, widget);
      widget.setAsker(this.askerOf(prompt.requestId));
      if (this.panel.content.activeCell === cell && this.panel.node.contains(document.activeElement)) {
        widget.focusInput();
      }
    }
  }

  private askerOf(requestId: string): string | null {
    const run = this.runs.find(r => r.request_id === requestId);
    return (run && run.username) || null;
  }

  async answer(prompt: PendingPrompt, value: string): Promise<void> {
    await api(`/api/kernels/${encodeURIComponent(prompt.kernelId)}/input`, {
      method: 'POST',
      body: JSON.stringify({ document_id: this.documentId, cell_id: prompt.cellId, value })
    });
  }

  // -- the run queue --

  private kernelIds(): string[] {
    const ids = new Set<string>();
    const kernel = this.panel.sessionContext.session?.kernel;
    if (kernel) {
      ids.add(kernel.id);
    }
    for (const entry of Object.values(this.entries())) {
      if (entry && entry.kernel_id && entry.status !== 'aborted') {
        ids.add(entry.kernel_id);
      }
    }
    return [...ids];
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer !== null) {
      return;
    }
    this.refreshTimer = window.setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh();
    }, 50);
  }

  async refresh(): Promise<void> {
    const documentId = this.documentId;
    const active = Object.values(this.entries()).some(e => e && (e.status === 'running' || e.status === 'queued'));
    let runs: RunInfo[] = [];
    if (documentId && active) {
      for (const kernelId of this.kernelIds()) {
        try {
          const list: RunInfo[] = await api(`/api/kernels/${encodeURIComponent(kernelId)}/requests`);
          runs = runs.concat(list);
        } catch (err) {
          // The kernel is gone or this user may not read it: nothing to list.
        }
      }
    }
    if (this.disposed) {
      return;
    }
    this.runs = activeRuns(runs, documentId);
    for (const widget of this.prompts.values()) {
      widget.setAsker(this.askerOf(widget.prompt.requestId));
    }
    this.renderQueue();
    if (this.runs.length && this.tickTimer === null) {
      this.tickTimer = window.setInterval(() => this.renderQueue(), 1000);
    } else if (!this.runs.length && this.tickTimer !== null) {
      window.clearInterval(this.tickTimer);
      this.tickTimer = null;
    }
  }

  renderQueue(): void {
    this.queue.render(this.ext.settings.runQueue ? this.runs : []);
  }

  async cancel(run: RunInfo): Promise<void> {
    const running = run.status === 'running' ? '?running=1' : '';
    try {
      await api(`/api/kernels/${encodeURIComponent(run.kernel_id)}/requests/${encodeURIComponent(run.request_id)}${running}`, {
        method: 'DELETE'
      });
    } catch (err: any) {
      Notification.warning(`Could not cancel the run: ${err.message || err}`, { autoClose: 8000 });
    }
    void this.refresh();
  }

  async interrupt(run: RunInfo): Promise<void> {
    try {
      await api(`/api/kernels/${encodeURIComponent(run.kernel_id)}/interrupt`, { method: 'POST' });
    } catch (err: any) {
      Notification.warning(`Could not interrupt the kernel: ${err.message || err}`, { autoClose: 8000 });
    }
  }
}

function setCellReadOnly(cell: Cell, locked: boolean): void {
  // Never write the lock into the document ("editable": false in the cell's metadata).
  cell.syncEditable = false;
  if (locked) {
    cell.readOnly = true;
    cell.addClass('ck-mod-viewOnly');
  } else if (cell.hasClass('ck-mod-viewOnly')) {
    cell.readOnly = false;
    cell.removeClass('ck-mod-viewOnly');
  }
}

function insertUnderOutputs(cell: Cell, widget: Widget): void {
  const layout = cell.layout as PanelLayout;
  const outputs = cell instanceof CodeCell ? cell.outputArea?.parent : null;
  const index = outputs ? layout.widgets.indexOf(outputs) : -1;
  if (index >= 0) {
    layout.insertWidget(index + 1, widget);
  } else {
    layout.addWidget(widget);
  }
}

function viewOnlyMark(): Widget {
  const mark = new Widget();
  mark.addClass('ck-ViewOnlyMark');
  mark.node.textContent = 'View only';
  mark.node.title = 'You can read this document and follow it live; your role does not allow editing or running it.';
  return mark;
}

// ---- the extension -----------------------------------------------------------------------

/** Keys that change a notebook in command mode: a view-only notebook ignores them. */
const EDITING_KEYS = new Set(['a', 'b', 'd', 'x', 'v', 'm', 'y', 'r', 'z', '1', '2', '3', '4', '5', '6', 'Delete', 'Backspace']);

class Companion {
  permissions: Permissions | null = null;
  settings: Settings = { ...DEFAULTS };
  notebooks = new Set<NotebookCompanion>();
  private watcher = new RunWatcher(DEFAULTS.notifyRunSeconds);
  private pollTimer: number | null = null;
  private failedSaves = new Map<string, string>();
  private soonTimer: number | null = null;

  constructor(
    private app: JupyterFrontEnd,
    private editors: IEditorTracker | null
  ) {}

  get locked(): boolean {
    return this.settings.viewOnly && !canEdit(this.permissions);
  }

  applySettings(): void {
    this.watcher.thresholdSeconds = this.settings.notifyRunSeconds;
    for (const nb of this.notebooks) {
      nb.applyViewOnly();
      nb.syncPrompts();
      nb.renderQueue();
    }
    this.editors?.forEach(widget => this.applyEditorViewOnly(widget));
    this.restartPolling();
  }

  addNotebook(panel: NotebookPanel): void {
    const companion = new NotebookCompanion(this, panel);
    this.notebooks.add(companion);
    panel.disposed.connect(() => this.notebooks.delete(companion));
  }

  applyEditorViewOnly(widget: IDocumentWidget<any>): void {
    const locked = this.locked;
    void widget.context.ready.then(() => {
      const editor = widget.content && widget.content.editor;
      if (editor) {
        editor.setOption('readOnly', locked);
      }
      widget.context.model.readOnly = locked;
      widget.toggleClass('ck-mod-viewOnly', locked);
      const hasMark = Boolean(widget.node.querySelector('.ck-ViewOnlyMark'));
      if (locked && !hasMark) {
        widget.toolbar.insertItem(0, 'ck-view-only', viewOnlyMark());
      }
    });
  }

  /** A view-only notebook ignores the command-mode keys that would change it. */
  guardKeys(event: KeyboardEvent): void {
    if (!this.locked) {
      return;
    }
    const current = this.app.shell.currentWidget;
    if (!(current instanceof NotebookPanel) || !current.node.contains(event.target as Node)) {
      return;
    }
    const target = event.target as HTMLElement;
    if (target.closest('.ck-InputPrompt')) {
      return;
    }
    const inEditor = Boolean(target.closest('.cm-editor'));
    const run = event.key === 'Enter' && (event.shiftKey || event.ctrlKey || event.altKey || event.metaKey);
    const editKey = !inEditor && !event.ctrlKey && !event.metaKey && !event.altKey && EDITING_KEYS.has(event.key);
    const paste = (event.ctrlKey || event.metaKey) && (event.key === 'v' || event.key === 'x');
    // Split cell (Ctrl+Shift+-) works on read-only editors too.
    const split = event.ctrlKey && event.shiftKey && (event.key === '-' || event.key === '_');
    if (run || editKey || split || (!inEditor && paste)) {
      event.preventDefault();
      event.stopPropagation();
      if (run) {
        Notification.info('View only: your role does not allow running cells.', { autoClose: 4000 });
      }
    }
  }

  // -- notifications of runs --

  watchSoon(): void {
    if (this.soonTimer !== null) {
      return;
    }
    this.soonTimer = window.setTimeout(() => {
      this.soonTimer = null;
      void this.watch();
    }, 300);
  }

  restartPolling(): void {
    if (this.pollTimer !== null) {
      window.clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
    if (this.settings.notifyRuns && canExecuteOrRead(this.permissions) && this.settings.pollSeconds > 0) {
      void this.watch();
      this.pollTimer = window.setInterval(() => void this.watch(), this.settings.pollSeconds * 1000);
    }
  }

  private async watch(): Promise<void> {
    if (!this.settings.notifyRuns) {
      return;
    }
    let runs: RunInfo[];
    try {
      runs = await api('/api/collaboration/requests');
    } catch {
      return;
    }
    for (const ended of this.watcher.update(runs)) {
      const options = { autoClose: 15000 };
      if (ended.ok) {
        Notification.success(ended.message, options);
      } else {
        Notification.error(ended.message, options);
      }
    }
  }

  // -- notifications of room events --

  onServerEvent(event: any): void {
    if (!this.settings.roomNotifications || !event || event.schema_id !== ROOM_EVENT_SCHEMA) {
      return;
    }
    const data: RoomEvent = event.data || event;
    if (!this.isOpenHere(data.path || '')) {
      return;
    }
    const notice = roomEventNotice(data);
    if (!notice) {
      return;
    }
    // Autosave retries with backoff: one notification per document, updated, not one per try.
    const key = data.path || '';
    const failing = this.failedSaves.get(key);
    if (data.action === 'save_failed') {
      if (failing && Notification.manager.has(failing)) {
        Notification.update({ id: failing, message: notice.text, type: 'error', autoClose: false });
      } else {
        this.failedSaves.set(key, Notification.error(notice.text, { autoClose: false }));
      }
      return;
    }
    if (data.action === 'saved') {
      if (failing) {
        Notification.dismiss(failing);
        this.failedSaves.delete(key);
      }
      Notification.success(notice.text, { autoClose: 8000 });
      return;
    }
    const options = { autoClose: notice.kind === 'error' ? false : 10000 } as const;
    if (notice.kind === 'error') {
      Notification.error(notice.text, options);
    } else if (notice.kind === 'warning') {
      Notification.warning(notice.text, options);
    } else {
      Notification.info(notice.text, options);
    }
  }

  /**
   * The docprovider answers the server's "conflict" message with a modal "Edit Conflict"
   * dialog whose focused button catches the next keystrokes. Dismiss it at once and say the
   * same thing in a notification, with a reload as its action.
   */
  watchDialogs(): void {
    const observer = new MutationObserver(records => {
      if (!this.settings.roomNotifications) {
        return;
      }
      for (const record of records) {
        for (const node of Array.from(record.addedNodes)) {
          if (node instanceof HTMLElement && node.classList.contains('jp-Dialog')) {
            this.convertDialog(node);
          }
        }
      }
    });
    observer.observe(document.body, { childList: true });
  }

  private convertDialog(dialog: HTMLElement): void {
    const title = dialog.querySelector('.jp-Dialog-header')?.textContent?.trim() || '';
    if (!title) {
      // The dialog renders its content right after it is attached: look again then.
      const observer = new MutationObserver(() => {
        if (dialog.querySelector('.jp-Dialog-header')?.textContent?.trim()) {
          observer.disconnect();
          this.convertDialog(dialog);
        }
      });
      observer.observe(dialog, { childList: true, subtree: true, characterData: true });
      window.setTimeout(() => observer.disconnect(), 5000);
      return;
    }
    if (/^File Save Error/.test(title)) {
      // JupyterLab's error dialog of a failed save: one "Ok" button.
      const body = dialog.querySelector('.jp-Dialog-body')?.textContent?.trim() || '';
      const ok = dialog.querySelector<HTMLButtonElement>('.jp-Dialog-footer button');
      if (ok) {
        ok.click();
        Notification.error(`${title}: ${body}`, { autoClose: false });
      }
      return;
    }
    if (title !== 'Edit Conflict') {
      return;
    }
    const body = dialog.querySelector('.jp-Dialog-body')?.textContent?.trim() || '';
    const dismiss = Array.from(dialog.querySelectorAll('button')).find(b => b.textContent?.trim() === 'Dismiss');
    if (!dismiss) {
      return;
    }
    dismiss.click();
    Notification.warning(`Edit conflict: ${body}`, {
      autoClose: false,
      actions: [{ label: 'Reload', caption: 'Reload the page: the document as the server has it', callback: () => window.location.reload() }]
    });
  }

  private isOpenHere(path: string): boolean {
    const clean = path.replace(/^\/+/, '');
    for (const nb of this.notebooks) {
      if (nb.panel.context.path.replace(/^\/+/, '') === clean) {
        return true;
      }
    }
    let found = false;
    this.editors?.forEach(w => {
      if (w.context.path.replace(/^\/+/, '') === clean) {
        found = true;
      }
    });
    return found;
  }
}

/**
 * The stock server-side executor POSTs .../execute and ignores a refusal (the cell just goes
 * back to idle). Watch those answers (ServerConnection is shared with the docprovider) and
 * say why a cell was not run.
 */
function watchExecuteRefusals(app: JupyterFrontEnd): void {
  const connection = ServerConnection as any;
  const original = connection.makeRequest as typeof ServerConnection.makeRequest;
  connection.makeRequest = async (url: string, init: RequestInit, settings: ServerConnection.ISettings) => {
    const response = await original(url, init, settings);
    if (!response.ok && isExecutePost(url, init && init.method)) {
      void response
        .clone()
        .json()
        .catch(() => ({}))
        .then((body: any) => {
          const refusal = executeRefusal(response.status, (body && (body.message || body.reason)) || '');
          const actions = refusal.chooseKernel
            ? [{ label: 'Choose a kernel', callback: () => void app.commands.execute('notebook:change-kernel') }]
            : [];
          Notification.error(refusal.text, { autoClose: 15000, actions });
        });
    }
    return response;
  };
}

function canExecuteOrRead(permissions: Permissions | null): boolean {
  return !permissions || (permissions['kernels'] || []).includes('read');
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'collab_kernels companion: input() prompts, view-only mode, run queue and notifications.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IEditorTracker, ISettingRegistry],
  activate: async (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    editors: IEditorTracker | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    watchExecuteRefusals(app);
    const companion = new Companion(app, editors);
    window.addEventListener('keydown', event => companion.guardKeys(event), true);
    const permissions = fetchPermissions();
    notebooks.forEach(panel => void permissions.then(() => companion.addNotebook(panel)));
    notebooks.widgetAdded.connect((_, panel) => {
      void permissions.then(() => companion.addNotebook(panel));
    });
    editors?.widgetAdded.connect((_, widget) => {
      void permissions.then(() => companion.applyEditorViewOnly(widget));
    });
    companion.permissions = await permissions;
    document.body.dataset.ckRights = canEdit(companion.permissions)
      ? canExecute(companion.permissions)
        ? 'run'
        : 'edit'
      : 'view';
    app.serviceManager.events.stream.connect((_, event) => companion.onServerEvent(event));
    companion.watchDialogs();
    if (settingRegistry) {
      try {
        const settings = await settingRegistry.load(PLUGIN_ID);
        const read = () => {
          companion.settings = { ...DEFAULTS, ...(settings.composite as Partial<Settings>) };
          companion.applySettings();
        };
        settings.changed.connect(read);
        read();
      } catch (err) {
        console.warn('collab_kernels: settings not loaded, using the defaults', err);
        companion.applySettings();
      }
    } else {
      companion.applySettings();
    }
    console.debug('collab_kernels companion extension is active');
  }
};

export default plugin;
