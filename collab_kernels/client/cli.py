"""``collab-kernels``: run notebooks headless through a collab_kernels server, detach, come back.

A run is one execute request of all the notebook's code cells; its id is the request id. Its
state lives in the server (and in the document every browser sees), never in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from .cli_term import (
    EXIT_CANCELLED,
    EXIT_CELL_ERROR,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    StdinLines,
    UsageError,
)

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_CELL_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_KERNEL_DIED",
    "EXIT_OK",
    "EXIT_SERVER",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

DESCRIPTION = """\
Run notebooks headless on a Jupyter server with collab_kernels: cells run in the server, their
outputs go into the notebook's shared document (browsers watch it live in JupyterLab) and into
the file. Without --server, `run` starts an embedded server for the duration of the run.

commands:
  run NOTEBOOK [OUTPUT]  run every code cell, papermill's flags and parameters, wait
                    (or --detach); several notebooks: one embedded server for the batch
  list              runs known to the server(s)
  status [RUN]      one run's state (default: the newest run)
  attach RUN        print what the run printed so far, then follow it live; answer input()
  cancel RUN        stop a run (queued cells dropped, the running cell interrupted)

Without --server, list/status/attach/cancel look at the servers `jupyter server list` shows.
"""


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

    add_run_parser(sub, _server_args)

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
        description=(
            "Print what RUN printed so far, then follow it live. Ctrl-C detaches; the run goes on."
        ),
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


def add_run_parser(
    sub: Any, server_args: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    run: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run notebooks",
        description=(
            "Run every code cell of NOTEBOOK in one request and wait for it.\n\n"
            "  run NOTEBOOK               NOTEBOOK gets its outputs\n"
            "  run NOTEBOOK OUTPUT        OUTPUT gets them (papermill's form); NOTEBOOK stays\n"
            "  run - OUTPUT, run NB -     '-' reads the notebook from stdin / writes it to stdout\n"
            "  run A B C ..., --batch     one after the other on one embedded server, in place\n"
            "                             or into --output-dir\n"
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "notebooks",
        nargs="+",
        metavar="NOTEBOOK",
        help="notebook file (with --server: its path on the server); then OUTPUT, or more",
    )
    server_args(run)
    add = run.add_argument
    add(
        "-p",
        "--parameters",
        "--parameter",
        dest="parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter: None/True/False, ints and floats (nan, inf) are converted, else a "
        "string; repeatable",
    )
    for dest in ("parameter", "raw"):  # see _pairs_as_single_tokens
        add(f"--pair-{dest}", action="append", default=[], help=argparse.SUPPRESS)
    add(
        "-r",
        "--parameters_raw",
        "--parameters-raw",
        dest="raw",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter kept as a string",
    )
    add(
        "-y",
        "--parameters_yaml",
        "--parameters-yaml",
        dest="yaml",
        action="append",
        default=[],
        metavar="YAML",
        help="a YAML mapping of parameters",
    )
    add(
        "-b",
        "--parameters_base64",
        "--parameters-base64",
        dest="base64",
        action="append",
        default=[],
        metavar="B64",
        help="a base64-encoded YAML mapping of parameters",
    )
    add(
        "-f",
        "--parameters_file",
        "--parameters-file",
        dest="parameters_file",
        action="append",
        default=[],
        metavar="PARAMS.yaml",
        help="a YAML file of parameters (precedence as papermill: -b, -f, -y, -p, -r)",
    )
    add("--inject-input-path", action="store_true", help="PAPERMILL_INPUT_PATH as a parameter")
    add("--inject-output-path", action="store_true", help="PAPERMILL_OUTPUT_PATH as a parameter")
    add("--inject-paths", action="store_true", help="both of them")
    add(
        "-k",
        "--kernel",
        metavar="NAME",
        help="kernel name (default: the notebook's kernelspec; it must be installed)",
    )
    add(
        "-l",
        "--language",
        metavar="LANG",
        help="language to write parameters in (default: the notebook's)",
    )
    add(
        "--cwd",
        metavar="DIR",
        help="the kernel's working directory (default: the notebook's folder)",
    )
    add(
        "--timeout",
        "--execution-timeout",
        dest="timeout",
        type=float,
        metavar="S",
        help="seconds a single cell may run (exit code 4)",
    )
    add(
        "--start-timeout",
        "--start_timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds the kernel may take to start (default 60; exit code 3)",
    )
    add("--allow-errors", action="store_true", help="run all cells even when one raises; exit 0")
    add(
        "--prepare-only",
        action="store_true",
        default=False,
        help="write OUTPUT with the parameters injected, without running it",
    )
    add("--prepare-execute", dest="prepare_only", action="store_false", help=argparse.SUPPRESS)
    add("--report-mode", action="store_true", default=False, help="hide the code cells' inputs")
    add("--help-notebook", action="store_true", help="list NOTEBOOK's parameters and exit")
    add("--no-report-mode", dest="report_mode", action="store_false", help=argparse.SUPPRESS)
    add("-o", "--output", metavar="PATH", help="OUTPUT, as an option")
    add("--output-dir", metavar="DIR", help="batch: write each executed notebook into DIR")
    add(
        "--batch",
        action="store_true",
        help="every NOTEBOOK is an input (also with two), run in place or into --output-dir",
    )
    add(
        "--reuse-kernel",
        action="store_true",
        help="keep the notebook session's kernel and its state (default: a fresh kernel, shut "
        "down after the run)",
    )
    add(
        "--detach",
        action="store_true",
        help="print the run id and exit; the run goes on in the server",
    )
    add("--log-output", action="store_true", help="print the cells' outputs as they arrive")
    add("--no-log-output", dest="log_output", action="store_false", help=argparse.SUPPRESS)
    add(
        "--stdout-file",
        type=argparse.FileType("w", encoding="utf-8"),
        metavar="FILE",
        help="write the cells' stdout there",
    )
    add(
        "--stderr-file",
        type=argparse.FileType("w", encoding="utf-8"),
        metavar="FILE",
        help="write the cells' stderr there",
    )
    add(
        "--no-progress",
        "--no-progress-bar",
        dest="no_progress",
        action="store_true",
        help="no progress bar",
    )
    add("--progress-bar", dest="no_progress", action="store_false", help=argparse.SUPPRESS)
    add(
        "--exit-codes",
        choices=("collab-kernels", "papermill"),
        default=os.environ.get("COLLAB_KERNELS_EXIT_CODES") or "collab-kernels",
        help="papermill: papermill's exit codes (see below)",
    )
    add("--verbose", action="store_true", help="show the embedded server's log")
    # papermill flags with nothing to do here: the server saves the shared document itself
    add("--log-level", help=argparse.SUPPRESS)
    add(
        "--request-save-on-cell-execute",
        "--no-request-save-on-cell-execute",
        action="store_true",
        help=argparse.SUPPRESS,
    )
    add("--autosave-cell-every", type=int, help=argparse.SUPPRESS)
    return run


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


async def _main_async(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    stdin = StdinLines()
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
        from .cli_run import cmd_run

        return await cmd_run(args, interrupted, stdin)
    from . import cli_runs

    if args.command == "attach":
        return await cli_runs.cmd_attach(args, interrupted, stdin)
    if args.command == "status":
        return await cli_runs.cmd_status(args)
    if args.command == "list":
        return await cli_runs.cmd_list(args)
    if args.command == "cancel":
        return await cli_runs.cmd_cancel(args)
    raise UsageError(f"unknown command {args.command}")


_PAIR_FLAGS = {
    "-p": "parameter",
    "--parameters": "parameter",
    "--parameter": "parameter",
    "-r": "raw",
    "--parameters_raw": "raw",
    "--parameters-raw": "raw",
}


def _pairs_as_single_tokens(argv: list[str]) -> list[str]:
    """``-p NAME VALUE`` with a VALUE such as ``-inf`` or ``-x``: argparse would take VALUE for
    an option (papermill's click does not). Each pair becomes one ``--pair-<dest>=NAME\0VALUE``
    token, split again after parsing."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        dest = _PAIR_FLAGS.get(argv[i])
        if dest is not None and i + 2 < len(argv) and "\0" not in argv[i + 1] + argv[i + 2]:
            out.append(f"--pair-{dest}={argv[i + 1]}\0{argv[i + 2]}")
            i += 3
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        argv = _pairs_as_single_tokens(argv)
    args = parser.parse_args(argv)
    for dest in ("parameter", "raw"):
        for token in getattr(args, f"pair_{dest}", None) or []:
            getattr(args, dest).append(token.split("\0", 1))
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    code, error = _run(args)
    if getattr(args, "exit_codes", None) == "papermill":
        from .cli_run import papermill_exit_code

        return papermill_exit_code(code, error)
    return code


def _run(args: argparse.Namespace) -> tuple[int, BaseException | None]:
    from .errors import CollabError, ServerError

    try:
        return asyncio.run(_main_async(args)), None
    except UsageError as e:
        print(f"collab-kernels {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE, e
    except ServerError as e:
        print(f"collab-kernels {args.command}: server error: {e}", file=sys.stderr)
        return EXIT_SERVER, e
    except CollabError as e:
        print(f"collab-kernels {args.command}: error: {e}", file=sys.stderr)
        return EXIT_SERVER, e
    except KeyboardInterrupt as e:
        return EXIT_INTERRUPTED, e


if __name__ == "__main__":
    sys.exit(main())
