#!/bin/bash
# JSON access logs: one object per request with the request ID, trace ID, client,
# service, route, request, status, bytes, duration and the upstream attempt's address,
# status and times; null for what does not apply. Every line is valid JSON in valid UTF-8
# whatever bytes the client sent, over HTTP/1.1 and HTTP/2, long values are cut, a request
# refused before it was read is logged in the same form, and fields= picks and orders.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
HOSTILE="$(dirname "$0")/hostile_req.py"
UP_PID=
cleanup() {
    stop_percore
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT
command -v jq >/dev/null || bail "jq is not installed"

PORT=$(free_port)
TLS=$(free_port)
SUB=$(free_port)
UP=$(free_port)
DEAD=$(free_port) # nothing listens there
python3 "$ECHO" "$UP" U &
UP_PID=$!
wait_for curl -sf -o /dev/null "http://127.0.0.1:$UP/" || bail "the upstream did not start"
self_signed_cert localhost "$T_DIR/cert.pem" "$T_DIR/key.pem" || bail "no certificate"

LOG=$T_DIR/access.json
SUBLOG=$T_DIR/sub.json
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
request_id on;
tracing { }
service j {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TLS tls http2;
    tls_certificate $T_DIR/cert.pem;
    tls_key $T_DIR/key.pem;
    access_log $LOG format=json;
    route = /hello { respond 200 "hello\n"; }
    route /up/ { proxy http://127.0.0.1:$UP/; }
    route /dead/ { proxy http://127.0.0.1:$DEAD/; }
}
service sub {
    listen 127.0.0.1:$SUB;
    access_log $SUBLOG fields=status,method,request_id,path;
    route / { respond 204; }
}
CONF
start_percore "$CONF"
URL=http://127.0.0.1:$PORT
lines_at_least() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
# line UA: the log line of the request sent with that User-Agent.
line() { jq -c --arg ua "$1" 'select(.user_agent == $ua)' "$LOG"; }
# val UA JQ-EXPR: EXPR over that line, compact.
val() { jq -c --arg ua "$1" "select(.user_agent == \$ua) | $2" "$LOG"; }

TRACE=4bf92f3577b34da6a3ce929d0e0e4736
RID=$(curl -s -D - -o /dev/null -A t-hello -e 'http://ref.example/' \
    -H "traceparent: 00-$TRACE-00f067aa0ba902b7-01" "$URL/hello?x=1" |
    tr -d '\r' | sed -n 's/^x-request-id: //Ip')
curl -s -o /dev/null -A t-404 "$URL/nothing/here"
# Two requests on one connection: the second finds the upstream connection kept.
curl -s -o /dev/null -o /dev/null -A t-up "$URL/up/a" "$URL/up/b"
curl -s -o /dev/null -A t-up503 "$URL/up/status/503"
curl -s -o /dev/null -A t-dead "$URL/dead/x"
wait_for lines_at_least "$LOG" 6
expect_eq "one line per request" "$(wc -l <"$LOG")" "6"

val_eq() { # NAME UA JQ-EXPR WANT
    expect_eq "$1" "$(val "$2" "$3")" "$4"
}
val_eq "a 200: its request, status and body bytes" t-hello \
    '[.client, .service, .route, .method, .path, .protocol, .host, .status, .bytes, .referer]' \
    "[\"127.0.0.1\",\"j\",\"= /hello\",\"GET\",\"/hello?x=1\",\"HTTP/1.1\",\"127.0.0.1:$PORT\",200,6,\"http://ref.example/\"]"
check "the request ID is the one in the response ($RID)" \
    test "$(val t-hello .request_id)" = "\"$RID\"" -a -n "$RID"
val_eq "the trace ID is the caller's" t-hello .trace_id "\"$TRACE\""
check "the time is RFC 3339 in UTC with milliseconds" grep -Eq \
    '"time":"20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{3}Z",' "$LOG"
check "the time is now, give or take a minute" test \
    "$(val t-hello '.time | sub("\\.[0-9]+Z$"; "Z") | fromdate | . - now | fabs < 60')" = true
check "the duration is seconds with microseconds" grep -Eq '"duration":[0-9]+\.[0-9]{6},' "$LOG"
val_eq "no upstream: upstream fields are null" t-hello \
    '[.upstream_addr, .upstream_status, .upstream_connect_time, .upstream_header_time, .upstream_time, .upstream_attempts, .error]' \
    '[null,null,null,null,null,null,null]'
val_eq "a 404: no route" t-404 '[.status, .route, .path]' '[404,null,"/nothing/here"]'

UPS=$(line t-up)
expect_eq "proxied: the upstream's address, status and one attempt" \
    "$(jq -c '[.status, .route, .upstream_addr, .upstream_status, .upstream_attempts]' <<<"$UPS" | sort -u)" \
    "[200,\"/up/\",\"http://127.0.0.1:$UP/\",200,1]"
expect_eq "proxied: connect, header and total times are numbers, in order" \
    "$(jq -c '[.upstream_connect_time, .upstream_header_time, .upstream_time, .duration] | map(type == "number" and . >= 0) | all' <<<"$UPS" | sort -u)" \
    "true"
expect_eq "proxied: the upstream's time is within the request's" \
    "$(jq -c '.upstream_time <= .duration and .upstream_header_time <= .upstream_time' <<<"$UPS" | sort -u)" "true"
expect_eq "proxied: a kept upstream connection took 0 to connect" \
    "$(jq -c 'select(.path == "/up/b") | .upstream_connect_time' <<<"$UPS")" "0"
val_eq "the upstream's own 503" t-up503 '[.status, .upstream_status]' '[503,503]'
val_eq "a failed upstream: 502, no upstream status or times, one attempt" t-dead \
    '[.status, .upstream_addr, .upstream_status, .upstream_connect_time, .upstream_header_time, .upstream_time, .upstream_attempts]' \
    "[502,\"http://127.0.0.1:$DEAD/\",null,null,null,null,1]"
val_eq "a failed upstream: the error names it" t-dead \
    ".error | test(\"upstream http://127.0.0.1:$DEAD/\")" true

# Hostile bytes in the target, User-Agent and Referer over HTTP/1.1: lone and overlong
# bytes, a surrogate, quotes and backslashes, the text \u0000; long values.
H1=$(python3 "$HOSTILE" h1 "$PORT" \
    'GET /h1/\xff\xc0\x80\xed\xa0\x80"\\u0000\xe2\x82 HTTP/1.1\r\nHost: h\xffst\r\nUser-Agent: t-h1 \xff"\\\xc0\x80\xed\xa0\x80\\u0000\r\nReferer: r\xf0\x9f\x98\x80\xe2\x80\xa8\xc2\x85\r\nConnection: close\r\n\r\n')
expect_eq "HTTP/1.1 hostile request answered (400: its Host is no host name)" "$H1" "400"
LONGPATH=$(printf '\\xff%.0s' $(seq 1 3000))
LONGUA=$(printf 'A%.0s' $(seq 1 6000))
LONG=$(python3 "$HOSTILE" h1 "$PORT" \
    "GET /long/$LONGPATH HTTP/1.1\r\nHost: h\r\nUser-Agent: t-long$LONGUA\r\nConnection: close\r\n\r\n")
expect_eq "a request with long values answered" "$LONG" "404"
# HTTP/1.0 without a Host: none is logged, not the one libh2o puts in.
NOHOST=$(python3 "$HOSTILE" h1 "$PORT" 'GET /hello HTTP/1.0\r\nUser-Agent: t-nohost\r\n\r\n')
expect_eq "an HTTP/1.0 request without Host answered" "$NOHOST" "200"
# A control byte in the request line: libh2o's parser refuses it before any route.
REFUSED=$(python3 "$HOSTILE" h1 "$PORT" 'GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n')
expect_eq "a request line with a control byte is refused" "$REFUSED" "400"
# HTTP/2 lets a client send any byte, newlines and NULs included.
# shellcheck disable=SC1003 # the backslashes are Python's escapes
H2=$(python3 "$HOSTILE" h2 "$TLS" '/h2/\xff\x01\x00\n"\\' user-agent 't-h2\nx\r\x00\xc0\x80' \
    referer '\\u0000\x7f\xc2\x9b')
H2OK=$(python3 "$HOSTILE" h2 "$TLS" '/h2/\xf0\x9f\x98\x80\xf4\x90\x80\x80' user-agent 't-h2ok')
expect_eq "HTTP/2 requests answered (control bytes refused, the other not found)" "$H2 $H2OK" \
    "400 404"
wait_for lines_at_least "$LOG" 12
expect_eq "a line for each" "$(wc -l <"$LOG")" "12"

jq_all() { jq -e . "$1" >/dev/null; }
check "every line parses with jq" jq_all "$LOG"
check "every line is one JSON object in strict UTF-8" python3 -c "
import json, sys
for raw in open(sys.argv[1], 'rb'):
    assert raw.endswith(b'\n') and raw.count(b'\n') == 1
    assert isinstance(json.loads(raw.decode('utf-8', errors='strict')), dict)
" "$LOG"
check "no line is longer than 24 KiB" sh -c "! awk 'length > 24576' '$LOG' | grep -q ."
raw_has() { grep -Fq -- "$1" "$LOG"; }
# shellcheck disable=SC1003 # the backslashes are JSON's
check "HTTP/1.1 path: invalid bytes as \\u00XX, quote and backslash escaped" raw_has \
    '"path":"/h1/\u00ff\u00c0\u0080\u00ed\u00a0\u0080\"\\u0000\u00e2\u0082"'
check "HTTP/1.1 host" raw_has '"host":"h\u00ffst"'
check "HTTP/1.1 user agent" raw_has \
    '"user_agent":"t-h1 \u00ff\"\\\u00c0\u0080\u00ed\u00a0\u0080\\u0000"'
check "HTTP/1.1 referer: valid UTF-8 kept, U+2028 and C1 controls escaped" raw_has \
    '"referer":"r😀\u2028\u0085"'
check "HTTP/2 path: control bytes, NUL and newline escaped" raw_has \
    '"path":"/h2/\u00ff\u0001\u0000\u000a\"\\","protocol":"HTTP/2","host":"h2.test"'
check "HTTP/2 user agent" raw_has '"user_agent":"t-h2\u000ax\u000d\u0000\u00c0\u0080"'
check "HTTP/2 referer" raw_has '"referer":"\\u0000\u007f\u009b"'
val_eq "no Host: host is null" t-nohost '[.protocol, .host]' '["HTTP/1.0",null]'
check "HTTP/2: a code point above U+10FFFF is bytes" raw_has \
    '"path":"/h2/😀\u00f4\u0090\u0080\u0080"'
expect_eq "a long path is cut at 1024 bytes (6 + 1018 escaped)" \
    "$(jq -c 'select(.path | startswith("/long/")) | [(.path | length), (.path | endswith("\u00ff"))]' "$LOG")" \
    "[1024,true]"
expect_eq "a long user agent is cut at 256 bytes" \
    "$(jq -c 'select(.path | startswith("/long/")) | .user_agent | length' "$LOG")" "256"
expect_eq "the refused request: the same form, with what is known" \
    "$(jq -c 'select(.request_id == null) | [.client, .service, .status, .bytes, .method, .path, .route, .duration]' "$LOG")" \
    '["127.0.0.1","j",400,11,null,null,null,null]'

# fields= picks and orders.
curl -s -o /dev/null "http://127.0.0.1:$SUB/s?q"
wait_for lines_at_least "$SUBLOG" 1
expect_eq "fields= gives those fields in that order" \
    "$(jq -c '[keys_unsorted, .status, .method, .path]' "$SUBLOG")" \
    '[["status","method","request_id","path"],204,"GET","/s?q"]'
check "with a request ID" grep -Eq '"request_id":"[0-9a-f]{32}"' "$SUBLOG"
stop_percore

# An unknown field is an error at its place, naming the known ones.
sed -i "s|access_log $SUBLOG fields=status,method,request_id,path;|access_log $SUBLOG fields=status,staus;|" "$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "an unknown field is a config error at its position" grep -q \
    "$CONF:16:$((16 + ${#SUBLOG} + 1 + 14)): unknown access_log field 'staus'; known fields: time, request_id, trace_id, client," \
    "$T_DIR/out"

finish
