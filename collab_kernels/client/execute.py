"""Running one notebook in a server, papermill's way: the engine of ``collab-kernels run`` and of
:func:`execute_notebook`.

A job reads the input notebook through the contents API, prepares it as papermill would
(parameters, records reset, error markers removed), writes it to its target, gives it a fresh
kernel (or keeps the session's with ``reuse_kernel``), runs every code cell in one request in
the target's shared document, records papermill's per-cell metadata as the run's events come,
saves, and shuts the kernel down if it started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from .cli_term import (
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    KernelSpecError,
    StdinLines,
    UsageError,
    note,
    note_detached,
)
from .cli_watch import Watcher, exit_code, report
from .errors import NotFound
from .papermill import (
    CellOutcome,
    RunRecorder,
    notebook_kernel_name,
    now_iso,
    prepare_notebook,
)
from .params import ParameterError
from .records import CellFinished, CellStarted, Output, RunEvent

if TYPE_CHECKING:
    from .client import CollabClient
    from .notebook import Notebook
    from .records import RunRecord
    from .servers import ServerInfo


@dataclass
class RunOptions:
    """How to run (the same for every notebook of a batch)."""

    parameters: dict[str, Any] = field(default_factory=dict)
    kernel_name: str | None = None
    language: str | None = None
    cwd: str | None = None  # a server path
    timeout: float | None = None
    start_timeout: float = 60.0
    allow_errors: bool = False
    prepare_only: bool = False
    report_mode: bool = False
    reuse_kernel: bool = False
    detach: bool = False
    log_output: bool = False
    progress: bool = True
    stdout_file: TextIO | None = None
    stderr_file: TextIO | None = None
    #: where --log-output prints the cells' stdout (None: sys.stdout)
    log_stdout: TextIO | None = None
    #: the server outlives this process (detach on Ctrl-C instead of cancelling)
    remote: bool = True
    #: read the executed notebook back from the server (JobResult.notebook)
    read_back: bool = False


@dataclass
class Job:
    """One notebook: where it is read and where its executed form goes (server paths)."""

    input_path: str
    target_path: str
    #: the paths as the user gave them (``metadata.papermill.input_path/output_path``)
    input_label: str
    output_label: str
    #: the target is a scratch file (output ``-``): read back, then deleted
    scratch: bool = False


@dataclass
class JobResult:
    code: int
    record: RunRecord | None = None
    #: the executed notebook, read back from the server (scratch targets, the Python API)
    notebook: dict[str, Any] | None = None
    #: (cell index in the target, ename, evalue, traceback) of the error that failed the run
    error: CellFailure | None = None
    run_id: str | None = None


def _stream_sink(options: RunOptions) -> Callable[[RunEvent], None] | None:
    if options.stdout_file is None and options.stderr_file is None:
        return None

    def sink(event: RunEvent) -> None:
        if isinstance(event, Output) and event.output_type == "stream":
            stream = options.stdout_file if event.name == "stdout" else options.stderr_file
            if stream is not None:
                stream.write(event.text)
                stream.flush()

    return sink


def _recorder_listener(recorder: RunRecorder) -> Callable[[RunEvent], None]:
    errors: dict[str, tuple[str, str]] = {}

    def listen(event: RunEvent) -> None:
        if isinstance(event, CellStarted):
            recorder.cell_started(event.cell_id)
        elif isinstance(event, Output) and event.output_type == "error":
            errors[event.cell_id] = (
                str(event.output.get("ename", "")),
                str(event.output.get("evalue", "")),
            )
        elif isinstance(event, CellFinished):
            ename, evalue = errors.get(event.cell_id, (None, None))
            # the REST record may lag the document: an error output means the cell failed
            result = event.result or ("error" if ename is not None else "ok")
            recorder.cell_finished(event.cell_id, CellOutcome(result, ename, evalue))

    return listen


async def check_kernel(client: CollabClient, name: str | None, where: str) -> str:
    """The kernel name to use, or :class:`KernelSpecError` naming what the server has."""
    if not name:
        raise KernelSpecError(
            f"{where} has no kernel name (metadata.kernelspec.name) and no -k/--kernel was given"
        )
    specs = await client.kernelspecs()
    installed = sorted((specs.get("kernelspecs") or {}).keys())
    if name in installed:
        return name
    try:  # an alias the kernel spec manager resolves (e.g. "python" for the native kernel)
        await client.request_object("GET", "api", "kernelspecs", name)
    except NotFound:
        raise KernelSpecError(
            f"no kernel named {name!r} on the server (for {where}); installed: "
            + (", ".join(installed) or "none")
        ) from None
    return name


async def _kernel_session(
    client: CollabClient, job: Job, options: RunOptions, kernel_name: str
) -> tuple[dict[str, Any], bool]:
    """(the target's session, whether this run created it). A fresh kernel unless
    ``reuse_kernel``: a new session, or the existing session's kernel restarted (or replaced
    when it is another kernel)."""
    session = await client.session_for(job.target_path)
    if session is not None and options.reuse_kernel:
        return session, False

    async def fresh(session: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        if session is None:
            return await client.create_session(job.target_path, kernel_name, options.cwd), True
        kernel = session.get("kernel") or {}
        if kernel.get("name") == kernel_name and kernel.get("id"):
            note(f"collab-kernels: {job.target_path} has a session: restarting its kernel")
            await client.restart_kernel(kernel["id"])
            return session, False
        note(f"collab-kernels: {job.target_path} has a session: a new {kernel_name} kernel")
        changed = await client.request_object(
            "PATCH", "api", "sessions", session["id"], json={"kernel": {"name": kernel_name}}
        )
        return changed, False

    try:
        return await asyncio.wait_for(fresh(session), options.start_timeout)
    except asyncio.TimeoutError:
        raise KernelStartTimeout(
            f"the kernel of {job.target_path} did not start within {options.start_timeout:g} s"
        ) from None


class KernelStartTimeout(Exception):
    """The kernel did not start within ``start_timeout`` (exit code 3)."""


async def run_job(
    client: CollabClient,
    info: ServerInfo,
    job: Job,
    options: RunOptions,
    *,
    interrupted: asyncio.Event,
    stdin: StdinLines,
) -> JobResult:
    started = time.monotonic()
    try:
        model = await client.get_contents(job.input_path)
    except NotFound:
        raise UsageError(f"no such notebook on the server: {job.input_path}") from None
    if model.get("type") != "notebook":
        raise UsageError(f"{job.input_path} is not a notebook")
    content: dict[str, Any] = model["content"]
    kernel_name = None
    if not options.prepare_only:
        kernel_name = await check_kernel(
            client, notebook_kernel_name(content, options.kernel_name), job.input_label
        )
    try:
        prepared = prepare_notebook(
            content,
            parameters=options.parameters,
            input_path=job.input_label,
            output_path=job.output_label,
            report_mode=options.report_mode,
            language=options.language,
            start_time=now_iso(),
            execute=not options.prepare_only,
        )
    except ParameterError as e:
        raise UsageError(str(e)) from None
    for warning in prepared.warnings:
        note(f"collab-kernels: {job.input_label}: {warning}")
    if options.prepare_only:
        if job.scratch:
            return JobResult(EXIT_OK, notebook=prepared.notebook)
        await client.save_notebook_to(job.target_path, prepared.notebook)
        note(f"collab-kernels: prepared {job.output_label} (not run)")
        return JobResult(EXIT_OK)
    assert kernel_name is not None
    if job.target_path != job.input_path:
        await client.save_notebook_to(job.target_path, prepared.notebook)
    try:
        session, created = await _kernel_session(client, job, options, kernel_name)
    except KernelStartTimeout as e:
        note(f"collab-kernels: {e}")
        return JobResult(EXIT_KERNEL_DIED)
    nb = await client.open_notebook(job.target_path, session=session)
    keep_kernel = options.reuse_kernel or options.detach
    try:
        result = await _run_in_document(
            nb, info, job, options, prepared.notebook, started, interrupted, stdin
        )
        if (result.code == EXIT_INTERRUPTED and options.remote) or options.detach:
            keep_kernel = True  # the run goes on in the server
        if job.scratch or options.read_back:
            result.notebook = (await client.get_contents(job.target_path))["content"]
        return result
    finally:
        await nb.close()
        if job.scratch and not keep_kernel:
            with contextlib.suppress(Exception):
                await client.delete_contents(job.target_path)
        if created and not keep_kernel:
            await client.delete_session(session["id"])


async def _run_in_document(
    nb: Notebook,
    info: ServerInfo,
    job: Job,
    options: RunOptions,
    prepared: dict[str, Any],
    started: float,
    interrupted: asyncio.Event,
    stdin: StdinLines,
) -> JobResult:
    nb.ynotebook.set(prepared)  # one transaction; granular when the document had it already
    recorder = RunRecorder(nb.ynotebook, prepared["metadata"]["papermill"]["start_time"])
    cell_ids = nb.code_cell_ids()
    if not cell_ids:
        note(f"collab-kernels: {job.target_path} has no code to run")
        recorder.finish()
        await nb.save()
        return JobResult(EXIT_OK)
    run = await nb.execute(cell_ids, stop_on_error=not options.allow_errors)
    if options.detach:
        print(run.run_id, flush=True)
        note(f"collab-kernels: run {run.run_id} of {job.target_path} goes on in the server")
        note(f"  watch it in JupyterLab: {info.lab_url(job.target_path)}")
        note(f"  follow it here:         collab-kernels attach {run.run_id}")
        return JobResult(EXIT_OK, run_id=run.run_id)
    note(f"collab-kernels: run {run.run_id} of {job.target_path} ({len(run.cell_ids)} cells)")
    if options.remote:
        note(f"  watch it live in JupyterLab: {info.lab_url(job.target_path)}")
    listeners = [_recorder_listener(recorder)]
    sink = _stream_sink(options)
    if sink is not None:
        listeners.append(sink)
    watcher = Watcher(
        run,
        log_output=options.log_output,
        progress=options.progress,
        timeout=options.timeout,
        interrupted=interrupted,
        stdin=stdin,
        listeners=listeners,
        stdout=options.log_stdout,
    )
    status = await watcher.follow()
    if status is None:
        if options.remote:
            note_detached(run.run_id)
            return JobResult(EXIT_INTERRUPTED, run_id=run.run_id)
        note(f"collab-kernels: interrupted: cancelling run {run.run_id}")
        interrupted.clear()
        await run.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(run.wait(), 30)
        recorder.finish()
        await nb.save()
        return JobResult(EXIT_INTERRUPTED, run_id=run.run_id)
    recorder.reconcile(status)
    # papermill's error markers where papermill puts them: into an OUTPUT, when the run failed
    recorder.finish(markers=job.target_path != job.input_path and not options.allow_errors)
    await nb.save()
    code = exit_code(status, watcher, options.allow_errors)
    report(run, status, code, watcher, time.monotonic() - started)
    if not job.scratch:
        note(f"  saved: {job.output_label}")
    return JobResult(code, status, error=_failure(nb, recorder), run_id=run.run_id)


@dataclass
class CellFailure:
    """The cell that raised, as the run's document has it (the notebook read back from the
    file afterwards may be an older save: the error is described from what ran)."""

    index: int
    execution_count: int | None
    source: str
    ename: str
    evalue: str
    traceback: list[str]


def _failure(nb: Notebook, recorder: RunRecorder) -> CellFailure | None:
    if recorder.failed is None:
        return None
    cell_id = recorder.failed[0]
    for index, cell in enumerate(nb.cells):
        if cell.get("id") != cell_id:
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        count = cell.get("execution_count")
        count = count if isinstance(count, int) else None
        for output in cell.get("outputs") or []:
            if output.get("output_type") == "error":
                tb = list(output.get("traceback") or [])
                ename, evalue = str(output.get("ename")), str(output.get("evalue"))
                return CellFailure(index, count, source, ename, evalue, tb)
        outcome = recorder.failed[1]
        ename = str(outcome.ename or "CellExecutionError")
        return CellFailure(index, count, source, ename, str(outcome.evalue or ""), [])
    return None
