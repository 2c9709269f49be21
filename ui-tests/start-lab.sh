#!/usr/bin/env bash
# Starts JupyterLab with collab_kernels for the browser tests, on a temporary folder.
#
#   CK_UI_PORT  port to listen on (default 8890)
#   CK_UI_ROOT  folder holding the server's state; created fresh when unset or missing.
#               Its notebooks/ is the server's root_dir, seeded with examples/ and
#               ui-tests/notebooks/; config/, data/ and runtime/ isolate JupyterLab's
#               workspaces, settings, file ids and cookie secret from the user's own.
#               Starting again on the same folder (the restart test) keeps all of that.
#   CK_UI_TOKEN_ALICE / _BOB / _VIEWER  login tokens (see jupyter_server_test_config.py)
#   CK_UI_COMPANION  1: with the companion JupyterLab extension built in this checkout
#               (collab_kernels/labextension/); 0 (default): the stock frontend alone, the
#               companion disabled even where it is installed.
#   CK_UI_VENV  the Python environment to run (default: this checkout's .venv). The
#               server always runs this checkout's collab_kernels (PYTHONPATH), also from
#               another environment whose editable install points elsewhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
venv="${CK_UI_VENV:-$repo/.venv}"
companion="${CK_UI_COMPANION:-0}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
port="${CK_UI_PORT:-8890}"
root="${CK_UI_ROOT:-}"
if [ -z "$root" ]; then
    root="$(mktemp -d "${TMPDIR:-/tmp}/collab-kernels-ui-XXXXXX")"
fi
if [ ! -d "$root/notebooks" ]; then
    mkdir -p "$root/notebooks" "$root/config/labconfig" "$root/data" "$root/runtime"
    cp -R "$repo/examples/." "$root/notebooks/" 2>/dev/null || true
    cp -R "$here/notebooks/." "$root/notebooks/" 2>/dev/null || true
    # The news prompt is a toast that would sit over the notebooks in every screenshot.
    if [ "$companion" = 1 ]; then
        cat > "$root/config/labconfig/page_config.json" <<'JSON'
{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}
JSON
    else
        cat > "$root/config/labconfig/page_config.json" <<'JSON'
{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true, "collab-kernels-labextension": true}}
JSON
    fi
fi
if [ "$companion" = 1 ]; then
    built="$repo/collab_kernels/labextension"
    if [ ! -f "$built/package.json" ]; then
        echo "start-lab.sh: the companion extension is not built ($built); run: cd labextension && npm ci && npm run build" >&2
        exit 1
    fi
    # This checkout's build comes first on the data path, before any installed copy.
    mkdir -p "$root/data/labextensions"
    ln -sfn "$built" "$root/data/labextensions/collab-kernels-labextension"
fi
export JUPYTER_CONFIG_DIR="$root/config"
export JUPYTER_DATA_DIR="$root/data"
export JUPYTER_RUNTIME_DIR="$root/runtime"
echo "collab_kernels ui-tests: serving $root/notebooks on http://127.0.0.1:$port (companion extension: $companion)" >&2
exec "$venv/bin/jupyter" lab \
    --no-browser --allow-root \
    --ServerApp.port="$port" \
    --ServerApp.root_dir="$root/notebooks" \
    --config="$here/jupyter_server_test_config.py"
