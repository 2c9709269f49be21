"""papermill's Python API, in a collab_kernels server: :func:`execute_notebook`."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any, TextIO

from .cli_term import EXIT_CELL_ERROR, EXIT_OK, StdinLines, UsageError
from .execute import Job, RunOptions, run_job


def execute_notebook(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None,
    parameters: dict[str, Any] | None = None,
    engine_name: str | None = None,
    request_save_on_cell_execute: bool = True,
    prepare_only: bool = False,
    kernel_name: str | None = None,
    language: str | None = None,
    progress_bar: bool = True,
    log_output: bool = False,
    stdout_file: TextIO | None = None,
    stderr_file: TextIO | None = None,
    start_timeout: float = 60,
    report_mode: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    *,
    execution_timeout: float | None = None,
    server_url: str | None = None,
    token: str | None = None,
    reuse_kernel: bool = False,
    **engine_kwargs: Any,
) -> Any:
    """Run a notebook as papermill's ``execute_notebook`` does, in a collab_kernels server.

    The signature is papermill's (``engine_name`` and ``request_save_on_cell_execute`` are
    accepted and ignored: the server runs the cells and saves the document). Without
    ``server_url`` an embedded server serves the folders of the paths (local files); with it,
    the paths are the server's and the notebook is watchable live there. ``output_path=None``
    writes nothing (the notebook is returned).

    Returns the executed notebook (an ``nbformat.NotebookNode``); raises
    :class:`~collab_kernels.client.errors.ExecutionError` when a cell raised (papermill's
    ``PapermillExecutionError``) and :class:`~collab_kernels.client.errors.RunFailed` when
    the kernel died or did not start, a cell ran longer than ``execution_timeout``, or the run
    was cancelled.
    """
    if engine_name not in (None, "nbclient"):
        raise ValueError(f"engine {engine_name!r}: collab_kernels runs notebooks in the server")
    for name in engine_kwargs:
        if name not in ("autosave_cell_every", "timeout"):
            raise TypeError(f"execute_notebook() got an unexpected keyword argument {name!r}")
    options = RunOptions(
        parameters=dict(parameters or {}),
        kernel_name=kernel_name,
        language=language,
        timeout=execution_timeout or engine_kwargs.get("timeout"),
        start_timeout=float(start_timeout),
        prepare_only=prepare_only,
        report_mode=report_mode,
        reuse_kernel=reuse_kernel,
        log_output=log_output,
        progress=progress_bar,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
        read_back=True,
    )
    paths = (
        str(input_path),
        None if output_path is None else str(output_path),
        None if cwd is None else str(cwd),
    )
    coro = _execute(paths, options, server_url, token)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # called from a running loop (e.g. inside Jupyter): run on a thread of its own
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _execute(
    paths: tuple[str, str | None, str | None],
    options: RunOptions,
    server_url: str | None,
    token: str | None,
) -> Any:
    import nbformat

    from .client import CollabClient
    from .errors import ExecutionError, RunFailed
    from .servers import EmbeddedServer, ServerInfo

    input_path, output_path, cwd = paths
    embedded = None
    if server_url is None:
        folders = [os.path.dirname(os.path.abspath(input_path))]
        folders += [os.path.dirname(os.path.abspath(p)) for p in (output_path,) if p]
        folders += [os.path.abspath(cwd)] if cwd else []
        if not os.path.isfile(input_path):
            raise FileNotFoundError(input_path)
        embedded = EmbeddedServer(os.path.commonpath(folders))
        info = await embedded.start()
        options.remote = False

        def api(path: str) -> str:
            mapped = info.api_path_for(path)
            assert mapped is not None
            return mapped
    else:
        info = ServerInfo(url=server_url, token=token)

        def api(path: str) -> str:
            return path.replace(os.sep, "/").strip("/")

    try:
        async with CollabClient(info) as client:
            source = api(input_path)
            target = api(output_path) if output_path else _scratch_near(source)
            options.cwd = (
                api(cwd) if cwd else (source.rpartition("/")[0] if target != source else None)
            )
            job = Job(source, target, input_path, output_path or "", scratch=output_path is None)
            try:
                result = await run_job(
                    client,
                    info,
                    job,
                    options,
                    interrupted=asyncio.Event(),
                    stdin=StdinLines(closed=True),
                )
            except UsageError as e:
                raise ValueError(str(e)) from None
    finally:
        if embedded is not None:
            await embedded.stop()
    nb = None
    if result.notebook is not None:
        nb = nbformat.from_dict(result.notebook)  # type: ignore[no-untyped-call]
    if result.error is not None and result.code == EXIT_CELL_ERROR:
        failure = result.error
        raise ExecutionError(
            failure.index,
            failure.execution_count,
            failure.source,
            failure.ename,
            failure.evalue,
            failure.traceback,
            exit_code=result.code,
        )
    if result.code != EXIT_OK:
        raise RunFailed(f"the run of {input_path} ended with exit code {result.code}", result.code)
    return nb


def _scratch_near(path: str) -> str:
    folder, _, name = path.rpartition("/")
    scratch = f"{name.removesuffix('.ipynb')}.collab-kernels-{uuid.uuid4().hex[:8]}.ipynb"
    return f"{folder}/{scratch}" if folder else scratch
