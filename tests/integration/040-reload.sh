#!/bin/bash
# SIGHUP: a good config starts a new generation without one failed request; a bad one is
# reported with its position and the old generation keeps serving.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v wrk >/dev/null || skip_all "wrk not installed"
PORT=$(free_port)
PORT2=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT/

write_conf() { # BODY [EXTRA_SERVICE_PORT] [WORKERS]
    {
        printf 'workers %s;\nshutdown_timeout 5s;\n' "${3:-2}"
        printf 'service hello {\n    listen 127.0.0.1:%s;\n' "$PORT"
        printf '    route / { respond 200 "%s"; }\n}\n' "$1"
        if [ -n "$2" ]; then
            printf 'service extra {\n    listen 127.0.0.1:%s;\n' "$2"
            printf '    route / { respond 200 "extra"; }\n}\n'
        fi
    } >"$CONF"
}

# reload_and_wait: SIGHUP, then wait for one more "reload done" than the log had.
reload_and_wait() {
    local done_before
    done_before=$(grep -c "reload done" "$PC_LOG")
    kill -HUP "$PC_PID"
    wait_for log_count_at_least "reload done" $((done_before + 1))
}

# The generation serving, as the master last announced it ("ready: ... generation N",
# "reload done: generation N ...").
serving_gen() {
    sed -n -e 's/.*ready: .* serving generation \([0-9]*\).*/\1/p' \
        -e 's/.*reload done: generation \([0-9]*\) serving.*/\1/p' "$PC_LOG" | tail -n 1
}

write_conf v1
start_percore "$CONF"
OLD=$(workers | paste -sd,)
GEN0=$(serving_gen)
check "the ready line names the generation ($GEN0)" test -n "$GEN0"

# Reloads under keep-alive load, then under one-connection-per-request load.
n=0
for mode in keepalive close; do
    hdr=()
    [ "$mode" = close ] && hdr=(-H "Connection: close")
    # wrk runs until interrupted (it then prints its figures), so every reload happens
    # under load however slow the machine is.
    wrk -t2 -c20 -d120s "${hdr[@]}" "$URL" >"$T_DIR/wrk.$mode" 2>&1 &
    WRK=$!
    loaded() { [ "$(established "$PORT")" -ge 1 ]; }
    for body in v2 v1 v2 v1; do
        n=$((n + 1))
        wait_for loaded || not_ok "wrk is connected before reload $n"
        write_conf "$body"
        reload_and_wait || not_ok "reload $n finished"
    done
    wait_for loaded
    kill -INT "$WRK"
    wait "$WRK"
    REQS=$(awk '/requests in/ {print $1}' "$T_DIR/wrk.$mode")
    if grep -q -e 'Socket errors' -e 'Non-2xx' "$T_DIR/wrk.$mode" || [ "${REQS:-0}" -lt 200 ]; then
        not_ok "4 reloads under $mode load: zero failed requests" "$(cat "$T_DIR/wrk.$mode")"
    else
        ok "4 reloads under $mode load: zero failed requests ($REQS requests)"
    fi
done
expect_eq "the reloaded config serves" "$(curl -s "$URL")" "v1"
NEW=$(workers | paste -sd,)
SAME=$(comm -12 <(echo "$OLD" | tr , '\n' | sort) <(echo "$NEW" | tr , '\n' | sort) | wc -l)
expect_eq "every worker was replaced" "$SAME" "0"
wait_for sh -c "[ \$(pgrep -c -P $PC_PID) -eq 2 ]"
expect_eq "old generations have exited" "$(nworkers)" "2"
# Each of the $n reloads made one new generation.
GEN=$(serving_gen)
check "the log names the new generation ($GEN)" \
    log_has "reload done: generation $((GEN0 + n)) serving with 2 workers"

# A bad config on SIGHUP: error with file:line:col, the old workers keep serving.
write_conf v2
sed -i 's/respond 200/respnd 200/' "$CONF"
BEFORE=$(workers | paste -sd,)
kill -HUP "$PC_PID"
wait_for log_has "reload failed" || not_ok "bad reload logged"
check "bad reload logs file:line:col" \
    log_has "$CONF:5:15: unknown directive 'respnd'; did you mean 'respond'?"
check "bad reload says the old generation keeps serving" \
    log_has "reload failed: configuration has errors; generation $GEN keeps serving"
expect_eq "old config still serves after a bad reload" "$(curl -s "$URL")" "v1"
expect_eq "workers untouched by a bad reload" "$(workers | paste -sd,)" "$BEFORE"

# A reload that cannot listen (port taken by another program) also keeps the old one.
python3 -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $PORT2)); s.listen(1); time.sleep(120)" &
HOLDER=$!
wait_for sh -c "ss -Htln 'sport = :$PORT2' | grep -q ."
write_conf v3 "$PORT2"
kill -HUP "$PC_PID"
wait_for log_has "reload failed: cannot listen" || not_ok "unlistenable reload logged"
check "reload with a taken port fails with the address" \
    log_has "reload failed: cannot listen: 127.0.0.1:$PORT2: address already in use"
check "the failed listen names the generation that keeps serving" \
    log_has "reload failed: cannot listen: 127.0.0.1:$PORT2: .*; generation $GEN keeps serving"
expect_eq "old config still serves after a failed listen" "$(curl -s "$URL")" "v1"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null

# Adding and removing a service's listener.
write_conf v3 "$PORT2"
reload_and_wait || not_ok "reload 9"
expect_eq "a listener added by reload serves" "$(curl -s "http://127.0.0.1:$PORT2/")" "extra"
expect_eq "and the first service too" "$(curl -s "$URL")" "v3"
write_conf v4
reload_and_wait || not_ok "reload 10"
expect_eq "a listener removed by reload is closed" "$(ss -Htln "sport = :$PORT2" | wc -l)" "0"
expect_eq "the remaining service serves" "$(curl -s "$URL")" "v4"
expect_eq "failed reloads made no generation, good ones one each" "$(serving_gen)" "$((GEN + 2))"

# Changing the number of workers.
write_conf v5 "" 1
reload_and_wait || not_ok "reload 11"
wait_for sh -c "[ \$(pgrep -c -P $PC_PID) -eq 1 ]"
expect_eq "reload to 1 worker" "$(nworkers):$(ss -Htln "sport = :$PORT" | wc -l)" "1:1"
write_conf v6 "" 3
reload_and_wait || not_ok "reload 12"
wait_for sh -c "[ \$(pgrep -c -P $PC_PID) -eq 3 ]"
expect_eq "reload to 3 workers" "$(nworkers):$(ss -Htln "sport = :$PORT" | wc -l)" "3:3"
expect_eq "serves after resizing" "$(curl -s "$URL")" "v6"

finish
