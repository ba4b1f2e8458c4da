# Practice Portal — the commands the README gives. Every target is idempotent.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
VENDOR := portal/static/vendor
export FLASK_APP := portal

# The browser tests drive Debian's Chromium (tests/support/browser.py reads PORTAL_CHROMIUM too).
CHROMIUM := $(or $(PORTAL_CHROMIUM),/usr/bin/chromium)
# Test runs are parallel (pytest-xdist), one worker process per core, each on a database of
# its own; TEST_WORKERS=0 runs in this one process.
TEST_WORKERS ?= auto

.PHONY: install deps chromium need-chromium run test test-fast bench lint format e2e clean

# Everything the commands need: the virtualenv, the front-end assets and, for the browser
# tests, Chromium.
install: deps chromium

deps: $(VENV)/.installed $(VENDOR)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(VENDOR)/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/bootstrap/dist/css/bootstrap.min.css $(VENDOR)/bootstrap.min.css
	touch $@

# Debian's Chromium, installed when it is missing and this can install it (root, apt-get),
# as in CI. Elsewhere `make test` and `make e2e` stop at once and say how.
chromium:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "== installing Debian's chromium for the browser tests"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

need-chromium:
	$(if $(wildcard $(CHROMIUM)),,$(error Chromium is missing ($(CHROMIUM)) and the browser tests need it: install it with "apt-get install -y chromium" as root, or run "make test-fast" (no browser tests)))

# Migrate, seed the demo clinic once (the seed is skipped when users exist), then start what
# the Procfile lists (the portal, the worker, the DoseSpot sandbox, the lab listener and the
# lab sandbox) together with honcho;
# Ctrl-C stops them all.
run: deps
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo --if-empty
	@echo ""
	@echo "Practice Portal:  http://127.0.0.1:5000  (sign-in names and passwords: instance/demo-credentials.txt)"
	@echo "DoseSpot sandbox: http://127.0.0.1:5101  (the demo's e-prescribing vendor; Dr. Lee prescribes through it)"
	@echo "Webhooks from it: http://127.0.0.1:5000/integrations/dosespot/webhook"
	@echo "Lab sandbox:      MLLP 127.0.0.1:2576, control API http://127.0.0.1:5102  (the demo's lab; results to the listener on 2575)"
	@echo ""
	$(BIN)/honcho start

test: install need-chromium
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Everything but the browser tests: no Chromium needed.
test-fast: deps
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not browser" $(PYTEST_ARGS)

e2e: install need-chromium
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m browser $(PYTEST_ARGS)

bench: deps
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache
