"""MurmurHash2 (32-bit, Austin Appleby's algorithm), as the ``source_hash`` of execute requests.

The jupyter-server-documents dialect of ``POST /api/kernels/{id}/execute`` sends, per cell,
``source_hash`` = MurmurHash2 with seed 0 of the cell source (UTF-8), as a decimal string. The
server answers 409 when the document's source hashes differently (the client saw stale code).
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmurhash2(data: bytes | str, seed: int = 0) -> int:
    """The unsigned 32-bit MurmurHash2 of ``data`` (a str is hashed as UTF-8)."""
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
    """The ``source_hash`` of a cell source: MurmurHash2, seed 0, decimal string."""
    return str(murmurhash2(source, 0))
