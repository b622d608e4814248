# gridgis: `make run` serves the demo, `make test` runs every test. Both set up what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo territory `make run` loads: hengqin (small) or nansha (1,292 grids).
SCALE ?= nansha

.PHONY: run test setup system browser venv assets db lint clean bench bench-city bench-load

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
	$(BIN)/ruff check gridgis tests migrations data/boundaries bench
	$(BIN)/mypy

# Benchmarks on a generated city (bench/README.md, bench/RESULTS.md): `make bench-city` once
# (~3 min, ~1.8 GB), then `make bench` (~25 min on two cores: run it on a quiet machine;
# each script prints its table and writes bench/results/*.json).
BENCH_DB ?= gridgis_bench
bench-city: setup db
	$(BIN)/python bench/gen_city.py --db $(BENCH_DB)

bench: setup db
	$(BIN)/python bench/targeting.py --db $(BENCH_DB)
	$(BIN)/python bench/checklists.py --db $(BENCH_DB) --runs 3 --explain
	$(BIN)/python bench/checklists.py --db $(BENCH_DB) --tier storm --runs 2
	$(BIN)/python bench/checklists.py --db $(BENCH_DB) --tier hurricane --runs 2
	$(BIN)/python bench/delivery.py --db $(BENCH_DB)
	$(BIN)/python bench/tiles.py --db $(BENCH_DB)
	$(BIN)/python bench/command_page.py --db gridgis_bench_nansha --load nansha
	$(BIN)/python bench/command_page.py --db $(BENCH_DB)

# Load test (bench/README.md): 200 grid heads and 5 command screens on a `gridgis serve` for
# 60 s; the nansha demo in its own database, loaded on first use. Exits 1 on a lost change
# or an error. LOAD_ARGS=--seconds 15 for a shorter run.
bench-load: setup db
	$(BIN)/python bench/load_checklists.py --db gridgis_bench_load $(LOAD_ARGS)

clean:
	-$(BIN)/gridgis db down
	rm -rf $(VENV) assets/node_modules var
