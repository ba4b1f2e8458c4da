# Practice Portal — the commands the README gives. Every target is idempotent.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
VENDOR := portal/static/vendor
export FLASK_APP := portal

.PHONY: install run test bench lint format e2e clean

install: $(VENV)/.installed $(VENDOR)/.installed

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

# Migrate, seed the demo clinic once (the seed is skipped when users exist), then serve, with
# the worker (it seals the audit trail) beside gunicorn and stopped with it.
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask seed-demo --if-empty
	@echo ""
	@echo "Practice Portal: http://127.0.0.1:5000  (sign-in names and passwords: instance/demo-credentials.txt)"
	@echo ""
	$(BIN)/flask worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gunicorn --bind 127.0.0.1:5000 --workers 2 --threads 4 wsgi:app

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

e2e: install
	$(BIN)/pytest -m browser $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache
