#!/bin/sh
# Build the Debian packages from a `make dist` tarball: packaging/build-deb.sh [TARBALL] [OUTDIR]
# Without a tarball, one is made in _build/release. The .deb files and the lintian report
# land in OUTDIR (default _build/deb).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$TOP/_build/deb}
# shellcheck source=dist.sh
. "$TOP/packaging/dist.sh"
dist_tarball "${1:-}"
NAME=$(basename "$TARBALL" .tar.gz)   # percore-X.Y.Z
VERSION=${NAME#percore-}
WORK=$(mktemp -d /tmp/percore-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp "$TARBALL" "$WORK/percore_$VERSION.orig.tar.gz"
tar -C "$WORK" -xzf "$TARBALL"
cp -r "$WORK/$NAME/packaging/debian" "$WORK/$NAME/debian"
(cd "$WORK/$NAME" && dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1) || {
    tail -n 40 "$WORK/build.log" >&2
    exit 1
}
mkdir -p "$OUT"
rm -f "$OUT"/*.deb
cp "$WORK"/*.deb "$OUT"/
lintian --fail-on error "$WORK"/*.changes >"$OUT/lintian.txt" 2>&1 || {
    cat "$OUT/lintian.txt" >&2
    exit 1
}
ls "$OUT"/*.deb
