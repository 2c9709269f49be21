"""An AI agent's side of jupyter-mcp-server, for runs a test acts on while they go: starts
``jupyter-mcp-server`` (stdio transport) with the ``mcp`` client library and calls its tools:
use_notebook, insert_cell, execute_cell, read_cell. ``JUPYTER_MCP_EXECUTE_VIA_HTTP``
(inherited) picks its execution mode.

usage: mcp_run.py SERVER_URL TOKEN PATH SOURCE [--leave]
prints ``INSERTED <index>``, then ``RESULT <json>`` (the tools' text answers). With
``--leave`` it starts execute_cell, prints ``EXECUTING`` and, at a line on its stdin, ends the
MCP session mid-run (the agent disconnects) and prints ``LEFT``.
"""

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from mcp import ClientSession, StdioServerParameters, stdio_client


def text(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main(url: str, token: str, path: str, source: str, leave: bool) -> None:
    env = {"JUPYTER_URL": url, "JUPYTER_TOKEN": token, "DOCUMENT_ID": path}
    env["JUPYTERLAB"] = "false"
    for name in ("JUPYTER_MCP_EXECUTE_VIA_HTTP", "PATH", "HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    server = StdioServerParameters(
        command=str(Path(sys.executable).with_name("jupyter-mcp-server")),
        args=["start", "--transport", "stdio"],
        env=env,
    )
    out = {}
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["use"] = text(
            await session.call_tool("use_notebook", {"notebook_name": "nb", "notebook_path": path})
        )
        out["insert"] = text(
            await session.call_tool(
                "insert_cell", {"cell_index": -1, "cell_type": "code", "cell_source": source}
            )
        )
        index = int(re.search(r"inserted successfully at index (\d+)", out["insert"]).group(1))
        print("INSERTED", index, flush=True)
        if leave:
            running = asyncio.ensure_future(
                session.call_tool("execute_cell", {"cell_index": index, "timeout": 300})
            )
            print("EXECUTING", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            running.cancel()
            print("LEFT", flush=True)
            return
        out["execute"] = text(await session.call_tool("execute_cell", {"cell_index": index}))
        out["read"] = text(await session.call_tool("read_cell", {"cell_index": index}))
    print("RESULT", json.dumps(out), flush=True)


asyncio.run(main(*sys.argv[1:5], leave="--leave" in sys.argv[5:]))
