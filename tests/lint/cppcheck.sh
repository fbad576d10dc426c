#!/bin/sh
# cppcheck finds nothing in the C sources at the warning, performance and portability
# levels, with its models of POSIX and glibc: one TAP line per file. A false positive is
# suppressed with a reason, in place (// cppcheck-suppress ID) or in cppcheck.supp.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_tool cppcheck

cd "$SRC" || { echo "Bail out! no source tree at $SRC"; exit 99; }
# libh2o's headers (not glibc's, which cppcheck models instead) so that its macros and
# H2O_VERSION_* are known: a directory holding only them.
inc=$(pkg-config --variable=includedir libh2o-evloop 2>/dev/null || echo /usr/include)
[ -f "$inc/h2o.h" ] || { echo "Bail out! no h2o.h in $inc"; exit 99; }
h2o=$(mktemp -d /tmp/percore-lint.XXXXXX)
trap 'rm -rf "$h2o"' EXIT
ln -s "$inc/h2o.h" "$inc/h2o" "$h2o"/
# config.h when a build made one; _GNU_SOURCE is what it would define for us.
cfg=
[ -f "${TOP_BUILDDIR:-/nonexistent}/config.h" ] && cfg="-I$TOP_BUILDDIR"

files="$(echo src/*.c) tests/modules/hello.c"
# shellcheck disable=SC2086 # one word per path
out=$(cppcheck -q --std=c11 --enable=warning,performance,portability --library=posix,gnu \
    --inline-suppr --suppressions-list=tests/lint/cppcheck.supp --error-exitcode=1 \
    -D_GNU_SOURCE -DH2O_USE_LIBUV=0 $cfg -Isrc -Iinclude -I"$h2o" \
    --template='{file}:{line}: {severity}: {id}: {message}' $files 2>&1)
rc=$?
for f in $files src/*.h include/percore/*.h; do
    mine=$(printf '%s\n' "$out" | awk -v f="$f:" 'index($0, f) == 1')
    if [ -z "$mine" ]; then ok "cppcheck $f"; else not_ok "cppcheck $f" "$mine"; fi
done
# Findings in no file of ours (in libh2o's headers, say), or cppcheck failing.
rest=$(printf '%s\n' "$out" | grep -v -E '^(src|include|tests)/' || true)
if [ "$rc" -eq 0 ] && [ -z "$rest" ]; then
    ok "cppcheck exit status 0, nothing else said"
else
    not_ok "cppcheck exit status 0, nothing else said" "status $rc
$rest"
fi
finish
