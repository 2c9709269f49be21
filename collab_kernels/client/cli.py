"""``collab-kernels``: run notebooks headless through a collab_kernels server, detach, come back.

A run is one execute request of all the notebook's code cells; its id is the request id. Its
state lives in the server (and in the document every browser sees), never in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from typing import Any

EXIT_OK = 0
EXIT_CELL_ERROR = 1
EXIT_USAGE = 2
EXIT_KERNEL_DIED = 3
EXIT_TIMEOUT = 4
EXIT_CANCELLED = 5
EXIT_SERVER = 6
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    the run finished and every cell succeeded (or --allow-errors was given)
  1    a cell raised an error; the run stopped there (its error is in the notebook)
  2    usage error: bad arguments, missing notebook, bad parameters, unknown run id
  3    the kernel died during the run
  4    a cell ran longer than --timeout; it was interrupted and the run cancelled
  5    the run was cancelled (`collab-kernels cancel`, or from another client)
  6    the server could not be reached, refused the token, or answered with an error
  130  Ctrl-C: `attach` and `run --server` detach (the run goes on in the server);
       `run` with its embedded server cancels the run and stops the server
"""

DESCRIPTION = """\
Run notebooks headless on a Jupyter server with collab_kernels: cells run in the server, their
outputs go into the notebook's shared document (browsers watch it live in JupyterLab) and into
the file. Without --server, `run` starts an embedded server for the duration of the run.

commands:
  run NOTEBOOK      run every code cell, papermill-style parameters, wait (or --detach)
  list              runs known to the server(s)
  status [RUN]      one run's state (default: the newest run)
  attach RUN        print what the run printed so far, then follow it live; answer input()
  cancel RUN        stop a run (queued cells dropped, the running cell interrupted)

Without --server, list/status/attach/cancel look at the servers `jupyter server list` shows.
"""


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        metavar="URL",
        help="server URL, e.g. http://127.0.0.1:8888/ (a ?token= in it is used)",
    )
    p.add_argument(
        "--token",
        metavar="T",
        help="server token (default: from the URL, $COLLAB_KERNELS_TOKEN or $JUPYTER_TOKEN)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collab-kernels",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"collab-kernels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a notebook",
        description="Run every code cell of NOTEBOOK in one request and wait for it.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "notebook", metavar="NOTEBOOK", help="notebook file (with --server: its path on the server)"
    )
    _server_args(run)
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter (None/True/False, numbers are converted; else a string); repeatable",
    )
    run.add_argument(
        "-f",
        "--parameters-file",
        metavar="PARAMS.yaml",
        help="YAML mapping of parameters (-p wins)",
    )
    run.add_argument(
        "--kernel", metavar="NAME", help="kernel name (default: the notebook's kernelspec)"
    )
    run.add_argument(
        "--cwd",
        metavar="DIR",
        help="the kernel's working directory (default: the notebook's folder)",
    )
    run.add_argument(
        "--timeout", type=float, metavar="S", help="seconds a single cell may run (exit code 4)"
    )
    run.add_argument(
        "--allow-errors", action="store_true", help="run all cells even when one raises; exit 0"
    )
    run.add_argument(
        "--output",
        metavar="PATH",
        help="write the executed notebook there; NOTEBOOK stays untouched",
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="print the run id and exit; the run goes on in the server",
    )
    run.add_argument(
        "--log-output", action="store_true", help="print the cells' outputs as they arrive"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--verbose", action="store_true", help="show the embedded server's log")

    lst = sub.add_parser(
        "list", help="list runs", description="List the runs the server(s) know, newest last."
    )
    _server_args(lst)
    lst.add_argument("--json", action="store_true", help="machine-readable output")

    status = sub.add_parser("status", help="show a run's state", description="Show a run's state.")
    status.add_argument(
        "run", metavar="RUN", nargs="?", help="run id (a unique prefix is enough); default: newest"
    )
    _server_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    attach = sub.add_parser(
        "attach",
        help="follow a run",
        description="Print what RUN printed so far, then follow it live. Ctrl-C detaches; the run goes on.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    attach.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    _server_args(attach)
    attach.add_argument(
        "--timeout", type=float, metavar="S", help="seconds a single cell may run (exit code 4)"
    )
    attach.add_argument("--no-progress", action="store_true", help="no progress bar")

    cancel = sub.add_parser(
        "cancel",
        help="stop a run",
        description="Stop RUN: queued cells dropped, the running cell interrupted.",
    )
    cancel.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    _server_args(cancel)
    return parser


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def _explicit_server(args):
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
        if known.url == info.url:
            info.root_dir = known.root_dir
            info.token = info.token or known.token
    return info


async def _collab_servers(args) -> list:
    """The servers to search for runs: --server, or every running one that has collab_kernels."""
    from .client import CollabClient, ServerError
    from .servers import running_servers

    explicit = _explicit_server(args)
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


async def _find_run(args):
    """(client, record) for args.run (or the newest run when it is None)."""
    from .client import CollabClient, RunNotFound

    newest = None
    for info in await _collab_servers(args):
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


# --------------------------------------------------------------------------------------------
# Terminal output
# --------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _plain(text: str, stream) -> str:
    return text if getattr(stream, "isatty", lambda: False)() else _ANSI.sub("", text)


def _write(stream, text: str) -> None:
    if not text.endswith("\n"):
        text += "\n"
    stream.write(_plain(text, stream))
    stream.flush()


def _note(text: str) -> None:
    _write(sys.stderr, text)


class _StdinLines:
    """Reads stdin lines without blocking the event loop (kept buffered across prompts)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.eof = False

    async def readline(self) -> str | None:
        loop = asyncio.get_running_loop()
        while b"\n" not in self.buffer and not self.eof:
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                self.eof = True
                break
            ready = loop.create_future()
            try:
                loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
            except (OSError, ValueError, NotImplementedError, PermissionError):
                # a regular file (e.g. `< answers.txt`): read it directly
                data = os.read(fd, 65536)
                self.buffer += data
                self.eof = not data
                continue
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            data = os.read(fd, 65536)
            if not data:
                self.eof = True
            self.buffer += data
        if b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            return line.decode("utf-8", "replace").rstrip("\r")
        if self.buffer:
            line, self.buffer = self.buffer, b""
            return line.decode("utf-8", "replace")
        return None


@contextlib.contextmanager
def _no_echo(enabled: bool):
    if not enabled or not sys.stdin.isatty():
        yield
        return
    import termios

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


# --------------------------------------------------------------------------------------------
# Watching a run (run and attach)
# --------------------------------------------------------------------------------------------


class Watcher:
    """Follows a :class:`~collab_kernels.client.client.Run`: progress, outputs, prompts, timeout."""

    def __init__(
        self,
        run,
        *,
        log_output: bool,
        progress: bool,
        timeout: float | None,
        interrupted: asyncio.Event,
        stdin: _StdinLines,
    ):
        self.run = run
        self.log_output = log_output
        self.timeout = timeout
        self.interrupted = interrupted
        self.stdin = stdin
        self.timed_out = False
        self.errors: list[tuple[int, Any]] = []
        self.done = 0
        self.total = len(run.cell_ids)
        self.current_started: float | None = None
        self.current = None
        self._prompt_task: asyncio.Task | None = None
        self._echo: str | None = None
        self.progress = None
        if progress and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[notebook]}[/] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.task = self.progress.add_task("queued", total=self.total, notebook=run.path)

    def _describe(self, event) -> str:
        first = (event.source.strip().splitlines() or [""])[0]
        if len(first) > 40:
            first = first[:39] + "…"
        return f"cell {event.position}/{event.total}: {first}"

    async def follow(self) -> dict | None:
        """Consume the run's events until it finishes; None if detached by Ctrl-C."""
        from .client import CellFinished, CellStarted, InputRequested, Output, RunFinished

        events = self.run.events()
        if self.progress is not None:
            self.progress.start()
        next_event: asyncio.Future | None = None
        interrupted = asyncio.ensure_future(self.interrupted.wait())
        cancel_deadline: float | None = None
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.ensure_future(events.__anext__())
                wait = None
                if self.timeout and self.current_started is not None and not self.timed_out:
                    wait = max(0.0, self.current_started + self.timeout - time.monotonic())
                done, _ = await asyncio.wait(
                    {next_event, interrupted}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if interrupted in done:
                    return None
                if not done:
                    await self._on_timeout()
                    continue
                try:
                    event = next_event.result()
                except StopAsyncIteration:
                    return self.run.record
                next_event = None
                if isinstance(event, CellStarted):
                    self.current = event
                    self.current_started = time.monotonic()
                    if self.progress is not None:
                        self.progress.update(self.task, description=self._describe(event))
                elif isinstance(event, Output):
                    if (
                        self._echo is not None
                        and event.output_type == "stream"
                        and event.text == self._echo
                    ):
                        self._echo = None
                        continue
                    if event.output_type == "error":
                        self.errors.append((event.position, event.output))
                    if self.log_output:
                        stream = (
                            sys.stderr
                            if event.name == "stderr" or event.output_type == "error"
                            else sys.stdout
                        )
                        _write(stream, event.text)
                elif isinstance(event, InputRequested):
                    self._start_prompt(event)
                elif isinstance(event, CellFinished):
                    self._stop_prompt()
                    self.done += 1
                    self.current_started = None
                    if self.progress is not None:
                        self.progress.update(self.task, completed=self.done)
                elif isinstance(event, RunFinished):
                    return event.status
        finally:
            self._stop_prompt()
            interrupted.cancel()
            if next_event is not None:
                next_event.cancel()
            with contextlib.suppress(BaseException):
                await events.aclose()
            if self.progress is not None:
                self.progress.stop()

    async def _on_timeout(self) -> None:
        self.timed_out = True
        where = f"cell {self.current.position}/{self.current.total}" if self.current else "a cell"
        _note(
            f"collab-kernels: {where} ran longer than {self.timeout:g} s: interrupting it and cancelling run {self.run.run_id}"
        )
        await self.run.cancel()

    # -- input() prompts ---------------------------------------------------------------------

    def _start_prompt(self, event) -> None:
        self._stop_prompt()
        self._prompt_task = asyncio.ensure_future(self._prompt(event))

    def _stop_prompt(self) -> None:
        if self._prompt_task is not None and not self._prompt_task.done():
            self._prompt_task.cancel()
        self._prompt_task = None

    async def _prompt(self, event) -> None:
        if self.progress is not None:
            self.progress.stop()
        try:
            sys.stderr.write(f"[cell {event.position}] {event.prompt}")
            sys.stderr.flush()
            with _no_echo(event.password):
                value = await self.stdin.readline()
            if event.password or not sys.stdin.isatty():
                sys.stderr.write("\n")  # the terminal did not echo the newline
            if value is None:
                _note(
                    "collab-kernels: stdin is closed; the prompt stays open (answer it with `collab-kernels attach` or in JupyterLab)"
                )
                return
            await self.run.answer_input(value, event.cell_id)
            # The server echoes "prompt + value" into the cell's stdout; the user just saw it.
            self._echo = event.prompt + ("" if event.password else value) + "\n"
        finally:
            if self.progress is not None:
                self.progress.start()


def _kernel_died(status: dict, errors: list[tuple[Any, dict]] = ()) -> bool:
    """Whether the run ended because its kernel went away: the server then writes one of the
    error names of ``contract.KERNEL_GONE_ENAMES`` into the cell that was running."""
    from ..contract import is_kernel_gone

    cells = status.get("cells") or []
    return any(is_kernel_gone((c.get("error") or {}).get("ename")) for c in cells) or any(
        is_kernel_gone(o.get("ename")) for _, o in errors
    )


async def _exit_code(run, status: dict | None, watcher: Watcher, allow_errors: bool) -> int:
    if status is None:
        return EXIT_INTERRUPTED
    result = status.get("result")
    if watcher.timed_out:
        return EXIT_TIMEOUT
    if result == "ok":
        return EXIT_OK
    if _kernel_died(status, watcher.errors):
        return EXIT_KERNEL_DIED
    if result == "cancelled":
        return EXIT_CANCELLED
    if allow_errors and result == "error":
        return EXIT_OK
    return EXIT_CELL_ERROR


def _report(run, status: dict | None, code: int, watcher: Watcher, elapsed: float) -> None:
    if status is None:
        return
    words = {
        EXIT_OK: "finished",
        EXIT_CELL_ERROR: "failed: a cell raised an error",
        EXIT_KERNEL_DIED: "failed: the kernel died",
        EXIT_TIMEOUT: "timed out",
        EXIT_CANCELLED: "was cancelled",
    }
    _note(
        f"collab-kernels: run {run.run_id} of {run.path} {words.get(code, status.get('result'))} "
        f"({watcher.done}/{watcher.total} cells, {elapsed:.1f} s)"
    )
    if code in (EXIT_CELL_ERROR,) and watcher.errors and not watcher.log_output:
        position, output = watcher.errors[-1]
        _note(f"--- cell {position} ---")
        _note(
            "\n".join(output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"])
        )


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _parameters(args) -> dict[str, Any]:
    from .params import load_parameters_file, parse_cli_value

    params: dict[str, Any] = {}
    if args.parameters_file:
        params.update(load_parameters_file(args.parameters_file))
    for name, value in args.parameter:
        params[name] = parse_cli_value(value)
    return params


def _api_path(info, arg: str, local: bool) -> str:
    """A NOTEBOOK/--output/--cwd argument as a server path: a local path mapped through the
    server's root (``local``), else a path on the server as given."""
    if local:
        mapped = info.api_path_for(arg)
        if mapped is None:
            raise UsageError(f"{arg} is outside the server's root {info.root_dir}")
        return mapped
    path = arg.replace(os.sep, "/")
    while path.startswith("./"):
        path = path[2:]
    return path.strip("/")


async def _notebook_kernel(client, model: dict) -> str | None:
    """The notebook's kernelspec name if the server has it (else the server's default)."""
    spec = ((model.get("content") or {}).get("metadata") or {}).get("kernelspec") or {}
    name = spec.get("name")
    if not name:
        return None
    specs = await client.kernelspecs()
    if name in (specs.get("kernelspecs") or {}):
        return name
    _note(
        f"collab-kernels: the notebook's kernel {name!r} is not installed on the server; using {specs.get('default')!r}"
    )
    return None


async def cmd_run(args, interrupted: asyncio.Event, stdin: _StdinLines) -> int:
    from .client import CollabClient, NotFound
    from .params import ParameterError
    from .servers import EmbeddedServer, server_for_path

    try:
        params = _parameters(args)
    except ParameterError as e:
        raise UsageError(str(e)) from None
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")

    info = _explicit_server(args)
    embedded = None
    if info is None and args.detach:
        info = server_for_path(args.notebook)
        if info is None:
            raise UsageError(
                "--detach needs a server that outlives this command: pass --server URL, or start "
                "`jupyter server` (with collab_kernels) in a folder that holds the notebook"
            )
    if info is None:
        notebook = os.path.abspath(args.notebook)
        if not os.path.isfile(notebook):
            raise UsageError(f"no such notebook: {args.notebook}")
        folders = [os.path.dirname(notebook)]
        if args.cwd:
            if not os.path.isdir(args.cwd):
                raise UsageError(f"--cwd: no such folder: {args.cwd}")
            folders.append(os.path.abspath(args.cwd))
        if args.output:
            out_dir = os.path.dirname(os.path.abspath(args.output))
            if not os.path.isdir(out_dir):
                raise UsageError(f"--output: no such folder: {out_dir}")
            folders.append(out_dir)
        embedded = EmbeddedServer(
            os.path.commonpath(folders), log_level="INFO" if args.verbose else "ERROR"
        )
        info = await embedded.start()

    started = time.monotonic()
    try:
        async with CollabClient(info) as client:
            await client.check()
            # Local paths when the server runs here and serves the file, else server paths.
            local = embedded is not None or bool(
                info.root_dir
                and os.path.exists(args.notebook)
                and info.api_path_for(args.notebook) is not None
            )
            path = _api_path(info, args.notebook, local)
            try:
                source_model = await client.get_contents(path)
            except NotFound:
                raise UsageError(f"no such notebook on the server: {path}") from None
            if source_model.get("type") != "notebook":
                raise UsageError(f"{path} is not a notebook")
            cwd = _api_path(info, args.cwd, local) if args.cwd else None
            target = path
            if args.output:
                target = _api_path(info, args.output, local)
                if target == path:
                    raise UsageError(
                        "--output must differ from NOTEBOOK (leave it out to write into NOTEBOOK)"
                    )
                await client.save_notebook_to(target, source_model["content"])
                if cwd is None:
                    cwd = path.rsplit("/", 1)[0] if "/" in path else ""
            kernel_name = args.kernel or await _notebook_kernel(client, source_model)
            nb = await client.open_notebook(target, kernel_name=kernel_name, cwd=cwd)
            if args.kernel and nb.kernel_name and nb.kernel_name != args.kernel:
                _note(
                    f"collab-kernels: {target} already has a session with kernel {nb.kernel_name}; using it"
                )
            if params:
                try:
                    nb.inject_parameters(params)
                except ParameterError as e:
                    raise UsageError(str(e)) from None
            if not nb.code_cell_ids():
                _note(f"collab-kernels: {target} has no code to run")
                await nb.save()
                return EXIT_OK
            run = await nb.execute(stop_on_error=not args.allow_errors)
            if args.detach:
                print(run.run_id, flush=True)
                _note(f"collab-kernels: run {run.run_id} of {target} goes on in the server")
                _note(f"  watch it in JupyterLab: {info.lab_url(target)}")
                _note(f"  follow it here:         collab-kernels attach {run.run_id}")
                return EXIT_OK
            _note(f"collab-kernels: run {run.run_id} of {target} ({len(run.cell_ids)} cells)")
            _note(f"  watch it live in JupyterLab: {info.lab_url(target)}")
            watcher = Watcher(
                run,
                log_output=args.log_output,
                progress=not args.no_progress,
                timeout=args.timeout,
                interrupted=interrupted,
                stdin=stdin,
            )
            status = await watcher.follow()
            if status is None:
                if embedded is None:
                    _note(
                        f"collab-kernels: detached; run {run.run_id} goes on. `collab-kernels attach {run.run_id}` to come back"
                    )
                    return EXIT_INTERRUPTED
                _note(f"collab-kernels: interrupted: cancelling run {run.run_id}")
                interrupted.clear()
                await run.cancel()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(run.wait(), 30)
                await nb.save()
                return EXIT_INTERRUPTED
            await nb.save()
            code = await _exit_code(run, status, watcher, args.allow_errors)
            _report(run, status, code, watcher, time.monotonic() - started)
            where = args.output or args.notebook
            _note(f"  saved: {where}")
            return code
    finally:
        if embedded is not None:
            await embedded.stop()


async def cmd_attach(args, interrupted: asyncio.Event, stdin: _StdinLines) -> int:
    client, record = await _find_run(args)
    started = time.monotonic()
    try:
        run = await client.attach(record["request_id"])
        _note(
            f"collab-kernels: attached to run {run.run_id} of {run.path} ({record.get('status')}); Ctrl-C detaches"
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
            _note(
                f"collab-kernels: detached; run {run.run_id} goes on. `collab-kernels attach {run.run_id}` to come back"
            )
            return EXIT_INTERRUPTED
        code = await _exit_code(run, status, watcher, allow_errors=False)
        _report(run, status, code, watcher, time.monotonic() - started)
        return code
    finally:
        await client.close()


def _cells_done(record: dict) -> tuple[int, int]:
    cells = record.get("cells") or []
    return sum(1 for c in cells if c.get("status") == "done"), len(cells)


def _status_lines(record: dict) -> list[str]:
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


async def cmd_status(args) -> int:
    client, record = await _find_run(args)
    await client.close()
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print("\n".join(_status_lines(record)))
    return EXIT_OK


async def cmd_list(args) -> int:
    from .client import CollabClient

    rows = []
    for info in await _collab_servers(args):
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


async def cmd_cancel(args) -> int:
    client, record = await _find_run(args)
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


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


async def _main_async(args) -> int:
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    stdin = _StdinLines()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses > 2:
            os._exit(EXIT_INTERRUPTED)
        interrupted.set()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    if args.command == "run":
        return await cmd_run(args, interrupted, stdin)
    if args.command == "attach":
        return await cmd_attach(args, interrupted, stdin)
    if args.command == "status":
        return await cmd_status(args)
    if args.command == "list":
        return await cmd_list(args)
    if args.command == "cancel":
        return await cmd_cancel(args)
    raise UsageError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from .client import CollabError, ServerError

    try:
        return asyncio.run(_main_async(args))
    except UsageError as e:
        print(f"collab-kernels {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ServerError as e:
        print(f"collab-kernels {args.command}: server error: {e}", file=sys.stderr)
        return EXIT_SERVER
    except CollabError as e:
        print(f"collab-kernels {args.command}: error: {e}", file=sys.stderr)
        return EXIT_SERVER
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
