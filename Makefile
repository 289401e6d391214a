# Two commands: `make run` serves the portal with demo models, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-requirements
NODE_INSTALLED := node_modules/.installed
DATA_DIR ?= var

.PHONY: install run test bench worker fleet browser nginx clean

$(INSTALLED): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py ensure_staff
	mkdir -p $(DATA_DIR)/prometheus && rm -f $(DATA_DIR)/prometheus/*.db
	PROMETHEUS_MULTIPROC_DIR=$(DATA_DIR)/prometheus $(BIN)/gunicorn -c portal/gunicorn.conf.py portal.wsgi

# Debian's chromium drives the browser tests (Playwright's own browser download cannot work here). Without
# it (and without root to install it) the browser tests skip and say so; under CI=true a skip fails the run.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser tests will skip (apt-get install chromium)"

# Debian's nginx fronts gunicorn in production (deploy/nginx-portal.conf.template); the slow-client test runs
# it. Installed like chromium: without it (and root) that test skips with the hint, and CI=true fails it.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update -qq && apt-get install -y -qq nginx >/dev/null) \
		|| echo "nginx could not be installed: the slow-client test will skip (apt-get install nginx)"

test: $(INSTALLED) $(NODE_INSTALLED) browser nginx
	$(BIN)/pytest

# wrk (Debian) drives P5's load; without it the bench falls back to a Python load generator.
bench: $(INSTALLED) $(NODE_INSTALLED)
	command -v wrk >/dev/null || (apt-get install -y -qq wrk >/dev/null 2>&1 || echo "no wrk: P5 uses Python threads")
	$(BIN)/python -m bench $(ARGS)

worker: $(INSTALLED)
	$(BIN)/celery -A portal worker --loglevel INFO --concurrency 2

# Two nodes, a worker, moto (shared tier) and Azurite (origin) on loopback, on this machine's PostgreSQL + Redis.
fleet: $(INSTALLED) $(NODE_INSTALLED)
	$(BIN)/python deploy/fleet.py

clean:
	rm -rf $(VENV) node_modules $(DATA_DIR)
