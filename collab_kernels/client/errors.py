"""The client's exceptions: what can go wrong talking to a server, in the caller's terms."""

from __future__ import annotations


class CollabError(Exception):
    """Base class of the client's errors."""


class ServerError(CollabError):
    """The server answered with an unexpected HTTP status, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, method: str = "", url: str = ""):
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url


class NotFound(ServerError):
    """A 404 from the server."""


class RunNotFound(CollabError):
    """No server known to this client has a run (request) with that id."""


class ExecutionError(CollabError):
    """A cell raised while :func:`~collab_kernels.client.execute_notebook` ran the notebook
    (papermill's ``PapermillExecutionError``: the same attributes)."""

    def __init__(
        self,
        cell_index: int,
        exec_count: int | None,
        source: str,
        ename: str,
        evalue: str,
        traceback: list[str],
        exit_code: int = 1,
    ):
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.source = source
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.exit_code = exit_code
        super().__init__(cell_index, exec_count, source, ename, evalue, traceback)

    def __str__(self) -> str:
        import re

        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", "\n".join(self.traceback))
        return f'\n{"-" * 75}\nException encountered at "In [{self.exec_count}]":\n{plain}\n'


class RunFailed(CollabError):
    """The run did not finish: the kernel died or did not start, a cell timed out, the run
    was cancelled. ``exit_code`` is the one ``collab-kernels run`` gives."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
