# Developer entry points. `make demo` and `make test` work on a fresh clone:
# each creates .venv and installs frreg (CPU torch, pinned in constraints.txt)
# on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.frreg-installed
# Worker count for the test suite; 2 matches the CI machine's cores.
JOBS   ?= 2

.PHONY: install demo test test-fast lint format bench clean

$(STAMP): pyproject.toml constraints.txt setup.py frreg/training/batched/_native.c frreg/training/batched/_native_kernel.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,natural,export,cluster,baselines,figures]'
	touch $@

install: $(STAMP)

## The main job on the built-in default: produce a real libvmaf corpus from
## the built-in sources, train the 5-seed LOSO ensemble, gate it.
## Extra pytest arguments go in ARGS: make demo ARGS=--frreg-epochs=200
demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh $(ARGS)

## Lint, format check, type check and the whole test suite (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# pytest exits 5 when it collected nothing: a suite that ran no test has
	@# tested nothing, so say so and fail rather than pass quietly.
	@rc=0; $(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

## The edit loop: the tests not marked slow (no plugin sessions, clusters or kills).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_corpus.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis .mypy_cache
