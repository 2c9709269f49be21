"""Junk bodies, ids and paths on every REST endpoint of collab_kernels (hypothesis).

Never a 5xx; paths that escape the root or do not exist are refused with 403/404 (400 for no
path at all) and never indexed by jupyter_server_fileid.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import httpx
import nbformat
from fixtures_reliability import FIGURES, count, draw, json_values, scaled
from hypothesis import strategies as st

BODY_KEYS = [
    "cell_id",
    "document_id",
    "cells",
    "code",
    "metadata",
    "value",
    "format",
    "type",
    "source_hash",
    "path",
]

bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(BODY_KEYS), json_values, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
    st.just(b"{" * 5000),
    st.just(b""),
)
ids = st.one_of(
    st.text(min_size=1, max_size=60),
    st.sampled_from(["..", ".", "%00", "json:notebook:..", "json:notebook:", "a" * 3000]),
    st.uuids().map(str),
)


def segment(value: str) -> str:
    """One URL path segment, dots encoded so no client normalises them away."""
    return quote(value, safe="").replace(".", "%2E") or "%2E"


def path_of(value: str) -> str:
    return "/".join(segment(part) for part in value.split("/"))


junk_paths = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "../outside.ipynb",
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../outside.ipynb",
            "missing.ipynb",
            "dir/missing.ipynb",
            "\\..\\outside.ipynb",
            "notebook.ipynb\x00.txt",
            "",
            "/",
            "//",
            "./",
            "~/x.ipynb",
        ]
    ),
)


def fim_rows(serverapp) -> int:
    fim = serverapp.web_app.settings["file_id_manager"]
    return fim.con.execute("SELECT COUNT(*) FROM Files").fetchone()[0]


async def test_junk_requests_never_get_a_5xx(
    jp_serverapp, jp_root_dir, collab_base_url, collab_token, start_kernel
):
    kernel_id = await start_kernel()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("1"))
    nbformat.write(nb, str(jp_root_dir / "real.ipynb"))
    headers = {"Authorization": f"token {collab_token}"}
    statuses: dict[int, int] = {}
    tried = 0
    async with httpx.AsyncClient(base_url=collab_base_url, headers=headers, timeout=60) as http:
        r = await http.put(
            "api/collaboration/session/real.ipynb", json={"format": "json", "type": "notebook"}
        )
        room_id = f"json:notebook:{r.json()['fileId']}"
        requests = []
        for body, a, b in draw(st.tuples(bodies, ids, ids), scaled(60)):
            kid = kernel_id if len(a) % 2 else a
            requests += [
                ("POST", f"api/kernels/{segment(kid)}/execute", body),
                ("POST", f"api/kernels/{segment(kid)}/input", body),
                ("GET", f"api/kernels/{segment(kid)}/requests/{segment(b)}", None),
                ("DELETE", f"api/kernels/{segment(kid)}/requests/{segment(b)}", None),
                ("GET", f"api/kernels/{segment(kid)}/requests", None),
                (
                    "GET",
                    f"api/collaboration/room/{segment(a if len(b) % 2 else room_id)}/presence",
                    None,
                ),
                ("PUT", "api/collaboration/session/real.ipynb", body),
            ]
        # structurally right bodies with junk values, on the real kernel and document
        for cell_id, value in draw(st.tuples(json_values, json_values), scaled(30)):
            for payload in (
                {"cell_id": cell_id, "document_id": room_id},
                {"document_id": room_id, "cells": value},
                {"document_id": room_id, "cells": [{"cell_id": cell_id, "source_hash": value}]},
                {"code": value, "metadata": {"cell_id": cell_id, "document_id": room_id}},
                {"document_id": room_id, "cell_id": cell_id, "value": value},
            ):
                requests.append(
                    ("POST", f"api/kernels/{kernel_id}/execute", json.dumps(payload).encode())
                )
                requests.append(
                    ("POST", f"api/kernels/{kernel_id}/input", json.dumps(payload).encode())
                )
        for method, url, body in requests:
            r = await http.request(method, url, content=body)
            tried += 1
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (method, url, body and body[:100], r.status_code, r.text)
    count("REST requests", tried)
    for code, n in statuses.items():
        count(f"REST {code}", n)
    print("FUZZ FIGURES", FIGURES)


async def test_paths_outside_the_root_or_missing_are_refused_never_indexed(
    jp_serverapp, jp_root_dir, collab_base_url, collab_token
):
    (jp_root_dir.parent / "outside.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    headers = {"Authorization": f"token {collab_token}"}
    before = fim_rows(jp_serverapp)
    tried = 0
    async with httpx.AsyncClient(base_url=collab_base_url, headers=headers, timeout=60) as http:
        for path in draw(junk_paths, scaled(80)):
            for body in (
                {"format": "json", "type": "notebook"},
                {"format": "text", "type": "file"},
            ):
                r = await http.put(f"api/collaboration/session/{path_of(path)}", json=body)
                tried += 1
                assert r.status_code in (400, 403, 404), (path, r.status_code, r.text)
                if path.strip("/"):
                    assert r.status_code != 400 or "\x00" in path or "\\" in path, (path, r.text)
                assert "outside" not in r.text or r.status_code == 403
    assert fim_rows(jp_serverapp) == before  # nothing was indexed
    count("session paths refused", tried)
    # a real file next to them is still served and indexed once
    async with httpx.AsyncClient(base_url=collab_base_url, headers=headers, timeout=60) as http:
        name = f"ok-{uuid.uuid4().hex[:6]}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(), str(jp_root_dir / name))
        r = await http.put(
            f"api/collaboration/session/{name}", json={"format": "json", "type": "notebook"}
        )
        assert r.status_code == 201
    assert fim_rows(jp_serverapp) == before + 1
