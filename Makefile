# The two set-up commands: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint docs bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	# ISLP ships the Default and Caravan tables of bench/imbalance.py; its own dependencies pull other torch builds
	$(PY) -m pip install --quiet --no-deps ISLP==0.6.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/modelforge train examples/quickstart.yaml --out runs/quickstart

test: $(STAMP)
	$(PY) -m pytest -q -x --timeout=600

test-all: $(STAMP)
	$(PY) -m pytest -q --timeout=1800 -m ''

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports --no-cache

# README.md and the docs reference pages regenerated from docs/ and the code, then the site built into site/
docs: $(STAMP)
	$(PY) docs/build_readme.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf runs site .pytest_cache
