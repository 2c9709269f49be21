"""jupyter-nbmodel-client edits a notebook through the collaboration websocket, then executes
one of its cells with jupyter-kernel-client (the model writes the outputs into the document).

usage: nbmodel_edit.py SERVER_URL TOKEN PATH; prints ``EDITED <cells>`` then ``RESULT <json>``.
"""

import asyncio
import json
import sys

from jupyter_kernel_client import JupyterKernelClient
from jupyter_nbmodel_client import NbModelClient, get_jupyter_notebook_websocket_url


async def main(url: str, token: str, path: str) -> None:
    ws_url = get_jupyter_notebook_websocket_url(server_url=url, token=token, path=path)
    async with NbModelClient(ws_url) as notebook:
        notebook.set_cell_source(0, "x = 2")
        notebook.insert_code_cell(1, "y = 6 * 7\nprint('y is', y)")
        notebook.add_markdown_cell("# written by jupyter-nbmodel-client")
        print("EDITED", len(notebook), flush=True)
        with JupyterKernelClient(server_url=url, token=token) as kernel:
            result = notebook.execute_cell(1, kernel)
        print("RESULT", json.dumps(result), flush=True)


asyncio.run(main(*sys.argv[1:4]))
