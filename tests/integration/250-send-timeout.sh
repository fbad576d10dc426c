#!/bin/bash
# send_timeout: a client that stops taking the response (HTTP/1 over TCP or TLS with its
# socket full, HTTP/2 with a stream window it never opens) is cut after send_timeout and
# logged by its address; a slow but steady reader and a response waiting on its upstream
# are not; with max_connections held by such clients, new clients are served again.
# Over HTTP/2, control frames the server answers (PING) do not keep a shut stream open,
# and the guard leaves every other filter of the route in place (compress, the proxy's
# 504 and its bound on what it buffers).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need_tls
command -v ss >/dev/null || skip_all "ss (iproute2) not installed"
PY=/usr/bin/python3 # Debian's python, for python3-h2
"$PY" -c 'import h2' 2>/dev/null || skip_all "python3-h2 not installed"
STALL="$PY $TOP_SRCDIR/tests/integration/sendstall.py"
D=$T_DIR
mkdir -p "$D/www"
truncate -s 64M "$D/www/big.bin" # sparse: the socket buffers fill long before the end
head -c 3000 /dev/zero >"$D/www/small.bin"
"$PY" -c "print('compress me ' * 500)" >"$D/www/text.txt"
P=$(free_port)
PT=$(free_port)
PP=$(free_port)
UPP=$(free_port)
PPT=$(free_port)
UP2=$(free_port)
"$PY" "$TOP_SRCDIR/tests/integration/upstream.py" "$UP2" U &

# An upstream that sends half of its body, waits 6 s (3 send_timeouts), then the rest.
"$PY" - "$UPP" <<'PY' &
import http.server, socketserver, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(2 * 65536))
        self.end_headers()
        self.wfile.write(b"a" * 65536)
        self.wfile.flush()
        time.sleep(6)
        self.wfile.write(b"b" * 65536)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
# Also after a bail-out: the daemon, the upstream and any client still running.
cleanup() {
    stop_percore
    # shellcheck disable=SC2046
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT

CONF=$D/percore.conf
cat >"$CONF" <<CONF
workers 1;
max_connections 8;
shutdown_timeout 5s;
service dl {
    listen 127.0.0.1:$P;
    listen 127.0.0.1:$PT tls http2;
    $TLS_FILES
    send_timeout 2s;
    route /f/ { files $D/www; }
    route /up/ { proxy http://127.0.0.1:$UPP timeout=30s; }
    route /z/ { files $D/www; compress on; }
    route /late/ { proxy http://127.0.0.1:$UP2 timeout=1s; }
    route / { respond 200 "hello\n"; }
}
service patient {
    listen 127.0.0.1:$PP;
    listen 127.0.0.1:$PPT tls http2;
    $TLS_FILES
    send_timeout 5m;
    route /f/ { files $D/www; }
    route /up/ { proxy http://127.0.0.1:$UP2 buffer_size=1m; }
}
CONF
start_percore "$CONF"
W0=$(workers)
wait_for sh -c "curl -s -o /dev/null http://127.0.0.1:$UPP/" || bail "upstream did not start"
wait_for sh -c "curl -s -o /dev/null http://127.0.0.1:$UP2/" || bail "upstream 2 did not start"

established_to() { # PORT LPORT: the server still has the client's connection
    [ -n "$(ss -Htn state established "( sport = :$1 and dport = :$2 )")" ]
}

# Another service's own, longer send_timeout: this reader is left alone throughout.
$STALL hold "$PP" /f/big.bin plain >"$D/hold" &
HOLD_PID=$!
wait_for test -s "$D/hold" || bail "the holding client did not connect"
HOLD_PORT=$(cat "$D/hold")

# expect_cut NAME RESULT: RESULT is "closed MS ..." (within the client's bound), not
# before send_timeout.
expect_cut() {
    # shellcheck disable=SC2086 # split on purpose
    set -- "$1" $2
    if [ "$2" = closed ] && [ "$3" -ge 1900 ]; then
        ok "$1: cut after ${3} ms"
    else
        not_ok "$1" "got: $2 $3 (wanted: closed after at least 2000 ms, within 20 s)"
    fi
}

# stalled NAME MODE PORT PATH ARG: a sendstall.py client of MODE that stops taking the
# response (given 20 s at most) is cut after send_timeout; R holds its result line.
stalled() {
    R=$($STALL "$2" "$3" "$4" "$5" 20)
    expect_cut "$1" "$R"
}

# 1. HTTP/1 clients that read nothing of a large file: cleartext (sendfile) and TLS.
for tls in plain tls; do
    port=$P
    [ $tls = tls ] && port=$PT
    stalled "HTTP/1 $tls, a client that reads nothing" stall "$port" /f/big.bin $tls
    LP=$(echo "$R" | cut -d' ' -f3)
    check "HTTP/1 $tls: the log names the client" wait_for grep -q \
        "closing connection from 127.0.0.1:$LP: .*send_timeout" "$PC_LOG"
done

# 2. HTTP/2 over TLS, the stream window never opened: shut from the start, or the default
# 64 KiB used up; a large file and one that fits in a single final DATA frame; and shut
# from the start while the client sends a PING every 500 ms (the server's answers are
# bytes written and acknowledged, but no data of the stream).
for c in "zero big" "noupdate big" "zero small" "ping big" "ping small"; do
    # shellcheck disable=SC2086 # split on purpose
    set -- $c
    stalled "HTTP/2, window $1, $2 file" h2 "$PT" "/f/$2.bin" "$1"
    expect_eq "HTTP/2, window $1, $2 file: the response had started" \
        "$(echo "$R" | cut -d' ' -f3)" 200
done
check "HTTP/2: the log names the clients" log_count_at_least \
    "closing connection from 127.0.0.1:[0-9]*: .*send_timeout" 7
check "HTTP/2: the log says a stream's window stayed shut" \
    grep -q "closing connection from 127.0.0.1:[0-9]*: .*stream's window stayed shut" \
    "$PC_LOG"

# 3. Slow but steady readers for 5 timeouts: HTTP/1 at 32 KiB/s through a 16 KiB receive
# buffer, HTTP/2 opening its window at 64 KiB/s; and responses that wait 6 s on their
# upstream mid-body, over HTTP/1 and HTTP/2. With the holding client, these are
# max_connections (8) connections: none waits in the accept queue, where a slow reader
# would see nothing (its reads time out after 5 s) until another connection ends.
$STALL slow "$P" /f/big.bin plain 32768 10 >"$D/slow.plain" &
S1=$!
$STALL slow "$PT" /f/big.bin tls 32768 10 >"$D/slow.tls" &
S2=$!
$STALL h2slow "$PT" /f/big.bin 65536 10 >"$D/slow.h2" &
S3=$!
# The same, and a second stream whose window the client never opens: the connection's
# data flows, but that stream's waits for longer than send_timeout.
$STALL h2slow "$PT" /f/big.bin 65536 10 /f/big.bin >"$D/slow.h2other" &
S4=$!
# Slower than a piece of the file (64 KiB) per send_timeout: each DATA frame is progress.
$STALL h2slow "$PT" /f/big.bin 16384 10 >"$D/slow.h2slower" &
S5=$!
curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$P/up/drip" \
    >"$D/up.h1" &
U1=$!
curl -sk --http2 -o /dev/null -w '%{http_code} %{size_download} %{http_version}' \
    "https://127.0.0.1:$PT/up/drip" >"$D/up.h2" &
U2=$!
wait $S1 $S2 $S3 $S4 $S5 $U1 $U2
for t in plain tls h2; do
    read -r state bytes _ <"$D/slow.$t"
    check "a slow reader over $t is not cut ($state, $bytes bytes in 10 s)" \
        test "$state" = open -a "$bytes" -ge 100000
done
read -r state bytes _ <"$D/slow.h2slower"
check "a slow reader over h2 at 16 KiB/s is not cut ($state, $bytes bytes in 10 s)" \
    test "$state" = open -a "$bytes" -ge 100000
read -r state bytes ms <"$D/slow.h2other"
check "HTTP/2: a reader of one stream that keeps another's window shut is cut ($state \
after ${ms:-?} ms)" test "$state" = closed -a "${ms:-0}" -ge 1900
expect_eq "HTTP/1: a response waiting on its upstream is not cut" "$(cat "$D/up.h1")" \
    "200 131072"
expect_eq "HTTP/2: a response waiting on its upstream is not cut" "$(cat "$D/up.h2")" \
    "200 131072 2"

# 4. Over HTTP/2 as over HTTP/1, the route's other filters apply: compress, and the
# proxy's 504 for an upstream that does not answer in time.
for v in 1.1 2; do
    if [ $v = 2 ]; then U="https://127.0.0.1:$PT"; else U="http://127.0.0.1:$P"; fi
    expect_eq "HTTP/$v: a compress route answers gzip" \
        "$(curl -sk --http$v -H 'Accept-Encoding: gzip' -o /dev/null \
            -w '%{http_version} %{header_json}' "$U/z/text.txt" |
            "$PY" -c 'import json, sys; v, h = sys.stdin.read().split(" ", 1)
print(v, json.loads(h).get("content-encoding"))')" "$v ['gzip']"
    expect_eq "HTTP/$v: an upstream that does not answer within the timeout is a 504" \
        "$(curl -sk --http$v -o /dev/null -w '%{http_version} %{http_code}' "$U/late/hang")" \
        "$v 504"
done

# 5. An HTTP/2 stream whose window stays shut (on a service with a long send_timeout) on a
# 64 MiB proxied body: percore stops reading the upstream near buffer_size, and buffers
# nothing in a temp file.
$STALL h2hold "$PPT" "/up/big?mib=64" >"$D/h2hold" &
H2HOLD=$!
check "HTTP/2 zero window: the proxied response started" wait_for test -s "$D/h2hold"
upstream_sent() { # prints "SENT DONE"
    curl -s -m 10 "http://127.0.0.1:$UP2/sent" |
        "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(d["sent"], d["done"])'
}
# Until the upstream made no progress for 2 s (it blocks on a full socket), or is done.
last=-1
since=$(date +%s%N)
for _ in $(seq 300); do
    read -r sent ended < <(upstream_sent)
    [ "$ended" = 1 ] && break
    if [ "$sent" != "$last" ]; then
        last=$sent
        since=$(date +%s%N)
    elif [ $(($(date +%s%N) - since)) -gt 2000000000 ]; then
        break
    fi
    sleep 0.2
done
check "HTTP/2 zero window: the upstream was read far from the end ($((sent >> 20)) MiB)" \
    test "$ended" = 0 -a "$sent" -lt $((24 << 20))
W=$(workers)
# shellcheck disable=SC2010 # what is grepped is where each fd points, not a file name
expect_eq "HTTP/2 zero window: no temp file for the response" \
    "$(ls -l "/proc/$W/fd" | grep -c 'h2o\.b\.')" 0
kill "$H2HOLD"
wait "$H2HOLD" 2>/dev/null

# 6. max_connections (8) filled by the holding client and seven that read nothing: a new
# client waits, and is served once send_timeout has cut them.
N0=$(grep -c "closing connection from" "$PC_LOG")
PIDS=
for m in "stall $P plain" "stall $P plain" "stall $P plain" "stall $PT tls" "stall $PT tls" \
    "h2 $PT zero" "h2 $PT noupdate"; do
    # shellcheck disable=SC2086 # split on purpose
    set -- $m
    $STALL "$1" "$2" /f/big.bin "$3" 30 >/dev/null &
    PIDS="$PIDS $!"
done
filled() {
    [ "$(ss -Htn state established "( sport = :$P or sport = :$PT or sport = :$PP )" |
        wc -l)" -ge 8 ]
}
check "eight connections fill the worker" wait_for filled
expect_eq "a new client is served once send_timeout cut the stalled ones" \
    "$(curl -s -m 30 "http://127.0.0.1:$P/")" "hello"
check "the seven stalled clients were cut" \
    wait_for log_count_at_least "closing connection from" $((N0 + 7))
# shellcheck disable=SC2086 # split on purpose
wait $PIDS

check "the other service's reader, stalled all along, is still connected" \
    established_to "$PP" "$HOLD_PORT"
kill "$HOLD_PID"
wait "$HOLD_PID" 2>/dev/null

expect_eq "no worker was lost" "$(worker_ends)" "0"
expect_eq "the worker is still the first one" "$(workers)" "$W0"
expect_eq "no sanitizer report" "$(grep -c 'runtime error\|Sanitizer' "$PC_LOG")" "0"
finish
