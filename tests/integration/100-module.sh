#!/bin/bash
# C modules: loaded at config time (errors with their position), run per worker,
# answering at once, later (percore_defer), or declining.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v cc >/dev/null || skip_all "no C compiler to build the test module"
MOD=$T_DIR/hello.so
cc -shared -fPIC -Wall -Werror -I"$TOP_SRCDIR/include" -o "$MOD" \
    "$TOP_SRCDIR/tests/modules/hello.c" || bail "cannot build the test module"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT
cat >"$CONF" <<CONF
workers 2;
shutdown_timeout 5s;
service s {
    listen 127.0.0.1:$PORT;
    route /m/ { module $MOD "howdy"; header Cache-Control no-store; }
    route /broken/ { module $MOD fail; }
}
CONF
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
expect_eq "-t loads the module" "$?" "0"
start_percore "$CONF"

expect_eq "module answers with its argument, the path and a request header" \
    "$(curl -s -H 'X-Who: tester' "$URL/m/abc?q=1" | sed 's/ served=.*//')" \
    "howdy /m/abc?q=1 who=tester body=0"
expect_eq "module sets a response header" \
    "$(curl -sD - -o /dev/null "$URL/m/x" | tr -d '\r' | grep -i '^x-module:')" "x-module: hello"
expect_eq "route headers apply to module responses" \
    "$(curl -sD - -o /dev/null "$URL/m/x" | tr -d '\r' | grep -i '^cache-control:')" \
    "cache-control: no-store"
expect_eq "module sees the request body" \
    "$(curl -s --data-binary 'twelve bytes' "$URL/m/post" | sed 's/.*body=\([0-9]*\).*/\1/')" "12"
T0=$(date +%s%N)
expect_eq "deferred answer (percore_defer)" "$(curl -s "$URL/m/slow")" "late"
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "deferred answer came after its 300 ms (${MS} ms)" [ "$MS" -ge 290 ]
# Deferred requests do not block the worker: 20 in parallel (one client process, 20
# connections) take about 300 ms, not 6 s.
slow20() { curl -s -Z --parallel-max 20 "$URL/m/slow?[1-20]" >/dev/null; }
T0=$(date +%s%N)
slow20
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "20 parallel deferred requests finish together (${MS} ms)" [ "$MS" -lt 3000 ]
# A client that leaves before the deferred answer must not crash the worker.
BEFORE=$(workers | paste -sd,)
for _ in $(seq 1 10); do curl -s -m 0.1 -o /dev/null "$URL/m/slow"; done
# Deferred answers fire in order: once 20 later ones (spread over both workers) are
# answered, the abandoned ones have fired too.
slow20
expect_eq "clients gone before a deferred answer: workers unharmed" "$(workers | paste -sd,)" "$BEFORE"
# Ended by a signal ("died") or with a status ("exited"): either way it was respawned.
check "no worker died" sh -c "! grep -q 'died\|exited with status\|respawning' '$PC_LOG'"
expect_eq "declined request is 404" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/m/none")" "404"
expect_eq "module whose init failed answers 500" \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/broken/")" "500"
check "and the worker log says so" log_has "module 'hello' ($MOD): init failed"
# Per-worker state: each worker of a fresh start counts its own calls from 1, so 40
# requests spread over two workers see "served=1" twice.
stop_percore
start_percore "$CONF"
for _ in $(seq 1 40); do curl -s "$URL/m/c"; done | sed 's/.*served=//' >"$T_DIR/served"
expect_eq "per-worker state: each of the 2 workers has its own counter" \
    "$(grep -c '^1$' "$T_DIR/served")" "2"
stop_percore

# Bad modules are config errors with their position.
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { module %s; }\n}\n' "$PORT" "$T_DIR/nope.so" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a missing module is an error at its position" \
    grep -q "^$CONF:3:22: cannot load module: $T_DIR/nope.so: cannot open shared object file" "$T_DIR/out"
printf 'int x;\n' >"$T_DIR/notmod.c"
cc -shared -fPIC -o "$T_DIR/notmod.so" "$T_DIR/notmod.c"
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { module %s; }\n}\n' "$PORT" "$T_DIR/notmod.so" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a library without percore_module is refused" \
    grep -q "$CONF:3:22: '$T_DIR/notmod.so' is not a percore module: no 'percore_module' symbol" "$T_DIR/out"
cat >"$T_DIR/abi.c" <<'C'
#include <percore/module.h>
static int h(void *d, struct percore_request *r) { (void)d; (void)r; return 0; }
const struct percore_module percore_module = {PERCORE_MODULE_ABI + 1, "future", 0, h};
C
cc -shared -fPIC -I"$TOP_SRCDIR/include" -o "$T_DIR/abi.so" "$T_DIR/abi.c"
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { module %s; }\n}\n' "$PORT" "$T_DIR/abi.so" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a module of another ABI is refused" \
    grep -q "module '$T_DIR/abi.so' was built for module ABI 2; this percore speaks 1" "$T_DIR/out"
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { module hello.so; }\n}\n' "$PORT" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a relative module path is refused" grep -q "module path 'hello.so' must be absolute" "$T_DIR/out"

finish
