# The README's two commands: `make demo` and `make test`. Each bootstraps what it needs.
VENV ?= .venv
PYTEST_ARGS ?=
# parallel workers (pytest-xdist; groups in tests/conftest.py); PYTEST_WORKERS=0 runs the suite serially
PYTEST_WORKERS ?= 3

.PHONY: setup demo test bench clean format

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/pmsops demo

test: setup
	$(VENV)/bin/ruff format --check --quiet src tests bench || { echo "make test: code not formatted: run make format"; exit 1; }
	$(VENV)/bin/ruff check --select E501 --quiet src tests bench || { echo "make test: lines over 150 characters (above)"; exit 1; }
	$(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --no-loadscope-reorder $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

format: setup
	$(VENV)/bin/ruff format src tests bench
