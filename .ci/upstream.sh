#!/usr/bin/env bash
# jupyter_server's own tests for kernels, sessions, api, serverapp, gateway and the authorizer,
# from the sdist of the installed jupyter_server, run stock and with collab_kernels in force;
# fails on any test that passes stock and not with collab_kernels (docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" tests/upstream/run.py "$@"
