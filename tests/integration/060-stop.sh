#!/bin/bash
# SIGTERM/SIGINT: stop accepting, let in-flight requests finish within shutdown_timeout,
# honour shutdown_delay, exit 0.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT/
SIZE=$((12 * 1024 * 1024))

# A 12 MiB body fetched at 4 MiB/s by a client with a small receive buffer: a request in
# flight for about 3 s, most of it still in the worker when the stop begins.
SLOWGET=$(dirname "$0")/slowget.py
mkdir -p "$T_DIR/www"
head -c "$SIZE" /dev/zero | tr '\0' x >"$T_DIR/www/big"
big_conf() { # SHUTDOWN_TIMEOUT [SHUTDOWN_DELAY]
    {
        printf 'workers 2;\nshutdown_timeout %s;\n' "$1"
        [ -n "$2" ] && printf 'shutdown_delay %s;\n' "$2"
        printf 'service s {\n    listen 127.0.0.1:%s;\n' "$PORT"
        printf '    route /big { files %s; }\n' "$T_DIR/www"
        printf '    route / { respond 200 "small\\n"; }\n}\n'
    } >"$CONF"
}

# stop_and_time SIGNAL: send it, wait for the master; sets ST (exit status) and MS.
stop_and_time() {
    t0=$(date +%s%N)
    kill -"$1" "$PC_PID"
    wait "$PC_PID"
    ST=$?
    MS=$(( ($(date +%s%N) - t0) / 1000000 ))
    PC_PID=
}

big_conf 30s
start_percore "$CONF"
rm -f "$T_DIR/started"
python3 "$SLOWGET" "$PORT" /big/big $((4 * 1024 * 1024)) "$T_DIR/started" >"$T_DIR/slow" &
SLOW=$!
wait_for test -e "$T_DIR/started" || not_ok "the slow request started"
stop_and_time TERM
wait "$SLOW"
expect_eq "slow in-flight request completes after SIGTERM" "$(cat "$T_DIR/slow")" "200 $SIZE"
expect_eq "master exits 0 after draining" "$ST" "0"
check "master waited for the request (${MS} ms)" [ "$MS" -ge 1500 ]
expect_eq "nothing listens after stop" "$(ss -Htln "sport = :$PORT" | wc -l)" "0"

# shutdown_timeout bounds the wait.
big_conf 500ms
start_percore "$CONF"
rm -f "$T_DIR/started"
python3 "$SLOWGET" "$PORT" /big/big $((1024 * 1024)) "$T_DIR/started" >"$T_DIR/slow" &
SLOW=$!
wait_for test -e "$T_DIR/started" || not_ok "the slow request started"
stop_and_time TERM
wait "$SLOW"
check "shutdown_timeout cuts a request that would take too long ($(cat "$T_DIR/slow"))" \
    grep -q '^error ' "$T_DIR/slow"
# Both conditions inside the one check: "check A && B" would assert A alone.
if [ "$ST" = 0 ] && [ "$MS" -lt 3000 ]; then
    ok "master exits 0 within shutdown_timeout plus grace (${MS} ms)"
else
    not_ok "master exits 0 within shutdown_timeout plus grace (${MS} ms)" "exit status $ST"
fi

# shutdown_delay keeps accepting new connections for a while.
big_conf 5s 4s
start_percore "$CONF"
MPID=$PC_PID
kill -TERM "$MPID"
check "log announces the delay" wait_for log_has "stopping after shutdown_delay of 4000 ms"
expect_eq "new connections are served during shutdown_delay" "$(curl -s -m 2 "$URL")" "small"
wait_for sh -c "! kill -0 $MPID 2>/dev/null"
wait "$MPID"
expect_eq "exit 0 after shutdown_delay" "$?" "0"
PC_PID=

# An idle keep-alive connection does not hold up the stop (libh2o has no HTTP/1 hook).
big_conf 30s
start_percore "$CONF"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
head -c 10 <&3 >/dev/null
stop_and_time INT
exec 3<&-
expect_eq "SIGINT stops with status 0" "$ST" "0"
check "idle keep-alive connection closed quickly (${MS} ms)" [ "$MS" -lt 3000 ]

finish
