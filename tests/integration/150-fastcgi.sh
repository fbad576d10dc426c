#!/bin/bash
# FastCGI over a unix socket and TCP: CGI variables, request bodies, keep-alive, 502 when
# the application is gone.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

APP="$(dirname "$0")/fcgi_app.py"
SOCK=$T_DIR/app.sock
FP=$(free_port)
python3 "$APP" "unix:$SOCK" & A1=$!
python3 "$APP" "$FP" & A2=$!
wait_for test -S "$SOCK" || bail "FastCGI app did not start"
wait_for sh -c "ss -Htln 'sport = :$FP' | grep -q ." || bail "FastCGI app did not listen"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 1;
service s {
    listen 127.0.0.1:$PORT;
    route /app/ { fastcgi unix:$SOCK root=/srv/app; }
    route /tcp/ { fastcgi 127.0.0.1:$FP timeout=2s; }
}
CONF
start_percore "$CONF"
U=http://127.0.0.1:$PORT

expect_eq "GET over a unix socket: CGI variables" "$(curl -s "$U/app/x/y?a=1")" \
    "method=GET script= path_info=/app/x/y query=a=1 body=0 root=/srv/app"
expect_eq "POST body reaches the application" \
    "$(curl -s --data-binary 'hello fastcgi' "$U/app/p" | sed 's/.*body=\([0-9]*\).*/\1/')" "13"
expect_eq "over TCP" "$(curl -s -o /dev/null -w '%{http_code}' "$U/tcp/z")" "200"
expect_eq "content type from the application" \
    "$(curl -s -o /dev/null -w '%{content_type}' "$U/tcp/z")" "text/plain"
OKS=0
for _ in $(seq 1 30); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/app/k")" = 200 ] && OKS=$((OKS + 1)); done
expect_eq "30 requests in a row" "$OKS" "30"
kill "$A1" "$A2"
wait "$A1" "$A2" 2>/dev/null
rm -f "$SOCK"
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$U/app/x")
check "application gone: 5xx ($CODE)" [ "$CODE" -ge 500 -a "$CODE" -le 504 ]

stop_percore
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { fastcgi app.sock; }\n}\n' "$PORT" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a bad FastCGI address is a config error at its position" \
    grep -q "$CONF:3:23: invalid FastCGI address 'app.sock': expected unix:/PATH or HOST:PORT" "$T_DIR/out"

finish
