# The project's front door. Every target sets up what it needs itself (venv, packages, Kafka jars).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test test-cluster check lint types audit kafka-jars clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools  # the venv's bundled setuptools has known advisories
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

kafka-jars: $(STAMP)
	$(BIN)/metering kafka fetch

## Run the main job on embedded defaults (local Kafka broker, chDB ledger store).
demo: kafka-jars
	$(BIN)/metering demo

## Run every test: unit, property, integration and end-to-end on real Kafka and ClickHouse.
test: kafka-jars
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

## The full forms of the cluster tests (`make test` runs their fast forms): a 3-node Kafka
## cluster losing a broker to SIGTERM and one to SIGKILL, workers stopped, killed and replaced.
test-cluster: kafka-jars
	$(BIN)/python -m pytest -m cluster tests/cluster

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy billing schemas streams metering deploy gateway simulator reliability bench

check: lint types

## Known vulnerabilities in the installed packages (pip-audit, strict; see .ci/audit.py).
audit: $(STAMP)
	$(BIN)/python .ci/audit.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
