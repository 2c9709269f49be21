"""Terminal-like resolution of ``\\r`` and ``\\b`` in stream text (pure string functions).

A line whose cursor is not at its end (a chunk ending with ``\\r``) is stored as
``line + "\\r" + line[:cursor]``: browsers render that as ``line`` and the next chunk
resumes at the right column, so the document itself carries the cursor (``outputs.py``).
"""

from __future__ import annotations


def _encode_line(chars: list[str], cursor: int) -> str:
    """A line with its cursor, in a form browsers render as the line itself."""
    line = "".join(chars)
    if cursor >= len(chars):
        return line
    return line + "\r" + line[:cursor]


def resolve_stream_text(text: str) -> str:
    """Resolve carriage returns and backspaces in ``text`` like a terminal would.

    Complete lines (ending with ``\\n``) are returned as their visible characters; the last,
    unfinished line keeps its cursor position encoded (see module docstring).

    >>> resolve_stream_text("10%\\r50%\\r100%\\n")
    '100%\\n'
    >>> resolve_stream_text("abc\\bd")
    'abd'
    """
    if "\r" not in text and "\b" not in text:
        return text
    out: list[str] = []
    chars: list[str] = []
    cursor = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            out.append("".join(chars))
            out.append("\n")
            chars = []
            cursor = 0
        elif c == "\r":
            if i + 1 < n and text[i + 1] == "\n":
                # \r\n is a newline: keep the line as it is.
                i += 1
                out.append("".join(chars))
                out.append("\n")
                chars = []
                cursor = 0
            else:
                cursor = 0
        elif c == "\b":
            if cursor > 0:
                cursor -= 1
        else:
            # Copy the run of ordinary characters at once.
            j = i
            while j < n and text[j] not in "\n\r\b":
                j += 1
            run = text[i:j]
            end = cursor + len(run)
            chars[cursor:end] = run
            cursor = end
            i = j
            continue
        i += 1
    out.append(_encode_line(chars, cursor))
    return "".join(out)


def needs_resolution(chunk: str) -> bool:
    return "\r" in chunk or "\b" in chunk
