# gridgis: `make run` serves the demo, `make test` runs every test. Both set up what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo territory `make run` loads: hengqin (small) or nansha (1,292 grids).
SCALE ?= nansha

.PHONY: run test setup system browser venv assets db lint clean

run: setup db
	$(BIN)/gridgis demo load --scale $(SCALE)
	$(BIN)/gridgis dispatch & dispatcher=$$!; \
	trap 'kill -TERM $$dispatcher 2>/dev/null; wait $$dispatcher' EXIT; \
	$(BIN)/gridgis serve

test: setup browser db lint
	$(BIN)/pytest

browser:
	@scripts/install-system-deps.sh --browser

setup: system venv assets

system:
	@scripts/install-system-deps.sh

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

assets: assets/node_modules/.installed
assets/node_modules/.installed: assets/package.json assets/package-lock.json
	cd assets && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

db: venv
	$(BIN)/gridgis db up
	$(BIN)/gridgis db upgrade

lint: venv
	$(BIN)/ruff check gridgis tests migrations data/boundaries
	$(BIN)/mypy

clean:
	-$(BIN)/gridgis db down
	rm -rf $(VENV) assets/node_modules var
