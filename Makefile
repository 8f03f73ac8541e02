# Waymark: `make run` (the demo), `make test` (the whole suite), `make lint`, `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test coverage-by-db chaos lint format bench mutate clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m console.devserver

# Two pytest workers; coverage measures every process the tests start (pyproject.toml).
test: $(STAMP)
	rm -f .coverage .coverage.*
	$(VENV)/bin/coverage run -m pytest -n 2 $(PYTEST_ARGS)
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report --format=total | sed 's/^/branch coverage (engine + console): /;s/$$/%/'
	$(VENV)/bin/coverage report --include='engine/*' --format=total | sed 's/^/  engine: /;s/$$/%/'
	$(VENV)/bin/coverage report --include='console/*' --format=total | sed 's/^/  console: /;s/$$/%/'

# Branch coverage on each database alone: the suite without the other database's tests (the
# tests parametrized by database carry its name in their ID; the rest run both times).
coverage-by-db: $(STAMP)
	@for db in sqlite postgres; do \
	  other=$$([ $$db = sqlite ] && echo postgres || echo sqlite); \
	  rm -f .coverage .coverage.*; \
	  $(VENV)/bin/coverage run -m pytest -n 2 -q -k "not $$other" $(PYTEST_ARGS) || exit 1; \
	  $(VENV)/bin/coverage combine -q; \
	  echo "$$db: engine $$($(VENV)/bin/coverage report --include='engine/*' --format=total)%," \
	    "console $$($(VENV)/bin/coverage report --include='console/*' --format=total)%"; \
	done

# The full-size chaos run (CI runs the same suite with smaller counts inside `make test`).
chaos: $(STAMP)
	WAYMARK_CHAOS_WORKFLOWS=2000 WAYMARK_CHAOS_KILLS=50 $(PY) -m pytest -m chaos -s $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) -m bench --db sqlite
	$(PY) -m bench --db postgres

# Mutation testing of the core modules, one part at a time (parts: pyproject.toml
# [tool.mutmut.parts.*]); `make mutate MODULES=checkpoints,store` runs some. Scores per module
# are written to docs/mutation/<part>.txt.
mutate: $(STAMP)
	$(PY) -m mutation --parts "$(MODULES)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .mutation
