# Bazaar: `make up` runs the whole platform, `make test` runs the whole suite.
# Needs only Python 3.11+ and make; everything else is installed into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GENERATED := src/bazaar/contracts/generated
PROTO_OUT := $(GENERATED)/inventory_pb2.py

.PHONY: up test lint fmt proto install clean bench help
.DEFAULT_GOAL := help

help:
	@echo "make up     install, migrate, seed and start every service (http://localhost:$${BAZAAR_PORT:-8000})"
	@echo "make test   run the whole test suite"
	@echo "make lint   ruff, mypy and the import contracts"
	@echo "make bench  benchmarks (ratios, side by side)"
	@echo "make clean  remove .venv, generated code and local data (.bazaar)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) $(PROTO_OUT)

$(PROTO_OUT): contracts/inventory.proto $(STAMP)
	@mkdir -p $(GENERATED)
	@touch $(GENERATED)/__init__.py
	$(BIN)/python -m grpc_tools.protoc -Ibazaar/contracts/generated=contracts \
		--python_out=src --grpc_python_out=src --pyi_out=src contracts/inventory.proto

proto: $(PROTO_OUT)

up: install
	$(BIN)/bazaar up

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(GENERATED) .bazaar .pytest_cache .mypy_cache .ruff_cache
