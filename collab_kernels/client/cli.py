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
  run NOTEBOOK      run every code cell, papermill-style parameters, wait (or --detach)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from .errors import CollabError, ServerError

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
