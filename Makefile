# The front door: `make demo` runs the main job on localhost, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export STRATA_COLLECTIONS ?= $(CURDIR)/.collections
export ANSIBLE_COLLECTIONS_PATH := $(STRATA_COLLECTIONS)

.PHONY: deps test-deps install demo demo-clean bench test unit reliability fuzz molecule sanity lint changelog integration clean

# deps: the venv with ansible-core only (all make demo needs); test-deps: the Debian
# packages and the pinned tooling make test needs.
deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

install: deps
	@scripts/install-collection.sh >/dev/null

# The demo's home, image and record live in DEMO_ROOT (default .demo, git-ignored).
DEMO_ROOT ?= $(CURDIR)/.demo
demo: install
	$(BIN)/ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml -e demo_root=$(DEMO_ROOT)

demo-clean: install
	$(BIN)/ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo_clean.yml -e demo_root=$(DEMO_ROOT)

unit: test-deps
	$(BIN)/pytest tests/unit

reliability: test-deps
	$(BIN)/pytest tests/reliability

fuzz: test-deps
	STRATA_FUZZ_EXAMPLES=$${STRATA_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -s tests/reliability/test_fuzz_applier.py

sanity: test-deps
	scripts/run-sanity.sh

lint: test-deps install
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

integration: test-deps
	scripts/run-integration.sh

# Molecule scenarios on QEMU VMs (Debian 12 image built once with mmdebstrap, cached in
# /var/tmp/strata-vm). MOLECULE_SCENARIOS picks which.
MOLECULE_SCENARIOS ?= default unsupported fleet
molecule: test-deps install
	@set -e; for s in $(MOLECULE_SCENARIOS); do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done

bench: test-deps install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

test: unit reliability lint sanity integration molecule

clean:
	rm -rf $(VENV) .pytest_cache tests/output
