# Two commands for a fresh machine: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install db demo lint test bench ui report stop shell clean pg-repack

# pip's own notices (the machine's index configuration, setuptools' editable-install banner) go to
# $(VENV)/install.log, printed only when the install fails: nothing there asks a person to act.
$(STAMP): pyproject.toml constraints.txt
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/pip install -q --upgrade pip && \
	   $(BIN)/pip install -q -c constraints.txt -e '.[test]'; } > $(VENV)/install.log 2>&1 \
	   || { cat $(VENV)/install.log >&2; echo "make: the install failed (log above)" >&2; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

# Starts the embedded PostgreSQL (or uses LIFECYCLE_DATABASE_URL) and migrates it.
db: install
	$(BIN)/lifecycle db upgrade

demo: db
	$(BIN)/lifecycle demo

# Formatting and lint first, then the whole suite; pytest's "no tests collected" (exit 5) counts
# as a failure.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Then the purge, request and erasure tests, and the nights that build sales from the shop, once
# more on a shop whose shop.orders and shop.after_sales_cases are range-partitioned
# (LIFECYCLE_TEST_PARTITIONED=1), as issue 13 asks: a partitioned shop names partitions where a
# plain one names tables, a deleted order is in no partition any more, and triggers are cloned
# onto partitions (each found only by such a run).
PARTITIONED_TESTS := tests/db/test_purge_*.py tests/db/test_requests*.py tests/db/test_erasure*.py \
	tests/db/test_sales_purge.py tests/db/test_report.py tests/dagster/test_retention_assets.py \
	tests/dagster/test_requests_sensor.py tests/dagster/test_rewrite_pool.py \
	tests/dagster/test_guard_checks.py tests/dagster/test_sales_assets.py

test: lint db
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	[ $$status -eq 0 ] || exit $$status; \
	echo "make test: the purge, request and erasure tests again, on the partitioned shop"; \
	LIFECYCLE_TEST_PARTITIONED=1 $(BIN)/python -m pytest -q $(PARTITIONED_TESTS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$status

bench: db pg-repack
	$(BIN)/python bench/run_all.py

# Debian's pg_repack for the machine's server when missing (as root, quietly; skipped where it
# cannot be installed): the erasure rewrites online where the shop database has the extension.
pg-repack:
	@.ci/pg_repack.sh

# Dagster UI on the demo shop: http://127.0.0.1:3000. `lifecycle instance` writes DAGSTER_HOME/dagster.yaml
# (run history in PostgreSQL, the same one the CLI writes to) and prints DAGSTER_HOME. `dagster dev`
# runs the daemon too (schedule, sensors, run queue), so a `lifecycle nightly` meanwhile goes
# through the queue (docs/deployment.md). umask 077: the webserver, daemon and run workers write
# compute logs readable by their owner only.
ui: db
	umask 077 && home=$$($(BIN)/lifecycle instance) && DAGSTER_HOME=$$home $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The compliance report of the last 30 nights, linked to the UI above.
report: db
	$(BIN)/lifecycle report --since 30d --out .lifecycle/report.html --ui-url http://127.0.0.1:3000

# The embedded PostgreSQL keeps running after each command (the CLI, `make ui` and the tests share
# it); this stops it. `make shell` opens psql on the shop database.
stop: install
	$(BIN)/lifecycle db stop

shell: db
	$(BIN)/lifecycle db shell

clean:
	if [ -x $(BIN)/lifecycle ]; then $(BIN)/lifecycle db stop; fi
	rm -rf $(VENV) .lifecycle
