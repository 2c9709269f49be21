/** Unit tests of the companion extension's pure functions (node's test runner). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  RunInfo,
  RunWatcher,
  activeRuns,
  canEdit,
  canExecute,
  describeRun,
  executeRefusal,
  isExecutePost,
  endMessage,
  formatDuration,
  pendingPrompts,
  roomEventNotice
} from '../src/logic';

function run(over: Partial<RunInfo>): RunInfo {
  return {
    request_id: 'r1',
    kernel_id: 'k1',
    document_id: 'json:notebook:f1',
    path: 'work/long.ipynb',
    status: 'running',
    result: null,
    username: 'bob',
    cells: [{ cell_id: 'c1', status: 'running' }],
    created: '2026-12-02T00:00:00+00:00',
    started: '2026-12-02T00:00:00+00:00',
    finished: null,
    ...over
  };
}

test('pendingPrompts: only running cells with an input_request, password flag kept', () => {
  const prompts = pendingPrompts({
    c1: { status: 'running', request_id: 'r1', kernel_id: 'k1', input_request: { prompt: 'Name? ', password: false } },
    c2: { status: 'queued', request_id: 'r1', kernel_id: 'k1', position: 1 },
    c3: { status: 'running', request_id: 'r2', kernel_id: 'k1' },
    c4: { status: 'running', request_id: 'r3', kernel_id: 'k2', input_request: { prompt: 'Password:', password: true } },
    c5: 'garbage'
  });
  assert.deepEqual(prompts, [
    { cellId: 'c1', requestId: 'r1', kernelId: 'k1', prompt: 'Name? ', password: false },
    { cellId: 'c4', requestId: 'r3', kernelId: 'k2', prompt: 'Password:', password: true }
  ]);
  assert.deepEqual(pendingPrompts({}), []);
});

test('rights: viewers may neither edit nor answer; unknown rights lock nobody out', () => {
  const viewer = { contents: ['read'], kernels: ['read'] };
  const runner = { contents: ['read', 'write'], kernels: ['read', 'write', 'execute'] };
  assert.equal(canEdit(viewer), false);
  assert.equal(canExecute(viewer), false);
  assert.equal(canEdit(runner), true);
  assert.equal(canExecute(runner), true);
  assert.equal(canEdit(null), true);
  assert.equal(canExecute(null), true);
});

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0 s');
  assert.equal(formatDuration(59.9), '59 s');
  assert.equal(formatDuration(60), '1 min');
  assert.equal(formatDuration(125), '2 min 5 s');
  assert.equal(formatDuration(3600 + 180), '1 h 3 min');
});

test('activeRuns: this document only, running first, then by creation', () => {
  const runs = [
    run({ request_id: 'q2', status: 'queued', created: '2026-12-02T00:00:05+00:00' }),
    run({ request_id: 'done', status: 'done' }),
    run({ request_id: 'other', document_id: 'json:notebook:f2' }),
    run({ request_id: 'q1', status: 'queued', created: '2026-12-02T00:00:03+00:00' }),
    run({ request_id: 'r', status: 'running' })
  ];
  assert.deepEqual(
    activeRuns(runs, 'json:notebook:f1').map(r => r.request_id),
    ['r', 'q1', 'q2']
  );
});

test('describeRun: who, which cell, since when', () => {
  const now = Date.parse('2026-12-02T00:01:04+00:00');
  const three = run({
    cells: [
      { cell_id: 'a', status: 'done' },
      { cell_id: 'b', status: 'running' },
      { cell_id: 'c', status: 'queued' }
    ]
  });
  assert.equal(describeRun(three, now), 'bob · running cell 2 of 3 · for 1 min 4 s');
  assert.equal(
    describeRun(run({ input_request: { cell_id: 'c1', prompt: '?', password: false } }), now),
    'bob · running 1 cell, waiting for input · for 1 min 4 s'
  );
  assert.equal(
    describeRun(run({ status: 'queued', username: null, created: '2026-12-02T00:01:00+00:00' }), now),
    'someone · 1 cell queued · since 4 s'
  );
});

test('RunWatcher: reports long runs that end after the first look, once', () => {
  const watcher = new RunWatcher(30);
  const t0 = Date.parse('2026-12-02T00:00:10+00:00');
  // First look: what already ended is not news.
  assert.deepEqual(
    watcher.update([run({ request_id: 'old', status: 'done', result: 'ok', finished: '2026-12-02T00:00:05+00:00' })], t0),
    []
  );
  // A long run seen running, then done.
  assert.deepEqual(watcher.update([run({ request_id: 'long' })], t0 + 1000), []);
  const ended = watcher.update(
    [run({ request_id: 'long', status: 'done', result: 'error', finished: '2026-12-02T00:00:45+00:00' })],
    t0 + 40_000
  );
  assert.equal(ended.length, 1);
  assert.equal(ended[0].ok, false);
  assert.equal(ended[0].seconds, 45);
  assert.equal(ended[0].message, 'long.ipynb: the run by bob ended (error) after 45 s');
  // Reported once.
  assert.deepEqual(
    watcher.update([run({ request_id: 'long', status: 'done', result: 'error', finished: '2026-12-02T00:00:45+00:00' })], t0 + 50_000),
    []
  );
  // A headless run that began and ended between two looks (never seen running).
  const headless = run({
    request_id: 'headless',
    status: 'done',
    result: 'ok',
    username: null,
    started: '2026-12-02T00:00:20+00:00',
    finished: '2026-12-02T00:01:20+00:00'
  });
  const more = watcher.update([headless], t0 + 80_000);
  assert.deepEqual(more.map(e => e.message), ['long.ipynb: the run finished after 1 min']);
  // A short run is not reported.
  watcher.update([run({ request_id: 'short' })], t0 + 81_000);
  assert.deepEqual(
    watcher.update(
      [run({ request_id: 'short', status: 'done', result: 'ok', started: '2026-12-02T00:01:30+00:00', finished: '2026-12-02T00:01:32+00:00' })],
      t0 + 90_000
    ),
    []
  );
});

test('endMessage names the notebook, not its folder', () => {
  assert.equal(endMessage(run({ result: 'ok' }), 90), 'long.ipynb: the run by bob finished after 1 min 30 s');
});

test('roomEventNotice: failed saves are errors, reloads are news, unknown actions are silent', () => {
  assert.deepEqual(roomEventNotice({ action: 'save_failed', path: 'a/b.ipynb', message: 'Saving failed: disk full' }), {
    kind: 'error',
    text: 'b.ipynb: Saving failed: disk full'
  });
  assert.equal(roomEventNotice({ action: 'reloaded', path: 'b.ipynb', message: 'x' })?.kind, 'info');
  assert.equal(roomEventNotice({ action: 'conflict', path: 'b.ipynb', message: 'x' })?.kind, 'warning');
  assert.equal(roomEventNotice({ action: 'saved', path: 'b.ipynb', message: 'saved again' })?.kind, 'success');
  assert.equal(roomEventNotice({ action: 'merged', path: 'b.ipynb', message: 'both were merged.' })?.kind, 'info');
  assert.equal(
    roomEventNotice({ action: 'merged', path: 'b.ipynb', message: '2 cell(s) changed on both sides kept ...' })?.kind,
    'warning'
  );
  assert.equal(roomEventNotice({ action: 'opened' }), null);
});

test('executeRefusal and isExecutePost: a refused run says why', () => {
  assert.equal(isExecutePost('http://h/base/api/kernels/k-1/execute', 'POST'), true);
  assert.equal(isExecutePost('http://h/api/kernels/k-1/execute?x=1', 'post'), true);
  assert.equal(isExecutePost('http://h/api/kernels/k-1/execute', 'GET'), false);
  assert.equal(isExecutePost('http://h/api/kernels/k-1/interrupt', 'POST'), false);
  const gone = executeRefusal(404, 'No such kernel: k-1');
  assert.equal(gone.chooseKernel, true);
  assert.match(gone.text, /^Not run: this notebook's kernel is gone.*No such kernel: k-1$/);
  assert.match(executeRefusal(403, '').text, /role does not allow/);
  assert.equal(executeRefusal(500, 'boom').text, 'The cell was not run (500): boom.');
});
