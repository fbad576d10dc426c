# shellcheck shell=sh
# Helpers for the lint tests: TAP output, and the source tree they read (never the build
# tree, so they give the same answer before and after a build).

# shellcheck disable=SC2034 # read by the tests that source this file
SRC=${TOP_SRCDIR:-${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
T_NUM=0
T_FAILED=0

ok() {
    T_NUM=$((T_NUM + 1))
    echo "ok $T_NUM - $1"
}

# not_ok NAME [DETAIL]: DETAIL's lines become TAP comments.
not_ok() {
    T_NUM=$((T_NUM + 1))
    T_FAILED=$((T_FAILED + 1))
    echo "not ok $T_NUM - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/# /'
    return 0
}

# skip_all REASON: a tool this test needs is not installed.
skip_all() {
    echo "1..0 # SKIP $1"
    exit 0
}

need_tool() {
    command -v "$1" >/dev/null 2>&1 || skip_all "$1 is not installed"
}

finish() {
    echo "1..$T_NUM"
    [ "$T_FAILED" -eq 0 ]
}
