#!/bin/sh
# Build the RPM from a `make dist` tarball: packaging/build-rpm.sh [TARBALL] [OUTDIR]
# Without a tarball, one is made in _build/release. On a host whose rpm database does
# not know the build dependencies (Debian), they are not checked (--nodeps).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$TOP/_build/rpm}
# shellcheck source=dist.sh
. "$TOP/packaging/dist.sh"
dist_tarball "${1:-}"
NAME=$(basename "$TARBALL" .tar.gz)
WORK=$(mktemp -d /tmp/percore-rpm.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/SOURCES" "$WORK/SPECS"
cp "$TARBALL" "$WORK/SOURCES/"
tar -C "$WORK" -xzf "$TARBALL" "$NAME/packaging/rpm/percore.spec" "$NAME/systemd/percore.sysusers"
cp "$WORK/$NAME/packaging/rpm/percore.spec" "$WORK/SPECS/"
cp "$WORK/$NAME/systemd/percore.sysusers" "$WORK/SOURCES/"
NODEPS=
[ -f /etc/debian_version ] && NODEPS=--nodeps
rpmbuild --define "_topdir $WORK" $NODEPS -bb "$WORK/SPECS/percore.spec" \
    >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/*.rpm
find "$WORK/RPMS" -name '*.rpm' -exec cp {} "$OUT"/ \;
ls "$OUT"/*.rpm
