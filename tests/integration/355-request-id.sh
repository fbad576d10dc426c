#!/bin/bash
# Request IDs and W3C trace context: an ID per request, sent upstream, to FastCGI and back
# to the client, taken from a trusted proxy only and only if printable; traceparent kept
# when valid (from those accept_parent allows), replaced when malformed in any spelling,
# never forwarded as the client wrote it; each upstream attempt a child span of
# percore's; error lines naming the request.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
PU=$(free_port)
P_T=$(free_port)
P_U=$(free_port)
P_OFF=$(free_port)
P_H2=$(free_port)
need_tls
FSOCK=$T_DIR/fcgi.sock
python3 "$ECHO" "$PU" A & UA=$!
python3 "$(dirname "$0")/fcgi_app.py" "unix:$FSOCK" & UF=$!
cleanup_up() { kill "$UA" "$UF" 2>/dev/null; wait "$UA" "$UF" 2>/dev/null; }
wait_for sh -c "curl -s http://127.0.0.1:$PU/ >/dev/null && test -S $FSOCK" ||
    { cleanup_up; bail "upstreams did not start"; }

CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
request_id on;
tracing { sample 100%; accept_parent trusted; }
service trusting {
    listen 127.0.0.1:$P_T;
    trusted_proxies 127.0.0.1/32;
    proxy_header X-Seen-Id \$request_id;
    route /up/ { proxy http://127.0.0.1:$PU/; }
    route /fcgi/ { fastcgi unix:$FSOCK; }
    route /dead/ { proxy http://127.0.0.1:1/; }
    route / { header X-Echo-Id \$request_id; respond 200 "ok\n"; }
}
service untrusting {
    listen 127.0.0.1:$P_U;
    request_id on header=X-Correlation-Id;
    route /up/ { proxy http://127.0.0.1:$PU/; }
}
service h2 {
    listen 127.0.0.1:$P_H2 tls http2;
    $TLS_FILES
    trusted_proxies 127.0.0.1/32;
    route /up/ { proxy http://127.0.0.1:$PU/; }
}
service quiet {
    listen 127.0.0.1:$P_OFF;
    request_id off;
    route /up/ { proxy http://127.0.0.1:$PU/; }
    route / { header X-Echo-Id \$request_id; respond 200 "ok\n"; }
}
CONF
start_percore "$CONF"
T=http://127.0.0.1:$P_T
U=http://127.0.0.1:$P_U

# hdr JSON NAME: the values of header NAME the echo upstream saw, one a line.
hdr() { python3 -c "
import json, sys
for k, v in json.loads(sys.argv[1])['headers']:
    if k.lower() == sys.argv[2]: print(v)" "$1" "$2"; }
resp_hdr() { tr -d '\r' | sed -n "s/^$1: //Ip"; }

# ---- request IDs ----
R=$(curl -s -D "$T_DIR/h1" "$T/up/a")
ID=$(resp_hdr x-request-id <"$T_DIR/h1")
check "a response carries X-Request-Id: 32 hex digits" sh -c "echo '$ID' | grep -Eqx '[0-9a-f]{32}'"
expect_eq "the upstream saw the same ID, once" "$(hdr "$R" x-request-id)" "$ID"
expect_eq "\$request_id is the same ID" "$(hdr "$R" x-seen-id)" "$ID"
ID2=$(curl -s -D - -o /dev/null "$T/up/a" | resp_hdr x-request-id)
check "each request its own ID" test "$ID" != "$ID2"
curl -s -o /dev/null -D "$T_DIR/h2" "$T/"
expect_eq "a handler's own answer carries it too, the same as \$request_id" \
    "$(resp_hdr x-echo-id <"$T_DIR/h2")" "$(resp_hdr x-request-id <"$T_DIR/h2")"
NF=$(curl -s -D - -o /dev/null "$T/nowhere" | resp_hdr x-request-id)
check "so does a 404 no route took" sh -c "echo '$NF' | grep -Eqx '[0-9a-f]{32}'"
FC=$(curl -s -D "$T_DIR/h3" "$T/fcgi/params")
expect_eq "FastCGI gets it as HTTP_X_REQUEST_ID" \
    "$(echo "$FC" | sed -n 's/^HTTP_X_REQUEST_ID=//p')" "$(resp_hdr x-request-id <"$T_DIR/h3")"

R=$(curl -s -D "$T_DIR/h4" -H 'X-Request-Id: lb-7f3a-0001' "$T/up/a")
expect_eq "a trusted proxy's ID is kept, upstream" "$(hdr "$R" x-request-id)" "lb-7f3a-0001"
expect_eq "and in the response" "$(resp_hdr x-request-id <"$T_DIR/h4")" "lb-7f3a-0001"
R=$(curl -s -H 'x-REQUEST-id: lb-7f3a-0002' "$T/up/a")
expect_eq "whatever the header's case" "$(hdr "$R" x-request-id)" "lb-7f3a-0002"
for bad in 'has space' 'quo"te' 'back\slash' "$(printf 'x%.0s' $(seq 1 129))" "$(printf 'caf\xc3\xa9')"; do
    R=$(curl -s -H "X-Request-Id: $bad" "$T/up/a")
    expect_eq "from a trusted proxy, a malformed ID is replaced ($(printf %.12s "$bad"))" \
        "$(hdr "$R" x-request-id | grep -Ec '^[0-9a-f]{32}$') $(hdr "$R" x-request-id | wc -l)" "1 1"
done
R=$(curl -s -H 'X-Request-Id: one' -H 'X-Request-Id: two' "$T/up/a")
check "two IDs from a trusted proxy: neither is taken, one is made" \
    sh -c "[ \"\$(echo '$(hdr "$R" x-request-id | tr '\n' ' ')' | wc -w)\" = 1 ] && ! echo '$(hdr "$R" x-request-id)' | grep -qE '^(one|two)$'"

R=$(curl -s -D "$T_DIR/h5" -H 'X-Correlation-Id: client-chosen' -H 'X-Request-Id: other' "$U/up/a")
CID=$(resp_hdr x-correlation-id <"$T_DIR/h5")
check "header=: the ID travels under that name" sh -c "echo '$CID' | grep -Eqx '[0-9a-f]{32}'"
expect_eq "an untrusted client's ID is replaced, upstream" "$(hdr "$R" x-correlation-id)" "$CID"
expect_eq "other headers of that kind pass as they are" "$(hdr "$R" x-request-id)" "other"

R=$(curl -s -D "$T_DIR/h6" -H 'X-Request-Id: mine' "http://127.0.0.1:$P_OFF/up/a")
expect_eq "request_id off: the client's header passes untouched" "$(hdr "$R" x-request-id)" "mine"
expect_eq "and none comes back" "$(resp_hdr x-request-id <"$T_DIR/h6")" ""
check "\$request_id still names the request" \
    sh -c "curl -s -D - -o /dev/null http://127.0.0.1:$P_OFF/ | tr -d '\r' | grep -Eqix 'x-echo-id: [0-9a-f]{32}'"

# ---- trace context ----
TP=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
R=$(curl -s -H "traceparent: $TP" -H 'tracestate: congo=t61rcWkgMzE' "$T/up/a")
GOT=$(hdr "$R" traceparent)
check "a valid traceparent: the upstream is in the caller's trace, sampled" \
    sh -c "echo '$GOT' | grep -Eqx '00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01'"
check "as a child: the parent it sees is percore's span, not the caller's" \
    sh -c "[ '$(echo "$GOT" | cut -d- -f3)' != b7ad6b7169203331 ]"
expect_eq "tracestate passes with it" "$(hdr "$R" tracestate)" "congo=t61rcWkgMzE"
R=$(curl -s -H "TraceParent: $TP" "$T/up/a")
expect_eq "whatever the header's case" "$(hdr "$R" traceparent | cut -d- -f2)" \
    "0af7651916cd43dd8448eb211c80319c"
R2=$(curl -s -H "traceparent: $TP" "$T/up/a")
check "each attempt its own span" test "$(hdr "$R2" traceparent)" != "$GOT"
R=$(curl -s -H "traceparent: ${TP%01}00" "$T/up/a")
check "the caller's unsampled flag is kept" \
    sh -c "echo '$(hdr "$R" traceparent)' | grep -Eqx '00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00'"

n=0
for bad in \
    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01" \
    "00-00000000000000000000000000000000-b7ad6b7169203331-01" \
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01" \
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" \
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra" \
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01" \
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g" \
    "garbage"; do
    n=$((n + 1))
    R=$(curl -s -H "traceparent: $bad" -H 'tracestate: congo=t61rcWkgMzE' "$T/up/a")
    GOT=$(hdr "$R" traceparent)
    check "malformed traceparent $n is replaced by a new trace, never forwarded" \
        sh -c "echo '$GOT' | grep -Eqx '00-[0-9a-f]{32}-[0-9a-f]{16}-01' && ! echo '$GOT' | grep -q 0af7651916cd43dd8448eb211c80319c && [ \$(echo '$GOT' | wc -l) = 1 ]"
    expect_eq "and its tracestate goes with it ($n)" "$(hdr "$R" tracestate)" ""
done
R=$(curl -s -H "traceparent: $TP" -H "traceparent: $TP" "$T/up/a")
check "two traceparent lines: a new trace" \
    sh -c "! echo '$(hdr "$R" traceparent)' | grep -q 0af7651916cd43dd8448eb211c80319c"
R=$(curl -s -H "traceparent: $TP" -H 'tracestate: Bad Key=1' "$T/up/a")
expect_eq "an invalid tracestate is dropped, the trace kept" \
    "$(hdr "$R" traceparent | cut -d- -f2) $(hdr "$R" tracestate)" "0af7651916cd43dd8448eb211c80319c "
R=$(curl -s -H "traceparent: $TP" "$U/up/a")
check "accept_parent trusted: an untrusted caller starts a new trace" \
    sh -c "echo '$(hdr "$R" traceparent)' | grep -Eqx '00-[0-9a-f]{32}-[0-9a-f]{16}-01' && ! echo '$(hdr "$R" traceparent)' | grep -q 0af7651916cd43dd8448eb211c80319c"
expect_eq "FastCGI gets percore's traceparent" \
    "$(curl -s -H "traceparent: $TP" "$T/fcgi/params" | sed -n 's/^HTTP_TRACEPARENT=//p' | cut -d- -f2)" \
    "0af7651916cd43dd8448eb211c80319c"

# ---- the same over HTTP/2 ----
H2=https://127.0.0.1:$P_H2
R=$(curl -sk --http2 -D "$T_DIR/h7" -H 'x-request-id: h2-proxy-id' -H "traceparent: $TP" "$H2/up/a")
check "HTTP/2: the response was HTTP/2" grep -q '^HTTP/2 ' "$T_DIR/h7"
expect_eq "HTTP/2: a trusted proxy's ID is kept and returned" \
    "$(hdr "$R" x-request-id) $(resp_hdr x-request-id <"$T_DIR/h7")" "h2-proxy-id h2-proxy-id"
expect_eq "HTTP/2: the trace goes on" "$(hdr "$R" traceparent | cut -d- -f2)" \
    "0af7651916cd43dd8448eb211c80319c"
R=$(curl -sk --http2 -H 'x-request-id: two words' -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331' "$H2/up/a")
check "HTTP/2: a malformed ID and traceparent are replaced" \
    sh -c "echo '$(hdr "$R" x-request-id)' | grep -Eqx '[0-9a-f]{32}' && ! echo '$(hdr "$R" traceparent)' | grep -q 0af7651916cd43dd8448eb211c80319c"

# HPACK lets a client repeat a line 400,000 times in 400 kB, each a byte: taking the trace
# lines and the ID out must cost once per line, not per line times the lines left (which
# held the worker's loop for minutes, past worker_watchdog).
REP="$(dirname "$0")/h2repeat.py"
for line in "traceparent $TP" "tracestate a=b" "x-request-id h2-proxy-id"; do
    # shellcheck disable=SC2086 # NAME VALUE
    J=$(python3 "$REP" "$P_H2" /up/a $line 400000)
    R=$(echo "$J" | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["body"] if j["status"] == 200 and j["seconds"] < 5 else "")')
    check "HTTP/2: 400,000 ${line%% *} lines are answered in under 5 s (took $(echo "$J" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seconds"])'))" test -n "$R"
    expect_eq "HTTP/2: ... and the upstream sees one traceparent (percore's), one ID, no tracestate" \
        "$(hdr "$R" traceparent | grep -c 0af7651916cd43dd8448eb211c80319c) $(hdr "$R" traceparent | wc -l) $(hdr "$R" x-request-id | grep -Ec '^[0-9a-f]{32}$') $(hdr "$R" tracestate | wc -l)" \
        "0 1 1 0"
done

# ---- error lines name the request ----
FID=$(curl -s -D - -o /dev/null "$T/dead/x" | resp_hdr x-request-id)
wait_for log_has "request $FID: GET /dead/x" || true
check "the error line about a failed request names its ID" log_has "request $FID: GET /dead/x"

stop_percore
cleanup_up
finish
