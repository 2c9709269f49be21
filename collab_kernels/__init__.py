"""collab_kernels: server-owned collaborative notebooks with one shared kernel client per kernel.

The data path, one folder per stage:

    kernel (ZMQ) -> kernels/   one shared client per kernel, listeners
                 -> execution/ documents listen, outputs and cell state become Y edits
                 -> rooms/     Y documents: collaborators' websockets and the file on disk
    client/      the Python client and the ``collab-kernels`` CLI, over HTTP and websockets
"""

from ._version import __version__


def _jupyter_server_extension_points():
    from .app import CollabKernelsApp

    return [{"module": "collab_kernels.app", "app": CollabKernelsApp}]


__all__ = ["__version__"]
