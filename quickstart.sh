#!/bin/sh
# Set up a Debian 12 machine for percore, build it, and either run it or test it.
#
#   ./quickstart.sh run    install what is missing, build, serve conf/percore.conf
#                          in the foreground on 127.0.0.1:8080 (Ctrl-C stops it)
#   ./quickstart.sh test   install what is missing, build with -Werror, run the whole
#                          test suite, again under ASan+UBSan, build the .deb and the
#                          RPM, run the fuzzers briefly, install the .deb under a real
#                          systemd (nspawn) and drive it, then make distcheck; ends with
#                          "N passed, N failed"
set -eu

cd "$(dirname "$0")"
TOP=$(pwd)
MODE=${1:-}

BUILD_DEPS="gcc make autoconf automake autoconf-archive pkg-config
    libh2o-evloop-dev libsystemd-dev libssl-dev libseccomp-dev libpcre2-dev libc-ares-dev"
TEST_DEPS="libcriterion-dev curl wrk jq iproute2 procps util-linux python3 python3-h2
    python3-websockets nghttp2-client mandoc shellcheck cppcheck debootstrap systemd-container
    debhelper lintian dpkg-dev fakeroot rpm clang libclang-rt-14-dev openssl chromium"

need_packages() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "quickstart: missing packages:$missing (run as root, or install them)" >&2
        exit 1
    fi
    echo "quickstart: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# build DIR [CONFIGURE ARGS...]: out-of-tree build in DIR.
build() {
    dir=$1
    shift
    [ -x "$TOP/configure" ] || (cd "$TOP" && autoreconf -fi >/dev/null)
    mkdir -p "$dir"
    (cd "$dir" && { [ -f Makefile ] || "$TOP/configure" -q "$@"; } && make -s -j"$(nproc)")
}

# Sum "# PASS:" and "# FAIL:"/"# ERROR:" lines of automake test-suite logs.
count() {
    awk '/^# PASS:/ {p += $3} /^# (FAIL|ERROR|XPASS):/ {f += $3} END {print p + 0, f + 0}' "$@"
}

case "$MODE" in
run)
    # shellcheck disable=SC2086
    need_packages $BUILD_DEPS
    build "$TOP/_build/release"
    echo "quickstart: serving http://127.0.0.1:8080/ (Ctrl-C to stop)"
    exec "$TOP/_build/release/percore" -f -c "$TOP/conf/percore.conf"
    ;;
test)
    # shellcheck disable=SC2086
    need_packages $BUILD_DEPS $TEST_DEPS
    passed=0
    failed=0
    for variant in release asan; do
        dir=$TOP/_build/$variant
        case $variant in
        release) build "$dir" --enable-werror ;;
        asan) build "$dir" --enable-werror --enable-sanitizers ;;
        esac
        echo "quickstart: make check ($variant)"
        rc=0
        (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 make -s check) >"$dir/check.out" 2>&1 || rc=$?
        grep -E '^(PASS|FAIL|ERROR|SKIP|XFAIL|XPASS):' "$dir/check.out" |
            grep -v '^PASS' || true
        # shellcheck disable=SC2046 # split on purpose: "PASSED FAILED"
        set -- $(count "$dir/test-suite.log")
        echo "quickstart: $variant: $1 passed, $2 failed"
        passed=$((passed + $1))
        failed=$((failed + $2))
        if [ "$rc" -ne 0 ] && [ "$2" -eq 0 ]; then
            tail -n 30 "$dir/check.out"
            failed=$((failed + 1))
        fi
    done
    # Packages from the release tarball: the .deb (lintian clean) and the RPM.
    echo "quickstart: packages"
    rm -f "$TOP"/_build/release/percore-*.tar.gz
    for kind in deb rpm; do
        if "$TOP/packaging/build-$kind.sh" "" "$TOP/_build/$kind" >"$TOP/_build/$kind.out" 2>&1; then
            echo "quickstart: $kind package built"
            passed=$((passed + 1))
        else
            tail -n 30 "$TOP/_build/$kind.out"
            failed=$((failed + 1))
        fi
    done

    # The fuzzing harnesses (clang): each replays its seeds and regression inputs, then
    # fuzzes for FUZZ_SECONDS; one pass or failure per harness.
    dir=$TOP/_build/fuzz
    echo "quickstart: fuzzing"
    if build "$dir" --enable-werror --enable-fuzzing >"$TOP/_build/fuzz.out" 2>&1; then
        (cd "$dir" && make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}") >>"$TOP/_build/fuzz.out" 2>&1 ||
            true
        grep -E '^(PASS|FAIL): ' "$TOP/_build/fuzz.out" || true
        fuzz_pass=$(grep -c '^PASS: ' "$TOP/_build/fuzz.out" || true)
        fuzz_fail=$(grep -c '^FAIL: ' "$TOP/_build/fuzz.out" || true)
        [ "$fuzz_pass" -gt 0 ] || [ "$fuzz_fail" -gt 0 ] || fuzz_fail=1
    else
        fuzz_pass=0
        fuzz_fail=1
    fi
    [ "$fuzz_fail" -eq 0 ] || tail -n 30 "$TOP/_build/fuzz.out"
    echo "quickstart: fuzzing: $fuzz_pass passed, $fuzz_fail failed"
    passed=$((passed + fuzz_pass))
    failed=$((failed + fuzz_fail))

    # End to end under a real systemd (a debootstrapped Debian 12 booted by nspawn),
    # installing the .deb.
    dir=$TOP/_build/deb
    echo "quickstart: end-to-end test under systemd-nspawn"
    bash "$TOP/tests/e2e/systemd.sh" "$dir" >"$dir/e2e.out" 2>&1 || true
    grep -E '^(not ok|Bail out)' "$dir/e2e.out" || true
    e2e_pass=$(grep -c '^ok ' "$dir/e2e.out" || true)
    e2e_fail=$(grep -c -E '^(not ok|Bail out)' "$dir/e2e.out" || true)
    if ! grep -q -E '^1\.\.' "$dir/e2e.out"; then
        tail -n 20 "$dir/e2e.out"
        e2e_fail=$((e2e_fail + 1))
    fi
    echo "quickstart: e2e: $e2e_pass passed, $e2e_fail failed"
    passed=$((passed + e2e_pass))
    failed=$((failed + e2e_fail))

    echo "quickstart: make distcheck"
    if (cd "$TOP/_build/release" && make -s distcheck) >"$TOP/_build/distcheck.out" 2>&1; then
        passed=$((passed + 1))
    else
        tail -n 40 "$TOP/_build/distcheck.out"
        failed=$((failed + 1))
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
    ;;
esac
