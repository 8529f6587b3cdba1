# The front door: `make demo` runs the main job on localhost, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: deps demo test unit clean

deps:
	@scripts/install-deps.sh

demo: deps
	$(PY) scripts/demo_driver.py

unit: deps
	$(PYTEST) tests/unit

test: unit

clean:
	rm -rf $(VENV) .collections .pytest_cache tests/output
