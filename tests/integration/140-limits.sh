#!/bin/bash
# Limits: max_connections per worker (new connections wait in the backlog, they are not
# refused); per service: max_body_size (413), max_header_size (431), and the header,
# keep-alive and TLS handshake timeouts, each service its own.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PORT2=$(free_port)
PORT3=$(free_port)
PORT4=$(free_port)
need_tls
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 1;
max_connections 4;
service small {
    listen 127.0.0.1:$PORT;
    max_body_size 1k;
    route / { respond 200 "small\n"; }
}
service big {
    listen 127.0.0.1:$PORT2;
    max_body_size 64k;
    route / { respond 200 "big\n"; }
}
service timed {
    listen 127.0.0.1:$PORT3;
    listen 127.0.0.1:$PORT4 tls http2;
    $TLS_FILES
    header_timeout 1s;
    idle_timeout 1200ms;
    handshake_timeout 1500ms;
    max_header_size 2k;
    route / { respond 200 "timed\n"; }
}
CONF
start_percore "$CONF"

# Four idle connections fill the worker; a fifth waits in the backlog until one closes.
python3 - "$PORT" <<'PY' &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(4)]
time.sleep(60)
PY
HOLD=$!
# The worker holds them once all four are established and none waits to be accepted.
held() { [ "$(established "$PORT")" -ge 4 ] && [ "$(accept_queue "$PORT")" -eq 0 ]; }
wait_for held || not_ok "four connections held"
expect_eq "at max_connections a new request waits" \
    "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")" "000"
curl -s -m 20 "http://127.0.0.1:$PORT/" >"$T_DIR/fifth" &
FIFTH=$!
# Queued: the timed-out client's connection (still unaccepted) and this one.
queued() { [ "$(accept_queue "$PORT")" -ge 2 ]; }
wait_for queued || not_ok "the fifth client is queued"
check "the waiting client is still waiting while the worker is full" kill -0 "$FIFTH"
kill "$HOLD"
wait "$HOLD" 2>/dev/null
wait "$FIFTH"
expect_eq "and is served once a connection closes" "$(cat "$T_DIR/fifth")" "small"

head -c 2048 /dev/zero >"$T_DIR/2k"
expect_eq "a body over max_body_size is 413" \
    "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T_DIR/2k" "http://127.0.0.1:$PORT/")" "413"
expect_eq "a body within it is served" \
    "$(curl -s -o /dev/null -w '%{http_code}' --data-binary 'small body' "http://127.0.0.1:$PORT/")" "200"
expect_eq "another service's own, larger limit" \
    "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T_DIR/2k" "http://127.0.0.1:$PORT2/")" "200"
head -c 100000 /dev/zero >"$T_DIR/100k"
expect_eq "over the largest limit: 413" \
    "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T_DIR/100k" "http://127.0.0.1:$PORT2/")" "413"

# closed_after PORT [REQUEST]: ms until the server closes a connection that sends REQUEST
# (reading its answer) or nothing, then stays silent; 99999 if it is still open after 8 s.
closed_after() {
    python3 - "$@" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(8)
if len(sys.argv) > 2:
    s.sendall(sys.argv[2].encode())
    s.recv(65536)
t0 = time.monotonic()
try:
    while s.recv(65536):
        pass
    print(int((time.monotonic() - t0) * 1000))
except socket.timeout:
    print(99999)
PY
}
MS=$(closed_after "$PORT3")
check "header_timeout 1s: a silent client is closed after about 1 s ($MS ms)" \
    [ "$MS" -ge 800 -a "$MS" -le 3000 ]
MS=$(closed_after "$PORT3" $'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
check "and an idle keep-alive connection too ($MS ms)" [ "$MS" -ge 800 -a "$MS" -le 3000 ]
MS=$(closed_after "$PORT4")
check "handshake_timeout 1500ms: a client that never says hello ($MS ms)" \
    [ "$MS" -ge 1300 -a "$MS" -le 3500 ]
if /usr/bin/python3 -c 'import h2' 2>/dev/null; then
    MS=$(/usr/bin/python3 - "$PORT4" <<'PY'
import socket, ssl, sys, time
import h2.config, h2.connection
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
tls.set_alpn_protocols(["h2"])
s = tls.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="x")
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
s.sendall(c.data_to_send())
s.settimeout(8)
t0 = time.monotonic()
try:
    while s.recv(65536):
        pass
    print(int((time.monotonic() - t0) * 1000))
except (socket.timeout, ssl.SSLError, OSError):
    print(99999)
PY
)
    check "idle_timeout 1200ms: an idle HTTP/2 connection is closed ($MS ms)" \
        [ "$MS" -ge 1000 -a "$MS" -le 3500 ]
else
    # Said, not silently left out.
    ok "idle_timeout 1200ms: an idle HTTP/2 connection is closed # SKIP python3-h2 not installed"
fi
MS=$(closed_after "$PORT" $'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
check "another service keeps the default 10 s ($MS ms)" [ "$MS" -ge 5000 ]
BIG=$(head -c 3000 /dev/zero | tr '\0' 'x')
expect_eq "headers over max_header_size: 431" \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $BIG" "http://127.0.0.1:$PORT3/")" "431"
expect_eq "within it: 200" \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: ${BIG:0:1000}" "http://127.0.0.1:$PORT3/")" "200"
expect_eq "the default allows 32 KiB of headers" \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $BIG" "http://127.0.0.1:$PORT/")" "200"

finish
