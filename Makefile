# alertline — the two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# Home Assistant needs Python 3.13: a pyenv install is preferred (the `python3.13` shim may not be
# active), then any python3.13 on PATH.
PY313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13))
PY311 ?= $(firstword $(wildcard /usr/bin/python3.11 $(HOME)/.pyenv/versions/3.11*/bin/python3.11 /usr/local/bin/python3.11))
HA_TEST_PACKAGE := pytest-homeassistant-custom-component==0.13.316
# the real-hass end-to-end test runs in its own venv (.venv-hass/, cached per Home Assistant
# version from hacs.json); it is not part of the library runs
E2E_TESTS := tests/e2e_homeassistant
# -p no:homeassistant: the harness plugin would block sockets and patch what the test must see
E2E_RUN = ALERTLINE_HASS_PYTHON=$(PY313) .venv/bin/pytest $(PYTEST_FLAGS) -p no:homeassistant $(E2E_TESTS)
PYTEST_FLAGS ?= -q -p no:cacheprovider -p no:sugar
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run test test-lib test-lib311 test-ha test-e2e lint typecheck bench system-deps clean

help:
	@echo "make run    start the daemon (embedded broker + simulator when nothing is configured)"
	@echo "make test   install what the tests need (Mosquitto included) and run every test"
	@echo "make bench  run the throughput/latency benchmark"

# --- run --------------------------------------------------------------------------------------
.venv-run/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-run
	.venv-run/bin/pip install -q --upgrade pip
	.venv-run/bin/pip install -q -e '.[broker]'
	touch $@

run: .venv-run/.installed
	.venv-run/bin/alertline run $(if $(CONFIG),--config $(CONFIG),)

# --- test -------------------------------------------------------------------------------------
# Debian packages the tests use: Mosquitto (MQTT tests start their own brokers), PostgreSQL and
# Chromium with its driver (store and page tests). apt-get runs only when one of them is missing.
SYSTEM_PACKAGES := mosquitto mosquitto-clients postgresql chromium chromium-driver

system-deps:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES); \
	fi
	@# the packaged service is not needed: tests start their own brokers on free ports
	@-$(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true

.venv/.installed: pyproject.toml
	@test -n "$(PY313)" || { echo "Python 3.13 not found (needed for the Home Assistant tests); set PY313=/path/to/python3.13"; exit 1; }
	$(PY313) -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q --ignore-requires-python '$(HA_TEST_PACKAGE)' -e '.[test,broker]'
	touch $@

.venv311/.installed: pyproject.toml
	@test -n "$(PY311)" || { echo "Python 3.11 not found; set PY311=/path/to/python3.11"; exit 1; }
	$(PY311) -m venv .venv311
	.venv311/bin/pip install -q --upgrade pip
	.venv311/bin/pip install -q -e '.[test,broker]'
	touch $@

test: system-deps .venv/.installed .venv311/.installed
	@echo "== release files agree (pyproject.toml, manifest.json, hacs.json)"
	.venv311/bin/python tools/check_release.py
	@echo "== library and daemon tests, Python 3.13"
	.venv/bin/pytest $(PYTEST_FLAGS) -p no:homeassistant --ignore=tests/homeassistant --ignore=$(E2E_TESTS) tests
	@echo "== Home Assistant integration tests, Python 3.13 (with line coverage: the quality scale)"
	COVERAGE_FILE=.coverage-ha .venv/bin/pytest $(PYTEST_FLAGS) --cov=custom_components/alertline \
	  --cov-report= tests/homeassistant
	.venv/bin/coverage report --data-file=.coverage-ha --fail-under=95 \
	  --include='*/custom_components/alertline/*'
	.venv/bin/coverage report --data-file=.coverage-ha --fail-under=100 \
	  --include='*/custom_components/alertline/config_flow.py'
	@echo "== library and daemon tests, Python 3.11 (the cluster's chaos on real processes ran above)"
	.venv311/bin/pytest $(PYTEST_FLAGS) --ignore=tests/homeassistant --ignore=$(E2E_TESTS) \
	  --ignore=tests/cluster/test_chaos.py tests
	@echo "== Home Assistant end to end: a real hass process installs and runs alertline"
	$(E2E_RUN)
	@echo "== lint and types"
	$(MAKE) --no-print-directory lint typecheck

test-lib: system-deps .venv311/.installed
	.venv311/bin/pytest $(PYTEST_FLAGS) --ignore=tests/homeassistant --ignore=$(E2E_TESTS) tests

test-ha: .venv/.installed
	.venv/bin/pytest $(PYTEST_FLAGS) tests/homeassistant

test-e2e: .venv/.installed
	$(E2E_RUN)

lint: .venv311/.installed
	.venv311/bin/ruff check .

typecheck: .venv311/.installed .venv/.installed
	.venv311/bin/mypy
	.venv311/bin/mypy --strict --exclude tests/homeassistant tests bench tools
	.venv/bin/mypy --strict --python-version 3.13 --explicit-package-bases --namespace-packages \
	  custom_components/alertline tests/homeassistant

# the stores to measure, in order (bench/README.md): SQLite, PostgreSQL with one daemon, with two
BENCH_STORES ?= sqlite,postgres,postgres2
bench: system-deps .venv311/.installed
	BENCH_STORES=$(BENCH_STORES) .venv311/bin/python -m bench

clean:
	rm -rf .venv .venv311 .venv-run .venv-hass .pytest_cache .mypy_cache .ruff_cache .coverage-ha
