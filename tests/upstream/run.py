"""Run jupyter_server's own tests stock and with collab_kernels in force; compare.

    python tests/upstream/run.py [--group NAME ...] [--only ours|stock] [--cache DIR]

Takes the test modules from the sdist of the *installed* jupyter_server version (downloaded
once into the cache directory with ``pip download --no-binary``), adds
``collab_conftest.py`` to its ``tests/conftest.py``, and runs each group below twice, each
run in its own pytest process (a failed teardown cannot cascade into the next group): stock,
then with ``COLLAB_KERNELS_UPSTREAM=1``. Exits 1 if any test that passes stock does not
pass with collab_kernels (the compatibility guarantee, docs/reliability.md), except reviewed
differences (expected-differences.txt) and failures that show a known stock race
(known-races.txt) and pass when rerun on their own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import typing as t
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
RERUNS = 3  # reruns of a test whose failure shows a known stock race (known-races.txt)


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


def run_group(
    root: Path, group: str, mode: str, out: Path, tests: list[str] | None = None, tag: str = ""
) -> dict[str, Case]:
    """One pytest process (the group, or only ``tests``); returns test id -> its outcome."""
    xml = out / f"{group}-{mode}{tag}.xml"
    log = out / f"{group}-{mode}{tag}.log"
    env = dict(os.environ)
    env["COLLAB_KERNELS_UPSTREAM"] = "1" if mode == "ours" else "0"
    env["COLLAB_KERNELS_JUPYTER_CONFIG"] = str(
        REPO / "jupyter-config" / "jupyter_server_config.d" / "collab_kernels.json"
    )
    cmd = [sys.executable, "-m", "pytest", *(tests or GROUPS[group]), "-p", "no:cacheprovider"]
    cmd += ["-q", "--color=no", f"--junitxml={xml}", "-o", "junit_family=xunit2"]
    cmd += ["-o", "junit_logging=all"]  # captured output, to recognise a known stock race
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run(cmd, cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - started
    results = parse_junit(xml) if xml.exists() else {}
    counts: dict[str, int] = {}
    for case in results.values():
        counts[case.outcome] = counts.get(case.outcome, 0) + 1
    label = f"{mode}{tag}"
    print(f"  {group:<10} {label:<12} exit {code} in {elapsed:5.0f} s: {counts}  ({log})")
    if not results and not tests:
        results[f"{group}::<collection>"] = Case("error", "")
    return results


class Case(t.NamedTuple):
    outcome: str  # passed / failed / error / skipped
    text: str  # the failure and the captured output of the test (empty when it passed)


def parse_junit(xml: Path) -> dict[str, Case]:
    results: dict[str, Case] = {}
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
        previous = results.get(test_id)
        if previous and previous.outcome in ("failed", "error"):
            continue  # (junit lists a test twice when its teardown errors)
        text = ""
        if outcome in ("failed", "error"):
            text = "\n".join("".join(child.itertext()) for child in case)
        results[test_id] = Case(outcome, text)
    return results


def node_id(root: Path, test_id: str) -> str:
    """pytest's node id for a JUnit test id (``a.b.test_x.TestC::test_y[p]``)."""
    classname, _, name = test_id.partition("::")
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (root / path).exists():
            return "::".join([path, *parts[cut:], name])
    return test_id


def known_race(text: str, races: dict[str, str]) -> str | None:
    """The known stock race (known-races.txt) whose signature the failure shows, if any."""
    for signature in races:
        if re.search(signature, text):
            return signature
    return None


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
    races = listed(HERE / "known-races.txt")
    regressions: list[str] = []
    raced: list[str] = []
    stock_passed = ours_passed = 0
    for group in groups:
        results = {mode: run_group(root, group, mode, out) for mode in modes}
        if len(modes) < 2:
            continue
        stock, ours = results["stock"], results["ours"]
        stock_passed += sum(1 for c in stock.values() if c.outcome == "passed")
        ours_passed += sum(
            1 for test, c in ours.items() if c.outcome == "passed" and stock.get(test)
        )
        failing = {
            test: ours.get(test)
            for test, case in sorted(stock.items())
            if case.outcome == "passed"
            and (ours.get(test) or Case("missing", "")).outcome != "passed"
        }
        # A failure that shows a known *stock* race (seen in stock runs too, known-races.txt)
        # is rerun on its own, up to RERUNS times; it counts only if it never passes again.
        # Any other failure counts at once: intermittent failures of ours are regressions.
        for index, (test, case) in enumerate(failing.items(), 1):
            race = known_race(case.text, races) if case else None
            if case is not None and race is not None:
                for attempt in range(1, RERUNS + 1):
                    again = run_group(
                        root, group, "ours", out, [node_id(root, test)], f"-rerun{index}.{attempt}"
                    ).get(test)
                    if again and again.outcome == "passed":
                        raced.append(f"{test}: passed on rerun {attempt} ({races[race]})")
                        break
                else:
                    regressions.append(f"{test}: {case.outcome} (and on {RERUNS} reruns)")
                continue
            regressions.append(f"{test}: {case.outcome if case else 'missing'}")
    if len(modes) < 2:
        return 0
    expected = listed(HERE / "expected-differences.txt")
    reviewed = [line for line in regressions if line.split(": ")[0] in expected]
    regressions = [line for line in regressions if line not in reviewed]
    print(
        f"\n{stock_passed} tests pass stock; {len(regressions) + len(reviewed)} of them do not "
        f"pass with us: {len(reviewed)} reviewed differences, {len(regressions)} regressions; "
        f"{len(raced)} more failed once on a known stock race and passed when rerun"
    )
    for line in reviewed:
        print(f"  reviewed   {line}  ({expected[line.split(': ')[0]]})")
    for line in raced:
        print(f"  race       {line}")
    for line in regressions:
        print(f"  REGRESSION {line}")
    return 1 if regressions else 0


def listed(path: Path) -> dict[str, str]:
    """A reviewed list (expected-differences.txt, known-races.txt): entry -> why."""
    entries: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, why = line.partition("  # ")
        entries[entry.strip()] = why.strip()
    return entries


if __name__ == "__main__":
    sys.exit(main())
