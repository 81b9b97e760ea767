# zooflow: `make demo` runs every task's demo pipeline; `make test` runs the test suite.
# Both install what they need first, once.
#
# The heavy dependencies (torch's CUDA build alone is ~5 GB) live in one environment under the
# user's cache, keyed by the hash of the pinned requirements, so every fresh clone on this
# machine (CI clones afresh each run) reuses it. Each clone gets a thin .venv that sees those
# packages through a .pth file and holds only the editable zooflow install.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
ZOOFLOW_CACHE ?= $(HOME)/.cache/zooflow
REQ_HASH := $(shell cat requirements.txt requirements-nodeps.txt | sha256sum | cut -c1-12)
DEPS := $(ZOOFLOW_CACHE)/deps-$(REQ_HASH)
VENV := .venv
PY := $(VENV)/bin/python
SITE := lib/python3.11/site-packages
STAMP := $(VENV)/.deps-$(REQ_HASH)
PYTEST_ARGS ?=
SEED ?=

export ZOOFLOW_OFFLINE ?= 1

.PHONY: install demo test test-fast ui clean-venv

install: $(STAMP)

# No file prerequisites: the pins' hash is in the folder's name, so the environment is complete
# or missing, whatever the file times (a fresh clone's files are all newer than an environment
# installed yesterday). Installs are serialised by a lock per environment: a second clone
# waits, then finds it complete and installs nothing.
$(DEPS)/.complete:
	@mkdir -p "$(ZOOFLOW_CACHE)"
	@flock "$(ZOOFLOW_CACHE)/deps-$(REQ_HASH).lock" $(MAKE) --no-print-directory deps-locked

.PHONY: deps-locked
deps-locked:
	@if [ -f "$(DEPS)/.complete" ]; then exit 0; fi; \
	if [ -d "$(DEPS)" ]; then echo "removing half-built $(DEPS)"; rm -rf "$(DEPS)"; fi; \
	echo "Installing the pinned dependencies into $(DEPS) (once per machine; ~5-8 min)"; \
	set -e; \
	$(PYTHON) -m venv "$(DEPS)"; \
	"$(DEPS)/bin/python" -m pip install --quiet --upgrade pip; \
	"$(DEPS)/bin/python" -m pip install --quiet -r requirements.txt; \
	"$(DEPS)/bin/python" -m pip install --quiet --no-deps -r requirements-nodeps.txt; \
	touch "$(DEPS)/.complete"

$(STAMP): $(DEPS)/.complete pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv --without-pip $(VENV)
	@# pip and setuptools come from the shared environment through the .pth file below.
	echo "$(abspath $(DEPS))/$(SITE)" > $(VENV)/$(SITE)/_zooflow_deps.pth
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# The tools' commands (mlflow, dvc, prefect, uvicorn, ...) on the .venv's PATH as well.
	@# (pip stays out: it would install into the shared environment.)
	for tool in "$(DEPS)"/bin/*; do name=$${tool##*/}; case $$name in pip*|python*|activate*|Activate*) continue;; esac; \
	  [ -e "$(VENV)/bin/$$name" ] || ln -s "$$tool" "$(VENV)/bin/"; done
	touch $(STAMP)

# SEED=<n> replaces every config's seed (the README's demo figures are min-max over seeds).
demo: install
	$(PY) -m zooflow data ensure-demo
	$(PY) -m zooflow demo $(if $(SEED),--seed $(SEED))

# Two workers, one per core, whole test files each (module fixtures are built once); the 25
# slowest tests are listed at the end so a creeping suite is seen before it hits its limit.
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

ui: install
	$(PY) -m zooflow ui

clean-venv:
	rm -rf $(VENV)
