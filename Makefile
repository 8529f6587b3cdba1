# The front door: `make demo` runs the main job on localhost, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export STRATA_COLLECTIONS ?= $(CURDIR)/.collections
export ANSIBLE_COLLECTIONS_PATH := $(STRATA_COLLECTIONS)

.PHONY: deps test-deps install demo demo-clean bench bench-fleet test unit reliability fuzz molecule sanity lint changelog integration compat clean

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
	STRATA_HYPOTHESIS_PROFILE=$${STRATA_HYPOTHESIS_PROFILE:-random} STRATA_FUZZ_EXAMPLES=$${STRATA_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -s tests/reliability/test_fuzz_applier.py

# On the installed collection (what users get), then on every tracked file of the
# checkout (bench/, molecule/, scripts/ too), as contributors run it.
# sanity and integration install the collection where nothing else reads it (each removes
# and reinstalls it), so that they can run beside lint and each other under make test.
sanity: test-deps
	STRATA_COLLECTIONS=$(CURDIR)/.collections-sanity scripts/run-sanity.sh
	scripts/run-sanity.sh --source

lint: test-deps install
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

integration: test-deps
	STRATA_COLLECTIONS=$(CURDIR)/.collections-integration scripts/run-integration.sh

# Molecule scenarios on QEMU VMs (Debian 12 image built once with mmdebstrap, cached in
# /var/tmp/strata-vm). MOLECULE_SCENARIOS picks which.
MOLECULE_SCENARIOS ?= default unsupported fleet
molecule: test-deps install
	@set -e; for s in $(MOLECULE_SCENARIOS); do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done

bench: test-deps install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The fleet playbooks over SSH to N local sshd ports, against stat playbooks (docs/performance.md).
bench-fleet: test-deps install
	$(BIN)/python bench/fleet.py $(BENCH_ARGS)

# The other supported ansible-core releases, each in its own venv (.venv-<version>) on
# Python 3.11: units, sanity and the integration targets, the versions side by side
# (logs in tests/output/compat-<version>.log). 2.19 is what the targets above use.
COMPAT_VERSIONS ?= 2.17 2.18
compat: test-deps
	@mkdir -p tests/output; pids=""; \
	for v in $(COMPAT_VERSIONS); do \
	  echo "== ansible-core $$v: units, sanity, integration (tests/output/compat-$$v.log)"; \
	  scripts/run-compat.sh $$v > tests/output/compat-$$v.log 2>&1 & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	for v in $(COMPAT_VERSIONS); do echo "== ansible-core $$v"; tail -n 4 tests/output/compat-$$v.log; done; exit $$rc

# compat and molecule share nothing (venvs, collection installs and VMs of their own) and
# spend much of their time waiting on VM boots and SSH round trips: they run side by side.
# The suites before them share nothing either (each home, registry and loop device under a
# temp dir of its own) and mostly keep one core busy: they run two at a time, each one's
# output printed whole when it ends.
# The venv and the install are made first, alone: two suites must not both create them.
test:
	@$(MAKE) --no-print-directory test-deps install
	@$(MAKE) --no-print-directory -j2 --output-sync=target unit reliability lint sanity integration
	@$(MAKE) --no-print-directory -j2 compat molecule

clean:
	rm -rf $(VENV) .venv-* .collections .collections-* .demo .pytest_cache tests/output
