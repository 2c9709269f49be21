"""MurmurHash2, the ``source_hash`` of execute requests: defined in :mod:`collab_kernels.contract`
(the client computes it too); re-exported here for the execution stage's existing imports."""

from ..contract import murmurhash2, source_hash

__all__ = ["murmurhash2", "source_hash"]
