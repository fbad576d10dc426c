#!/bin/bash
# The respond handler and routes, over HTTP/1.1 with curl.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PORT6=$(free_port)
CONF=$T_DIR/percore.conf
cat > "$CONF" <<CONF
workers 2;
service hello {
    listen 127.0.0.1:$PORT;
    route / { respond 200 "Hello, world!\n"; }
    route /api/ {
        respond 201 '{"ok":true}';
        header Content-Type application/json;
        header_add X-Tag one;
        header_add X-Tag two;
    }
    route /api/v2/ { respond 503 "busy\n"; header Retry-After 5; }
    route /empty { respond 204; }
}
service other {
    listen 127.0.0.1:$PORT6;
    listen [::1]:$PORT6;
    route /only/ { respond 200 "other\n"; }
}
CONF
start_percore "$CONF"
URL=http://127.0.0.1:$PORT

expect_eq "GET / answers Hello, world!" "$(curl -s "$URL/")" "Hello, world!"
expect_eq "status 200" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")" "200"
expect_eq "content-type text/plain" \
    "$(curl -s -o /dev/null -w '%{content_type}' "$URL/")" "text/plain; charset=utf-8"
expect_eq "content-length, not chunked" \
    "$(curl -sD - -o /dev/null "$URL/" | tr -d '\r' | grep -i '^content-length:')" \
    "Content-Length: 14"
expect_eq "Server header names percore" \
    "$(curl -sD - -o /dev/null "$URL/" | tr -d '\r' | grep -i '^server:')" "Server: percore"
expect_eq "HTTP/1.1" "$(curl -s -o /dev/null -w '%{http_version}' "$URL/")" "1.1"
expect_eq "keep-alive: 3 requests over 1 connection" \
    "$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}' "$URL/" "$URL/a" "$URL/b" \
        | tr -d '\n')" "100"
raw() {
    timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf '$1' >&3; cat <&3"
}
HEAD_REPLY=$(raw 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | tr -d '\r')
expect_eq "HEAD has Content-Length 14 and no body" \
    "$(printf '%s' "$HEAD_REPLY" | grep -i '^content-length:')|$(printf '%s' "$HEAD_REPLY" | tail -n 1)" \
    "Content-Length: 14|content-type: text/plain; charset=utf-8"
expect_eq "longest prefix wins: /api/x" "$(curl -s "$URL/api/x")" '{"ok":true}'
expect_eq "longest prefix wins: /api/v2/x" "$(curl -s -w ' %{http_code}' "$URL/api/v2/x")" \
    "busy
 503"
expect_eq "respond status 201" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/")" "201"
expect_eq "header replaces the handler's Content-Type" \
    "$(curl -s -o /dev/null -w '%{content_type}' "$URL/api/")" "application/json"
expect_eq "header_add twice gives two lines" \
    "$(curl -sD - -o /dev/null "$URL/api/" | tr -d '\r' | grep -i '^x-tag:' | tr '\n' ,)" \
    "x-tag: one,x-tag: two,"
expect_eq "Retry-After on the 503 route" \
    "$(curl -sD - -o /dev/null "$URL/api/v2/" | tr -d '\r' | grep -i '^retry-after:')" \
    "retry-after: 5"
expect_eq "204 has no body" "$(curl -s -w '%{http_code}:%{size_download}' "$URL/empty")" "204:0"
expect_eq "/emptyx does not match route /empty" "$(curl -s "$URL/emptyx")" "Hello, world!"

O=http://127.0.0.1:$PORT6
expect_eq "second service on its own port" "$(curl -s "$O/only/x")" "other"
expect_eq "unmatched path is 404" "$(curl -s -o /dev/null -w '%{http_code}' "$O/nothing")" "404"
expect_eq "the other service does not see hello's routes" \
    "$(curl -s -o /dev/null -w '%{http_code}' "$O/api/")" "404"
if curl -s -g "http://[::1]:$PORT6/only/" >/dev/null 2>&1 || ip -6 addr show lo | grep -q ::1; then
    expect_eq "IPv6 listener" "$(curl -s -g "http://[::1]:$PORT6/only/")" "other"
fi
# Debian's libh2o has no HTTP/2 Rapid Reset fix: HTTP/2 must not be reachable.
expect_eq "Upgrade: h2c is ignored (HTTP/2 is off)" \
    "$(curl -s --http2 -o /dev/null -w '%{http_version}' "$URL/")" "1.1"
expect_eq "HTTP/2 prior knowledge is refused" \
    "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version}' "$URL/")" "0"
expect_eq "malformed request gets 400" "$(raw 'GARBAGE\r\n\r\n' | head -c 12)" "HTTP/1.1 400"

finish
