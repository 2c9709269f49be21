"""The real third-party clients against a collab_kernels server: jupyter-nbmodel-client,
jupyter-kernel-client and jupyter-mcp-server (what AI agents use to drive notebooks).

They pull in jupyterlab, jupyter-collaboration and jupyter-server-nbmodel, so they live in
their own environment, ``.venvs/thirdparty`` (``make thirdparty-venv``; pins in
``tests/thirdparty/requirements.txt``); the session fixture creates it when it is missing.
``COLLAB_KERNELS_THIRDPARTY_PYTHON`` names another one. Each test runs a small script of
``tests/thirdparty/`` in that environment (a subprocess) against the test's own jupyter_server
listening on a loopback port, while a collaborator of ours watches the document live.
(It took in the first compatibility module, test_client_thirdparty.py: its mcp test is here.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_client import CLIProcess, Processes, read_notebook, write_notebook
from fixtures_execution import cell_py, entry
from fixtures_rooms import eventually

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "thirdparty"
REQUIREMENTS = SCRIPTS / "requirements.txt"
VENV = ROOT / ".venvs" / "thirdparty"
TIMEOUT = 90.0

# Installing the environment on a fresh machine takes a few minutes (first test's setup).
pytestmark = pytest.mark.timeout(600)


def _installed(python: Path) -> bool:
    return python.exists() and (python.parent.parent / ".installed").exists()


@pytest.fixture(scope="session")
def thirdparty_python() -> str:
    """The python of the third-party clients' environment (created on first use)."""
    named = os.environ.get("COLLAB_KERNELS_THIRDPARTY_PYTHON")
    if named:
        if not Path(named).exists():
            pytest.fail(f"COLLAB_KERNELS_THIRDPARTY_PYTHON={named} does not exist")
        return named
    python = VENV / "bin" / "python"
    if not _installed(python):
        # the same steps as `make thirdparty-venv`
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--progress-bar",
                "off",
                "-q",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
        (VENV / ".installed").touch()
    return str(python)


@pytest.fixture
def jp_base_url(request):
    """``/``, or the base URL a test asks for (indirect parametrization)."""
    return getattr(request, "param", "/")


@pytest.fixture
def server(server_info):
    """(url without the trailing slash, token) of the listening test server."""
    return server_info.url.rstrip("/"), server_info.token


@pytest.fixture
def run_script(thirdparty_python, jp_root_dir):
    """Start ``tests/thirdparty/NAME ARGS...`` in the third-party environment."""
    processes = Processes()

    async def start(name: str, *args: str, env: dict[str, str] | None = None) -> CLIProcess:
        script = str(SCRIPTS / name)
        return await processes.start(thirdparty_python, script, *args, cwd=jp_root_dir, env=env)

    yield start
    processes.kill()


async def finish(process: CLIProcess, timeout: float = TIMEOUT) -> dict:
    """Wait for the script's end; its ``RESULT`` line, decoded."""
    code = await process.wait(timeout)
    assert code == 0, f"exit {code}\n{process.out}\n{process.err[-4000:]}"
    match = await process.wait_for_output(r"^RESULT (.*)$")
    return json.loads(match.group(1))


def cell_sources(document) -> list[str]:
    return [str(c.get("source", "")) for c in document.ycells.to_py()]


async def test_nbmodel_client_edits_land_in_the_document_and_on_disk(
    server, run_script, jp_root_dir, collab_client
):
    path = "nbmodel.ipynb"
    write_notebook(jp_root_dir / path, ["x = 1"])
    watcher = await collab_client(path)  # a person with the notebook open

    agent = await run_script("nbmodel_edit.py", *server, path)
    result = await finish(agent)

    assert result["status"] == "ok" and result["execution_count"] == 1
    assert result["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "y is 42\n"}]
    expected = ["x = 2", "y = 6 * 7\nprint('y is', y)", "# written by jupyter-nbmodel-client"]
    # The person saw the edits and the outputs live.
    await watcher.wait_for(lambda d: cell_sources(d) == expected, TIMEOUT)
    await watcher.wait_for(lambda d: d.ycells[1].get("execution_count") == 1, TIMEOUT)
    cell = watcher.document.ycells[1].to_py()
    assert cell["outputs"][0]["text"] == "y is 42\n"
    # And the file on disk has them (autosave).

    def saved():
        cells = read_notebook(jp_root_dir / path).cells
        return [c.source for c in cells] == expected and cells[1].outputs and cells

    cells = await eventually(saved, TIMEOUT)
    assert cells[1].outputs[0]["text"] == "y is 42\n" and cells[1].execution_count == 1
    assert [c.cell_type for c in cells] == ["code", "code", "markdown"]


async def test_kernel_client_executes_answers_input_interrupts_and_restarts(
    server, run_script, jp_serverapp
):
    agent = await run_script("kernel_client.py", *server)
    result = await finish(agent)

    execute = result["execute"]
    assert execute["status"] == "ok" and execute["execution_count"] == 1
    assert execute["outputs"][0]["text"] == "a is 42\n"
    assert execute["outputs"][1]["data"]["text/plain"] == "42"
    # input() reached the client over the kernel websocket and its answer came back
    assert result["input"]["prompts"] == ["name? "]
    assert result["input"]["outputs"][0]["text"] == "hello bob\n"
    # interrupt: the running cell ended with KeyboardInterrupt
    assert result["interrupt"] == {"status": "error", "ename": "KeyboardInterrupt"}
    # restart: a fresh namespace and count
    restarted = result["after_restart"]
    assert restarted["execution_count"] == 1
    assert restarted["outputs"][0]["data"]["text/plain"] == "False"
    # the client shut its kernel down when it stopped
    assert result["kernel_id"] not in jp_serverapp.kernel_manager.list_kernel_ids()


def outputs_text(document) -> str:
    return json.dumps([c.get("outputs") or [] for c in document.ycells.to_py()])


def cell_with(document, source: str) -> dict:
    for cell in document.ycells.to_py():
        if cell.get("source") == source:
            return cell
    return {}


@pytest.mark.parametrize(
    ("mode", "jp_base_url"),
    [
        ("default", "/a%40b/"),
        ("http", "/"),
        # under a base URL (JupyterHub's /user/NAME/): jupyter-mcp-server polls the execute
        # answer's request_url, relative to it, as jupyter-server-nbmodel sends it
        ("http", "/a%40b/"),
    ],
    indirect=["jp_base_url"],
)
async def test_jupyter_mcp_server_inserts_executes_and_reads(
    server, run_script, jp_root_dir, collab_client, mode
):
    """An agent's MCP calls over stdio, in both execution modes (default: room websocket and
    kernel websocket; http: the nbmodel REST protocol)."""
    path = f"mcp-{mode}.ipynb"
    write_notebook(jp_root_dir / path, [("markdown", "# an agent's notebook")])
    watcher = await collab_client(path)
    calls = [
        ["use_notebook", {"notebook_name": "nb", "notebook_path": path}],
        ["insert_execute_code_cell", {"cell_index": -1, "cell_source": "print(6 * 7)"}],
        ["read_cell", {"cell_index": 1, "include_outputs": True}],
    ]
    agent = await run_script("mcp_agent.py", *server, path, mode, json.dumps(calls))
    assert await agent.wait(TIMEOUT) == 0, agent.err[-4000:]
    result = json.loads(agent.out.strip().splitlines()[-1])
    assert {"use_notebook", "insert_execute_code_cell", "read_cell"} <= set(result["tools"])
    (_, use_error, _), (_, run_error, run_out), (_, read_error, read_out) = result["calls"]
    assert not use_error and not run_error and not read_error, result["calls"]
    assert "42\n" in "".join(run_out)  # not "Unexpected input request" (nbmodel protocol)
    assert "print(6 * 7)" in "".join(read_out) and "42\n" in "".join(read_out)
    # the person with the notebook open saw the agent's cell and its output
    await watcher.wait_for(lambda d: cell_with(d, "print(6 * 7)").get("outputs"), TIMEOUT)
    assert cell_with(watcher.document, "print(6 * 7)")["outputs"][0]["text"] == "42\n"


HTTP = {"JUPYTER_MCP_EXECUTE_VIA_HTTP": "true"}


async def test_mcp_http_mode_input_is_answered_by_a_person_while_the_agent_waits(
    server, run_script, jp_root_dir, collab_client, api
):
    """In HTTP mode an input() cell of the agent is not "Unexpected input request": the status
    stays 202 while the prompt waits in the document, a person answers it, and the agent gets
    the cell's real outputs."""
    path = "mcp-input.ipynb"
    write_notebook(jp_root_dir / path, ["x = 1"])
    person = await collab_client(path)
    source = "name = input('name? ')\nprint('hello', name)"
    agent = await run_script("mcp_run.py", *server, path, source, env=HTTP)
    await agent.wait_for_output(r"^INSERTED 1$", TIMEOUT)
    # The prompt shows in the document, where the person answers it (as the companion does).
    await person.wait_for(
        lambda d: (entry(d, cell_with(d, source).get("id")) or {}).get("input_request"), TIMEOUT
    )
    cell_id = cell_with(person.document, source)["id"]
    code, sessions, _ = await api("GET", "api", "sessions")
    kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == path)
    code, model, _ = await api(
        "PUT", "api", "collaboration", "session", path, body={"format": "json", "type": "notebook"}
    )
    answer = {"document_id": f"json:notebook:{model['fileId']}", "cell_id": cell_id, "value": "bob"}
    code, data, _ = await api("POST", "api", "kernels", kernel_id, "input", body=answer)
    assert code == 200, data
    result = await finish(agent)
    assert "Unexpected input request" not in result["execute"]
    assert "hello bob" in result["execute"], result["execute"]
    await person.wait_for(lambda d: "hello bob" in outputs_text(d), TIMEOUT)
    assert cell_py(person.document, cell_id)["execution_count"] is not None


async def test_an_agent_that_disconnects_mid_run_leaves_the_run_going_http_mode(
    server, run_script, jp_root_dir, collab_client, tmp_path
):
    """The agent ends its MCP session while its cell runs: the run goes on in the server and
    the rest of the outputs land in the document and in the file."""
    path = "mcp-leave.ipynb"
    write_notebook(jp_root_dir / path, ["x = 1"])
    person = await collab_client(path)
    flag = tmp_path / "go-on"
    source = (
        "import os, time\nprint('started', flush=True)\n"
        f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)\n"
        "print('after the agent left')"
    )
    agent = await run_script("mcp_run.py", *server, path, source, "--leave", env=HTTP)
    await person.wait_for(lambda d: "started" in outputs_text(d), TIMEOUT)
    await agent.send("leave\n")  # the agent disconnects mid-run
    assert await agent.wait(TIMEOUT) == 0, agent.err[-4000:]
    assert "LEFT" in agent.out
    flag.write_text("")  # the cell may end now, with no agent left
    await person.wait_for(lambda d: "after the agent left" in outputs_text(d), TIMEOUT)
    await person.wait_for(lambda d: cell_with(d, source).get("execution_count"), TIMEOUT)

    def saved():
        cells = read_notebook(jp_root_dir / path).cells
        return "after the agent left" in json.dumps([c.get("outputs", []) for c in cells])

    await eventually(saved, TIMEOUT)
