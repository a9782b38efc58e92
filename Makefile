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
# Debian packages `make bench` needs beyond those: fail2ban, for fail2ban-regex and its stock filters
# (benchmarks/vs_fail2ban.py). Installed by `make bench-debs` when run as root; `make test` does not need them.
BENCH_DEBS := fail2ban

.PHONY: setup debs bench-debs demo test lint typecheck unit bench clean

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

# fail2ban's postinst starts its daemon (invoke-rc.d, or systemd when it runs), which would put its sshd jail in this
# machine's firewall. So, for the install only, a policy-rc.d that forbids service starts (Debian's mechanism,
# honoured by invoke-rc.d and deb-systemd-invoke) when the machine has none of its own, removed afterwards; the
# service's start at boot is disabled again; and a fail2ban-server that started all the same (an existing
# policy-rc.d that allows starts) is stopped by its pid. Only fail2ban-regex is used.
bench-debs:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(BENCH_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    policy=/usr/sbin/policy-rc.d; before=$$(pgrep -x fail2ban-server | tr '\n' ' '); \
	    if [ ! -e $$policy ]; then trap 'rm -f '$$policy EXIT INT TERM; printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	    update-rc.d fail2ban disable >/dev/null 2>&1 || true; \
	    deb-systemd-helper disable fail2ban.service >/dev/null 2>&1 || true; \
	    for pid in $$(pgrep -x fail2ban-server); do \
	      case " $$before " in *" $$pid "*) ;; *) echo "make bench-debs: stopping fail2ban-server $$pid, started by the install"; kill $$pid;; esac; \
	    done; \
	  fi; \
	else echo "make bench-debs: not root or no apt-get; skipping Debian packages ($(BENCH_DEBS))"; fi

# The main job on two simulated days: ingest with detection, what the store holds, then the result — the
# incidents found beside the attacks the simulator labelled, and the bans the watcher would make.
demo: setup
	@rm -rf $(DEMO)
	$(BIN)/fraudwatch simulate --out $(DEMO) --days 2 --accounts 50 --seed 1
	$(BIN)/fraudwatch --config $(DEMO)/fraudwatch.toml ingest --detect
	$(BIN)/fraudwatch --config $(DEMO)/fraudwatch.toml summary
	$(BIN)/fraudwatch --config $(DEMO)/fraudwatch.toml incidents list --labels $(DEMO)/labels.csv

# ruff; mypy --strict; the layer contract and no cycle inside a package (import-linter, pyproject.toml);
# unused and missing dependencies (deptry); dead code (vulture); security checks (bandit, pyproject.toml).
lint: setup
	$(BIN)/ruff check fraudwatch tests benchmarks pipelines
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/deptry .
	$(BIN)/vulture
	$(BIN)/bandit -q -c pyproject.toml -r fraudwatch pipelines

unit: setup
	$(BIN)/pytest -q

test: setup debs lint unit

bench: setup bench-debs
	$(BIN)/python benchmarks/ingest_bench.py
	$(BIN)/python benchmarks/vs_fail2ban.py --repeat 3

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
