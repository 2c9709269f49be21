"""The idle-viewers scenario: RSS and descriptors per viewer, join cost, awareness CPU."""

from __future__ import annotations

import time
import traceback

from .patterns import WARMUP_CODE
from .pool import Pool, connect_watchers
from .servers import BENCH_CELL, Server


def run_idle(
    cls: type[Server],
    counts: list[int],
    pool: Pool,
    workers: int,
    awareness_seconds: float,
    full: int = -1,
) -> dict:
    """RSS and descriptors per idle viewer, and CPU spent on their awareness renewals."""
    srv = cls()
    out: dict = {"server": srv.key, "points": []}
    try:
        srv.write_notebook("pass", WARMUP_CODE)
        srv.start()
        room_id, session_id = srv.open_document()
        url = srv.room_url(room_id, session_id)
        c = connect_watchers(pool, url, 1, 1, BENCH_CELL)
        if c["synced"] != 1:
            raise RuntimeError(f"room websocket did not sync: {c['errors']}")
        pool.call("quiet", {"quiet_for": 1.0, "timeout": 30}, 1)
        time.sleep(1)
        base = srv.stats()
        out["base_rss"], out["base_fds"] = base.rss, base.fds
        have = 1
        for n in counts:
            cpu0 = srv.stats().cpu
            c = connect_watchers(
                pool, url, n - have, workers, BENCH_CELL, first_index=have, full=max(full - 1, -1)
            )
            if c["synced"] != n - have:
                raise RuntimeError(f"only {c['synced'] + have}/{n} viewers synced: {c['errors']}")
            joined = n - have
            have = n
            pool.call("quiet", {"quiet_for": 1.0, "timeout": 60}, workers)
            time.sleep(1)
            s = srv.stats()
            out["points"].append(
                {
                    "viewers": n,
                    "rss": s.rss,
                    "fds": s.fds,
                    "rss_per_viewer": (s.rss - base.rss) / (n - 1),
                    "fds_per_viewer": (s.fds - base.fds) / (n - 1),
                    # the join storm: how long the new viewers took to sync, and the server
                    # CPU per joining viewer (handshake, sync, presence relayed to the others)
                    "connect_seconds": c["seconds"],
                    "join_cpu_per_viewer": (s.cpu - cpu0) / joined,
                }
            )
        before = srv.stats()
        client0 = pool.cpu()
        t = time.monotonic()
        res = pool.call(
            "awareness",
            {"duration": awareness_seconds, "renew_every": 15.0},
            workers,
            timeout=awareness_seconds + 60,
        )
        wall = time.monotonic() - t
        after = srv.stats()
        out["awareness"] = {
            "viewers": have,
            "seconds": wall,
            "server_cpu_per_s": (after.cpu - before.cpu) / wall,
            "client_cpu_per_s": (pool.cpu() - client0) / wall,
            "frames_per_viewer_per_s": sum(r["frames"] for r in res) / have / wall,
        }
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
        out["server_log"] = srv.log_tail(30)
    finally:
        try:
            pool.call("close", {}, None, timeout=60)
        except Exception:
            pass
        srv.stop()
    return out
