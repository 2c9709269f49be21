"""Where the time of one server-side execution goes: timestamps along the hot path.

    .venv/bin/python bench/execution_trace.py [--rounds 30]

Starts a `jupyter server` subprocess whose collab_kernels classes are wrapped to record
``time.perf_counter()`` (CLOCK_MONOTONIC, comparable across processes on Linux) at each
step of the hot path, runs the same rounds as ``execution_bench.py`` (POST execute, wait for
the count and the result in a connected collaborator's doc) and prints the median time of
each step since the POST was sent. Diagnostic only: the wrappers cost a few microseconds
each, so use ``execution_bench.py`` for the figures.

More steps (environment variables of the run): ``CK_TRACE_FINE=1`` (the server's own
steps: submit, begin/complete/finish cell, flush), ``CK_TRACE_FINER=1`` (inside the
document transactions: trust check, buffered output applied, each pycrdt commit, the room's
update observer), ``CK_TRACE_SEND=1`` (the execute_request's signing and ZMQ hand-off, the
update store's append before each broadcast); ``CK_PROFILE=FILE`` (cProfile of the handler
and the kernel message dispatch), ``CK_PROFILE_END=FILE`` (cProfile of the start and end
transactions alone).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

EVENTS: list[tuple[float, str]] = []


def _mark(label: str) -> None:
    EVENTS.append((time.perf_counter(), label))


def install() -> None:
    """Wrap the hot path's functions in the server process (called before it starts)."""
    from collab_kernels.execution import handlers, writer
    from collab_kernels.kernels import client as kclient
    from collab_kernels.rooms import fanout as rroom

    def wrap(cls, name, before=None, after=None):
        original = getattr(cls, name)
        if asyncio.iscoroutinefunction(original):

            async def wrapper(self, *args, **kwargs):
                if before:
                    _mark(before(self, *args, **kwargs) if callable(before) else before)
                try:
                    return await original(self, *args, **kwargs)
                finally:
                    if after:
                        _mark(after)
        else:

            def wrapper(self, *args, **kwargs):
                if before:
                    _mark(before(self, *args, **kwargs) if callable(before) else before)
                try:
                    return original(self, *args, **kwargs)
                finally:
                    if after:
                        _mark(after(self, *args, **kwargs) if callable(after) else after)

        setattr(cls, name, wrapper)

    import tornado.iostream
    import tornado.routing
    import tornado.web

    wrap(tornado.iostream.BaseIOStream, "_handle_read", before="http: socket readable")
    wrap(tornado.routing._RoutingDelegate, "headers_received", before="http: headers parsed")
    wrap(tornado.web._HandlerDelegate, "execute", before="http: handler created")
    wrap(handlers.ExecuteHandler, "prepare", before="http: POST handler prepare")
    wrap(
        handlers.ExecuteHandler,
        "post",
        before="http: POST handler start",
        after="http: POST handler end",
    )
    wrap(
        kclient.SharedKernelClient,
        "send",
        before=lambda self, channel, msg, **kw: f"zmq: {msg['header']['msg_type']} sent",
    )
    wrap(
        kclient.SharedKernelClient,
        "dispatch",
        before=lambda self, msg: (
            f"zmq: {msg.channel} {msg.msg_type}"
            + (f" {msg.content.get('execution_state')}" if msg.msg_type == "status" else "")
            + " received"
        ),
    )

    def edit_label(self, fn, *a, **kw):
        return f"doc: transaction begin ({getattr(fn, '__qualname__', '?').split('.')[-2]})"

    wrap(writer.DocumentWriter, "edit", before=edit_label, after="doc: transaction committed")
    from collab_kernels.execution import manager as emanager
    from collab_kernels.execution import routing as erouting
    from collab_kernels.execution import runner as erunner

    if os.environ.get("CK_TRACE_FINE"):
        wrap(
            erouting.Router,
            "on_kernel_message",
            before=lambda self, link, msg: f"exec: listener got {msg.msg_type}",
        )
        wrap(
            erunner.Runner,
            "complete_cell",
            before="exec: complete cell",
            after="exec: complete cell done",
        )
        wrap(
            writer.DocumentWriter,
            "finish_cell",
            before="exec: finish_cell",
            after="exec: finish_cell done",
        )
        wrap(
            rroom.Fanout,
            "flush_updates",
            before="room: flush_updates",
            after="room: flush_updates done",
        )
        wrap(emanager.ExecutionManager, "submit", before="exec: submit", after="exec: submit done")
        wrap(erunner.Runner, "begin_cell", before="exec: begin cell")
    if os.environ.get("CK_TRACE_FINER"):
        # Inside the document transactions: every pycrdt (nested) transaction's exit, the
        # room's update observer, the trust check and the buffered output applied.
        import pycrdt._transaction as ptx

        wrap(writer.DocumentWriter, "_recreate_for_trust", after="doc: trust checked")
        wrap(
            writer.DocumentWriter,
            "_apply_pending",
            before="doc: apply pending",
            after="doc: pending applied",
        )
        wrap(ptx.Transaction, "__exit__", before="y: commit", after="y: committed")
        wrap(rroom.Fanout, "_on_doc_event", before="y: observer", after="y: observer done")
    if os.environ.get("CK_TRACE_SEND"):
        # The execute_request's signing and ZMQ hand-off, and the update store's append that
        # comes before each broadcast (an update is stored before anyone can receive it).
        import jupyter_client.session as jcs
        import zmq.eventloop.zmqstream as zs

        from collab_kernels.rooms import document as rdoc
        from collab_kernels.rooms import store as rstore

        wrap(jcs.Session, "send", before="zmq: session.send", after="zmq: session.send done")
        wrap(zs.ZMQStream, "flush", before="zmq: flush", after="zmq: flush done")
        wrap(writer.DocumentWriter, "start_cell", before="doc: start_cell")
        wrap(rdoc.DocumentRoom, "persist_updates", before="room: persist", after="room: persisted")
        wrap(rstore.SQLiteUpdateStore, "append", before="store: append", after="store: appended")
    end_prof = None
    if os.environ.get("CK_PROFILE_END"):
        # cProfile of the start and end transactions only (and the sends they trigger).
        import cProfile as _cp

        end_prof = _cp.Profile()
        orig_finish = writer.DocumentWriter.finish_cell
        orig_start = writer.DocumentWriter.start_cell

        def prof_finish(self, *a, **kw):
            end_prof.enable()
            try:
                return orig_finish(self, *a, **kw)
            finally:
                end_prof.disable()

        def prof_start(self, *a, **kw):
            end_prof.enable()
            try:
                return orig_start(self, *a, **kw)
            finally:
                end_prof.disable()

        writer.DocumentWriter.finish_cell = prof_finish
        writer.DocumentWriter.start_cell = prof_start
    if os.environ.get("CK_PROFILE"):
        # cProfile around the handler (prepare included) and the kernel message dispatch.
        import cProfile

        profiler = cProfile.Profile()

        def profiled(cls, name):
            original = getattr(cls, name)
            if asyncio.iscoroutinefunction(original):

                async def wrapper(self, *args, **kwargs):
                    profiler.enable()
                    try:
                        return await original(self, *args, **kwargs)
                    finally:
                        profiler.disable()
            else:

                def wrapper(self, *args, **kwargs):
                    profiler.enable()
                    try:
                        return original(self, *args, **kwargs)
                    finally:
                        profiler.disable()

            setattr(cls, name, wrapper)

        profiled(handlers.ExecuteHandler, "_execute")
        profiled(kclient.SharedKernelClient, "_on_recv")
        import atexit as _atexit

        _atexit.register(lambda: profiler.dump_stats(os.environ["CK_PROFILE"]))
    wrap(writer.DocumentWriter, "enqueue", before=lambda self, c, t, *a, **kw: f"doc: {t} buffered")
    wrap(rroom.Fanout, "_flush_updates", before="room: flush")
    wrap(rroom.RoomClient, "send", before="room: frame queued to client")

    original_init = rroom.RoomClient.__init__

    def init(self, *, write, **kwargs):
        def traced_write(frame):
            result = write(frame)
            _mark("ws: frame written to socket")
            return result

        original_init(self, write=traced_write, **kwargs)

    rroom.RoomClient.__init__ = init

    def dump(*_):
        path = os.environ.get("CK_TRACE_FILE")
        if path:
            Path(path).write_text(json.dumps(EVENTS))
        if os.environ.get("CK_PROFILE"):
            profiler.dump_stats(os.environ["CK_PROFILE"])
        if end_prof is not None:
            end_prof.dump_stats(os.environ["CK_PROFILE_END"])

    import atexit
    import signal

    atexit.register(dump)

    def on_term(signum, frame):
        dump()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)


async def run(rounds: int, warmup: int) -> None:
    import execution_bench as eb

    trace_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ck-trace-{os.getpid()}.json")
    os.environ["CK_TRACE_FILE"] = trace_file
    client_events: list[tuple[float, str]] = []
    # Raw jupyter_client rounds interleaved with the server's, as in execution_bench.py.
    raw = eb.RawRunner("ipc")
    served = eb.ServerRunner(
        launcher=[sys.executable, str(Path(__file__)), "serve"], client_events=client_events
    )
    await asyncio.gather(raw.start(), served.start())
    results: list[float] = []
    raw_results: list[float] = []
    try:
        for i in range(warmup + rounds):
            t_raw = await raw.round()
            t_served = await served.round()
            if i >= warmup:
                raw_results.append(t_raw)
                results.append(t_served)
    finally:
        await asyncio.gather(raw.stop(), served.stop(), return_exceptions=True)
    for _ in range(100):
        if os.path.exists(trace_file):
            break
        await asyncio.sleep(0.1)
    server_events = [tuple(e) for e in json.loads(Path(trace_file).read_text())]
    os.unlink(trace_file)
    print(f"{len(server_events)} server events, {len(client_events)} client events")
    events = sorted(server_events + client_events)
    # Split into rounds at each "client: POST sent".
    starts = [i for i, (_, label) in enumerate(events) if label == "client: POST sent"]
    per_label: dict[str, list[float]] = {}
    order: dict[str, float] = {}
    for n, i in enumerate(starts[warmup:], start=warmup):
        t0 = events[i][0]
        end = starts[n + 1] if n + 1 < len(starts) else len(events)
        seen: dict[str, int] = {}
        for t, label in events[i:end]:
            k = seen.get(label, 0)
            seen[label] = k + 1
            key = label if k == 0 else f"{label} #{k + 1}"
            per_label.setdefault(key, []).append((t - t0) * 1000)
            order.setdefault(key, 0.0)
            order[key] += (t - t0) * 1000
    for n in (warmup, len(starts) // 2, len(starts) - 1):
        i = starts[n]
        end = starts[n + 1] if n + 1 < len(starts) else len(events)
        print(f"round {n}:")
        prev = events[i][0]
        for t, label in events[i:end]:
            print(f"  {(t - events[i][0]) * 1000:7.2f} (+{(t - prev) * 1000:5.2f})  {label}")
            prev = t
    # Median time between consecutive milestones (first occurrence after the previous one).
    milestones = [
        "client: POST sent",
        "http: socket readable",
        "http: headers parsed",
        "http: handler created",
        "http: POST handler prepare",
        "http: POST handler start",
        "zmq: execute_request sent",
        "zmq: iopub status idle received",
        # (the end transaction is committed before the idle status when the reply came first)
        "room: frame queued to client",
        "client: room frame received",
        "client: doc shows count + result",
    ]
    spans: dict[str, list[float]] = {}
    for n, i in enumerate(starts[warmup:], start=warmup):
        end = starts[n + 1] if n + 1 < len(starts) else len(events)
        found: list[float] = []
        j = i
        for m in milestones:
            while j < end and events[j][1] != m:
                j += 1
            if j >= end:
                break
            found.append(events[j][0])
        if len(found) != len(milestones):
            continue
        for a, b, ta, tb in zip(milestones, milestones[1:], found, found[1:], strict=False):
            spans.setdefault(f"{a} -> {b}", []).append((tb - ta) * 1000)
    print("median ms between milestones:")
    total = 0.0
    for key, values in spans.items():
        total += statistics.median(values)
        print(f"  {statistics.median(values):7.2f}  {key}  (n={len(values)})")
    print(f"  {total:7.2f}  sum of the medians")
    print(
        f"median ms since the POST was sent, {len(starts) - warmup} rounds (rounds where the step happened):"
    )
    rows = sorted(per_label.items(), key=lambda kv: statistics.median(kv[1]))
    for key, values in rows:
        print(f"  {statistics.median(values):7.2f}  {key}  (n={len(values)})")
    print(f"end-to-end median: {statistics.median(results) * 1000:.2f} ms")
    print(
        f"raw jupyter_client round trip median (interleaved): {statistics.median(raw_results) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        install()
        from jupyter_server.serverapp import main

        sys.argv = ["jupyter-server", *sys.argv[2:]]
        sys.exit(main())
    import argparse

    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.warmup))
