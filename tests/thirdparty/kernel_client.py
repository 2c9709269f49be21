"""jupyter-kernel-client against the server's kernel websocket: execute, input() answered,
interrupt, restart. Starts its own kernel (REST) and shuts it down at the end.

usage: kernel_client.py SERVER_URL TOKEN; prints ``RESULT <json>``.
"""

import json
import sys

from jupyter_kernel_client import JupyterKernelClient


def main(url: str, token: str) -> None:
    out: dict = {}
    with JupyterKernelClient(server_url=url, token=token) as kernel:
        out["kernel_id"] = kernel.id
        out["execute"] = kernel.execute("a = 6 * 7\nprint('a is', a)\na")

        prompts = []

        def answer(msg: dict) -> None:
            prompts.append(msg["content"]["prompt"])
            kernel._manager.client.input("bob")

        result = kernel.execute(
            "name = input('name? ')\nprint('hello', name)", allow_stdin=True, stdin_hook=answer
        )
        out["input"] = {"prompts": prompts, **result}

        def interrupt_once_started(msg: dict) -> None:
            # the cell says it started: interrupt it (no timer)
            if msg["header"]["msg_type"] == "stream" and "started" in msg["content"]["text"]:
                kernel.interrupt()

        reply = kernel.execute_interactive(
            "import time\nprint('started', flush=True)\ntime.sleep(120)",
            output_hook=interrupt_once_started,
        )
        out["interrupt"] = {
            "status": reply["content"]["status"],
            "ename": reply["content"].get("ename"),
        }
        kernel.restart()
        out["after_restart"] = kernel.execute("'a' in dir()")
    print("RESULT", json.dumps(out), flush=True)


main(*sys.argv[1:3])
