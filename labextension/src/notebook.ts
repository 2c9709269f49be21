/** The companion of one open notebook. */
import { Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { ExecutionEntry, PendingPrompt, RunInfo, activeRuns, canEdit, canExecute, pendingPrompts } from './logic';
import { EXECUTION_MAP } from './settings';
import { api } from './server';
import { InputPromptWidget, RunQueueWidget, setCellReadOnly, insertUnderOutputs, viewOnlyMark } from './widgets';
import type { Companion } from './companion';

export class NotebookCompanion {
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
