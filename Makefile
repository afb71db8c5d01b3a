# Two commands: `make test` and `make demo`. Both build .venv on a fresh machine.
# `make demo DEMO_ARGS=--recursor` also puts a pdns_recursor and skydns-janitor in front.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench bench-probes clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

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

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
