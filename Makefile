# Two commands a new user runs: `make demo` and `make test`. Everything they need is
# installed into .venv from the package registries.

# Python 3.11 or newer: the first of PYTHON_NAMES on PATH that is, unless given as
# `make demo PYTHON=/path/to/python3.12`.
PYTHON_NAMES := python3 python3.14 python3.13 python3.12 python3.11
PYTHON ?= $(shell for name in $(PYTHON_NAMES); do \
	$$name -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$name; break; }; \
	done)
VENV ?= .venv
BIN := $(VENV)/bin
# The oldest versions we support, tested by `make test-min` in their own venv. aiosqlite
# 0.19: SQLAlchemy 2.0.0 makes its connection threads daemons only before 0.22, and a
# non-daemon one left open keeps a process from exiting.
MIN_VENV := .venv-min
MIN_PINS := flask==3.0.0 werkzeug==3.0.0 sqlalchemy==2.0.0 typing-extensions==4.6.0 aiosqlite==0.19.0

DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 5000

.PHONY: demo test test-min test-py312 test-load lint typecheck pytest bench docs clean

# $(call new_venv,DIR): make a venv in DIR with $(PYTHON) unless there is one, or say
# which Python to install.
define new_venv
	@test -x $(1)/bin/python || { \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	    echo "flask-typed-db needs Python 3.11 or newer: $(if $(PYTHON),PYTHON=$(PYTHON) is not,none of $(PYTHON_NAMES) on PATH is)." >&2; \
	    echo "Install one (from python.org, your system's packages, or 'pyenv install 3.12')," >&2; \
	    echo "then run: make $(or $(MAKECMDGOALS),demo) PYTHON=/path/to/python3.12" >&2; \
	    exit 1; \
	  fi; \
	  echo "$(PYTHON) -m venv $(1)"; $(PYTHON) -m venv $(1); \
	}
	$(1)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
endef

# Everything: the package, and the test, lint, benchmark and docs tools.
$(VENV)/.installed: pyproject.toml
	$(call new_venv,$(VENV))
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@ $(VENV)/.demo-installed

# What the example needs, and no more: `make demo` from a fresh clone installs this only.
$(VENV)/.demo-installed: pyproject.toml
	$(call new_venv,$(VENV))
	$(BIN)/python -m pip install --quiet -e . --group demo
	touch $@

demo: $(VENV)/.demo-installed
	PYTHONPATH=examples $(BIN)/flask --app bookshelf.app init-db --seed
	@echo "Serving the bookshelf example on http://$(DEMO_HOST):$(DEMO_PORT)/ (Ctrl+C to stop)"
	PYTHONPATH=examples $(BIN)/flask --app bookshelf.app run --host $(DEMO_HOST) --port $(DEMO_PORT)

# The documentation site, from docs/ and the docstrings, in docs/_build/html. Offline (no
# intersphinx), and any warning fails it, such as a reference that does not resolve;
# -E reads every page again, since Sphinx does not see a docstring change.
docs: $(VENV)/.installed
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
	@echo "Built docs/_build/html/index.html"

test: $(VENV)/.installed
	$(MAKE) lint typecheck pytest VENV=$(VENV)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# What the type checkers read: everything (per mypy.ini and pyproject.toml) unless given.
TYPECHECK_PATHS ?=

typecheck:
	$(BIN)/mypy --cache-dir $(VENV)/.mypy_cache $(TYPECHECK_PATHS)
	$(BIN)/pyright --pythonpath $(BIN)/python $(TYPECHECK_PATHS)
	@# --verifytypes finds the package through the python on PATH, not --pythonpath.
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pyright --verifytypes flask_typed_db --ignoreexternal

pytest:
	$(BIN)/pytest

# Ratios against a baseline measured in the same run; set TEST_POSTGRES_URL and
# TEST_MARIADB_URL to include those servers.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/isolation.py
	$(BIN)/python benchmarks/requests_bench.py
	$(BIN)/python benchmarks/async_bench.py
	$(BIN)/python benchmarks/keyset_bench.py
	$(BIN)/python benchmarks/replicas_bench.py

$(MIN_VENV)/.installed: pyproject.toml Makefile
	$(call new_venv,$(MIN_VENV))
	$(MIN_VENV)/bin/python -m pip install --quiet -e . --group test --group lint $(MIN_PINS)
	touch $@

# On the oldest versions, the package, its typing assertions and the example must
# type-check; the tests' own code is type-checked on the latest versions only (Flask
# 3.0.0 and SQLAlchemy 2.0.0 leave parts of their own APIs untyped).
test-min: $(MIN_VENV)/.installed
	$(MAKE) typecheck pytest VENV=$(MIN_VENV) TYPECHECK_PATHS="src tests/typing examples"

# The example served by gunicorn on PostgreSQL ($TEST_POSTGRES_URL): a mixed load, faults
# (PostgreSQL restarted with $TEST_POSTGRES_RESTART, an exhausted pool, a database down at
# start-up) and bad input. Not part of `make test`: it restarts the server.
test-load: $(VENV)/.installed
	$(BIN)/pytest -m load tests/load

# Python 3.12 changed the sqlite3 driver's transactions (its autocommit attribute):
# run the SQLite test-isolation tests there too. pyenv's 3.12, else python3.12 on PATH.
PY312 ?= $(or $(firstword $(wildcard $(or $(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)/versions/3.12*/bin/python3.12)),python3.12)
PY312_VENV := .venv-312

$(PY312_VENV)/.installed: pyproject.toml
	test -x $(PY312_VENV)/bin/python || $(PY312) -m venv $(PY312_VENV)
	$(PY312_VENV)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	$(PY312_VENV)/bin/python -m pip install --quiet -e . --group test
	touch $@

test-py312: $(PY312_VENV)/.installed
	$(PY312_VENV)/bin/pytest tests/test_isolation.py tests/test_isolation_sqlite_autocommit.py -k sqlite

clean:
	rm -rf $(VENV) $(MIN_VENV) $(PY312_VENV) .mypy_cache .pytest_cache .ruff_cache examples/instance \
		docs/_build
