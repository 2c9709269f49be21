"""``collab-kernels run``: run notebooks in a server (``--server``) or an embedded one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from .cli_runs import explicit_server
from .cli_term import EXIT_INTERRUPTED, EXIT_OK, StdinLines, UsageError, note, note_detached
from .cli_watch import Watcher, exit_code, report

if TYPE_CHECKING:
    pass


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
    note(
        f"collab-kernels: the notebook's kernel {name!r} is not installed on the server; "
        f"using {specs.get('default')!r}"
    )
    return None


async def cmd_run(args, interrupted: asyncio.Event, stdin: StdinLines) -> int:
    from .client import CollabClient, NotFound
    from .params import ParameterError
    from .servers import EmbeddedServer, server_for_path

    try:
        params = _parameters(args)
    except ParameterError as e:
        raise UsageError(str(e)) from None
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")

    info = explicit_server(args)
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
                note(
                    f"collab-kernels: {target} already has a session with kernel "
                    f"{nb.kernel_name}; using it"
                )
            if params:
                try:
                    nb.inject_parameters(params)
                except ParameterError as e:
                    raise UsageError(str(e)) from None
            if not nb.code_cell_ids():
                note(f"collab-kernels: {target} has no code to run")
                await nb.save()
                return EXIT_OK
            run = await nb.execute(stop_on_error=not args.allow_errors)
            if args.detach:
                print(run.run_id, flush=True)
                note(f"collab-kernels: run {run.run_id} of {target} goes on in the server")
                note(f"  watch it in JupyterLab: {info.lab_url(target)}")
                note(f"  follow it here:         collab-kernels attach {run.run_id}")
                return EXIT_OK
            note(f"collab-kernels: run {run.run_id} of {target} ({len(run.cell_ids)} cells)")
            note(f"  watch it live in JupyterLab: {info.lab_url(target)}")
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
                    note_detached(run.run_id)
                    return EXIT_INTERRUPTED
                note(f"collab-kernels: interrupted: cancelling run {run.run_id}")
                interrupted.clear()
                await run.cancel()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(run.wait(), 30)
                await nb.save()
                return EXIT_INTERRUPTED
            await nb.save()
            code = await exit_code(run, status, watcher, args.allow_errors)
            report(run, status, code, watcher, time.monotonic() - started)
            where = args.output or args.notebook
            note(f"  saved: {where}")
            return code
    finally:
        if embedded is not None:
            await embedded.stop()
