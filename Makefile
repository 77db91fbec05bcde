# Two entry points: `make demo` (main job) and `make test` (test suite).
# Both create .venv and install what they need. TORCH_SPEC selects the torch build:
# the default pins the CPU wheel that ships on these machines; override it elsewhere,
# e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,ray,docs,data
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m benchmarks.run quick

# One torch/BLAS thread per process: the project's small networks run fastest that way
# (see docs/getting-started.md); override with `make test OMP_NUM_THREADS=4`.
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS

test: lint docs
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir .site

clean:
	rm -rf $(VENV) runs .site .pytest_cache .ruff_cache
