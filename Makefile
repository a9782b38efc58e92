# fraudwatch — `make demo` sets up and runs the main job on the embedded sample; `make test` sets up and passes
# the tests. Both work on a fresh Debian machine with only python3, make and apt.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    := demo
# Debian packages the tests need (installed by `make debs` when run as root; the suite skips what it lacks
# otherwise, and says so).
DEBS    := python3-venv nftables ipset iptables iproute2

.PHONY: setup debs demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@$(PY) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PY) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

debs:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "make debs: not root or no apt-get; skipping Debian packages ($(DEBS))"; fi

demo: setup
	@rm -rf $(DEMO)
	$(BIN)/fraudwatch simulate --out $(DEMO) --days 2 --accounts 50 --seed 1
	$(BIN)/fraudwatch --config $(DEMO)/fraudwatch.toml ingest
	$(BIN)/fraudwatch --config $(DEMO)/fraudwatch.toml summary

# ruff; mypy --strict; the layer contract and no cycle inside a package (import-linter, pyproject.toml);
# unused and missing dependencies (deptry); dead code (vulture).
lint: setup
	$(BIN)/ruff check fraudwatch tests benchmarks pipelines
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/deptry .
	$(BIN)/vulture

unit: setup
	$(BIN)/pytest -q

test: setup debs lint unit

bench: setup
	$(BIN)/python benchmarks/ingest_bench.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
