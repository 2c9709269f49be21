"""The watcher worker processes of a fan-out run, and connecting watchers over them."""

from __future__ import annotations

import multiprocessing as mp

import psutil

from .worker import worker_main


class Pool:
    """Watcher worker processes, kept for the whole run."""

    def __init__(self, size: int):
        ctx = mp.get_context("spawn")
        self.conns = []
        self.procs = []
        for i in range(size):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker_main, args=(child, i), daemon=True, name=f"fanout-watchers-{i}"
            )
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.ps = [psutil.Process(p.pid) for p in self.procs]

    def call(
        self,
        op: str,
        per_worker: list[dict] | dict,
        workers: int | None = None,
        timeout: float = 300,
    ) -> list[dict]:
        n = workers or len(self.conns)
        args = per_worker if isinstance(per_worker, list) else [per_worker] * n
        for conn, a in zip(self.conns[:n], args, strict=False):
            conn.send({"op": op, **a})
        out = []
        for conn in self.conns[:n]:
            if not conn.poll(timeout):
                raise RuntimeError(f"watcher worker did not answer {op} in {timeout} s")
            res = conn.recv()
            if "error" in res:
                raise RuntimeError(f"watcher worker failed in {op}:\n{res['error']}")
            out.append(res)
        return out

    def cpu(self) -> float:
        total = 0.0
        for p in self.ps:
            t = p.cpu_times()
            total += t.user + t.system
        return total

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send({"op": "exit"})
                conn.poll(5) and conn.recv()
            except (OSError, EOFError):
                pass
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.terminate()


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def connect_watchers(
    pool: Pool,
    url: str,
    n: int,
    workers: int,
    cell_id: str,
    first_index: int = 0,
    awareness: bool = True,
    full: int = -1,
) -> dict:
    """Connect ``n`` watchers over ``workers`` processes; ``full`` of them pycrdt watchers
    (spread over the processes), the others raw (-1: all full)."""
    counts = split(n, workers)
    fulls = split(full, workers) if full >= 0 else [-1] * workers
    args, index = [], first_index
    for c, f in zip(counts, fulls, strict=True):
        args.append(
            {
                "url": url,
                "count": c,
                "first_index": index,
                "cell_id": cell_id,
                "awareness": awareness,
                "full": f,
            }
        )
        index += c
    res = pool.call("connect", args, workers, timeout=180)
    return {
        "synced": sum(r["synced"] for r in res),
        "errors": sorted({e for r in res for e in r["errors"]})[:3],
        "seconds": max(r["seconds"] for r in res),
    }
