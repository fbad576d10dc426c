#!/bin/bash
# HTTP/2 over TLS, opt-in per listen or service: ALPN h2 only where asked, real clients
# (curl, h2load), sessions resuming across a service's h2 and http/1.1 listens, and the
# reset guard: a Rapid Reset or MadeYouReset client is cut off after http2_max_resets,
# whichever way it gets its streams cancelled, before its requests reach an upstream,
# while the same attack against a service with a huge budget runs every stream and
# legitimate clients with thousands of requests on one connection are never cut.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need_tls
command -v cc >/dev/null || skip_all "no C compiler to build the test module"
# The attack client needs Debian's python3-h2, for Debian's own python.
H2PY=/usr/bin/python3
"$H2PY" -c 'import h2' 2>/dev/null || skip_all "python3-h2 not installed"
D=$T_DIR
MOD=$D/hello.so
cc -shared -fPIC -Wall -Werror -I"$TOP_SRCDIR/include" -o "$MOD" \
    "$TOP_SRCDIR/tests/modules/hello.c" || bail "cannot build the test module"
head -c 100000 /dev/urandom >"$D/big.bin"
head -c 40000 /dev/urandom >"$D/body.bin"
UP="$(dirname "$0")/upstream.py"
UPP=$(free_port)
python3 "$UP" "$UPP" U 2>"$D/upstream.err" & UPID=$!
cleanup_up() { kill "$UPID" 2>/dev/null; wait "$UPID" 2>/dev/null; }
trap cleanup_up EXIT
wait_for curl -sf -o /dev/null "http://127.0.0.1:$UPP/stats" || bail "the upstream did not start"
H2=$(free_port)
H1=$(free_port)
LOOSE=$(free_port)
CONF=$D/percore.conf
cat >"$CONF" <<CONF
workers 1;
shutdown_timeout 5s;
service a {
    listen 127.0.0.1:$H2 tls http2;
    listen 127.0.0.1:$H1 tls;
    $TLS_FILES
    http2_max_resets 50;
    route / { respond 200 "a\n"; }
    route /m/ { module $MOD; }
    route /f/ { files $D; }
    route /up/ { proxy http://127.0.0.1:$UPP/; }
}
service loose {
    listen 127.0.0.1:$LOOSE tls;
    http2 on;
    http2_max_resets 1000000;
    $TLS_FILES
    route /m/ { module $MOD; }
}
CONF
start_percore "$CONF"
A=https://127.0.0.1:$H2
W0=$(workers)

expect_eq "curl --http2 gets HTTP/2 where the listen says http2" \
    "$(curl -sk --http2 -o /dev/null -w '%{http_version}' "$A/")" "2"
expect_eq "the service's other tls listen offers http/1.1 only" \
    "$(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$H1/")" "1.1"
expect_eq "'http2 on' in a service turns it on for its tls listens" \
    "$(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$LOOSE/m/x")" "2"
expect_eq "HTTP/1.1 still works on an http2 listen" \
    "$(curl -sk --http1.1 -o /dev/null -w '%{http_version}' "$A/")" "1.1"
expect_eq "a file over HTTP/2, whole" \
    "$(curl -sk --http2 "$A/f/big.bin" | cmp - "$D/big.bin" && echo same)" "same"
expect_eq "a byte range over HTTP/2" \
    "$(curl -sk --http2 -r 1000-1999 -o /dev/null -w '%{http_code} %{size_download}' "$A/f/big.bin")" \
    "206 1000"
if command -v h2load >/dev/null; then
    h2load -n 4000 -c 8 -m 10 "$A/" >"$D/h2load" 2>&1
    check "h2load: 4000 requests over 8 connections, none failed" \
        grep -q "4000 succeeded, 0 failed, 0 errored" "$D/h2load"
    h2load -n 400 -c 4 -m 10 "$A/m/slow" >"$D/h2load" 2>&1
    check "h2load: 400 deferred module answers, none failed" \
        grep -q "400 succeeded, 0 failed, 0 errored" "$D/h2load"
    h2load -n 3000 -c 1 -m 100 "$A/up/x" >"$D/h2load" 2>&1
    check "h2load: 3000 proxied requests on one connection, 100 at a time, none cut" \
        grep -q "3000 succeeded, 0 failed, 0 errored" "$D/h2load"
    h2load -n 2000 -c 1 -m 50 -d "$D/body.bin" "$A/" >"$D/h2load" 2>&1
    check "h2load: 2000 uploads of 40 KB on one connection, none cut" \
        grep -q "2000 succeeded, 0 failed, 0 errored" "$D/h2load"
else
    not_ok "h2load (nghttp2-client) is not installed"
fi

# A session from the http/1.1 listen resumes on the h2 one: one service, one set of keys.
tls_session "$D/sess" "$H1"
expect_eq "a session resumes across the service's h2 and http/1.1 listens" \
    "$(resumed "$D/sess" "$H2" -alpn h2)" "1"

# calls URL: how many times this worker's module instance has been called (one call more).
calls() {
    curl -sk "$1" | sed -n 's/.* served=\([0-9]*\)$/\1/p'
}

# attack PORT MODE PAIRS: run the attack client against /m/slow, a deferred handler; sets
# CLOSED (whether the server closed the connection) and RAN (handler runs it caused).
attack() {
    local url=https://127.0.0.1:$1/m/x before out
    before=$(calls "$url")
    out=$("$H2PY" "$TOP_SRCDIR/tests/integration/h2attack.py" "$1" /m/slow "$2" "$3")
    RAN=$(( $(calls "$url") - before - 1 ))
    CLOSED=$(echo "$out" | sed -n 's/.*"closed": \([a-z]*\).*/\1/p')
}

# Rapid Reset: streams cancelled by the client at once.
attack "$H2" rst 3000
expect_eq "Rapid Reset: the server closes the connection" "$CLOSED" true
check "Rapid Reset: at most 2 x http2_max_resets streams ran, not 3000 ($RAN)" \
    test "$RAN" -le 100
check "the guard logs the peer and the limit" \
    grep -q "closing HTTP/2 connection from 127.0.0.1:[0-9]*: [0-9]* stream resets, more than http2_max_resets 50 per 10s" "$PC_LOG"

# MadeYouReset: the client makes the server reset its streams (WINDOW_UPDATE of 0).
attack "$H2" zero 3000
expect_eq "MadeYouReset: the server closes the connection" "$CLOSED" true
check "MadeYouReset: at most 2 x http2_max_resets streams ran, not 3000 ($RAN)" \
    test "$RAN" -le 100

# Every way of getting a started request cancelled, 2000 streams on one connection to a
# proxy route: the upstream sees at most the budget plus the 100 streams that run at once
# (not 400-1400 connections), and the guard closes the connection naming the peer.
accepted() {
    curl -s "http://127.0.0.1:$UPP/stats" | sed -n 's/.*"accepted": \([0-9]*\).*/\1/p'
}
# The upstream's count once it has stopped growing (bounded).
settled() {
    local a b
    a=$(accepted)
    for _ in $(seq 1 50); do
        sleep 0.2
        b=$(accepted)
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$a"
}
for spelling in rst:resets zero:resets overflow:resets data:resets refused:resets \
    clen:resets stall:resets "headers:HEADERS on a closed stream" \
    "prio:a stream that depends on itself"; do
    mode=${spelling%%:*}
    why=${spelling#*:}
    [ "$why" = resets ] && why="[0-9]* stream resets, more than http2_max_resets 50 per 10s"
    before=$(settled)
    out=$("$H2PY" "$TOP_SRCDIR/tests/integration/h2attack.py" "$H2" /up/hang "$mode" 2000)
    port=$(echo "$out" | sed -n 's/.*"port": \([0-9]*\).*/\1/p')
    expect_eq "$mode: the server closes the connection" \
        "$(echo "$out" | sed -n 's/.*"closed": \([a-z]*\).*/\1/p')" true
    check "$mode: the guard says why, naming the peer" wait_for \
        grep -q "closing HTTP/2 connection from 127.0.0.1:$port: $why" "$PC_LOG"
    n=$(( $(settled) - before ))
    check "$mode: the upstream got $n connections of 2000 streams, at most 50 + 100" \
        test "$n" -le 150
done

# The same attack where the budget is huge: every stream runs its handler.
attack "$LOOSE" rst 1000
expect_eq "without a budget the connection stays open" "$CLOSED" false
check "without a budget the streams all ran ($RAN of 1000)" test "$RAN" -ge 950

expect_eq "after the attacks the worker still serves HTTP/2" \
    "$(curl -sk --http2 -w ' %{http_version}' "$A/")" "a
 2"
expect_eq "no worker was lost" "$(worker_ends)" "0"
expect_eq "the worker is still the first one" "$(workers)" "$W0"

# A reload drains the worker (shutdown_timeout 5s): a connection's final GOAWAY is followed
# by a lingering close, so what the client sends after it meets no reset; a connection whose
# handshake ends after that GOAWAY is told to go away too, in the same two steps (no new
# streams, then a second later the last stream served), not served until the timeout.
out=$("$H2PY" "$TOP_SRCDIR/tests/integration/h2drain.py" "$H2" "$PC_PID" 2>&1)
check "drain: the open connection gets the final GOAWAY ($out)" \
    grep -q '"a_final_goaway": true' <<<"$out"
check "drain: bytes sent after it meet a clean close, not a reset" \
    grep -q '"a_end": "eof"' <<<"$out"
check "drain: a connection whose handshake ends later is asked for no new streams" \
    grep -q '"b_goaways": \[2147483647, [0-9]' <<<"$out"
check "drain: ... then gets the final GOAWAY and is closed cleanly" \
    grep -q '"b_end": "eof"' <<<"$out"
B_LAST=$(sed -n 's/.*"b_goaways": \[2147483647, \([0-9]*\).*/\1/p' <<<"$out")
if [ "${B_LAST:-0}" -ge 1 ]; then
    check "drain: its request, below the final GOAWAY's last stream, was answered" \
        grep -q '"b_answered": \[1\]' <<<"$out"
else
    ok "drain: its request came after the final GOAWAY (last stream 0) and was refused"
fi
wait_for log_has "reload done" || not_ok "the reload finished"
# A stop lets streams in flight finish (GOAWAY, then drain).
if command -v h2load >/dev/null; then
    h2load -n 40 -c 2 -m 20 "$A/m/slow" >"$D/h2drain" 2>&1 &
    H2L=$!
    sleep 0.15
    stop_percore
    wait "$H2L"
    check "streams in flight when stopping all complete" \
        grep -q "40 succeeded, 0 failed, 0 errored" "$D/h2drain"
fi
stop_percore
cleanup_up

# Config errors, with their position.
printf 'service c {\n    listen 127.0.0.1:%s http2;\n    route / { respond 200; }\n}\n' "$H2" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "http2 without tls is refused with the reason" \
    grep -q "$CONF:2:28: 'http2' needs 'tls': percore serves HTTP/2 over TLS only" "$D/out"
printf 'service c {\n    listen 127.0.0.1:%s;\n    http2 on;\n    route / { respond 200; }\n}\n' "$H2" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "'http2 on' without a tls listen is refused" \
    grep -q "$CONF:3:5: 'http2 on' in service 'c' needs a 'listen ... tls'" "$D/out"
printf 'service c {\n    listen 127.0.0.1:%s tls bogus;\n    route / { respond 200; }\n}\n' "$H2" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$D/out" 2>&1
check "an unknown listen option names the choices" \
    grep -q "$CONF:2:32: unknown listen option 'bogus': expected 'tls', 'http2', 'default' or 'proxy_protocol'" "$D/out"

finish
