"""The output patterns a benchmark cell produces, and what a watcher's document must end up holding.

Each pattern is a cell's source plus the exact text the cell's stdout must show once done.
For ``\\r`` progress updates that is the *rendered* text (a terminal's view: each ``\\r`` moves
back to the start of the line and the next characters overwrite), because a notebook document
that stores the raw bytes shows every update in the browser (the frontend does not re-process
remote appends).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    key: str
    label: str
    code: str
    expected: str

    @property
    def expected_bytes(self) -> int:
        return len(self.expected.encode())


def _single_lines(n: int) -> Pattern:
    code = f"for i in range({n}):\n    print(f'line {{i:06d}}', flush=True)"
    expected = "".join(f"line {i:06d}\n" for i in range(n))
    return Pattern(f"lines{n}", f"{n} single-line prints", code, expected)


def _batched(lines: int, writes: int) -> Pattern:
    per = lines // writes
    code = (
        "import sys\n"
        f"for w in range({writes}):\n"
        f"    sys.stdout.write(''.join(f'row {{w * {per} + j:06d}}\\n' for j in range({per})))\n"
        "    sys.stdout.flush()"
    )
    expected = "".join(f"row {i:06d}\n" for i in range(lines))
    return Pattern(f"batched{lines}x{writes}", f"{lines} lines in {writes} writes", code, expected)


def _progress(n: int) -> Pattern:
    code = (
        f"for i in range({n}):\n"
        f"    print(f'\\rprogress {{i + 1:6d}}/{n}', end='', flush=True)\n"
        "print()"
    )
    expected = f"progress {n:6d}/{n}\n"
    return Pattern(f"progress{n}", f"{n} `\\r` progress updates", code, expected)


PATTERNS: dict[str, Pattern] = {
    p.key: p
    for p in (
        _single_lines(2000),
        _batched(20000, 200),
        _progress(5000),
    )
}

#: the warm-up cell run once before any measured cell (imports, first-execution costs).
WARMUP_CODE = "import sys, time\n1"


def render_terminal(raw: str) -> str:
    """What a terminal shows after printing ``raw``: ``\\r`` returns to the line start (later
    characters overwrite), ``\\b`` steps back one character within the line."""
    lines: list[list[str]] = [[]]
    col = 0
    for ch in raw:
        line = lines[-1]
        if ch == "\n":
            lines.append([])
            col = 0
        elif ch == "\r":
            col = 0
        elif ch == "\b":
            col = max(col - 1, 0)
        elif col < len(line):
            line[col] = ch
            col += 1
        else:
            line.append(ch)
            col += 1
    return "\n".join("".join(line) for line in lines)


def pattern_source_ok(p: Pattern) -> bool:
    """Self-check: running the code in this interpreter renders to the expected text."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(p.code.replace("sys.stdout", "_out"), "<pattern>", "exec"), {"_out": buf})
    return render_terminal(buf.getvalue()) == p.expected
