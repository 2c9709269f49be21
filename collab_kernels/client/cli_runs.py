"""``collab-kernels list``, ``status``, ``attach`` and ``cancel``: runs that live in a server.

Without ``--server`` they look at every running server with collab_kernels (as ``jupyter
server list`` shows them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any

from .cli_term import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    StdinLines,
    UsageError,
    note,
    note_detached,
)
from .cli_watch import Watcher, exit_code, report

if TYPE_CHECKING:
    from .client import CollabClient
    from .records import RunRecord
    from .servers import ServerInfo


def explicit_server(args: argparse.Namespace) -> ServerInfo | None:
    from .servers import ServerInfo, running_servers, token_from_url

    if not args.server:
        return None
    try:
        info = ServerInfo(url=args.server)
    except ValueError as e:
        raise UsageError(str(e)) from None
    info.token = (
        args.token
        or token_from_url(args.server)
        or os.environ.get("COLLAB_KERNELS_TOKEN")
        or os.environ.get("JUPYTER_TOKEN")
    )
    for known in running_servers():  # a local server: learn its root to map local paths
        if known.same_server(info.url):
            info.root_dir = known.root_dir
            info.token = info.token or known.token
    return info


async def collab_servers(args: argparse.Namespace) -> list[ServerInfo]:
    """The servers to search for runs: --server, or every running one that has collab_kernels."""
    from .client import CollabClient, ServerError
    from .servers import running_servers

    explicit = explicit_server(args)
    if explicit is not None:
        return [explicit]
    found = []
    for info in running_servers():
        client = CollabClient(info, request_timeout=10)
        try:
            await client.list_runs()
            found.append(info)
        except ServerError:
            pass
        finally:
            await client.close()
    if not found:
        raise UsageError("no running Jupyter server with collab_kernels found; pass --server URL")
    return found


async def find_run(args: argparse.Namespace) -> tuple[CollabClient, RunRecord]:
    """(client, record) for args.run (or the newest run when it is None)."""
    from .client import CollabClient, RunNotFound

    newest = None
    for info in await collab_servers(args):
        client = CollabClient(info)
        try:
            if args.run is None:
                runs = await client.list_runs()
                if runs and (
                    newest is None
                    or str(runs[-1].get("created", "")) >= str(newest[1].get("created", ""))
                ):
                    if newest is not None:
                        await newest[0].close()
                    newest = (client, runs[-1])
                    continue
            else:
                return client, await client.find_run(args.run)
        except RunNotFound:
            pass
        await client.close()
    if newest is not None:
        return newest
    if args.run is None:
        raise UsageError("no runs found")
    raise UsageError(f"no run {args.run!r} found")


async def cmd_attach(
    args: argparse.Namespace, interrupted: asyncio.Event, stdin: StdinLines
) -> int:
    client, record = await find_run(args)
    started = time.monotonic()
    try:
        run = await client.attach(record["request_id"])
        note(
            f"collab-kernels: attached to run {run.run_id} of {run.path} "
            f"({record.get('status')}); Ctrl-C detaches"
        )
        watcher = Watcher(
            run,
            log_output=True,
            progress=not args.no_progress,
            timeout=args.timeout,
            interrupted=interrupted,
            stdin=stdin,
        )
        status = await watcher.follow()
        if status is None:
            note_detached(run.run_id)
            return EXIT_INTERRUPTED
        code = exit_code(status, watcher, allow_errors=False)
        report(run, status, code, watcher, time.monotonic() - started)
        return code
    finally:
        await client.close()


def _cells_done(record: RunRecord) -> tuple[int, int]:
    cells = record.get("cells") or []
    return sum(1 for c in cells if c.get("status") == "done"), len(cells)


def _status_lines(record: RunRecord) -> list[str]:
    done, total = _cells_done(record)
    running = next((c for c in record.get("cells") or [] if c.get("status") == "running"), None)
    lines = [
        f"run:       {record.get('request_id')}",
        f"notebook:  {record.get('path')}",
        f"kernel:    {record.get('kernel_id')}",
        f"document:  {record.get('document_id')}",
        f"status:    {record.get('status')}"
        + (f" ({record.get('result')})" if record.get("result") else ""),
        f"cells:     {done}/{total} done"
        + (f", running {running.get('cell_id')}" if running else ""),
    ]
    for key in ("created", "started", "finished"):
        if record.get(key):
            lines.append(f"{key + ':':<10} {record.get(key)}")
    return lines


async def cmd_status(args: argparse.Namespace) -> int:
    client, record = await find_run(args)
    await client.close()
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print("\n".join(_status_lines(record)))
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    from .client import CollabClient

    rows: list[Any] = []
    for info in await collab_servers(args):
        async with CollabClient(info) as client:
            for record in await client.list_runs():
                rows.append(dict(record, server=info.url))
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no runs")
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("RUN", "STATUS", "RESULT", "CELLS", "NOTEBOOK", "CREATED"):
        table.add_column(col, no_wrap=col in ("RUN", "STATUS"))
    for r in rows:
        done, total = _cells_done(r)
        table.add_row(
            str(r.get("request_id")),
            str(r.get("status")),
            str(r.get("result") or ""),
            f"{done}/{total}",
            str(r.get("path") or ""),
            str(r.get("created") or ""),
        )
    Console(width=max(120, Console().width)).print(table)
    return EXIT_OK


async def cmd_cancel(args: argparse.Namespace) -> int:
    client, record = await find_run(args)
    try:
        run_id, kernel_id = record["request_id"], record["kernel_id"]
        if record.get("status") == "done":
            print(f"run {run_id} already finished ({record.get('result')})")
            return EXIT_OK
        record = await client.cancel_run(kernel_id, run_id)
        deadline = time.monotonic() + 30
        while record.get("status") != "done" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # no event to await over REST: poll with a deadline
            record = await client.run_status(kernel_id, run_id)
        print(f"run {run_id}: {record.get('status')} ({record.get('result')})")
        return EXIT_OK if record.get("status") == "done" else EXIT_SERVER
    finally:
        await client.close()
