"""Ten small notebooks: papermill vs ``collab-kernels run``, wall clock, in the same run.

    .venv/bin/python bench/cli_bench.py [--notebooks 10] [--server URL?token=T]

- ``papermill``: one command per notebook (each starts its own kernel);
- ``collab-kernels run A B C ...``: one command, one embedded server for the batch;
- with ``--server``: one ``collab-kernels run --server`` command per notebook (the server
  must serve the folder the notebooks are written to, see ``--folder``).

Also prints the time from ``collab-kernels run --server`` starting to its first execute
request (in-process, so interpreter start-up is not counted) and whether jupyter_server was
imported. Needs papermill (the test extra). A few minutes at most.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _notebooks(folder: Path, n: int) -> list[str]:
    import nbformat

    names = []
    for i in range(n):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nb.cells = [nbformat.v4.new_code_cell(f"x = {i}"), nbformat.v4.new_code_cell("print(x)")]
        nbformat.write(nb, folder / f"nb{i}.ipynb")
        names.append(f"nb{i}.ipynb")
    return names


def _timed(folder: Path, commands: list[list[str]]) -> float:
    start = time.perf_counter()
    for command in commands:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{command} failed:\n{done.stderr[-2000:]}")
    return round(time.perf_counter() - start, 2)


_FIRST_EXECUTE = """
import json, sys, time
t0 = time.perf_counter()
from collab_kernels.client import cli, notebook
first = []
execute = notebook.Notebook.execute
async def timed(self, *a, **k):
    first.append(time.perf_counter() - t0)
    return await execute(self, *a, **k)
notebook.Notebook.execute = timed
rc = cli.main(sys.argv[1:])
print(json.dumps({"rc": rc, "s": first[0] if first else None,
                  "jupyter_server": "jupyter_server" in sys.modules}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=int, default=10)
    parser.add_argument("--server", help="a running server with collab_kernels (URL?token=T)")
    parser.add_argument("--folder", help="where to write the notebooks (the server's root)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="cli-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    names = _notebooks(folder, args.notebooks)
    for sub in ("pm", "ck", "srv"):
        (folder / sub).mkdir(exist_ok=True)
    results: dict[str, object] = {"notebooks": len(names), "cpus": os.cpu_count()}
    results["papermill, one command each (s)"] = _timed(
        folder,
        [[str(BIN / "papermill"), n, f"pm/{n}", "--no-progress-bar"] for n in names],
    )
    results["collab-kernels run, one batch (s)"] = _timed(
        folder,
        [[str(BIN / "collab-kernels"), "run", *names, "--output-dir", "ck", "--no-progress"]],
    )
    if args.server:
        ck = [str(BIN / "collab-kernels"), "run"]
        results["collab-kernels run --server, one command each (s)"] = _timed(
            folder,
            [[*ck, n, f"srv/{n}", "--server", args.server, "--no-progress"] for n in names],
        )
        firsts = []
        first_cmd = [sys.executable, "-c", _FIRST_EXECUTE, "run", names[0], "srv/first.ipynb"]
        for _ in range(5):
            done = subprocess.run(
                [*first_cmd, "--server", args.server, "--no-progress"],
                cwd=folder,
                capture_output=True,
                text=True,
            )
            firsts.append(json.loads(done.stdout.strip().splitlines()[-1]))
        results["--server: start to first execute (s, 5 runs)"] = [
            round(f["s"], 3) for f in firsts if f["s"] is not None
        ]
        results["--server imports jupyter_server"] = any(f["jupyter_server"] for f in firsts)
    if os.name == "posix":
        results["load average"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
