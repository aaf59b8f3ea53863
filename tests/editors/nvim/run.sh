#!/usr/bin/env bash
# The Neovim tests, headless, on each Neovim given: NAME=PATH-TO-NVIM [NATIVE]...
# (NATIVE 0 forces the plug-in's own ghost text). Every nvim runs under `timeout`, with XDG
# folders in a temporary directory; the server is this checkout's (PYTHONPATH), even where .venv's
# editable install points at another. Prints PASS/FAIL lines and a total; exits non-zero on failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
server="$root/.venv/bin/airgap-lsp"
# The model store as the developer's airgap-lsp finds it, before XDG folders move.
store=${AIRGAP_LSP_MODEL_STORE:-$("$root/.venv/bin/python" -c \
  'from airgap_lsp.paths import model_store_root; print(model_store_root())')}
passed=0 failed=0
for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=} nvim=${rest%%:*} native=1
  [[ $rest == *:0 ]] && native=0
  nvim=$(realpath "$nvim")
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/airgap-nvim-$name-XXXXXX")
  cp -r "$root/tests/fixtures/editors" "$tmp/workspace"
  started=$(date +%s)
  (cd "$tmp/workspace" && env XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" \
    XDG_STATE_HOME="$tmp/state" XDG_CACHE_HOME="$tmp/cache" HOME="$tmp" \
    AIRGAP_LSP_MODEL_STORE="$store" AIRGAP_ROOT="$root" AIRGAP_SERVER="$server" \
    AIRGAP_TEST_DIR="$tmp" AIRGAP_NATIVE="$native" PYTHONPATH="$root" LUA_PATH="$root/tests/editors/nvim/?.lua;;" \
    timeout 300 "$nvim" --headless --noplugin -u "$root/tests/editors/nvim/init.lua" \
      -c "luafile $root/tests/editors/nvim/test.lua" > "$tmp/out.txt" 2>&1)
  rc=$?
  touch "$tmp/results.txt"
  cat "$tmp/results.txt"
  p=$(grep -c '^PASS' "$tmp/results.txt") f=$(grep -c '^FAIL' "$tmp/results.txt")
  if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; echo "FAIL $name: nvim exited with $rc (124: timed out); its output:"; cat "$tmp/out.txt"; fi
  echo "$name: $(( $(date +%s) - started )) s, files in $tmp"
  passed=$((passed + p)) failed=$((failed + f))
done
echo "nvim: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
