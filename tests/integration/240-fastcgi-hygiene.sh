#!/bin/bash
# FastCGI request hygiene: a client's Proxy header never reaches the application (httpoxy,
# every spelling), and header names with an underscore are dropped so that they cannot pose
# as the dashed header they map to (X_Remote_User vs X-Remote-User), over HTTP/1.1 and
# HTTP/2; other headers still arrive.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need_tls
APP="$(dirname "$0")/fcgi_app.py"
D=$T_DIR
SOCK=$D/app.sock
python3 "$APP" "unix:$SOCK" & APP_PID=$!
trap 'kill "$APP_PID" 2>/dev/null' EXIT
wait_for test -S "$SOCK" || bail "FastCGI app did not start"
PORT=$(free_port)
TPORT=$(free_port)
CONF=$D/percore.conf
cat >"$CONF" <<CONF
workers 1;
service s {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TPORT tls http2;
    $TLS_FILES
    route /app/ { fastcgi unix:$SOCK; }
}
CONF
start_percore "$CONF"

# params PROTO HEADER...: the HTTP_* parameters the application saw, one a line.
params() {
    proto=$1
    shift
    args=()
    for h in "$@"; do args+=(-H "$h"); done
    if [ "$proto" = h2 ]; then
        curl -sk --http2 "${args[@]}" "https://localhost:$TPORT/app/params" \
            --resolve "localhost:$TPORT:127.0.0.1"
    else
        curl -s "${args[@]}" "http://127.0.0.1:$PORT/app/params"
    fi
}

# lacks PATTERN: stdin is the application's answer (curl's User-Agent is in every one) and
# has no line matching PATTERN; no answer at all is no pass.
lacks() {
    local got
    got=$(cat)
    grep -q '^HTTP_USER_AGENT=' <<<"$got" && ! grep -q -- "$1" <<<"$got"
}

expect_eq "the TLS listen speaks HTTP/2" "$(curl -sk --http2 -o /dev/null -w '%{http_version}' \
    --resolve "localhost:$TPORT:127.0.0.1" "https://localhost:$TPORT/app/params")" "2"
for proto in h1 h2; do
    got=$(params $proto "X-Check: 1")
    check "$proto: the application answers with its parameters" grep -qx "HTTP_X_CHECK=1" <<<"$got"
    for hn in Proxy proxy PROXY pRoXy; do
        got=$(params $proto "$hn: http://198.51.100.7:3128/" "X-Check: 1")
        check "$proto: '$hn:' does not become HTTP_PROXY" \
            lacks "^HTTP_PROXY=" <<<"$got"
        check "$proto: '$hn:' request still served" grep -qx "HTTP_X_CHECK=1" <<<"$got"
    done
    for hn in X_Remote_User x_remote_user X_REMOTE_USER X-Remote_User; do
        got=$(params $proto "$hn: mallory")
        check "$proto: '$hn:' does not reach the application" \
            lacks mallory <<<"$got"
    done
    got=$(params $proto "X-Remote-User: alice")
    expect_eq "$proto: X-Remote-User is kept" "$(grep '^HTTP_X_REMOTE_USER=' <<<"$got")" \
        "HTTP_X_REMOTE_USER=alice"
    got=$(params $proto "X-Remote-User: alice" "X_Remote_User: mallory")
    expect_eq "$proto: beside X_Remote_User, only the dashed value arrives" \
        "$(grep '^HTTP_X_REMOTE_USER' <<<"$got")" "HTTP_X_REMOTE_USER=alice"
    got=$(params $proto "Proxy-Note: kept" "X-Proxy: kept")
    check "$proto: names that only contain 'proxy' are kept" \
        grep -qx "HTTP_PROXY_NOTE=kept" <<<"$got"
    check "$proto: X-Proxy is kept" grep -qx "HTTP_X_PROXY=kept" <<<"$got"
done

kill "$APP_PID"
wait "$APP_PID" 2>/dev/null
finish
