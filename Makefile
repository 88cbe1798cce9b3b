# edge-rollout developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
CLUSTER_DIR ?= .cluster
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`: one per core (with 3 on 2 cores, tests that time a
# 320-node rollout or count an operator's writes under load failed now and then)
TEST_WORKERS ?= 2

##@ Setup

.PHONY: setup
setup: $(STAMP) debian-packages binaries ## Everything the demo and tests need (cached)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: debian-packages
debian-packages: ## Debian packages (nginx, zstd, delta tools) if missing
	@bash hack/install-debian-packages.sh

.PHONY: binaries
binaries: ## kube-apiserver, etcd, kubectl, helm built from the Go module proxy (cached by version)
	@bash hack/build-binaries.sh >/dev/null

##@ Build

.PHONY: images
images: $(STAMP) debian-packages ## OCI archives of the operator and agent images in build/images/ (root; cached)
	@$(BIN)/python -m edge_rollout.testing.images build/images

##@ Run

.PHONY: demo
demo: setup ## The demo: control plane, operator, a ModelDeployment rolling out
	$(BIN)/python hack/demo.py

.PHONY: demo-cluster
demo-cluster: setup ## The same story in Pods: 3 nodes with kubelets, the images, helm install
	$(BIN)/python hack/demo_cluster.py

.PHONY: cluster-up
cluster-up: setup ## etcd + kube-apiserver on loopback; NODES=3 adds kubelets (docs/development.md)
ifeq ($(filter-out 0,$(NODES)),)
	@$(BIN)/python -m edge_rollout.testing.cluster down $(CLUSTER_DIR) >/dev/null
	@$(BIN)/python -m edge_rollout.testing.controlplane up $(CLUSTER_DIR)
else
	@$(BIN)/python -m edge_rollout.testing.cluster up $(CLUSTER_DIR) --nodes $(NODES)
endif

.PHONY: cluster-down
cluster-down: ## Stop what cluster-up started (either kind): processes, mounts, cgroups, namespaces
	@if [ -x $(BIN)/python ]; then \
	  $(BIN)/python -m edge_rollout.testing.cluster down $(CLUSTER_DIR) && \
	  $(BIN)/python -m edge_rollout.testing.controlplane down $(CLUSTER_DIR); fi

##@ Test

.PHONY: test
test: setup lint ## Lint, then unit, integration and e2e tests (what CI runs)
	$(BIN)/pytest tests -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: setup ## Unit tests only (pure, fast)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: setup ## Integration tests against a real apiserver and nginx
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: setup ## The README demo, end to end
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

.PHONY: lint
lint: setup ## ruff, mypy (strict) and import-linter contracts
	$(BIN)/ruff check operator edge-agent tests bench hack
	$(BIN)/ruff format --check operator edge-agent tests bench hack
	$(BIN)/mypy operator/edge_rollout edge-agent/edge_rollout_agent tests bench hack
	$(BIN)/lint-imports

.PHONY: fmt
fmt: setup ## Format and fix what ruff can
	$(BIN)/ruff format operator edge-agent tests bench hack
	$(BIN)/ruff check --fix operator edge-agent tests bench hack

##@ Generate

.PHONY: generate
generate: setup ## Render crds/, the chart's CRDs and docs/reference/crds.md from the API models
	$(BIN)/python -m edge_rollout.cli.generate .

##@ Other

.PHONY: bench
bench: setup ## Benchmarks with figures, stops at the first failure (not part of test; docs/benchmarks.md)
	@for b in bench/*/run.py; do echo "== $$b" >&2; $(BIN)/python "$$b" || exit 1; done

.PHONY: clean
clean: cluster-down ## Remove the venv and local state (the binary cache stays)
	rm -rf $(VENV) $(CLUSTER_DIR) .demo .mypy_cache .ruff_cache .pytest_cache

.PHONY: help
help: ## This list
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
