#!/bin/bash
# Request hygiene: control bytes in a path (every spelling, HTTP/1 and HTTP/2) get 400 on
# every route and never reach a response header; redirects and the files handler's
# directory 301 never answer a scheme-relative "//host"; disputed HTTP/1 framing, folded
# lines and bad or repeated Host get 400 and a closed connection, so a smuggled second
# request never runs; the error log escapes request bytes; requests libh2o's parser
# refuses are in the access log and the metrics.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need_tls
D=$T_DIR
mkdir -p "$D/www/sub" "$D/www/evil.example"
echo hi >"$D/www/a.txt"
PORT=$(free_port)
TLS=$(free_port)
ALOG=$D/access.log
CONF=$D/percore.conf
cat >"$CONF" <<CONF
workers 1;
shutdown_timeout 5s;
service s {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TLS tls http2;
    $TLS_FILES
    access_log $ALOG;
    route /old/ { redirect 301 /new/; }
    route /pre { redirect 302 /; }
    route /go/ { redirect 301 https://example.com; }
    route /gos/ { redirect 308 //example.com:8080; }
    route /count/ { respond 200 "counted\n"; }
    route /metrics { metrics; }
    route / { files $D/www; }
}
CONF
start_percore "$CONF"

# raw REQUEST...: send each REQUEST (a python bytes literal body, escapes allowed) on a
# new connection, one after the other, and write what came back to $D/r.1, $D/r.2 ...,
# then "<EOF>" if the server closed, "<OPEN>" if it still had not after 5 s. One python
# for many requests: starting python is slow on a loaded machine.
raw() {
    rm -f "$D"/r.*
    python3 - "$PORT" "$D" "$@" <<'PY'
import socket, sys, time
port, out_dir = int(sys.argv[1]), sys.argv[2]
for n, arg in enumerate(sys.argv[3:], 1):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.5)
    s.sendall(eval("b'" + arg + "'"))
    out, end, deadline = b"", "<EOF>", time.monotonic() + 5
    while True:
        if time.monotonic() > deadline:
            end = "<OPEN>"
            break
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    s.close()
    with open("%s/r.%d" % (out_dir, n), "wb") as f:
        f.write(out + b"\n" + end.encode() + b"\n")
PY
}
# r N: what request N of the last raw call got back.
r() { cat "$D/r.$1"; }
status() { head -n 1 | cut -d' ' -f2; }
location() { tr -d '\r' | sed -n 's/^location: //Ip'; }
metric_4xx() {
    curl -s "http://127.0.0.1:$PORT/metrics" |
        sed -n 's/^percore_requests_total{service="s",code="4xx"} //p'
}
H='\r\nHost: a\r\nConnection: close\r\n\r\n'

closed() { tail -n 1; }
# 2.1: a control byte in the decoded path is a 400 before any handler.
PATHS=('/old/x%0d%0aSet-Cookie:%20a=1' '/old/x%0D%0ASet-Cookie:%20a=1' '/old/x%0aa' '/old/x%00'
    '/old/x%09' '/old/x%7f' '/old/x%1b[1m' '/count/x%0d%0a' '/a.txt%00.html' '/pre%0d%0aX:%20y'
    '/sub%0a')
REQS=()
for path in "${PATHS[@]}"; do REQS+=("GET $path HTTP/1.1$H"); done
REQS+=('GET /old/x\x01y HTTP/1.1\r\nHost: a\r\n\r\n')
raw "${REQS[@]}"
for k in "${!PATHS[@]}"; do
    out=$(r $((k + 1)))
    expect_eq "GET ${PATHS[k]}: 400" "$(printf '%s' "$out" | status)" "400"
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh
    check "GET ${PATHS[k]}: no injected header" \
        sh -c '! printf "%s" "$1" | grep -aiq "^\(Set-Cookie\|X\):"' _ "$out"
done
expect_eq "a raw control byte in the path: 400" "$(r ${#REQS[@]} | status)" "400"
code=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code}' \
    "https://127.0.0.1:$TLS/old/x%0d%0aSet-Cookie:%20a=1")
expect_eq "over HTTP/2 too" "$code" "2 400"
code=$(curl -sk --http2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$TLS/count/%00")
expect_eq "over HTTP/2 too (%00)" "$code" "400"

# Redirects never become scheme-relative, whatever the slashes and backslashes.
PATHS=('/pre//evil.example' '/pre///evil.example' '/old///evil.example' '/pre/\\evil.example'
    '/pre/%5cevil.example' '/pre/%5Cevil.example' '/pre/%2fevil.example' '//evil.example'
    '///evil.example' '/%2fevil.example' '//sub' '/pre/%5c%5cevil.example')
REQS=()
for path in "${PATHS[@]}"; do REQS+=("GET $path HTTP/1.1$H"); done
REQS+=("GET /old/a%3fb%22%3E%3Cx?q=1 HTTP/1.1$H" "GET /old/caf%C3%A9/x HTTP/1.1$H")
raw "${REQS[@]}"
for k in "${!PATHS[@]}"; do
    loc=$(r $((k + 1)) | location)
    case $loc in
    //* | /\\* | \\* | '') not_ok "GET ${PATHS[k]}: a local Location" "got: '$loc'" ;;
    *) ok "GET ${PATHS[k]}: a local Location ($loc)" ;;
    esac
done
expect_eq "the files handler's 301 keeps the directory" "$(r 11 | location)" "/sub/"
expect_eq "a redirect keeps the path, encoded again" "$(r 13 | location)" \
    "/new/a%3Fb%22%3E%3Cx?q=1"
expect_eq "and a plain one as it was" "$(r 14 | location)" "/new/caf%C3%A9/x"

# A target without a path never has its host extended by the request's path.
PATHS=('/go/@evil.example/' '/go/.evil.example/' '/go/x' '/go/:1@evil.example/'
    '/go/%40evil.example' '/gos/@evil.example' '/gos/.evil.example')
REQS=()
for path in "${PATHS[@]}"; do REQS+=("GET $path HTTP/1.1$H"); done
raw "${REQS[@]}"
for k in "${!PATHS[@]}"; do
    loc=$(r $((k + 1)) | location)
    case $loc in
    https://example.com/* | //example.com:8080/*) ok "GET ${PATHS[k]}: stays on the target's host ($loc)" ;;
    *) not_ok "GET ${PATHS[k]}: stays on the target's host" "got: '$loc'" ;;
    esac
done

# 2.3: framing that two parsers could read differently: 400, closed, the rest never run.
HEADS=('Content-Length: 0\r\nContent-Length: 44' 'Content-Length: 0\r\nContent-Length: 0'
    'Content-Length: 0, 44' 'Content-Length: +0' 'Content-Length: 0\r\nTransfer-Encoding: chunked'
    'Transfer-Encoding: chunked\r\nContent-Length: 0'
    'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked'
    'Transfer-Encoding: identity\r\nTransfer-Encoding: chunked' 'Transfer-Encoding: xchunked'
    'transfer-encoding: chunked\r\nCONTENT-LENGTH: 3')
NFRAMING=${#HEADS[@]}
REQS=()
for k in "${!HEADS[@]}"; do
    REQS+=("POST /count/front$k HTTP/1.1\r\nHost: a\r\n${HEADS[k]}\r\n\r\n0\r\n\r\nGET /count/SMUGGLED$k HTTP/1.1\r\nHost: a\r\n\r\n")
done
raw "${REQS[@]}"
for k in "${!HEADS[@]}"; do
    out=$(r $((k + 1)))
    expect_eq "'${HEADS[k]}': one 400, then closed" \
        "$(printf '%s' "$out" | grep -ac '^HTTP/1.1 ') $(printf '%s' "$out" | status) $(printf '%s' "$out" | closed)" \
        "1 400 <EOF>"
done
# A method that is not a token (libh2o's parser takes an empty one): 400 and closed.
METHODS=('' 'G"T' 'GE<T' '(GET)' 'G,T')
REQS=()
for m in "${METHODS[@]}"; do
    REQS+=("$m /count/m HTTP/1.1\r\nHost: a\r\n\r\nGET /count/SMUGGLEDM HTTP/1.1\r\nHost: a\r\n\r\n")
done
raw "${REQS[@]}"
for k in "${!METHODS[@]}"; do
    out=$(r $((k + 1)))
    expect_eq "method '${METHODS[k]}': 400, then closed" \
        "$(printf '%s' "$out" | status) $(printf '%s' "$out" | closed)" "400 <EOF>"
done
HEADS=('Host: a\r\nX-A: b\r\n folded' 'Host: a\r\nX-A: b\r\n\tfolded' 'Host: a\r\nHost: b'
    'Host: a;for=198.51.100.8' 'Host: a:80x' 'Host: a:' 'Host: a:123456' 'Host: [zz]:80'
    'Host: a/b' 'Host: a@b' 'Host: a,b' 'Host: %61' 'Host: a b' 'Host: :80' 'Host: a:65536'
    'X-No-Host: 1')
HOSTS=('example.com' 'a.b-c_d.example:8080' '127.0.0.1:80' '[::1]:8080' '[2001:db8::1]' 'a:65535')
REQS=()
for head in "${HEADS[@]}"; do
    REQS+=("GET /count/h HTTP/1.1\r\n$head\r\n\r\nGET /count/SMUGGLEDH HTTP/1.1\r\nHost: a\r\n\r\n")
done
for host in "${HOSTS[@]}"; do
    REQS+=("GET /count/ok HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n")
done
REQS+=('POST /count/c1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /count/c2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
REQS+=('POST /count/l1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /count/l2 HTTP/1.0\r\n\r\n')
raw "${REQS[@]}"
for k in "${!HEADS[@]}"; do
    out=$(r $((k + 1)))
    expect_eq "'${HEADS[k]}': 400, then closed" \
        "$(printf '%s' "$out" | status) $(printf '%s' "$out" | closed)" "400 <EOF>"
done
for k in "${!HOSTS[@]}"; do
    expect_eq "Host: ${HOSTS[k]} is fine" "$(r $((${#HEADS[@]} + k + 1)) | status)" "200"
done
expect_eq "a chunked body and a pipelined request are still served" \
    "$(r $((${#REQS[@]} - 1)) | grep -c '^counted')" "2"
expect_eq "so is a Content-Length body" "$(r ${#REQS[@]} | grep -c '^counted')" "2"
# The access log has caught up with the last request, or the next count means nothing.
wait_for grep -q '/count/l2' "$ALOG" || not_ok "the access log has the last request"
expect_eq "no smuggled request ran" "$(grep -c SMUGGLED "$ALOG")" "0"
expect_eq "every refused request is in the access log" \
    "$(grep -c '"POST /count/front[0-9]* HTTP/1.1" 400 ' "$ALOG")" "$NFRAMING"

# 2.11: the error log escapes request bytes; the parser's own 400s are logged and counted.
raw 'GET /count/caf\xc3\xa9%1b%00 HTTP/1.1\r\nHost: a\r\n\r\n'
wait_for grep -q 'caf\\xc3\\xa9' "$PC_LOG"
check "the error log line is escaped" \
    grep -q 'GET /count/caf\\xc3\\xa9%1b%00: refused: control byte in the path' "$PC_LOG"
# A line too long for the log is cut, and still ends: the next one is a line of its own.
LONG=$(printf '\\xff%.0s' $(seq 1 300))
raw "GET /count/$LONG%00 HTTP/1.1\r\nHost: a\r\n\r\n" 'GET /count/next%00 HTTP/1.1\r\nHost: a\r\n\r\n'
wait_for grep -q 'next%00: refused' "$PC_LOG"
check "a cut error log line does not swallow the next" \
    grep -q '^worker [0-9]*: request [0-9a-f]\{32\}: GET /count/next%00: refused' "$PC_LOG"
expect_eq "no raw byte >= 0x80 or ESC in the error log" \
    "$(LC_ALL=C grep -c $'[\x80-\xff\x1b]' "$PC_LOG")" "0"
before=$(metric_4xx)
lines=$(grep -c '"-" 400 ' "$ALOG")
MANY=$(for i in $(seq 1 150); do printf 'X%d: y\\r\\n' "$i"; done)
raw 'GET /count/x HTTP/1.1\r\nHo st: a\r\n\r\n' \
    'GET /count/x HTTP/1.1\r\nHost: a\r\n\r\nNOT A REQUEST\x01\r\n\r\n' \
    'GET /count/x HTTP/9\r\n\r\n' "GET /count/many HTTP/1.1\r\nHost: a\r\n$MANY\r\n"
expect_eq "a header the parser refuses: libh2o's 400" "$(r 1 | status)" "400"
wait_for sh -c "[ \$(grep -c '\"-\" 400 ' '$ALOG') -ge $((lines + 4)) ]"
expect_eq "each is one access log line" "$(($(grep -c '"-" 400 ' "$ALOG") - lines))" "4"
check "with the client's address" grep -q '^127\.0\.0\.1 - - \[.*\] "-" 400 11 ' "$ALOG"
after=$(metric_4xx)
expect_eq "and counted as 4xx in the metrics" "$((after - before))" "4"
raw '\r\n' 'GET /count/partial HTTP/1.1\r\nHost: a\r\n'
code=$(curl -sk --http2 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$TLS/count/ok")
expect_eq "an empty line, a client that gives up or HTTP/2 is no refused request" \
    "$code $(metric_4xx)" "200 $after"

finish
