# Chairside: `make run` starts the whole system, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=
# The benchmarks need PostgreSQL; point DATABASE_URL elsewhere to use another server.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/chairside_bench

.PHONY: install run migrate seed static test lint format typecheck migrations-check \
        deploy-check backup-drill bench bench-availability bench-booking-race bench-series bench-reminders \
        bench-calendar bench-calendar-browser bench-peers bench-growth bench-webhooks load load-rate \
        load-faults clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/pip install --quiet -e . --group dev
	touch $@

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# The static files under VAR_DIR as the site serves them: hashed names, each with its .gz and .br.
static: install
	$(PY) manage.py collectstatic --noinput --verbosity 0

# Web on http://127.0.0.1:8000, a Celery worker and beat, all in the foreground (Ctrl-C stops).
run: seed static
	$(BIN)/honcho start -f Procfile

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy .

migrations-check: install
	$(PY) manage.py makemigrations --check --dry-run

# The deployment checklist with the settings a TLS deployment uses.
deploy-check: install
	HTTPS=true SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))') \
	  ALLOWED_HOSTS=clinic.example.org $(PY) manage.py check --deploy --fail-level WARNING

# Dump the database of DATABASE_URL, restore it into a scratch database, compare, drop it.
backup-drill: install
	$(PY) -m config.backup drill

bench: bench-availability bench-booking-race bench-series bench-reminders bench-calendar bench-webhooks \
       bench-calendar-browser

bench-availability: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.availability

bench-booking-race: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.booking_race

bench-series: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.series

bench-reminders: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.reminders

bench-webhooks: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.webhooks

bench-calendar: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.calendar

# The calendar page in Chromium (/usr/bin/chromium) on the same 50-staff clinic.
bench-calendar-browser: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.calendar_browser

# Side by side with django-appointment, installed into var/bench/peer-venv on the first run (which
# needs the network, so it is not part of `bench`); its database is the bench one's name + _peer.
bench-peers: install
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DATABASE_URL)} $(PY) -m bench.peers

# The same window at 1M and 10M visits of a chain's history (GROWTH_ARGS: --sizes 1M,10M,50M where
# the disk allows, ~5.3 GB a million visits). Not part of `bench`: it drops and rebuilds its own
# database, GROWTH_DATABASE_URL (never DATABASE_URL, which may name one worth keeping).
GROWTH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/chairside_growth
GROWTH_ARGS ?= --sizes 1M,10M
bench-growth: install
	DATABASE_URL=$(GROWTH_DATABASE_URL) $(PY) -m bench.growth --fresh $(GROWTH_ARGS)

# The system over HTTP (gunicorn on 127.0.0.1:8100, worker, beat, PostgreSQL, Redis) under a
# mixed load, then the integrity report; its own database chairside_load (LOAD_ARGS: --users …).
LOAD_ARGS ?=
load: install
	$(PY) -m bench.load $(LOAD_ARGS)

# The same system at a fixed arrival rate per route for three minutes (bookings 20/s, availability
# 200/s, calendar 20/s, patient pages 50/s), latency from each request's intended start.
LOAD_RATE_ARGS ?= --duration 180
load-rate: install
	$(PY) -m bench.load --rate $(LOAD_RATE_ARGS)

# The same with Redis stopped, PostgreSQL restarted and the worker killed during the load, one
# run each. They stop services others share: not while CI or a test suite is running.
load-faults: install
	$(PY) -m bench.load --fault redis $(LOAD_ARGS)
	$(PY) -m bench.load --fault postgres $(LOAD_ARGS)
	$(PY) -m bench.load --fault worker $(LOAD_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
