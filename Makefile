# pypto-jit: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test demo bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	$(PY) -m pypto_jit runtime build
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -n 2 tests

demo: install
	$(PY) tutorials/01_vector_add.py

bench: install
	$(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install -q -e '.[test,bench]'
	mkdir -p build/bench
	$(PY) -m compileall -q pypto_jit  # first-call timings as after a normal install
	for t in tutorials/[0-9][0-9]_*.py; do $(PY) $$t --bench --out build/bench || exit 1; done
	$(PY) tutorials/speed_targets.py --out build/bench

lint: install
	$(VENV)/bin/ruff check pypto_jit tests tutorials
	$(VENV)/bin/ruff format --check pypto_jit tests tutorials

clean:
	rm -rf $(VENV) build dist .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
