"""Browser timings: stock JupyterLab (no collaboration) against collab_kernels, same run.

    .venv/bin/python bench/browser_bench.py                      # latency and big documents
    .venv/bin/python bench/browser_bench.py --scenarios latency --passes 4 --rounds 20
    .venv/bin/python bench/browser_bench.py --scenarios big20mb,cells1000 --passes 3

Starts two `jupyter lab` servers from this environment, each on its own temporary root and
Jupyter config/data/runtime dirs, token login:

- stock: JupyterLab alone: the collab_kernels server extension off, and the collaboration
  frontend (@jupyter/docprovider-extension, @jupyter/collaboration-extension) disabled in the
  page config, so the notebook is loaded through /api/contents and run over the kernel
  websocket, as in a JupyterLab without any collaboration package;
- ours: collab_kernels with the stock collaboration frontend (the companion extension is
  not loaded): the notebook syncs from the server's Y document, Shift+Enter posts
  /api/kernels/{id}/execute and the output comes back as a Y update.

Then drives headless Chromium (Playwright from ui-tests/node_modules, bench/browser/timing.js)
through the scenarios, alternating the servers pass by pass (stock, ours, ours, stock, ...),
so both see the same machine load:

- latency: a notebook of one-line cells `print("ck-<i>")`; Shift+Enter in command mode, one
  cell after the other; the time from the keydown to the cell's output in the DOM (and to
  the next animation frame), in the page's clock;
- big20mb: a notebook whose second cell has one 20 MB stream output: time from navigation
  start to the first cell's source shown in its editor (a fresh copy of the file each load:
  no room or cache kept from an earlier load);
- cells1000: the same for a notebook of 1000 code cells, each with a small output.

It is a benchmark, not a test: nothing is asserted. Results go to
bench/results/browser-<time>.json; a Markdown table is printed, with the load average.
Needs Node.js, ui-tests/node_modules (cd ui-tests && npm ci) and Chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from procs import free_port, stop_process  # noqa: E402 (bench/ is on sys.path)

PREFIX = "ck-"
MARKER = "first cell of the benchmark"
STOCK_DISABLED = {
    "@jupyterlab/apputils-extension:announcements": True,
    "@jupyter/docprovider-extension": True,
    "@jupyter/collaboration-extension": True,
    "collab-kernels-labextension": True,
}
OURS_DISABLED = {
    "@jupyterlab/apputils-extension:announcements": True,
    "collab-kernels-labextension": True,
}


SIGN_WITH: list[str] = []  # the data dir of the server a notebook is written for


def write_notebook(path: Path, cells: list[Any]) -> None:
    """Written signed with the server's own notary secret unless --untrusted: it loads
    trusted, as a notebook its user saved does."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = cells
    if SIGN_WITH:
        from nbformat.sign import NotebookNotary

        NotebookNotary(data_dir=SIGN_WITH[0]).sign(nb)
    nbformat.write(nb, str(path))


def latency_notebook(path: Path, rounds: int) -> None:
    cells = [nbformat.v4.new_code_cell(f'# {MARKER}\nprint("{PREFIX}0")')]
    cells += [nbformat.v4.new_code_cell(f'print("{PREFIX}{i}")') for i in range(1, rounds)]
    write_notebook(path, cells)


def big_output_notebook(path: Path, megabytes: float) -> None:
    line = "x" * 99 + "\n"
    text = line * int(megabytes * 1e6 / len(line))
    big = nbformat.v4.new_code_cell("print('many lines')", execution_count=2)
    big.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    write_notebook(
        path,
        [
            nbformat.v4.new_code_cell(f"# {MARKER}\n1 + 1", execution_count=1),
            big,
            nbformat.v4.new_code_cell("after = True"),
        ],
    )


def many_cells_notebook(path: Path, count: int) -> None:
    cells = [nbformat.v4.new_code_cell(f"# {MARKER}\nx = 0", execution_count=1)]
    for i in range(1, count):
        cell = nbformat.v4.new_code_cell(f"x = {i}\nprint(x * 2)", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{i * 2}\n")]
        cells.append(cell)
    write_notebook(path, cells)


class Lab:
    """One `jupyter lab` subprocess on a temporary root."""

    def __init__(self, name: str, python: str) -> None:
        self.name = name
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.tmp = tempfile.TemporaryDirectory(prefix=f"ckb-{name}-")
        base = Path(self.tmp.name)
        self.root = base / "notebooks"
        self.data_dir = str(base / "data")
        config = base / "config"
        for d in (self.root, config / "labconfig", base / "data", base / "runtime"):
            d.mkdir(parents=True)
        disabled = STOCK_DISABLED if name == "stock" else OURS_DISABLED
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": disabled})
        )
        extensions = {"collab_kernels": name != "stock", "jupyter_server_ydoc": False}
        (config / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": extensions}})
        )
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_DATA_DIR=str(base / "data"),
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        )
        self.log = open(base / "server.log", "w")
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                "--ServerApp.terminals_enabled=False",
                "--LabApp.news_url=",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--ServerApp.log_level=WARN",
            ],
            env=env,
            cwd=str(base),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_up(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}") as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} server did not start; see {self.log.name}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
        self.tmp.cleanup()


def run_job(lab: Lab, job: dict[str, Any]) -> dict[str, Any]:
    job = {"base": lab.base, "token": lab.token, "prefix": PREFIX, "marker": MARKER, **job}
    out = subprocess.run(
        ["node", str(HERE / "browser" / "timing.js"), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{lab.name} {job['kind']}: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_avg() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="latency,big20mb,cells1000")
    parser.add_argument("--passes", type=int, default=4, help="passes per server (alternated)")
    parser.add_argument("--rounds", type=int, default=20, help="Shift+Enter rounds per pass")
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--servers", default="stock,ours")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument(
        "--untrusted",
        action="store_true",
        help="notebooks not signed: cells load untrusted (a server-side run then re-creates "
        "each cell at its first run, to show its outputs trusted)",
    )
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    names = [s for s in args.servers.split(",") if s]
    labs = {name: Lab(name, args.python) for name in names}
    results: dict[str, Any] = {"scenarios": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        for lab in labs.values():
            lab.wait_up()
        for scenario in scenarios:
            per: dict[str, list[Any]] = {name: [] for name in names}
            loads: list[float] = []
            for p in range(args.passes):
                order = names if p % 2 == 0 else list(reversed(names))
                for name in order:
                    lab = labs[name]
                    doc = f"{scenario}-{p}.ipynb"
                    SIGN_WITH[:] = [] if args.untrusted else [lab.data_dir]
                    if scenario == "latency":
                        latency_notebook(lab.root / doc, args.rounds)
                        job = {
                            "kind": "latency",
                            "path": doc,
                            "rounds": args.rounds,
                            "select": args.untrusted,
                        }
                    elif scenario == "big20mb":
                        big_output_notebook(lab.root / doc, args.megabytes)
                        job = {"kind": "load", "path": doc}
                    elif scenario == "cells1000":
                        many_cells_notebook(lab.root / doc, args.cells)
                        job = {"kind": "load", "path": doc}
                    else:
                        raise SystemExit(f"unknown scenario {scenario}")
                    loads.append(load_avg())
                    result = run_job(lab, job)
                    per[name].append(result)
                    print(f"{scenario} pass {p} {name}: {summary(scenario, [result])}", flush=True)
            results["scenarios"][scenario] = {"runs": per, "load": loads}
    finally:
        for lab in labs.values():
            lab.stop()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"browser-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    print()
    print(
        "| scenario | load avg | " + " | ".join(names) + " | ratio " + "/".join(names[::-1]) + " |"
    )
    print("|---|---|" + "---|" * len(names) + "---|")
    for scenario, data in results["scenarios"].items():
        values = {n: median_of(scenario, data["runs"][n]) for n in names}
        load = f"{min(data['load']):.1f}-{max(data['load']):.1f}"
        cells = " | ".join(f"{values[n]:.0f} ms" for n in names)
        ratio = values[names[-1]] / values[names[0]] if len(names) > 1 else 1.0
        print(f"| {scenario} | {load} | {cells} | {ratio:.2f}x |")
    print(f"\nwritten to {out}")


def median_of(scenario: str, runs: list[Any]) -> float:
    if scenario == "latency":
        # The first round of a page is left out (first execution of the kernel, first POST).
        return statistics.median(r["dom"] for run in runs for r in run["rounds"][1:])
    return statistics.median(run["first_cell_ms"] for run in runs)


def summary(scenario: str, runs: list[Any]) -> str:
    if scenario == "latency":
        values = [r["dom"] for run in runs for r in run["rounds"][1:]]
        return f"median {statistics.median(values):.1f} ms (min {min(values):.1f}, n={len(values)})"
    return f"{median_of(scenario, runs):.0f} ms"


if __name__ == "__main__":
    main()
