/**
 * The widgets the companion adds to a notebook: input() prompts, the run queue and the
 * view-only mark, and the cell helpers that place them.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import { MessageLoop } from '@lumino/messaging';
import { PanelLayout, Widget } from '@lumino/widgets';

import { PendingPrompt, RunInfo, describeRun } from './logic';
import type { NotebookCompanion } from './notebook';

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
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
export class InputPromptWidget extends Widget {
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

export class RunQueueWidget extends Widget {
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

export function setCellReadOnly(cell: Cell, locked: boolean): void {
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

export function insertUnderOutputs(cell: Cell, widget: Widget): void {
  const layout = cell.layout as PanelLayout;
  const outputs = cell instanceof CodeCell ? cell.outputArea?.parent : null;
  const index = outputs ? layout.widgets.indexOf(outputs) : -1;
  if (index >= 0) {
    layout.insertWidget(index + 1, widget);
  } else {
    layout.addWidget(widget);
  }
}

export function viewOnlyMark(): Widget {
  const mark = new Widget();
  mark.addClass('ck-ViewOnlyMark');
  mark.node.textContent = 'View only';
  mark.node.title = 'You can read this document and follow it live; your role does not allow editing or running it.';
  return mark;
}
