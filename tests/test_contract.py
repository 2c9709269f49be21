"""collab_kernels.contract: the names the server stages and the clients share, no server needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from collab_kernels import contract
from collab_kernels.contract import (
    FILE_TYPES,
    KERNEL_GONE_ENAMES,
    InvalidRoomId,
    RoomId,
    build_room_id,
    is_kernel_gone,
    murmurhash2,
    parse_room_id,
    source_hash,
)


def test_importing_the_contract_loads_no_server_package():
    code = (
        "import sys, collab_kernels.contract as c\n"
        "heavy = {'jupyter_server', 'tornado', 'pycrdt', 'traitlets', 'jupyter_client', 'httpx',"
        " 'jupyter_ydoc', 'zmq'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("file_type, fmt", [("notebook", "json"), ("file", "text")])
def test_room_id_round_trip(file_type, fmt):
    room_id = build_room_id("0a1b-c2d3", file_type)
    assert room_id == f"{fmt}:{file_type}:0a1b-c2d3"
    parsed = parse_room_id(room_id)
    assert parsed == RoomId(fmt, file_type, "0a1b-c2d3")
    assert (parsed.format, parsed.file_type, parsed.file_id) == (fmt, file_type, "0a1b-c2d3")
    assert str(parsed) == room_id


def test_room_id_defaults_to_a_notebook():
    assert build_room_id("abc") == "json:notebook:abc"


def test_a_file_id_may_contain_colons():
    # split on the first two colons only: the rest belongs to the file id
    assert parse_room_id("json:notebook:a:b").file_id == "a:b"


@pytest.mark.parametrize(
    "room_id",
    [
        "",
        "json:notebook",
        "json:notebook:",
        "::",
        "text:notebook:abc",  # the format does not match the type
        "json:file:abc",
        "json:spreadsheet:abc",  # unknown type
        "json:notebook:../etc",  # a path, not a file id
        "JupyterLab:globalAwareness",
    ],
)
def test_invalid_room_ids_are_refused(room_id):
    with pytest.raises(InvalidRoomId):
        parse_room_id(room_id)


def test_invalid_room_id_is_a_value_error():
    # callers that catch ValueError keep working
    assert issubclass(InvalidRoomId, ValueError)


@pytest.mark.parametrize(
    "file_id, file_type", [("abc", "spreadsheet"), ("", "notebook"), ("a/b", "file")]
)
def test_build_room_id_refuses_what_parse_would(file_id, file_type):
    with pytest.raises(InvalidRoomId):
        build_room_id(file_id, file_type)


def test_file_types_table_matches_the_collaboration_protocol():
    assert dict(FILE_TYPES) == {"notebook": "json", "file": "text"}


@pytest.mark.parametrize(
    "data, expected",
    [
        # Austin Appleby's reference C code (uint32 arithmetic), seed 0.
        ("", 0),
        ("a", 2456313694),
        ("abcd", 646393889),
        ("hello", 3848350155),
        ("print('hello')", 3975440051),
        ("The quick brown fox jumps over the lazy dog", 556214736),
        ("héllo 😀", 1883834025),
    ],
)
def test_source_hash_known_values(data, expected):
    assert murmurhash2(data) == expected
    assert murmurhash2(data.encode("utf-8")) == expected
    assert source_hash(data) == str(expected)


def test_the_execution_stage_hashes_with_the_contract():
    from collab_kernels.execution import murmur

    assert murmur.source_hash("x = 1") == source_hash("x = 1")


def test_kernel_gone_names_are_the_ones_the_server_writes():
    # The execution stage writes these into a cell whose kernel went away.
    names = {ename for ename, _ in contract.KERNEL_GONE_MESSAGES.values()}
    assert names == {"KernelDied", "KernelRestarted", "KernelShutdown"}
    assert KERNEL_GONE_ENAMES == names | {"KernelGone"}
    assert set(contract.KERNEL_GONE_MESSAGES) == {"dead", "restarted", "shutdown"}
    assert all(is_kernel_gone(n) for n in KERNEL_GONE_ENAMES)
    # user errors, and other server errors, are not a dead kernel
    for ename in ("ValueError", "DeadKernelError", "KernelNotReady", "DocumentGone", None, 3):
        assert not is_kernel_gone(ename)


def test_status_and_result_literals():
    assert contract.STATUSES == {"queued", "running", "done"}
    assert contract.RESULTS == {"ok", "error", "aborted", "cancelled"}
    assert contract.ENTRY_STATUSES == {"queued", "running", "aborted"}
    assert contract.EXECUTION_MAP == "execution"
