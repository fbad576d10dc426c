#!/bin/bash
# A worker killed with SIGKILL is replaced in its slot at once; the service never stops
# answering; a crash loop backs off.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v wrk >/dev/null || skip_all "wrk not installed"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT/
hello_conf "$PORT" >"$CONF"
start_percore "$CONF" -w 2

slot_pid() { # SLOT: pid of the worker named percore-wSLOT
    for p in $(workers); do
        [ "$(ps -o comm= -p "$p")" = "percore-w$1" ] && echo "$p"
    done
}

wrk -t2 -c10 -d4s -H "Connection: close" "$URL" >"$T_DIR/wrk.out" 2>&1 &
WRK=$!
loaded() { [ "$(established "$PORT")" -ge 1 ]; }
wait_for loaded || not_ok "wrk is connected before the kill"
VICTIM=$(slot_pid 0)
kill -KILL "$VICTIM"
T0=$(date +%s%N)
NEWPID=
for _ in $(seq 1 300); do
    NEWPID=$(slot_pid 0)
    [ -n "$NEWPID" ] && [ "$NEWPID" != "$VICTIM" ] && break
    sleep 0.01
done
T1=$(date +%s%N)
wait "$WRK"
MS=$(( (T1 - T0) / 1000000 ))
if [ -n "$NEWPID" ] && [ "$NEWPID" != "$VICTIM" ] && [ "$MS" -lt 3000 ]; then
    ok "killed worker replaced in slot 0 at once (${MS} ms)"
else
    not_ok "killed worker replaced in slot 0 at once" "new pid '$NEWPID' after $MS ms"
fi
check "log says which worker died and how" \
    log_has "worker 0 (pid $VICTIM) died (signal 9, Killed), respawning"
ERRS=$(grep 'Socket errors' "$T_DIR/wrk.out")
CONNECT=$(echo "$ERRS" | sed -n 's/.*connect \([0-9]*\).*/\1/p')
TIMEOUT=$(echo "$ERRS" | sed -n 's/.*timeout \([0-9]*\).*/\1/p')
READ=$(echo "$ERRS" | sed -n 's/.*read \([0-9]*\).*/\1/p')
expect_eq "no connection refused while a worker was down" "${CONNECT:-0}" "0"
expect_eq "no request timed out" "${TIMEOUT:-0}" "0"
# Only the connections inside the killed process may fail (wrk has 10 in all).
if [ "${READ:-0}" -le 10 ]; then
    ok "at most the killed worker's own connections failed (${READ:-0})"
else
    not_ok "at most the killed worker's own connections failed" "$(cat "$T_DIR/wrk.out")"
fi
check "wrk saw no non-2xx" sh -c "! grep -q Non-2xx '$T_DIR/wrk.out'"
# The absence of errors above means something only if wrk ran and counted requests.
check "wrk made requests across the kill" grep -q ' requests in ' "$T_DIR/wrk.out"
expect_eq "still 2 workers" "$(nworkers)" "2"
expect_eq "serves after the crash" "$(curl -s "$URL")" "Hello, world!"

# Kill slot 1 as soon as each replacement appears: a crash loop must back off.
PREV=
for _ in 1 2 3 4; do
    for _ in $(seq 1 200); do
        P=$(slot_pid 1)
        [ -n "$P" ] && [ "$P" != "$PREV" ] && break
        sleep 0.01
    done
    kill -KILL "$P" 2>/dev/null
    PREV=$P
done
check "a crash loop backs off" wait_for log_has "crash loop: respawning in"
wait_for sh -c "[ \$(pgrep -c -P $PC_PID) -eq 2 ]"
expect_eq "slot 1 comes back after the back-off" "$(nworkers)" "2"
expect_eq "serves after the crash loop" "$(curl -s "$URL")" "Hello, world!"

finish
