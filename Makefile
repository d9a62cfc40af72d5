# The project's front door. Every target sets up what it needs itself (venv, packages, Kafka jars).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test check lint types kafka-jars clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
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

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy billing schemas streams metering deploy gateway simulator

check: lint types

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
