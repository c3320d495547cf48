# The README's two commands: `make demo` and `make test`. Each bootstraps what it needs.
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/pmsops demo

test: setup
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
