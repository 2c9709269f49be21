"""Create the peers' virtual environments under bench/.venvs/, from PyPI.

Each peer gets its own environment so its pins (pycrdt, jupyter_ydoc, jupyter_server...) never
mix with ours or with each other's:

- ``bench/.venvs/jupyter-collaboration``: jupyter-collaboration (jupyter-server-ydoc) plus
  jupyter-server-nbmodel (server-side execution), and ipykernel;
- ``bench/.venvs/jupyter-server-documents``: jupyter-server-documents, and ipykernel.

An environment whose stamp file matches the requested packages is left alone, so running this
again is cheap. ``--force`` rebuilds. Uses the Python that runs this script (3.10+).

    python bench/peers/make_venvs.py [--only NAME] [--force]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
VENVS = BENCH / ".venvs"

#: peer name -> pip requirements. Versions are floors so a later run can pick up releases; the
#: versions actually installed are recorded in the stamp and printed in the results.
PEERS: dict[str, list[str]] = {
    "jupyter-collaboration": [
        "jupyter-collaboration>=4",
        "jupyter-server-nbmodel>=0.1",
        "ipykernel>=6.29",
        "psutil",
    ],
    "jupyter-server-documents": [
        "jupyter-server-documents>=0.1",
        "ipykernel>=6.29",
        "psutil",
    ],
}

#: the distributions whose installed versions are reported next to each peer's results.
REPORTED = {
    "jupyter-collaboration": [
        "jupyter-collaboration",
        "jupyter-server-ydoc",
        "jupyter-server-nbmodel",
        "jupyter-server",
        "pycrdt",
        "pycrdt-websocket",
        "jupyter-ydoc",
        "ipykernel",
    ],
    "jupyter-server-documents": [
        "jupyter-server-documents",
        "jupyter-server",
        "pycrdt",
        "jupyter-ydoc",
        "ipykernel",
    ],
}


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def installed_versions(name: str) -> dict[str, str]:
    """The versions of the reported distributions inside a peer's environment."""
    code = (
        "import json, sys\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\n"
        "for d in json.loads(sys.argv[1]):\n"
        "    try: out[d] = version(d)\n"
        "    except PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run(
        [str(venv_python(name)), "-c", code, json.dumps(REPORTED[name])],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


def ensure(name: str, force: bool = False) -> Path:
    """Create (or reuse) one peer's environment; returns its python."""
    reqs = PEERS[name]
    target = VENVS / name
    stamp = target / ".bench-stamp.json"
    if not force and stamp.exists():
        try:
            if (
                json.loads(stamp.read_text()).get("requirements") == reqs
                and venv_python(name).exists()
            ):
                return venv_python(name)
        except ValueError:
            pass
    print(f"[peers] creating {target} with {' '.join(reqs)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    py = str(venv_python(name))
    subprocess.run([py, "-m", "pip", "install", "-qq", "--upgrade", "pip"], check=True)
    subprocess.run([py, "-m", "pip", "install", "-qq", *reqs], check=True)
    versions = installed_versions(name)
    stamp.write_text(json.dumps({"requirements": reqs, "versions": versions}, indent=1))
    print(f"[peers] {name}: {versions}", flush=True)
    return venv_python(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--only", choices=sorted(PEERS), action="append", help="only this peer (repeatable)"
    )
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = p.parse_args(argv)
    VENVS.mkdir(parents=True, exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    failed = []
    for name in args.only or sorted(PEERS):
        try:
            ensure(name, args.force)
        except subprocess.CalledProcessError as e:
            print(f"[peers] {name}: install failed ({e})", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
