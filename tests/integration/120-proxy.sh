#!/bin/bash
# Reverse proxy: round robin and least connections over keep-alive pools, path and
# Location rewriting, forwarding headers, failover when an upstream dies, 502 when none
# answers, the upstream and connect timeouts, unix-socket upstreams.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

UP="$(dirname "$0")/upstream.py"
PA=$(free_port)
PB=$(free_port)
PH=$(free_port)
PORT=$(free_port)
SOCK=$T_DIR/up.sock
# A black hole: it listens, but its backlog is full, so new connections never complete.
python3 - "$PH" <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket()
s.bind(("127.0.0.1", port))
s.listen(0)
fill = []
for _ in range(4):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(c)
time.sleep(600)  # stopped by the test's cleanup
PY
UH=$!
python3 "$UP" "$PA" A & UA=$!
python3 "$UP" "$PB" B & UB=$!
python3 "$UP" "unix:$SOCK" U & UU=$!
wait_for sh -c "curl -s http://127.0.0.1:$PA/ >/dev/null && curl -s http://127.0.0.1:$PB/ >/dev/null && test -S $SOCK" ||
    bail "upstreams did not start"
# The black hole holds once a connection to it is stuck in SYN-SENT: its queue is full.
black_hole() { ss -Htn state syn-sent "( dport = :$PH )" | grep -q .; }
wait_for black_hole || bail "the black-hole upstream is not full"
cleanup_up() { kill "$UA" "$UB" "$UU" "$UH" 2>/dev/null; wait "$UA" "$UB" "$UU" "$UH" 2>/dev/null; }

CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 1;
service s {
    listen 127.0.0.1:$PORT;
    route /api/ { proxy http://127.0.0.1:$PA/v1/ http://127.0.0.1:$PB/v1/ timeout=1s; }
    route /keep/ { proxy http://127.0.0.1:$PA/v1/ preserve_host; }
    route /lc/ { proxy http://127.0.0.1:$PA/v1/ http://127.0.0.1:$PB/v1/ least_conn; }
    route /unix/ { proxy unix:$SOCK; }
    # Not A or B: the timeouts on /api/ may have taken either out for 10 s.
    route /bh/ { proxy http://127.0.0.1:$PH/ unix:$SOCK connect_timeout=500ms; }
    route /bhonly/ { proxy http://127.0.0.1:$PH/ connect_timeout=500ms; }
    route /short/ { proxy http://127.0.0.1:$PA/v1/ timeout=300ms; }
}
CONF
start_percore "$CONF"
URL=http://127.0.0.1:$PORT
j() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

NAMES=$(for _ in 1 2 3 4; do curl -s "$URL/api/x" | j name; done | tr -d '\n')
expect_eq "round robin over two upstreams" "$NAMES" "ABAB"
expect_eq "prefix rewritten onto the upstream path, query kept" \
    "$(curl -s "$URL/api/a/b?q=1" | j path)" "/v1/a/b?q=1"
expect_eq "Host is the upstream's by default" "$(curl -s "$URL/lc/" | j host | sed 's/:.*//')" "127.0.0.1"
expect_eq "preserve_host keeps the client's Host" \
    "$(curl -s -H 'Host: www.example.test' "$URL/keep/" | j host)" "www.example.test"
expect_eq "one Server header, percore's: the upstream's software is not named" \
    "$(curl -s -D - -o /dev/null "$URL/api/" | tr -d '\r' | grep -i '^server:')" "Server: percore"
expect_eq "X-Forwarded-For" "$(curl -s "$URL/api/" | j xff)" "127.0.0.1"
expect_eq "X-Forwarded-Proto" "$(curl -s "$URL/api/" | j xfp)" "http"
expect_eq "Forwarded (RFC 7239)" "$(curl -s "$URL/api/" | j fwd)" \
    "for=127.0.0.1;proto=http;host=\"127.0.0.1:$PORT\""
expect_eq "Location from the upstream is rewritten to the route" \
    "$(curl -s -o /dev/null -w '%{redirect_url}' "$URL/api/redir")" "$URL/api/new"
# An empty Host would make it "http:///api/new", which browsers take for host "api".
expect_eq "with an empty Host, the rewritten Location is a path" \
    "$(curl -s -D - -o /dev/null -H 'Host;' "$URL/api/redir" | tr -d '\r' |
        sed -n 's/^location: //Ip')" "/api/new"
# The body ends with the upstream's close, and with it the HTTP/1.0 client's connection.
BEFORE=$(workers)
expect_eq "an HTTP/1.0 client gets a body that ends with the upstream's close" \
    "$(curl -s -0 "$URL/api/tillclose")" "till the close"
expect_eq "and the same worker serves on" "$(curl -s "$URL/unix/u" | j name) $(workers)" \
    "U $BEFORE"
# HTTP/1.0 has no chunking: asked for keep-alive, a body of unknown length must end with
# the close, said so in the head, or the client cannot tell where it ends.
got=$(python3 - "$PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
s.sendall(b"GET /api/tillclose HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
d = b""
try:
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
except socket.timeout:
    d += b"<OPEN>"
print("close" if b"\r\nConnection: close\r\n" in d else "keep-alive",
      "<OPEN>" if d.endswith(b"<OPEN>") else "<EOF>")
PY
)
expect_eq "HTTP/1.0 keep-alive, a body of unknown length: Connection: close, then closed" \
    "$got" "close <EOF>"
expect_eq "unix-socket upstream" "$(curl -s "$URL/unix/u" | j name)" "U"
expect_eq "least_conn serves" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/lc/")" "200"
for _ in $(seq 1 50); do curl -s -o /dev/null "$URL/unix/k"; done
check "keep-alive pool: 50 requests over few upstream connections ($(curl -s "$URL/unix/c" | j conns))" \
    [ "$(curl -s "$URL/unix/c" | j conns)" -le 5 ]

T0=$(date +%s%N)
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/hang")
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "an upstream that does not answer: 504 after the timeout ($CODE in $MS ms)" \
    [ "$MS" -lt 5000 -a "$MS" -ge 900 -a "$CODE" = 504 ]
check "the worker log names the request and the reason" log_has "GET /api/hang: I/O timeout"

# 100 timeouts at once (one curl process, so that a loaded machine cannot spread the
# burst over seconds): 20 lines a second, and lines that count the others.
curl -s -Z --parallel-max 100 -m 5 "$URL/short/[1-100]/hang" >/dev/null
# lines_and_dropped: request-error lines logged, and those only counted.
lines_and_dropped() {
    LINES=$(grep -c 'GET /short/[0-9]*/hang: I/O timeout' "$PC_LOG")
    DROPPED=$(sed -n 's/.* \([0-9]*\) more request errors not logged.*/\1/p' "$PC_LOG" |
        awk '{ n += $1 } END { print n + 0 }')
    [ $((LINES + DROPPED)) -ge 100 ]
}
wait_for lines_and_dropped
check "a burst of 100 request errors: at most 20 lines a second ($LINES)" [ "$LINES" -lt 100 ]
expect_eq "the lines and the counted others make 100" "$((LINES + DROPPED))" "100"

T0=$(date +%s%N)
NAME=$(curl -s -m 5 "$URL/bh/x" | j name)
MS1=$(( ($(date +%s%N) - T0) / 1000000 ))
expect_eq "an upstream that never accepts: the next one answers" "$NAME" "U"
check "after connect_timeout ($MS1 ms)" [ "$MS1" -ge 450 -a "$MS1" -lt 3000 ]
T0=$(date +%s%N)
curl -s -o /dev/null -m 5 "$URL/bh/x"
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
# The same answer without the 500 ms wait (as a difference: a loaded machine is slow).
check "then it is skipped: no wait ($MS ms, the first $MS1 ms)" [ "$MS" -lt $((MS1 - 350)) ]
expect_eq "when it is the only one: 504" "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$URL/bhonly/")" "504"

# An upstream dies: every request still succeeds on the other one.
kill "$UA"
wait "$UA" 2>/dev/null
FAILS=0
for _ in $(seq 1 20); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/x")" = 200 ] || FAILS=$((FAILS + 1))
done
expect_eq "an upstream that died: 20 requests, no failure" "$FAILS" "0"
expect_eq "they all went to the live one" "$(curl -s "$URL/api/x" | j name)" "B"
# (It may be skipped already: its /hang timed out above, which counts as a failure.)
check "the log says the dead upstream is skipped" \
    grep -Eq "upstream 'proxy' server 'http://127.0.0.1:$PA' is down for 10 s: 1 failed request within 10 s \(the last: (cannot connect|no response in time)\)" "$PC_LOG"
kill "$UB"
wait "$UB" 2>/dev/null
expect_eq "no upstream answers: 502" \
    "$(curl -s -w ' %{http_code}' "$URL/api/x")" "no upstream answered
 502"
expect_eq "other routes still serve" "$(curl -s "$URL/unix/u" | j name)" "U"
cleanup_up

printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { proxy ftp://x/; }\n}\n' "$PORT" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a bad upstream URL is a config error at its position" \
    grep -q "$CONF:3:21: invalid upstream 'ftp://x/': expected http(s)://HOST:PORT\[/PATH\] or unix:/PATH" "$T_DIR/out"

finish
