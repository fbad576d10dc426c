# shellcheck shell=sh
# Sourced by build-deb.sh and build-rpm.sh: sets TARBALL to $1, or to a fresh `make dist`
# tarball made in _build/release when $1 is empty.
dist_tarball() {
    TARBALL=${1:-}
    [ -n "$TARBALL" ] && return 0
    mkdir -p "$TOP/_build/release"
    [ -x "$TOP/configure" ] || (cd "$TOP" && autoreconf -fi >/dev/null)
    (cd "$TOP/_build/release" && { [ -f Makefile ] || "$TOP/configure" -q; } &&
        make -s dist >/dev/null)
    # shellcheck disable=SC2012 # the newest of our own tarballs, whose names are plain
    TARBALL=$(ls -t "$TOP"/_build/release/percore-*.tar.gz | head -n 1)
}
