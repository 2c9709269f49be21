"""jupyter-mcp-server over MCP stdio, as an agent uses it, against a collab_kernels server."""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

# python mcp_agent.py URL TOKEN NOTEBOOK default|http '[[tool, {args}], ...]'
url, token, path, mode = sys.argv[1:5]


async def main() -> None:
    env = dict(
        os.environ,
        JUPYTER_URL=url,
        JUPYTER_TOKEN=token,
        DOCUMENT_ID=path,
        JUPYTERLAB="false",
        JUPYTER_MCP_EXECUTE_VIA_HTTP="true" if mode == "http" else "false",
    )
    server = StdioServerParameters(
        command=os.path.join(os.path.dirname(sys.executable), "jupyter-mcp-server"),
        args=["start", "--transport", "stdio"],
        env=env,
    )
    out = {}
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            if len(sys.argv) > 5:
                for call in json.loads(sys.argv[5]):
                    result = await session.call_tool(call[0], call[1])
                    error = getattr(result, "isError", getattr(result, "is_error", False))
                    texts = [getattr(c, "text", str(c)) for c in getattr(result, "content", [])]
                    out.setdefault("calls", []).append([call[0], bool(error), texts])
    print(json.dumps(out))


asyncio.run(main())
