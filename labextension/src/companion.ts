/** The companion of the whole application: permissions, settings, notebooks, server events. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { NotebookPanel } from '@jupyterlab/notebook';

import { Permissions, RoomEvent, RunInfo, RunWatcher, canEdit, roomEventNotice } from './logic';
import { DEFAULTS, ROOM_EVENT_SCHEMA, Settings } from './settings';
import { api } from './server';
import { viewOnlyMark } from './widgets';
import { NotebookCompanion } from './notebook';

/** Keys that change a notebook in command mode: a view-only notebook ignores them. */
export const EDITING_KEYS = new Set(['a', 'b', 'd', 'x', 'v', 'm', 'y', 'r', 'z', '1', '2', '3', '4', '5', '6', 'Delete', 'Backspace']);

export class Companion {
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

export function canExecuteOrRead(permissions: Permissions | null): boolean {
  return !permissions || (permissions['kernels'] || []).includes('read');
}
