#!/bin/bash
# Limits: max_connections per worker (new connections wait in the backlog, they are not
# refused) and max_body_size per service (413).
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PORT2=$(free_port)
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
CONF
start_percore "$CONF"

# Four idle connections fill the worker; a fifth waits until one closes.
python3 - "$PORT" <<'PY' &
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(4)]
time.sleep(3)
PY
HOLD=$!
sleep 0.5
expect_eq "at max_connections a new request waits" \
    "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")" "000"
T0=$(date +%s%N)
expect_eq "and is served once a connection closes" "$(curl -s -m 10 "http://127.0.0.1:$PORT/")" "small"
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "it waited for the held connections (${MS} ms)" [ "$MS" -ge 1000 ]
wait "$HOLD"

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

finish
