"""The blocking client: :class:`SyncCollabClient` runs the async client on a private loop thread.

pycrdt documents may only be touched from the thread that created them, so every attribute
access and call of the wrapped objects runs on that thread.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from typing import Any

from .client import CollabClient
from .notebook import Notebook
from .run import Run
from .servers import ServerInfo


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="collab-kernels-client", daemon=True
        )
        self.thread.start()

    def run(self, coro_or_fn: Any) -> Any:
        """Run a coroutine, or call a function (awaiting what it returns), on the loop thread."""

        async def _call() -> Any:
            value = coro_or_fn() if callable(coro_or_fn) else coro_or_fn
            if inspect.isawaitable(value):
                value = await value
            return value

        if threading.current_thread() is self.thread:
            raise RuntimeError("SyncCollabClient cannot be used from its own event loop")
        return asyncio.run_coroutine_threadsafe(_call(), self.loop).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


_WRAPPED = (CollabClient, Notebook, Run)


class _SyncProxy:
    """Runs every attribute access and call of the wrapped object on the loop thread (pycrdt
    documents may only be touched from the thread that created them)."""

    def __init__(self, target: Any, thread: _LoopThread):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_thread", thread)

    def __repr__(self) -> str:
        return f"<sync {self._thread.run(lambda: repr(self._target))}>"

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, _WRAPPED):
            return _SyncProxy(value, self._thread)
        if inspect.isasyncgen(value) or hasattr(value, "__anext__"):
            return self._iterate(value)
        return value

    def _iterate(self, agen: Any) -> Iterator[Any]:
        while True:
            try:
                item = self._thread.run(agen.__anext__())
            except StopAsyncIteration:
                return
            yield self._wrap(item)

    def __getattr__(self, name: str) -> Any:
        value = self._thread.run(lambda: getattr(self._target, name))
        if callable(value) and not isinstance(value, type):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(self._thread.run(lambda: value(*args, **kwargs)))

            return call
        return self._wrap(value)

    def __setattr__(self, name: str, value: Any) -> None:
        self._thread.run(lambda: setattr(self._target, name, value))


class SyncCollabClient(_SyncProxy):
    """The blocking form of :class:`CollabClient`: same methods, no ``await``.

    ::

        with SyncCollabClient(url, token) as client:
            nb = client.open_notebook("a.ipynb")
            run = nb.execute()
            for out in run.outputs():
                print(out.text, end="")
    """

    def __init__(
        self, url: str | ServerInfo | None = None, token: str | None = None, **kwargs: Any
    ):
        thread = _LoopThread()

        def make() -> CollabClient:
            if url is None:
                return CollabClient.discover(**kwargs)
            return CollabClient(url, token, **kwargs)

        try:
            client = thread.run(make)
        except BaseException:
            thread.stop()
            raise
        super().__init__(client, thread)

    def close(self) -> None:
        try:
            self._thread.run(self._target.close())
        finally:
            self._thread.stop()

    def __enter__(self) -> SyncCollabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
