"""Run the fan-out scenarios against every server and the floor; write JSON, Markdown and a plot."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import psutil

from . import report
from .cli import parse_args
from .clients_floor import run_once as floor_once
from .floor import IopubObserver, measure_floor
from .idle import run_idle
from .patterns import PATTERNS, WARMUP_CODE, Pattern
from .pool import Pool, connect_watchers
from .servers import BENCH_CELL, REPO, SERVERS, WARMUP_CELL, RssSampler, Server, versions
from .watcher import Watcher

RESULTS = REPO / "bench" / "results"


def _drive_ready(
    srv: Server, pool: Pool, room_id: str, session_id: str | None, code: str
) -> tuple[str, IopubObserver | None]:
    """Open the room with one watcher, start the kernel, run the warm-up cell and wait until
    its execution count reaches that watcher: proof this server can be driven."""
    url = srv.room_url(room_id, session_id)
    c = connect_watchers(pool, url, 1, 1, WARMUP_CELL)
    if c["synced"] != 1:
        raise RuntimeError(f"room websocket did not sync: {c['errors']}")
    kernel_id = srv.start_kernel()
    observer = None
    deadline = time.monotonic() + 20
    while observer is None and time.monotonic() < deadline:
        cf = srv.connection_file(kernel_id)
        if cf:
            observer = IopubObserver(cf, code)
        else:
            time.sleep(0.1)
    try:
        r = srv.execute(kernel_id, room_id, WARMUP_CELL, WARMUP_CODE)
        if r.status_code >= 300:
            raise RuntimeError(f"warm-up execute answered {r.status_code}: {r.text[:300]}")
        res = pool.call("executed", {"cell_id": WARMUP_CELL, "timeout": 120}, 1, timeout=150)[0]
        if not res["ok"]:
            raise RuntimeError("the warm-up cell's execution count never reached the watcher")
    except BaseException:
        if observer is not None:
            observer.close()
        raise
    return kernel_id, observer


def fresh_view(url: str, cell_id: str, expected: str, timeout: float = 30) -> dict:
    """What a watcher joining now sees: tells a server whose document is wrong apart from one
    whose document is right but whose updates did not all reach the watchers."""

    async def go() -> dict:
        w = Watcher(-1, url, cell_id, expected)
        task = asyncio.create_task(w.run(None))
        try:
            await asyncio.wait_for(w.synced.wait(), timeout)
            await asyncio.sleep(0.5)
            w._check(time.monotonic())
            return {
                "equal": w.complete_at is not None,
                "text_len": w.view.length(),
                # None: the server never wrote the cell's end (its last messages lost?)
                "execution_count": w.view.execution_count(),
                "error": w.error,
            }
        finally:
            if w.ws is not None:
                await w.ws.close()
            task.cancel()

    try:
        return asyncio.run(go())
    except Exception as e:
        return {"equal": None, "error": f"{type(e).__name__}: {e}"}


def _stall_later(srv: Server, spec: str) -> threading.Thread | None:
    """``FANOUT_STALL="after:seconds"``: stop the server process (SIGSTOP) ``after`` seconds
    after the execute request, for ``seconds``: what does a server that gets no CPU for a
    while (a loaded machine, a long GC, swapping) lose?"""
    if not spec or srv.proc is None:
        return None
    after, seconds = (float(x) for x in spec.split(":"))
    pid = srv.proc.pid

    def stall() -> None:
        time.sleep(after)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stall, daemon=True, name="fanout-stall")
    thread.start()
    return thread


def run_scenario(
    cls: type[Server],
    n: int,
    pattern: Pattern,
    pool: Pool,
    workers: int,
    timeout: float,
    idle: float,
    full: int = -1,
) -> dict:
    """One server, ``n`` watchers (``full`` of them pycrdt ones, the probe included; -1: all),
    one pattern."""
    srv = cls()
    out: dict = {"server": srv.key, "watchers": n, "pattern": pattern.key, "full_watchers": full}
    observer = None
    try:
        srv.write_notebook(pattern.code, WARMUP_CODE)
        srv.start()
        room_id, session_id = srv.open_document()
        kernel_id, observer = _drive_ready(srv, pool, room_id, session_id, pattern.code)
        url = srv.room_url(room_id, session_id)
        # the probe watcher (worker 0) is one of the n
        c = (
            connect_watchers(
                pool, url, n - 1, workers, BENCH_CELL, first_index=1, full=max(full - 1, -1)
            )
            if n > 1
            else {"synced": 0, "errors": [], "seconds": 0}
        )
        out["connect_seconds"] = c["seconds"]
        if c["synced"] != n - 1:
            raise RuntimeError(f"only {c['synced'] + 1}/{n} watchers synced: {c['errors']}")
        pool.call("quiet", {"quiet_for": 1.0, "timeout": 30}, workers)
        before = srv.stats()
        client_cpu0 = pool.cpu()
        sampler = RssSampler(srv.ps)
        sampler.start()
        pool.call("mark", {"cell_id": BENCH_CELL, "expected": pattern.expected}, workers)
        out["load"] = psutil.getloadavg()[0]
        t0, t0_wall = time.monotonic(), time.time()
        stall = _stall_later(srv, os.environ.get("FANOUT_STALL", ""))
        r = srv.execute(kernel_id, room_id, BENCH_CELL, pattern.code)
        out["execute_status"] = r.status_code
        if r.status_code >= 300:
            raise RuntimeError(f"execute answered {r.status_code}: {r.text[:300]}")
        res = pool.call(
            "wait", {"t0": t0, "timeout": timeout, "idle": idle}, workers, timeout=timeout + 60
        )
        full_results = [w for r_ in res for w in r_["watchers"]]
        out["completion"] = completion = _reference(full_results)
        if full >= 0:  # the raw watchers: complete when they got the full watchers' updates
            left = max(t0 + timeout - time.monotonic(), 5.0)
            raw = pool.call(
                "resolve",
                {"t0": t0, "reference": completion.get("reference"), "timeout": left},
                workers,
                timeout=left + 60,
            )
            res = [*res, *raw]
        if stall is not None:
            stall.join()
            out["stalled"] = os.environ["FANOUT_STALL"]
        at_end = srv.stats()
        wall = time.monotonic() - t0
        # let the server finish what the cell caused (late frames, saves) before the CPU total
        pool.call("quiet", {"quiet_for": 1.0, "timeout": 10}, workers)
        after = srv.stats()
        out["peak_rss"] = max(sampler.stop(), after.rss)
        out["kernel"] = observer.result(t0, pattern.expected, t0_wall) if observer else None
        if not all(w["complete"] for r_ in res for w in r_["watchers"]):
            out["fresh_join"] = fresh_view(url, BENCH_CELL, pattern.expected)
            out["server_log"] = srv.log_tail(40)
        watchers = [w for r_ in res for w in r_["watchers"]]
        for w in watchers:
            w.pop("reference", None)
            w.pop("complete_data", None)
        complete = [w for w in watchers if w["complete"]]
        full_ws = [w for w in watchers if w.get("kind") == "full"]
        raw_ws = [w for w in watchers if w.get("kind") == "raw"]
        out["by_kind"] = {
            kind: {
                "watchers": len(group),
                "complete": sum(1 for w in group if w["complete"]),
                "last_seconds": max((w["seconds"] for w in group if w["complete"]), default=None),
                "median_seconds": sorted(w["seconds"] for w in group if w["complete"])[
                    sum(1 for w in group if w["complete"]) // 2
                ]
                if any(w["complete"] for w in group)
                else None,
            }
            for kind, group in (("full", full_ws), ("raw", raw_ws))
            if group
        }
        traced = [w for w in watchers if w.get("trace")]
        if traced:  # FANOUT_TRACE=1: frame arrival times of a few watchers, for diagnosis
            out["traces"] = {w["index"]: w["trace"] for w in traced[:: max(len(traced) // 4, 1)]}
            out["server_log"] = srv.log_tail(60)
        out.update(
            reason=",".join(sorted({r_["reason"] for r_ in res if "reason" in r_})),
            complete=len(complete),
            all_complete=len(complete) == n,
            seconds=max(w["seconds"] for w in complete) if len(complete) == n else None,
            median_seconds=sorted(w["seconds"] for w in complete)[len(complete) // 2]
            if complete
            else None,
            waited=wall,
            server_cpu=after.cpu - before.cpu,
            server_cpu_until_complete=at_end.cpu - before.cpu,
            kernel_cpu=after.kernel_cpu - before.kernel_cpu,
            rss_before=before.rss,
            fds=after.fds,
            client_cpu=pool.cpu() - client_cpu0,
            messages=sum(w["frames"] for w in watchers) / n,
            update_messages=sum(w["update_frames"] for w in watchers) / n,
            bytes_per_watcher=sum(w["bytes"] for w in watchers) / n,
            deflate_watchers=sum(1 for w in watchers if w.get("deflate")),
            text_len=sorted(w["text_len"] for w in full_ws)[len(full_ws) // 2],
            expected_len=len(pattern.expected),
            tail=next((w["tail"] for w in watchers if not w["complete"]), ""),
            first_diff=sorted(w["first_diff"] for w in watchers if w["first_diff"] is not None)[:1],
            text_lens=sorted({w["text_len"] for w in full_ws}),
            watcher_errors=sorted({w["error"] for w in watchers if w["error"]})[:3],
        )
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
        out["server_log"] = srv.log_tail(30)
    finally:
        if observer is not None:
            observer.close()
        try:
            pool.call("close", {}, None, timeout=60)
        except Exception:
            pass
        srv.stop()
    return out


def _reference(full: list[dict]) -> dict:
    """The updates after which the full watchers' documents were complete: the same for all
    of them when the server sends every connection the same frames (checked here)."""
    refs = [w["reference"] for w in full if w["complete"] and w.get("reference") is not None]
    out: dict = {"full_complete": len(refs), "full": len(full)}
    if not refs:
        return out
    first = [tuple(fp) for fp in refs[0]]
    out["agree"] = all([tuple(fp) for fp in r] == first for r in refs)
    out["updates"] = len(first)
    out["frame_bytes"] = first[-1][0] if first else 0
    out["reference"] = first
    data = next((w["complete_data"] for w in full if w.get("complete_data")), None)
    out["frame"] = data
    return out


def clients_floor(frame: bytes, n: int, workers: int, deflate: bool = False) -> dict:
    """``n`` raw watchers taking in ``frame`` (a scenario's completing update, as the full
    watchers received it) from a server that costs nothing: the least any server could add
    after its last output on this machine at this moment."""
    try:
        seconds, cpu, size = floor_once(n, workers, deflate=deflate, message=frame, raw=True)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {"seconds": seconds, "client_cpu": cpu, "wire_bytes": size}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        results = json.loads(Path(args.report).read_text())
        results.setdefault("minutes", 0)
        results["machine"].setdefault("load_after", results["machine"]["load_before"])
        report.write_docs(
            results, REPO / "docs" / "benchmarks.md", REPO / "docs" / "benchmarks.png"
        )
        print(report.markdown(results))
        return 0
    servers = [SERVERS[k] for k in args.servers.split(",") if k]
    patterns = [PATTERNS[k] for k in args.patterns.split(",") if k]
    counts = [int(x) for x in args.watchers.split(",") if x]
    idle_counts = [int(x) for x in args.idle_viewers.split(",") if x]

    sys.path.insert(0, str(REPO / "bench"))
    from peers import make_venvs

    usable = []
    for cls in servers:
        srv_venv = cls.__dataclass_fields__["venv"].default
        if srv_venv.parent.name == ".venvs" and not args.no_install:
            try:
                make_venvs.ensure(srv_venv.name)
            except Exception as e:
                print(f"[bench] cannot install {cls.label}: {e}", flush=True)
        if (srv_venv / "bin" / "jupyter-server").exists():
            usable.append(cls)
        else:
            print(f"[bench] skipping {cls.label}: no environment at {srv_venv}", flush=True)

    started = time.monotonic()
    results: dict = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "load_before": list(psutil.getloadavg()),
        },
        "settings": {k: v for k, v in vars(args).items()},
        "patterns": {
            p.key: {"label": p.label, "code": p.code, "expected_bytes": p.expected_bytes}
            for p in patterns
        },
        "servers": {},
        "scenarios": [],
        "idle": [],
    }
    for cls in usable:
        venv = cls.__dataclass_fields__["venv"].default
        results["servers"][cls.key] = {
            "label": cls.label,
            "versions": versions(
                venv,
                [
                    "collab_kernels",
                    "jupyter-collaboration",
                    "jupyter-server-ydoc",
                    "jupyter-server-nbmodel",
                    "jupyter-server-documents",
                    "jupyter-server",
                    "pycrdt",
                    "pycrdt-websocket",
                    "jupyter-ydoc",
                    "ipykernel",
                    "tornado",
                ],
            ),
        }

    print(f"[bench] floor: raw jupyter_client, {args.floor_repeats} run(s) per pattern", flush=True)
    results["floor"] = asyncio.run(measure_floor(patterns, args.floor_repeats))
    for key, f in results["floor"].items():
        print(
            f"[bench]   {key}: {f['seconds']:.2f} s ({f['messages']:.0f} stream messages, "
            f"output {'equal' if f['equal'] else 'NOT EQUAL'})",
            flush=True,
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"fanout-{'quick-' if args.quick else ''}{stamp}.json"

    def save() -> None:  # after every scenario, so a stopped run still leaves its results
        path.write_text(json.dumps(results, indent=1))

    max_workers = max([args.workers or (1 if n <= 100 else 2) for n in counts + idle_counts] + [1])
    os.environ["FANOUT_WATCHER_COMPRESSION"] = args.watcher_compression  # workers inherit it
    pool = Pool(max_workers)
    try:
        for n in counts:
            workers = args.workers or (1 if n <= 100 else 2)
            for p in patterns:
                for cls in usable:
                    print(f"[bench] {cls.label}: {n} watchers x {p.label} ...", flush=True)
                    r = run_scenario(
                        cls, n, p, pool, workers, args.timeout, args.idle, args.full_watchers
                    )
                    r["floor"] = results["floor"][p.key]["seconds"]
                    completion = r.get("completion") or {}
                    frame = completion.pop("frame", None)
                    completion.pop("reference", None)
                    if args.clients_floor and frame and args.full_watchers >= 0:
                        r["clients_floor"] = clients_floor(
                            frame, n, workers, deflate=args.watcher_compression == "deflate"
                        )
                    results["scenarios"].append(r)
                    save()
                    print("[bench]   " + report.one_line(r), flush=True)
        if idle_counts:
            workers = args.workers or (1 if max(idle_counts) <= 100 else 2)
            for cls in usable:
                print(f"[bench] {cls.label}: idle viewers {idle_counts} ...", flush=True)
                r = run_idle(
                    cls, idle_counts, pool, workers, args.awareness_seconds, args.full_watchers
                )
                results["idle"].append(r)
                save()
                print("[bench]   " + report.idle_line(r), flush=True)
    finally:
        pool.close()
    results["minutes"] = (time.monotonic() - started) / 60
    results["machine"]["load_after"] = list(psutil.getloadavg())

    save()
    md = report.markdown(results)
    (RESULTS / "latest.md").write_text(md)
    print(f"[bench] raw results: {path}", flush=True)
    if args.docs:
        report.write_docs(
            results, REPO / "docs" / "benchmarks.md", REPO / "docs" / "benchmarks.png"
        )
        print("[bench] wrote docs/benchmarks.md and docs/benchmarks.png", flush=True)
    print(md)
    return 0
