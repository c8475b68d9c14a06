# carnet: the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: run test lint typecheck contracts pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	CARNET_DEV_ISSUER=$${CARNET_DEV_ISSUER:-1} CARNET_ALLOW_TEST_INS=$${CARNET_ALLOW_TEST_INS:-1} \
	  $(BIN)/carnet serve --demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# the JavaScript FHIR client and validator of the client proof (tests/clients/js), installed
# exactly as locked; again whenever package.json or package-lock.json changes
JS_CLIENTS := tests/clients/js
JS_STAMP := $(JS_CLIENTS)/node_modules/.installed
$(JS_STAMP): $(JS_CLIENTS)/package.json $(JS_CLIENTS)/package-lock.json
	cd $(JS_CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

pytest: $(STAMP) $(JS_STAMP)
	@if [ -z "$$CARNET_TEST_DATABASE_URL" ] && $(BIN)/python -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))" 2>/dev/null; then \
	  export CARNET_TEST_DATABASE_URL=$(PG_TEST_URL); \
	  echo "backends: sqlite + postgresql ($$CARNET_TEST_DATABASE_URL)"; \
	else \
	  if [ -n "$$CARNET_TEST_DATABASE_URL" ]; then echo "backends: sqlite + postgresql ($$CARNET_TEST_DATABASE_URL)"; \
	  else echo "backends: sqlite only (no PostgreSQL answered on 127.0.0.1:5432)"; fi; \
	fi; \
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck contracts pytest

# the targets of the current issue on PostgreSQL, each beside its minimal asyncpg script, two
# rounds (the best is kept: other work only slows a round down); the search on a 10,000-patient
# / 200,000-document population (a smaller one loaded through HTTP while `carnet demo
# --identities` is absent). BENCH_ARGS adds options (bench/README.md).
BENCH_POPULATION ?= 10000x200000
BENCH_ROUNDS ?= 2
bench: $(STAMP)
	$(BIN)/python -m bench.run --population $(BENCH_POPULATION) --rounds $(BENCH_ROUNDS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache $(JS_CLIENTS)/node_modules
