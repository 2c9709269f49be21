"""Run jupyter_server's own tests stock and with collab_kernels in force; compare.

    python tests/upstream/run.py [--group NAME ...] [--only ours|stock] [--cache DIR]

Takes the test modules from the sdist of the *installed* jupyter_server version (downloaded
once into the cache directory with ``pip download --no-binary``), adds
``collab_conftest.py`` to its ``tests/conftest.py``, and runs each group below twice, each
run in its own pytest process (a failed teardown cannot cascade into the next group): stock,
then with ``COLLAB_KERNELS_UPSTREAM=1``. Exits 1 if any test that passes stock does not
pass with collab_kernels (the compatibility guarantee, docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

GROUPS = {
    "kernels": ["tests/services/kernels"],
    "sessions": ["tests/services/sessions"],
    "api": ["tests/services/api"],
    "serverapp": ["tests/test_serverapp.py"],
    "gateway": ["tests/test_gateway.py"],
    "authorizer": ["tests/auth/test_authorizer.py"],
}

MARK = "# --- collab_kernels upstream harness ---"


def prepare(cache: Path) -> Path:
    """The sdist's tests and pytest configuration, extracted and patched; returns its root."""
    jsv = version("jupyter_server")
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"jupyter_server-{jsv}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", f"jupyter_server=={jsv}", "-d", str(cache)),
            ],
            check=True,
        )
    root = cache / f"jupyter_server-{jsv}-tests"
    if root.exists():
        shutil.rmtree(root)
    prefix = f"jupyter_server-{jsv}/"
    with tarfile.open(sdist) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.name.startswith(prefix + "tests/") or m.name == prefix + "pyproject.toml"
        ]
        for m in members:
            m.name = m.name[len(prefix) :]
        tar.extractall(root, members=members, filter="data")
    shutil.copy(HERE / "collab_conftest.py", root / "tests" / "collab_conftest.py")
    conftest = root / "tests" / "conftest.py"
    text = conftest.read_text(encoding="utf-8")
    if MARK not in text:
        text += f"\n\n{MARK}\nfrom tests.collab_conftest import *  # noqa: E402,F403\n"
        conftest.write_text(text, encoding="utf-8")
    return root


def run_group(root: Path, group: str, mode: str, out: Path) -> dict[str, str]:
    """One pytest process; returns test id -> outcome (passed/failed/error/skipped)."""
    xml = out / f"{group}-{mode}.xml"
    log = out / f"{group}-{mode}.log"
    env = dict(os.environ)
    env["COLLAB_KERNELS_UPSTREAM"] = "1" if mode == "ours" else "0"
    env["COLLAB_KERNELS_JUPYTER_CONFIG"] = str(
        REPO / "jupyter-config" / "jupyter_server_config.d" / "collab_kernels.json"
    )
    cmd = [sys.executable, "-m", "pytest", *GROUPS[group], "-p", "no:cacheprovider"]
    cmd += ["-q", "--color=no", f"--junitxml={xml}", "-o", "junit_family=xunit2"]
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - started
    results = parse_junit(xml) if xml.exists() else {}
    counts: dict[str, int] = {}
    for outcome in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    print(f"  {group:<10} {mode:<5} exit {code} in {elapsed:5.0f} s: {counts}  ({log})")
    if not results:
        results[f"{group}::<collection>"] = "error"
    return results


def parse_junit(xml: Path) -> dict[str, str]:
    results: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                # an error at teardown after a pass is still a broken test
                outcome = "failed" if child.tag == "failure" else "error"
                break
            if child.tag == "skipped":
                outcome = "skipped"
        if results.get(test_id) in ("failed", "error"):
            continue  # (junit lists a test twice when its teardown errors)
        results[test_id] = outcome
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=sorted(GROUPS))
    parser.add_argument("--only", choices=("stock", "ours"))
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("COLLAB_KERNELS_UPSTREAM_CACHE", REPO / ".cache" / "upstream")),
    )
    args = parser.parse_args()
    root = prepare(args.cache)
    out = args.cache / "results"
    out.mkdir(exist_ok=True)
    groups = args.group or list(GROUPS)
    modes = [args.only] if args.only else ["stock", "ours"]
    print(f"jupyter_server {version('jupyter_server')} tests from {root}")
    regressions: list[str] = []
    stock_passed = ours_passed = 0
    for group in groups:
        results = {mode: run_group(root, group, mode, out) for mode in modes}
        if len(modes) < 2:
            continue
        stock, ours = results["stock"], results["ours"]
        stock_passed += sum(1 for o in stock.values() if o == "passed")
        ours_passed += sum(1 for test, o in ours.items() if o == "passed" and stock.get(test))
        for test, outcome in sorted(stock.items()):
            if outcome == "passed" and ours.get(test) != "passed":
                regressions.append(f"{test}: {ours.get(test, 'missing')}")
    if len(modes) < 2:
        return 0
    expected = expected_differences()
    reviewed = [line for line in regressions if line.split(": ")[0] in expected]
    regressions = [line for line in regressions if line not in reviewed]
    print(
        f"\n{stock_passed} tests pass stock; {len(regressions) + len(reviewed)} of them do not "
        f"pass with us: {len(reviewed)} reviewed differences, {len(regressions)} regressions"
    )
    for line in reviewed:
        print(f"  reviewed   {line}  ({expected[line.split(': ')[0]]})")
    for line in regressions:
        print(f"  REGRESSION {line}")
    return 1 if regressions else 0


def expected_differences() -> dict[str, str]:
    """Reviewed differences (expected-differences.txt): test id -> why."""
    entries: dict[str, str] = {}
    for raw in (HERE / "expected-differences.txt").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, why = line.partition("#")
        entries[test_id.strip()] = why.strip()
    return entries


if __name__ == "__main__":
    sys.exit(main())
