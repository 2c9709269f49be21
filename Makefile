# Quick start: `make lab` (JupyterLab with collab_kernels on examples/) and `make test`.
# Both create .venv/ and install everything on first use (a few minutes; each step is printed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.collab_kernels-installed
PORT ?= 8888

.PHONY: lab test test-python test-ui bench docs install clean

$(STAMP): pyproject.toml
	@echo "==> [1/3] creating the virtual environment $(VENV) with $$($(PYTHON) --version 2>&1)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(BIN)/python -m pip install --upgrade --progress-bar off pip
	@echo "==> [3/3] installing collab_kernels (editable) with JupyterLab, ipykernel and the test,"
	@echo "          docs and bench tools: about 100 packages, 1-3 minutes on a fresh machine"
	$(BIN)/python -m pip install --progress-bar off -e '.[test,docs,bench]'
	touch $(STAMP)
	@echo "==> installed into $(VENV)"

install: $(STAMP)

# jupyter refuses to run as root without --allow-root (containers, CI machines)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

# Does not open a browser: prints the URL (with its login token) to open.
lab: $(STAMP)
	@token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
	echo ""; \
	echo "==> starting JupyterLab with collab_kernels on examples/ (Ctrl+C stops it)."; \
	echo "    Open this URL in your browser once the server says it is running:"; \
	echo ""; \
	echo "        http://localhost:$(PORT)/lab?token=$$token"; \
	echo ""; \
	JUPYTER_TOKEN=$$token exec $(BIN)/jupyter lab --ServerApp.root_dir=examples \
		--ServerApp.port=$(PORT) --ServerApp.port_retries=0 --no-browser $(ALLOW_ROOT)

test: test-python

test-python: $(STAMP)
	$(BIN)/python -m pytest

# Browser tests (ui-tests/): real JupyterLab in Debian's headless Chromium, see README.
test-ui: $(STAMP) ui-tests/node_modules/.package-lock.json
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
	rm -rf $(VENV) .pytest_cache build dist
