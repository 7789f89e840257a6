# Set-up and checks for skmtl. Everything the project needs is installed by these targets.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.skmtl-installed

.PHONY: install demo test test-all lint docs bench clean

install: $(STAMP)

# torch is installed first and pinned: a bare `torch` requirement would pull a multi-GB CUDA
# build on a machine with no torch yet; with 2.13.0 present, the `deep` extra installs nothing more.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	@# MoleculeACE ships the data of load_moleculeace (skmtl reads its CSV files, never imports
	@# it); without --no-deps it would pull rdkit-pypi, an old rdkit build, over rdkit.
	$(PY) -m pip install --quiet --no-deps MoleculeACE==3.0.0
	touch $(STAMP)

demo: install
	$(VENV)/bin/skmtl compare

lint: install
	$(VENV)/bin/ruff check .

# one worker per core (pytest-xdist, in the dev extra); `pytest` alone runs in one process
test: lint
	$(PY) -m pytest -n auto

test-all: lint
	$(PY) -m pytest -m "" -n auto

docs: install
	$(VENV)/bin/sphinx-build -b html -W --keep-going docs docs/_build/html

# prints ratios against references measured in the same run; see benchmarks/README.md
bench: install
	$(PY) benchmarks/linear.py
	$(PY) benchmarks/deep.py

clean:
	rm -rf docs/_build docs/auto_examples docs/generated .pytest_cache
