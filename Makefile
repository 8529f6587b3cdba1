# The front door: `make demo` runs the main job on localhost, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export STRATA_COLLECTIONS ?= $(CURDIR)/.collections
export ANSIBLE_COLLECTIONS_PATH := $(STRATA_COLLECTIONS)

.PHONY: deps install demo demo-clean bench test unit reliability fuzz molecule sanity lint changelog integration clean

deps:
	@scripts/install-deps.sh

install: deps
	@scripts/install-collection.sh >/dev/null

demo: install
	$(BIN)/ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo.yml

demo-clean: install
	$(BIN)/ansible-playbook -i playbooks/inventory/localhost.yml playbooks/demo_clean.yml

unit: deps
	$(BIN)/pytest tests/unit

reliability: deps
	$(BIN)/pytest tests/reliability

fuzz: deps
	STRATA_FUZZ_EXAMPLES=$${STRATA_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -s tests/reliability/test_fuzz_applier.py

sanity: deps
	scripts/run-sanity.sh

lint: install
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

integration: deps
	scripts/run-integration.sh

# Molecule scenarios on QEMU VMs (Debian 12 image built once with mmdebstrap, cached in
# /var/tmp/strata-vm). MOLECULE_SCENARIOS picks which.
MOLECULE_SCENARIOS ?= default unsupported fleet
molecule: install
	@set -e; for s in $(MOLECULE_SCENARIOS); do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

test: unit reliability lint sanity integration molecule

clean:
	rm -rf $(VENV) .pytest_cache tests/output
