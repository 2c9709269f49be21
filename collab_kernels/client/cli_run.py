"""``collab-kernels run``: run notebooks in a server (``--server``) or an embedded one.

The arguments are papermill's where papermill has them (``NOTEBOOK [OUTPUT]``, ``-`` for
stdin/stdout, ``-p/-r/-y/-b/-f``, ``-k``, ``--prepare-only``, ``--report-mode``,
``--inject-paths``, ``--start-timeout``, ``--execution-timeout``, ``--stdout-file``...), plus
ours (``--server``, ``--detach``, ``--reuse-kernel``, batches, ``--allow-errors``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .cli_runs import explicit_server
from .cli_term import EXIT_OK, EXIT_USAGE, StdinLines, UsageError, note
from .execute import Job, JobResult, RunOptions, run_job

if TYPE_CHECKING:
    from .client import CollabClient
    from .servers import EmbeddedServer, ServerInfo


# --------------------------------------------------------------------------------------------
# Arguments -> what to run
# --------------------------------------------------------------------------------------------


@dataclass
class Planned:
    """One notebook as the user named it: input, output (None: in place; '-': stdout)."""

    input: str
    output: str | None


def plan(args: argparse.Namespace) -> list[Planned]:
    names: list[str] = args.notebooks
    if args.batch or len(names) > 2:
        if args.output:
            raise UsageError("a batch writes in place or into --output-dir, not --output")
        if "-" in names:
            raise UsageError("'-' (stdin) cannot be part of a batch")
        out = args.output_dir
        return [Planned(n, os.path.join(out, os.path.basename(n)) if out else None) for n in names]
    if args.output_dir:
        raise UsageError("--output-dir is for a batch (--batch, or three notebooks or more)")
    if len(names) == 2:
        if args.output:
            raise UsageError("OUTPUT given twice (positional and --output)")
        return [Planned(names[0], names[1])]
    output = args.output
    if names[0] == "-" and output is None:
        output = "-"  # papermill: `papermill -` writes the notebook to stdout
    return [Planned(names[0], output)]


def parameters(args: argparse.Namespace, item: Planned) -> dict[str, Any]:
    from .params import ParameterError, merge_parameters

    paths: dict[str, str] = {}
    if args.inject_input_path or args.inject_paths:
        paths["PAPERMILL_INPUT_PATH"] = item.input
    if args.inject_output_path or args.inject_paths:
        paths["PAPERMILL_OUTPUT_PATH"] = item.output or item.input
    try:
        return merge_parameters(
            paths=paths,
            base64_yaml=args.base64,
            files=args.parameters_file,
            yaml_texts=args.yaml,
            values=[tuple(p) for p in args.parameter],
            raw=[tuple(p) for p in args.raw],
        )
    except ParameterError as e:
        raise UsageError(str(e)) from None


def format_path(path: str, params: dict[str, Any]) -> str:
    """papermill's path templates: ``out_{alpha}.ipynb``, ``{pm[run_uuid]}``."""
    if "{" not in path or path == "-":
        return path
    values = dict(params)
    values.setdefault(
        "pm",
        {
            "run_uuid": str(uuid.uuid4()),
            "current_datetime_local": datetime.now(),
            "current_datetime_utc": datetime.now(timezone.utc),
        },
    )
    try:
        return path.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError(f"path {path!r}: no parameter {e} to fill it with") from None


def _api_path(info: ServerInfo, arg: str, local: bool) -> str:
    """A NOTEBOOK/OUTPUT/--cwd argument as a server path: a local path mapped through the
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


def _scratch(near: str) -> str:
    folder, _, name = near.rpartition("/")
    stem = name[:-6] if name.endswith(".ipynb") else name
    scratch = f"{stem or 'stdin'}.collab-kernels-{uuid.uuid4().hex[:8]}.ipynb"
    return f"{folder}/{scratch}" if folder else scratch


def _read_stdin_notebook() -> dict[str, Any]:
    text = sys.stdin.read()
    try:
        nb = json.loads(text)
    except ValueError as e:
        raise UsageError(f"stdin is not a notebook (JSON): {e}") from None
    if not isinstance(nb, dict) or "cells" not in nb:
        raise UsageError("stdin is not a notebook (no cells)")
    return nb


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> RunOptions:
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.start_timeout <= 0:
        raise UsageError("--start-timeout must be a positive number of seconds")
    return RunOptions(
        kernel_name=args.kernel,
        language=args.language,
        timeout=args.timeout,
        start_timeout=args.start_timeout,
        allow_errors=args.allow_errors,
        prepare_only=args.prepare_only,
        report_mode=args.report_mode,
        reuse_kernel=args.reuse_kernel,
        detach=args.detach,
        log_output=args.log_output,
        progress=not args.no_progress,
        stdout_file=args.stdout_file,
        stderr_file=args.stderr_file,
    )


def _embedded(args: argparse.Namespace, items: list[Planned]) -> EmbeddedServer:
    from .servers import EmbeddedServer

    folders = []
    for item in items:
        if item.input == "-":
            folders.append(os.getcwd())
            continue
        path = os.path.abspath(item.input)
        if not os.path.isfile(path):
            raise UsageError(f"no such notebook: {item.input}")
        folders.append(os.path.dirname(path))
        if item.output not in (None, "-"):
            out_dir = os.path.dirname(os.path.abspath(item.output))
            if not os.path.isdir(out_dir):
                raise UsageError(f"OUTPUT: no such folder: {out_dir}")
            folders.append(out_dir)
    if args.cwd:
        if not os.path.isdir(args.cwd):
            raise UsageError(f"--cwd: no such folder: {args.cwd}")
        folders.append(os.path.abspath(args.cwd))
    verbose = args.verbose or (args.log_level or "").upper() == "DEBUG"
    return EmbeddedServer(os.path.commonpath(folders), log_level="INFO" if verbose else "ERROR")


async def cmd_run(args: argparse.Namespace, interrupted: asyncio.Event, stdin: StdinLines) -> int:
    from .client import CollabClient

    items = plan(args)
    if args.help_notebook:
        return _help_notebook(items[0].input)
    options = _options(args)
    info = explicit_server(args)
    embedded = None
    if info is None and args.detach:
        from .servers import server_for_path

        info = server_for_path(items[0].input)
        if info is None:
            raise UsageError(
                "--detach needs a server that outlives this command: pass --server URL, or start "
                "`jupyter server` (with collab_kernels) in a folder that holds the notebook"
            )
    if info is None:
        embedded = _embedded(args, items)
        info = await embedded.start()
        options.remote = False
    stdin_notebook = _read_stdin_notebook() if items[0].input == "-" else None
    if stdin_notebook is not None or any(i.output == "-" for i in items):
        options.log_stdout = sys.stderr  # stdout carries the notebook
        stdin = StdinLines(closed=True) if stdin_notebook is not None else stdin
    try:
        async with CollabClient(info) as client:
            await client.check()
            codes = []
            for item in items:
                code = await _run_one(
                    client,
                    info,
                    args,
                    item,
                    options,
                    embedded is not None,
                    stdin_notebook,
                    interrupted,
                    stdin,
                )
                codes.append((item.input, code))
                if interrupted.is_set() or code == 130:
                    break
            if len(items) > 1:
                failed = [(name, code) for name, code in codes if code != EXIT_OK]
                note(
                    f"collab-kernels: batch of {len(items)}: {len(codes) - len(failed)} ok"
                    + "".join(f"; {name}: exit {code}" for name, code in failed)
                )
            return next((code for _, code in codes if code != EXIT_OK), EXIT_OK)
    finally:
        if embedded is not None:
            await embedded.stop()


async def _run_one(
    client: CollabClient,
    info: ServerInfo,
    args: argparse.Namespace,
    item: Planned,
    options: RunOptions,
    embedded: bool,
    stdin_notebook: dict[str, Any] | None,
    interrupted: asyncio.Event,
    stdin: StdinLines,
) -> int:
    import dataclasses

    params = parameters(args, item)
    item = Planned(
        format_path(item.input, params), item.output and format_path(item.output, params)
    )
    local = embedded or bool(
        info.root_dir
        and item.input != "-"
        and os.path.exists(item.input)
        and info.api_path_for(item.input) is not None
    )
    cwd = _api_path(info, args.cwd, local) if args.cwd else None
    scratch_input = None
    if stdin_notebook is not None:
        base = _api_path(info, os.getcwd(), True) if local and info.root_dir else ""
        scratch_input = _scratch(f"{base}/stdin" if base else "stdin")
        await client.save_notebook_to(scratch_input, stdin_notebook)
        path = scratch_input
    else:
        path = _api_path(info, item.input, local)
    scratch = item.output == "-"
    if scratch:
        target = _scratch(path)
    elif item.output is not None:
        target = _api_path(info, item.output, local)
        if target == path:
            raise UsageError(
                "OUTPUT must differ from NOTEBOOK (leave it out to write into NOTEBOOK)"
            )
    else:
        target = path
    if cwd is None and target != path:
        cwd = path.rsplit("/", 1)[0] if "/" in path else ""
    job = Job(path, target, item.input, item.output or item.input, scratch=scratch)
    try:
        result: JobResult = await run_job(
            client,
            info,
            job,
            dataclasses.replace(options, parameters=params, cwd=cwd),
            interrupted=interrupted,
            stdin=stdin,
        )
    finally:
        if scratch_input is not None:
            await client.delete_contents(scratch_input)
    if scratch and result.notebook is not None:
        import nbformat

        text = nbformat.writes(nbformat.from_dict(result.notebook))  # type: ignore[no-untyped-call]
        sys.stdout.write(text)
        sys.stdout.flush()
    return result.code


def _help_notebook(path: str) -> int:
    from .papermill import describe_parameters

    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    lines = describe_parameters(nb)
    if not lines:
        print(f"{path} has no cell tagged 'parameters'")
        return EXIT_OK
    print(f"Parameters of {path} (its cell tagged 'parameters'):")
    for line in lines:
        print(f"  {line}")
    return EXIT_OK


def papermill_exit_code(code: int, error: BaseException | None = None) -> int:
    """Our exit code as papermill 2.7 would give it (``--exit-codes papermill``)."""
    from .cli_term import PAPERMILL_EXIT_CODES, KernelSpecError

    if isinstance(error, KernelSpecError):
        return 1  # papermill raises (NoSuchKernel, ValueError): exit 1
    if code == EXIT_USAGE:
        return 2
    return PAPERMILL_EXIT_CODES.get(code, 1)
