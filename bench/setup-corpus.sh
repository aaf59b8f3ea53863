#!/bin/sh
# The third-party corpus of the context and quality benchmarks (bench/context_lift.py,
# bench/index_speed.py, bench/quality.py),
# from Debian packages, and universal-ctags to compare the index with. Run as root; idempotent.
#
# The corpus packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` under
# .cache/corpus/ROLE/, not installed: the compiler package and the kernel-module package would
# otherwise pull a toolchain and try to build a module. Each ROLE folder holds a PACKAGES file
# ("name version" per line) that the benchmarks print with their results.
#
# Package names carry a version (gnat-12, libgnatcoll21-dev ...): each role names a pattern and
# takes the newest matching package that apt knows, so the script follows a Debian release.
set -eu
cd "$(dirname "$0")/.."
DEST=${AIRGAP_BENCH_CORPUS:-.cache/corpus}

ROLES='
ada-runtime ^gnat-[0-9]+$
gnatcoll ^libgnatcoll[0-9]+-dev$
xmlada ^libxmlada-(dom|input|sax|schema|unicode)[0-9]+-dev$
aunit ^libaunit[0-9]+-dev$
templates-parser ^libtemplates-parser[0-9]+-dev$
ghdl ^ghdl-common$
jool ^jool-dkms$
python ^libpython3\.[0-9]+-(minimal|stdlib|testsuite)$
docutils ^python3-docutils$
jinja2 ^python3-jinja2$
apfs ^apfs-dkms$
ovpn-dco ^openvpn-dco-dkms$
xtables-addons ^xtables-addons-dkms$
'

# apt's package lists: needed once on a fresh machine.
if [ -z "$(apt-cache search --names-only '^ghdl-common$' 2>/dev/null)" ]; then
    apt-get update
fi

if ! command -v ctags-universal >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends universal-ctags
fi

# The newest version of each package matching a pattern: names that differ only in their digits
# are versions of one package (gnat-12, gnat-13); xmlada's components are kept apart.
newest() {
    apt-cache search --names-only "$1" | cut -d' ' -f1 | grep -E "$1" | sort -V \
        | awk '{ key = $0; gsub(/[0-9.]+/, "", key); last[key] = $0 }
               END { for (k in last) print last[k] }' | sort
}

mkdir -p "$DEST"
echo "$ROLES" | while read -r role pattern; do
    [ -n "$role" ] || continue
    if [ -f "$DEST/$role/PACKAGES" ]; then
        echo "corpus: $role already in $DEST/$role ($(tr '\n' ' ' <"$DEST/$role/PACKAGES"))"
        continue
    fi
    packages=$(newest "$pattern")
    if [ -z "$packages" ]; then
        echo "corpus: no package matches $pattern: $role is left out" >&2
        continue
    fi
    work=$(mktemp -d)
    chmod 755 "$work"
    rm -rf "$DEST/$role.partial"
    mkdir -p "$DEST/$role.partial"
    for pkg in $packages; do
        (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$pkg")
        deb=$(ls "$work"/"${pkg}"_*.deb)
        dpkg-deb -x "$deb" "$DEST/$role.partial"
        echo "$pkg $(dpkg-deb -f "$deb" Version)" >>"$DEST/$role.partial/PACKAGES"
    done
    rm -rf "$work" "$DEST/$role"
    mv "$DEST/$role.partial" "$DEST/$role"
    echo "corpus: $role from $(tr '\n' ' ' <"$DEST/$role/PACKAGES")"
done
