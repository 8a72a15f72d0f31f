# Bazaar: `make up` runs the whole platform, `make test` runs the whole suite.
# Needs only Python 3.11+ and make; everything else is installed into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GENERATED := src/bazaar/contracts/generated
PROTO_OUT := $(GENERATED)/inventory_pb2.py
CONTRACT_TOOLS := contracts/tools/node_modules/.installed

.PHONY: up up-cluster test test-quick contracts contract-tools contracts-release lint fmt proto install clean bench help
.DEFAULT_GOAL := help

help:
	@echo "make up     install, migrate, seed and start every service (http://localhost:$${BAZAAR_PORT:-8000})"
	@echo "make up-cluster  the same on PostgreSQL, a 3-node NATS cluster, 2 replicas of each behind Envoy"
	@echo "make test   run the whole test suite"
	@echo "make test-quick  everything but the tests that start whole platforms (-m 'not system and not cluster')"
	@echo "make contracts  Pact, buf and schema compatibility checks (contracts/README.md)"
	@echo "make lint   ruff, mypy and the import contracts"
	@echo "make bench  benchmarks (ratios, side by side)"
	@echo "make clean  remove .venv, generated code and local data (.bazaar)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,cluster]"
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

# Home: $BAZAAR_HOME or .bazaar-cluster; BAZAAR_REPLICAS, BAZAAR_POSTGRES_URL (README).
up-cluster: install
	$(BIN)/bazaar up --cluster

test: install $(CONTRACT_TOOLS)
	$(BIN)/python -m pytest

test-quick: install
	$(BIN)/python -m pytest -q -m "not system and not cluster"

# buf comes from npm (@bufbuild/buf). Without npm the buf checks skip (fail in CI).
$(CONTRACT_TOOLS): contracts/tools/package.json contracts/tools/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix contracts/tools --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the buf checks will be skipped (apt-get install npm)"; fi

contract-tools: $(CONTRACT_TOOLS)

contracts: install $(CONTRACT_TOOLS)
	$(BIN)/python -m pytest tests/contracts

# After a release: what was released becomes the baseline every change is checked against.
contracts-release: $(CONTRACT_TOOLS)
	@mkdir -p contracts/released/events contracts/released/quotes
	cp contracts/events/*.json contracts/released/events/
	cp contracts/quotes/*.json contracts/released/quotes/
	cd contracts && tools/node_modules/.bin/buf build . --exclude-source-info -o released/inventory.image.json
	$(BIN)/python -c "import json,pathlib; p=pathlib.Path('contracts/released/inventory.image.json'); p.write_text(json.dumps(json.loads(p.read_text()), indent=1) + '\\n')"

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
	rm -rf $(VENV) $(GENERATED) .bazaar .bazaar-cluster .pytest_cache .mypy_cache .ruff_cache

# --- deploy: the image (docker or podman, whichever is here) and the manifests' checks ---
CONTAINER_TOOL ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
IMAGE ?= bazaar:0.1.0-$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
# BASE_IMAGE=... picks another base; IMAGE_BUILD_FLAGS=... adds the tool's own flags.

.PHONY: image deploy-check
image:
	@test -n "$(CONTAINER_TOOL)" || { echo "make image needs docker or podman"; exit 1; }
	$(CONTAINER_TOOL) build -f Containerfile -t $(IMAGE) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
		--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		$(IMAGE_BUILD_FLAGS) .
	@echo "built $(IMAGE)"

deploy-check: install
	deploy/lock.sh --check
	$(BIN)/python -m pytest tests/deploy -q
