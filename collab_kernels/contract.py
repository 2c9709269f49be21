"""Names the server's stages and the clients share: one spelling, no server imports.

Everything here is plain Python (no jupyter_server, tornado, pycrdt or traitlets import), so
the command line and the Python client import it without paying for the server.

- the Y document's execution map key and the statuses of its entries;
- the statuses and results of execute requests and their cells (``GET .../requests/{id}``);
- the error names the server puts in a cell whose kernel went away, and the other error names
  it invents (not raised by user code);
- room ids (``{format}:{type}:{fileId}``) with the table of document types;
- the ``source_hash`` of a cell source (MurmurHash2, seed 0, decimal string).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, NamedTuple

__all__ = [
    "ABORTED",
    "CANCELLED",
    "DOCUMENT_GONE",
    "DONE",
    "ENTRY_STATUSES",
    "ERROR",
    "EXECUTION_MAP",
    "FILE_TYPES",
    "KERNEL_DIED",
    "KERNEL_GONE",
    "KERNEL_GONE_ENAMES",
    "KERNEL_GONE_MESSAGES",
    "KERNEL_NOT_READY",
    "KERNEL_RESTARTED",
    "KERNEL_SHUTDOWN",
    "OK",
    "QUEUED",
    "RESULTS",
    "RUNNING",
    "STATUSES",
    "CellResult",
    "EntryStatus",
    "InvalidRoomId",
    "RequestStatus",
    "RoomId",
    "build_room_id",
    "is_kernel_gone",
    "murmurhash2",
    "parse_room_id",
    "source_hash",
]

# --- the execution map ----------------------------------------------------------------------

#: Root map of a notebook's Y document holding the execution queue and pending input prompts:
#: cell id -> {"status": EntryStatus, "request_id", "kernel_id", "position", "input_request"?}.
#: It is not part of the notebook schema, so it is never saved to disk.
EXECUTION_MAP: Final = "execution"

EntryStatus = Literal["queued", "running", "aborted"]
#: Statuses an execution map entry can carry.
ENTRY_STATUSES: Final[frozenset[str]] = frozenset({"queued", "running", "aborted"})

# --- execute requests -----------------------------------------------------------------------

RequestStatus = Literal["queued", "running", "done"]
CellResult = Literal["ok", "error", "aborted", "cancelled"]

QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
#: ``status`` of a request and of each of its cells.
STATUSES: Final[frozenset[str]] = frozenset({QUEUED, RUNNING, DONE})

OK: Final = "ok"
ERROR: Final = "error"
ABORTED: Final = "aborted"  # not run: an earlier cell failed, or the kernel aborted it
CANCELLED: Final = "cancelled"  # not run: the request was cancelled
#: ``result`` of a finished request and of each of its cells (``None`` while not done).
RESULTS: Final[frozenset[str]] = frozenset({OK, ERROR, ABORTED, CANCELLED})

# --- error names the server writes itself ----------------------------------------------------

#: The kernel died while the cell ran (the restarter gave up, or it was not restarted).
KERNEL_DIED: Final = "KernelDied"
#: The kernel died and was restarted (or restarted by a user) while the cell ran.
KERNEL_RESTARTED: Final = "KernelRestarted"
#: The kernel was shut down while the cell ran.
KERNEL_SHUTDOWN: Final = "KernelShutdown"
#: The kernel was already gone when the cell's turn came.
KERNEL_GONE: Final = "KernelGone"

#: Kernel lifecycle event -> (ename, evalue) of the error output the server writes into a cell
#: that was running when the event happened.
KERNEL_GONE_MESSAGES: Final[Mapping[str, tuple[str, str]]] = {
    "dead": (KERNEL_DIED, "The kernel died while this cell was running."),
    "restarted": (
        KERNEL_RESTARTED,
        "The kernel died or was restarted while this cell was running; its state is lost.",
    ),
    "shutdown": (KERNEL_SHUTDOWN, "The kernel was shut down while this cell was running."),
}

#: Every ename meaning "the kernel went away under this cell": a cell error with one of these
#: names ends the request even with ``stop_on_error: false``; the CLI reports a dead kernel.
KERNEL_GONE_ENAMES: Final[frozenset[str]] = frozenset(
    {ename for ename, _ in KERNEL_GONE_MESSAGES.values()} | {KERNEL_GONE}
)

#: The kernel did not become ready (still starting) within the kernel info timeout.
KERNEL_NOT_READY: Final = "KernelNotReady"
#: The cell's document could not be opened (file deleted, or unreadable).
DOCUMENT_GONE: Final = "DocumentGone"


def is_kernel_gone(ename: object) -> bool:
    """Whether an error name says the kernel went away (not an error of the user's code)."""
    return isinstance(ename, str) and ename in KERNEL_GONE_ENAMES


# --- room ids -------------------------------------------------------------------------------

#: Document type -> room id format, as JupyterLab's collaboration protocol spells them.
FILE_TYPES: Final[Mapping[str, str]] = {"notebook": "json", "file": "text"}


class InvalidRoomId(ValueError):
    """A room id that is not ``{format}:{type}:{fileId}`` with a known type and its format."""


class RoomId(NamedTuple):
    format: str
    file_type: str
    file_id: str

    def __str__(self) -> str:
        return f"{self.format}:{self.file_type}:{self.file_id}"


def build_room_id(file_id: str, file_type: str = "notebook") -> str:
    """The room id of a file id: ``json:notebook:{fileId}`` or ``text:file:{fileId}``."""
    if file_type not in FILE_TYPES:
        raise InvalidRoomId(f"unsupported document type {file_type!r}")
    if not file_id or "/" in file_id:
        raise InvalidRoomId(f"invalid file id {file_id!r}")
    return f"{FILE_TYPES[file_type]}:{file_type}:{file_id}"


def parse_room_id(room_id: str) -> RoomId:
    """Split a room id into (format, type, fileId); :class:`InvalidRoomId` when it is not one."""
    parts = room_id.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise InvalidRoomId(f"invalid room id {room_id!r}, expected format:type:fileId")
    fmt, file_type, file_id = parts
    if FILE_TYPES.get(file_type) != fmt or "/" in file_id:
        raise InvalidRoomId(f"unsupported room {room_id!r}")
    return RoomId(fmt, file_type, file_id)


# --- source hash ----------------------------------------------------------------------------

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmurhash2(data: bytes | str, seed: int = 0) -> int:
    """The unsigned 32-bit MurmurHash2 (Austin Appleby) of ``data``; a str is hashed as UTF-8."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    length = len(data)
    h = (seed ^ length) & _MASK
    full = length & ~3
    for i in range(0, full, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def source_hash(source: str) -> str:
    """The ``source_hash`` of a cell source in the jupyter-server-documents execute dialect.

    MurmurHash2, seed 0, of the UTF-8 source, as a decimal string; the server answers 409 when
    the document's cell hashes differently (the client saw stale code).
    """
    return str(murmurhash2(source, 0))
