# The README's two commands: `make demo` and `make test`. Each bootstraps what it needs.
VENV ?= .venv
PYTEST_ARGS ?=
# parallel workers (pytest-xdist; groups in tests/conftest.py); PYTEST_WORKERS=0 runs the suite serially
PYTEST_WORKERS ?= 3
# LATEST=1: the newest versions pyproject.toml allows instead of constraints.txt (make test-latest sets it)
LATEST ?= 0
PYTEST = $(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --no-loadscope-reorder

.PHONY: setup demo lint test test-full test-latest lock bench clean format

setup:
	@LATEST=$(LATEST) bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/pmsops demo

lint: setup
	$(VENV)/bin/ruff format --check --quiet src tests bench || { echo "make test: code not formatted: run make format"; exit 1; }
	$(VENV)/bin/ruff check --select E501 --quiet src tests bench || { echo "make test: lines over 150 characters (above)"; exit 1; }
	@out=$$($(VENV)/bin/lint-imports --no-cache --no-logo 2>&1) || { echo "$$out"; echo "make test: an import breaks the layers (above; docs/architecture.md)"; exit 1; }

# Every behaviour against the real parts, in <= 4 min on 2 cores: the tests not marked slow.
test: lint
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# make test, then the volumes marked slow (fault matrix, generated URLs, the whole Docker group, the browser).
test-full: test
	$(PYTEST) -m slow $(PYTEST_ARGS)

# make test on the newest versions pyproject.toml's ranges allow, in a venv of its own, then one fault scenario
# of each kind (marked latest) at 30 full syncs each.
test-latest:
	$(MAKE) --no-print-directory VENV=.venv-latest LATEST=1 PYTEST_ARGS="$(PYTEST_ARGS)" test
	PMSOPS_FAULT_SYNCS=30 .venv-latest/bin/python -m pytest -q -n $(PYTEST_WORKERS) --no-loadscope-reorder -m "slow and latest" $(PYTEST_ARGS)

# constraints.txt from a fresh venv on the newest versions the ranges allow (a deliberate upgrade).
lock:
	rm -rf .venv-lock
	LATEST=1 VENV=.venv-lock bash scripts/bootstrap.sh
	{ sed -n '1,3p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable 2>/dev/null | grep -v '^pmsops'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-lock

bench: setup
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) .venv-latest .pytest_cache .hypothesis

format: setup
	$(VENV)/bin/ruff format src tests bench
