# Quick start: `make lab` (JupyterLab with collab_kernels on examples/) and `make test`.
# Both create .venv/ and install everything on first use (a few minutes; each step is printed).
# Needs python3 (3.10+) and Node.js (18+) with npm, which builds the companion JupyterLab
# extension of labextension/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.collab_kernels-installed
PORT ?= 8888

# The companion JupyterLab extension: sources in labextension/, built into
# collab_kernels/labextension/ (what the wheel ships), linked into the venv's labextensions.
LABEXT_BUILT := collab_kernels/labextension/static/style.js
LABEXT_SOURCES := $(wildcard labextension/src/*.ts labextension/style/* labextension/schema/*.json) \
	labextension/package.json labextension/tsconfig.json
LABEXT_NPM := labextension/node_modules/.package-lock.json
LABEXT_DEST := $(VENV)/share/jupyter/labextensions/collab-kernels-labextension

.PHONY: lab test test-python test-labextension test-ui bench docs install labextension eg-venv \
	thirdparty-venv clean

$(STAMP): pyproject.toml | $(LABEXT_BUILT)
	@echo "==> creating the virtual environment $(VENV) with $$($(PYTHON) --version 2>&1)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --upgrade --progress-bar off pip
	@echo "==> installing collab_kernels (editable) with JupyterLab, ipykernel and the test,"
	@echo "    docs and bench tools: about 100 packages, 1-3 minutes on a fresh machine"
	$(BIN)/python -m pip install --progress-bar off -e '.[test,docs,bench]'
	@# A link instead of pip's copy: a rebuild (make labextension) shows at the next reload.
	rm -rf $(LABEXT_DEST) && ln -s $(CURDIR)/collab_kernels/labextension $(LABEXT_DEST)
	touch $(STAMP)
	@echo "==> installed into $(VENV)"

$(LABEXT_NPM): labextension/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "Node.js (18+) with npm is needed to build the"; \
		echo "companion JupyterLab extension: apt-get install nodejs npm (or see nodejs.org)"; exit 1; }
	@echo "==> installing the companion extension's build tools (npm ci in labextension/, about a minute)"
	cd labextension && npm ci --no-audit --no-fund
	@touch $@

$(LABEXT_BUILT): $(LABEXT_NPM) $(LABEXT_SOURCES)
	@echo "==> building the companion JupyterLab extension into collab_kernels/labextension/"
	cd labextension && npm run build
	@touch $@

labextension: $(LABEXT_BUILT)

# Its unit tests (node's test runner over the pure functions of labextension/src/logic.ts).
test-labextension: $(LABEXT_NPM)
	cd labextension && npm test

install: $(STAMP)

# Enterprise Gateway pins jupyter_server<2 and jupyter_client<7: its own environment, for the
# smoke test tests/test_gateway_enterprise.py (docs/gateway.md).
EG_VENV := .venvs/enterprise-gateway
EG_STAMP := $(EG_VENV)/.installed
$(EG_STAMP):
	@echo "==> Enterprise Gateway 3.3 in its own environment $(EG_VENV) (for its smoke test)"
	$(PYTHON) -m venv $(EG_VENV)
	$(EG_VENV)/bin/python -m pip install --progress-bar off "jupyter-enterprise-gateway==3.3.0" \
		"jupyter-client>=6.1.12,<7" "pyzmq>=24,<25" "ipykernel>=6.29,<6.30"
	touch $(EG_STAMP)

eg-venv: $(EG_STAMP)

# The third-party clients AI agents use (jupyter-nbmodel-client, jupyter-kernel-client,
# jupyter-mcp-server) pull in jupyterlab and jupyter-collaboration: their own environment, for
# tests/test_thirdparty_clients.py (about 2 minutes on a fresh machine; docs/agents.md).
TP_VENV := .venvs/thirdparty
TP_STAMP := $(TP_VENV)/.installed
$(TP_STAMP): tests/thirdparty/requirements.txt
	@echo "==> jupyter-mcp-server and its clients in their own environment $(TP_VENV) (for their tests)"
	$(PYTHON) -m venv $(TP_VENV)
	$(TP_VENV)/bin/python -m pip install --progress-bar off -q -r tests/thirdparty/requirements.txt
	touch $(TP_STAMP)

thirdparty-venv: $(TP_STAMP)

# jupyter refuses to run as root without --allow-root (containers, CI machines)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

# Does not open a browser: prints the URL (with its login token) to open.
lab: $(STAMP) $(LABEXT_BUILT)
	@token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
	echo ""; \
	echo "==> starting JupyterLab with collab_kernels on examples/ (Ctrl+C stops it)."; \
	echo "    Open this URL in your browser once the server says it is running:"; \
	echo ""; \
	echo "        http://localhost:$(PORT)/lab?token=$$token"; \
	echo ""; \
	JUPYTER_TOKEN=$$token exec $(BIN)/jupyter lab --ServerApp.root_dir=examples \
		--ServerApp.port=$(PORT) --ServerApp.port_retries=0 --no-browser $(ALLOW_ROOT)

test: test-python test-labextension

test-python: $(STAMP) $(EG_STAMP) $(TP_STAMP)
	$(BIN)/python -m pytest

# Browser tests (ui-tests/): real JupyterLab in Debian's headless Chromium, see README.
test-ui: $(STAMP) $(LABEXT_BUILT) ui-tests/node_modules/.package-lock.json
	@test -x /usr/bin/chromium || test -n "$$CHROMIUM_PATH" || \
		{ echo "test-ui needs Chromium: apt-get install chromium (or set CHROMIUM_PATH)"; exit 1; }
	cd ui-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx playwright test

ui-tests/node_modules/.package-lock.json: ui-tests/package-lock.json
	cd ui-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# Fan-out benchmark against the peers (creates their environments under bench/.venvs/ on
# first use; about 20 minutes). BENCH_ARGS=--quick for a smoke run. See bench/README.md.
bench: $(STAMP)
	$(BIN)/python bench/fanout_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build dist collab_kernels/labextension \
		labextension/node_modules labextension/lib labextension/build-test labextension/tsconfig.tsbuildinfo
