"""jupyter-nbmodel-client edits a notebook and executes its cells with jupyter-kernel-client,
against a collab_kernels server (run with the third-party venv's python)."""

import asyncio
import json
import sys

from jupyter_kernel_client import JupyterKernelClient as KernelClient
from jupyter_nbmodel_client import NbModelClient, get_jupyter_notebook_websocket_url

url, token, path = sys.argv[1:4]


async def main() -> None:
    result = {}
    with KernelClient(server_url=url, token=token) as kernel:
        ws = get_jupyter_notebook_websocket_url(server_url=url, token=token, path=path)
        async with NbModelClient(ws) as nb:
            index = nb.add_code_cell("x = 21\nprint('from nbmodel', x * 2)")
            result["cell"] = nb.execute_cell(index, kernel)
            result["source"] = nb[index]["source"]
        result["reply"] = kernel.execute("x + 1")
        kernel.restart()
        result["after_restart"] = kernel.execute("'x' in globals()")
    print(json.dumps(result, default=str))


asyncio.run(main())
