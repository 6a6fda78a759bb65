# The README's two commands: `make demo` and `make test`. Both set up .venv
# first; set-up is skipped when pyproject.toml has not changed since.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: setup
	$(PY) -m scenarios.city_block

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/world_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
