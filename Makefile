# Holdfast: `make run` serves the embedded default on http://127.0.0.1:8000, `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
GIFTLESS := .venv-giftless
GIFTLESS_STAMP := $(GIFTLESS)/.installed-stamp
GRAPHQL_HTTP := tests/peers/graphql-http
GRAPHQL_HTTP_STAMP := $(GRAPHQL_HTTP)/node_modules/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test tools lint format schema bench fuzz clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Holdfast needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		{ echo "could not create $(VENV): on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The tests' real Git LFS object server, in a venv of its own (its pins conflict with ours).
$(GIFTLESS_STAMP): tests/peers/giftless.txt
	@test -x $(GIFTLESS)/bin/python || $(PYTHON) -m venv $(GIFTLESS)
	$(GIFTLESS)/bin/python -m pip install --quiet --no-deps -r tests/peers/giftless.txt
	@touch $(GIFTLESS_STAMP)

# The tests' GraphQL-over-HTTP audit suite (npm package graphql-http), pinned by its lockfile.
$(GRAPHQL_HTTP_STAMP): $(GRAPHQL_HTTP)/package.json $(GRAPHQL_HTTP)/package-lock.json
	@command -v npm >/dev/null || { echo "the tests need Node.js 18+ and npm"; exit 1; }
	cd $(GRAPHQL_HTTP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(GRAPHQL_HTTP_STAMP)

run: install
	$(BIN)/holdfast serve --host $(HOST) --port $(PORT)

# git-lfs, Chromium, Node.js and LibreOffice: installed when missing (as root on Debian), else named.
tools:
	@tests/peers/system-tools

# Independent tests run in parallel, one worker per core (PYTEST_ARGS="-n 0" for one).
test: install tools $(GIFTLESS_STAMP) $(GRAPHQL_HTTP_STAMP)
	$(BIN)/pytest -n auto $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench $(BENCH)

# The schema fuzzed by schemathesis (in a venv of its own) against a real server on PostgreSQL.
FUZZ := .venv-fuzz
FUZZ_STAMP := $(FUZZ)/.installed-stamp
$(FUZZ_STAMP): tests/peers/fuzz.txt
	@test -x $(FUZZ)/bin/python || $(PYTHON) -m venv $(FUZZ)
	$(FUZZ)/bin/python -m pip install --quiet -r tests/peers/fuzz.txt
	@touch $(FUZZ_STAMP)

fuzz: install $(FUZZ_STAMP)
	$(BIN)/python -m tests.peers.fuzz $(FUZZ_EXAMPLES)

schema: install
	$(BIN)/holdfast export-schema --output schema.graphql

clean:
	rm -rf $(VENV) $(GIFTLESS) $(FUZZ) $(GRAPHQL_HTTP)/node_modules .pytest_cache .ruff_cache *.egg-info
