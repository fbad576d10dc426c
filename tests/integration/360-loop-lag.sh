#!/bin/bash
# Where the event loop's time goes: the CPU time of each route's callbacks, the busy time
# of each loop turn (a histogram per worker), the slow_turn warning naming the request that
# held the loop, and the master naming it when the watchdog kills a stuck worker.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v cc >/dev/null || skip_all "no C compiler to build the test module"
MOD=$T_DIR/spin.so
cc -shared -fPIC -Wall -Werror -I"$TOP_SRCDIR/include" -o "$MOD" \
    "$TOP_SRCDIR/tests/modules/spin.c" || bail "cannot build the test module"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT
cat >"$CONF" <<CONF
workers 2;
shutdown_timeout 5s;
worker_watchdog 1s;
slow_turn 30ms;
service lag {
    listen 127.0.0.1:$PORT;
    route /metrics { metrics; }
    route /spin/ { module $MOD spin; }
    route /hang/ { module $MOD hang; }
    route / { respond 200 "hello\n"; }
}
CONF
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
expect_eq "the config is valid" "$?" "0"
start_percore "$CONF"

scrape() { curl -s "$URL/metrics" >"$1"; }
# sample FILE NAME-AND-LABELS: a sample's value (empty when absent).
sample() {
    awk -v k="$2" '$1 == k { print $2 }' "$1"
}
route_cpu() {
    sample "$1" "percore_route_cpu_seconds_total{service=\"lag\",route=\"$2\"}"
}
# lag_sum FILE LE: a bucket (or _count for LE "count") summed over the workers.
lag_sum() {
    if [ "$2" = count ]; then
        awk '$1 ~ /^percore_event_loop_lag_seconds_count\{/ { n += $2 } END { print n + 0 }' "$1"
    else
        awk -v le="le=\"$2\"}" 'index($1, "percore_event_loop_lag_seconds_bucket{") == 1 &&
            index($1, le) > 0 { n += $2 } END { print n + 0 }' "$1"
    fi
}
# ms A B: (B - A) seconds in whole milliseconds.
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d\n", (b - a) * 1000 }'; }

scrape "$T_DIR/m0"
check "route CPU counters are exported" grep -q '^# TYPE percore_route_cpu_seconds_total counter$' "$T_DIR/m0"
check "the loop lag histogram is exported per worker" \
    grep -q '^percore_event_loop_lag_seconds_count{worker="0"} ' "$T_DIR/m0"
check "for both workers" grep -q '^percore_event_loop_lag_seconds_count{worker="1"} ' "$T_DIR/m0"
check "every sample line is NAME[{LABELS}] NUMBER" \
    sh -c "! grep -v '^#' '$T_DIR/m0' | grep -Evq '^[a-z_]+(\\{[a-z]+=\"[^\"]*\"(,[a-z]+=\"[^\"]*\")*\\})? [0-9.e+-]+\$'"

# Five requests that each burn 50 ms of CPU in the module's handle(), and one more in a
# percore_defer callback (a later callback of the request).
N=6
for _ in 1 2 3 4 5; do
    [ "$(curl -s "$URL/spin/x")" = "spun" ] || not_ok "a spin request is answered"
done
[ "$(curl -s "$URL/spin/later")" = "spun later" ] || not_ok "a deferred spin request is answered"
for _ in $(seq 1 20); do curl -s -o /dev/null "$URL/"; done
# The routes' time is turned into CPU time on each heartbeat (every 500 ms) or after a
# long turn: wait until all of it is in.
spun_in() {
    scrape "$T_DIR/m1"
    [ "$(ms "$(route_cpu "$T_DIR/m0" /spin/)" "$(route_cpu "$T_DIR/m1" /spin/)")" -ge $((N * 40)) ]
}
wait_for spun_in
SPIN_MS=$(ms "$(route_cpu "$T_DIR/m0" /spin/)" "$(route_cpu "$T_DIR/m1" /spin/)")
HELLO_MS=$(ms "$(route_cpu "$T_DIR/m0" /)" "$(route_cpu "$T_DIR/m1" /)")
if [ "$SPIN_MS" -ge $((N * 40)) ] && [ "$SPIN_MS" -le $((N * 80)) ]; then
    ok "the spin route's CPU time grew by about 50 ms a request ($SPIN_MS ms for $N)"
else
    not_ok "the spin route's CPU time grew by about 50 ms a request" "$SPIN_MS ms for $N"
fi
check "the hello route's far less ($HELLO_MS ms for 20)" [ "$HELLO_MS" -lt $((SPIN_MS / 10)) ]

COUNT0=$(lag_sum "$T_DIR/m0" count)
COUNT1=$(lag_sum "$T_DIR/m1" count)
check "loop turns were counted ($COUNT0 -> $COUNT1)" [ "$COUNT1" -gt "$COUNT0" ]
# Turns longer than 50 ms: the count less the 0.05 bucket (cumulative).
LONG0=$(( $(lag_sum "$T_DIR/m0" +Inf) - $(lag_sum "$T_DIR/m0" 0.05) ))
LONG1=$(( $(lag_sum "$T_DIR/m1" +Inf) - $(lag_sum "$T_DIR/m1" 0.05) ))
check "each spin made a turn of more than 50 ms ($LONG0 -> $LONG1)" [ $((LONG1 - LONG0)) -ge "$N" ]

# The slow_turn warning: one per spin, naming service, route, module and request ID.
SLOW="request [0-9a-f]\{32\}: slow event loop turn: .* of it in callbacks of service 'lag' route '/spin/' (module 'spin')\$"
check "slow turns are logged, naming the route, module and request ID" \
    wait_for log_count_at_least "$SLOW" "$N"
check "the hello requests made none" sh -c "! grep 'slow event loop turn' '$PC_LOG' | grep -q \"route '/'\""
# The request IDs of the warnings are distinct.
expect_eq "each warning has its own request ID" \
    "$(grep -o "request [0-9a-f]\{32\}: slow" "$PC_LOG" | sort -u | wc -l)" "$(grep -c "$SLOW" "$PC_LOG")"

# A module that never returns: the watchdog kills its worker, and the master says what
# held the loop. The client gets no answer (its connection dies with the worker).
BEFORE=$(worker_ends)
curl -s -m 20 -o /dev/null "$URL/hang/x" &
CURL=$!
STUCK="is stuck: its event loop has not turned for [0-9]* ms (worker_watchdog 1000 ms), killing it; held for [0-9]* ms by a callback of service 'lag' route '/hang/' (module 'spin') for request [0-9a-f]\{32\}\$"
check "the watchdog kills the stuck worker, naming the route, module and request" \
    wait_for log_has "$STUCK"
wait "$CURL"
respawned() { [ "$(worker_ends)" -gt "$BEFORE" ] && [ "$(nworkers)" -eq 2 ]; }
check "the worker is replaced" wait_for respawned
expect_eq "and the service answers" "$(curl -s "$URL/")" "hello"
# The killed worker's loop turns stay in its number's histogram.
scrape "$T_DIR/m2"
check "the loop lag counts only grew across the kill" [ "$(lag_sum "$T_DIR/m2" count)" -ge "$COUNT1" ]
stop_percore

# slow_turn off: the same spins log nothing.
sed -i 's/^slow_turn 30ms;/slow_turn off;/' "$CONF"
start_percore "$CONF"
curl -s -o /dev/null "$URL/spin/x"
curl -s -o /dev/null "$URL/spin/later"
scrape "$T_DIR/m3"
check "slow_turn off: no warning" sh -c "! grep -q 'slow event loop turn' '$PC_LOG'"

finish
