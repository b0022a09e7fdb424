# scnode: every target sets up what it needs, and running one twice is harmless.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-stamp
NPM_STAMP := node_modules/.installed-stamp
HAVE_PACKAGE_JSON := $(wildcard package.json)

.PHONY: setup test lint format check-generated demo bench clean

setup: $(VENV_STAMP) $(if $(HAVE_PACKAGE_JSON),$(NPM_STAMP))

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Generated code (protobuf modules, WASM modules, contract artifacts) must match its source.
check-generated: setup
	$(PY) scripts/gen_proto.py --check
	$(PY) scripts/build_wasm.py --check
	$(PY) -m ziglang fmt --check wasm/src
	node contracts/build.js --check

test: setup check-generated
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy node
	$(PY) scripts/tidy.py

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The main job: the local devnet demo.
demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) scripts/bench_log.py
	$(PY) scripts/bench_open_close.py
	$(PY) scripts/bench_payments.py
	$(PY) scripts/bench_hub.py
	$(PY) scripts/bench_flood.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
