# arbstream: one entry point for humans and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO := scenarios/dislocation-2026-01-30
KAFKA_PORT ?= 9092
export KAFKA_PORT
# The demo script gets SIGTERM if make dies without passing a signal on (SIGKILL).
ORPHAN_GUARD := $(shell command -v setpriv >/dev/null 2>&1 && echo "setpriv --pdeathsig TERM --")

.PHONY: help install lint typecheck test test-quick demo replay kafka-up kafka-down kafka-fetch prometheus-tools browser quix bench lock clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt setup.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "arbstream needs Python >= 3.11 (PYTHON=$(PYTHON))"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# The engine's compiled modules (setup.py) are built by the install above; after an edit
# of their sources this rebuilds them (until then the sources run: streams/_native.py).
$(VENV)/.native: $(VENV)/.installed $(wildcard streams/*.py)
	@$(BIN)/python -c 'import sys; from arbstream import streams; sys.exit(not streams.IMPLEMENTATION.compiled)' || \
		$(BIN)/pip install --quiet --no-deps -c constraints.txt -e .
	@$(BIN)/python -c 'from arbstream import streams; i = streams.IMPLEMENTATION; \
		print("engine:", "compiled (mypyc)" if i.compiled else "Python sources: " + i.reason)'
	touch $@

install: $(VENV)/.native ## create .venv and install arbstream (its engine compiled) with its pinned dev dependencies

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy (strict on streams/)
	$(BIN)/mypy

test: lint typecheck prometheus-tools browser ## lint, type-check, then pytest against a real Kafka broker (and a real Prometheus and headless Chromium); the engine's own tests once more on its Python sources
	scripts/with-kafka.sh $(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)
	@# (the slow property tests ran above, on the compiled engine: 2 of this pass's 3 minutes)
	ARBSTREAM_ENGINE=python $(BIN)/python -m pytest -q -m "not slow" tests/streams

test-quick: install ## the quick tier, in about a minute: the engine, parsers and policies (no Kafka, browser, Prometheus or slow test); `make test` runs every tier
	$(BIN)/python -m pytest -q -m "not kafka and not browser and not prometheus and not slow"

demo: install ## the main job: the live system (simulator -> feeds -> Kafka -> worker) with a terminal view; DEMO_SECONDS=N to stop after N s
	$(ORPHAN_GUARD) scripts/demo.sh

replay: install ## offline: replay the 30 Jan 2026 silver dislocation and show its signals
	@mkdir -p out
	$(BIN)/arbstream replay $(SCENARIO)/ticks.jsonl --config $(SCENARIO)/config.toml \
		--output out/dislocation.jsonl
	$(BIN)/python -m arbstream.show out/dislocation.jsonl

prometheus-tools: ## unpack Debian's prometheus, promtool, alertmanager and amtool into .tools/ (for the tests; starts no service)
	scripts/install-prometheus.sh
	scripts/install-alertmanager.sh

browser: ## install Debian's headless Chromium and chromedriver if missing (for the gateway page's browser test; needs root or sudo)
	scripts/install-browser.sh >/dev/null

quix: ## install pinned quix-streams into .venv-quix, a venv of its own (for the pipeline benchmark's quix peer)
	scripts/install-quix.sh >/dev/null

kafka-fetch: ## download the pinned Kafka release's jars from Maven Central (cached)
	deploy/kafka/kafka.sh fetch

kafka-up: ## start a local Kafka broker on $$KAFKA_PORT (default 9092), KAFKA_NODES=3 a cluster, KAFKA_SECURITY=sasl_ssl a secured one; returns when it serves
	deploy/kafka/kafka.sh up

kafka-down: ## stop the local broker (or cluster) on $$KAFKA_PORT; leaves nothing running
	deploy/kafka/kafka.sh down

bench: install quix ## benchmarks: the replay loop; Faust's no-op ceiling, the feeds and the gateway's fan-out and the latency floor on a local broker; then the speed targets in one table (whole-process replay; the worker exactly once and at least once, each beside its latency floor measured in the same run; the naive Faust agent and a quix-streams peer)
	$(BIN)/python -m benchmarks.replay_bench
	scripts/with-kafka.sh sh -c '$(BIN)/python -m benchmarks.faust_noop && $(BIN)/python -m benchmarks.feed_bench && $(BIN)/python -m benchmarks.gateway_bench && $(BIN)/python -m benchmarks.latency_floor && $(BIN)/python -m benchmarks.summary'

lock: ## re-pin constraints.txt from the current .venv (after changing dependencies)
	$(BIN)/pip freeze --exclude-editable | grep -v '^arbstream' > constraints.txt

clean: ## remove build and test leftovers (keeps .venv and the Kafka jar cache)
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
	rm -f streams/*.so streams/_build.py $(VENV)/.native
