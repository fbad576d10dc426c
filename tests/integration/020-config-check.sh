#!/bin/bash
# The command line: -t, -h, -V, bad options, bad configs at start, a second instance.
. "$(dirname "$0")/lib.sh"

OUT=$T_DIR/out
SHIPPED=$TOP_SRCDIR/conf/percore.conf

"$PERCORE" -t -c "$SHIPPED" >"$OUT" 2>&1
expect_eq "-t accepts the shipped config" "$?:$(cat "$OUT")" "0:$SHIPPED: syntax ok"

BAD=$T_DIR/bad.conf
printf 'workers 2;\nservice s {\n    listen 127.0.0.1:1;\n    rute / { respond 200; }\n}\n' >"$BAD"
"$PERCORE" -t -c "$BAD" >"$OUT" 2>&1
expect_eq "-t rejects a typo with file:line:col and a hint" "$?:$(head -n 1 "$OUT")" \
    "1:$BAD:4:5: unknown directive 'rute'; did you mean 'route'?"
check "-t reports every error and the count" grep -q "configuration has 2 errors" "$OUT"

"$PERCORE" -t -c "$T_DIR/missing.conf" >"$OUT" 2>&1
expect_eq "-t on a missing file" "$?:$(head -n 1 "$OUT")" \
    "1:$T_DIR/missing.conf: cannot read config: No such file or directory"

"$PERCORE" -h >"$OUT" 2>&1
check "-h prints usage and exits 0" grep -q "usage: percore \[-c FILE\] \[-t\] \[-f\] \[-w N\]" "$OUT"
check "-h names the default config path" grep -q "percore.conf" "$OUT"
"$PERCORE" -V >"$OUT" 2>&1
check "-V prints the version" grep -Eq "^percore [0-9]+\.[0-9]+\.[0-9]+$" "$OUT"
"$PERCORE" -x >"$OUT" 2>&1
expect_eq "unknown option exits 1" "$?" "1"
"$PERCORE" -w 0 -t -c "$SHIPPED" >"$OUT" 2>&1
expect_eq "-w 0 is refused" "$?:$(head -n 1 "$OUT")" \
    "1:percore: -w: expected a number from 1 to 512, got '0'"

# Starting with a bad config fails before anything listens.
PORT=$(free_port)
printf 'service s { listen 127.0.0.1:%s; route / { respond 99; } }\n' "$PORT" >"$BAD"
timeout 10 "$PERCORE" -f -c "$BAD" >"$OUT" 2>&1
expect_eq "start with a bad config exits 1 with the error" "$?:$(head -n 1 "$OUT")" \
    "1:$BAD:1:55: invalid status '99' for 'respond': expected 200 to 599"
expect_eq "nothing listens after a failed start" "$(ss -Htln "sport = :$PORT" | wc -l)" "0"

# A second instance on the same address must refuse, not join the reuseport group.
CONF=$T_DIR/percore.conf
hello_conf "$PORT" >"$CONF"
start_percore "$CONF" -w 2
timeout 10 "$PERCORE" -f -c "$CONF" -w 2 >"$OUT" 2>&1
expect_eq "second instance refuses to start" "$?:$(head -n 1 "$OUT")" \
    "1:master: cannot listen: 127.0.0.1:$PORT: address already in use (is another percore or server running on it?)"
expect_eq "only the first instance's 2 sockets listen" "$(ss -Htln "sport = :$PORT" | wc -l)" "2"
expect_eq "the first instance still serves" "$(curl -s http://127.0.0.1:$PORT/)" "Hello, world!"
stop_percore

# A port held by another program is reported the same way.
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $PORT)); s.listen(1); time.sleep(10)" &
HOLDER=$!
wait_for sh -c "ss -Htln 'sport = :$PORT' | grep -q ."
timeout 10 "$PERCORE" -f -c "$CONF" >"$OUT" 2>&1
expect_eq "port held by another program: exit 1" "$?" "1"
check "port held by another program: says address already in use" \
    grep -q "127.0.0.1:$PORT: address already in use" "$OUT"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

# Without -f percore detaches once its listeners are open.
"$PERCORE" -c "$CONF" -w 1 >"$OUT" 2>&1
expect_eq "without -f the command returns 0" "$?" "0"
if wait_for sh -c "curl -sf http://127.0.0.1:$PORT/ >/dev/null"; then
    ok "detached daemon serves"
else
    not_ok "detached daemon serves"
fi
DPID=$(ss -Htlnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
MPID=$(ps -o ppid= -p "$DPID" | tr -d ' ')
expect_eq "detached master is a session leader" "$(ps -o sid= -p "$MPID" | tr -d ' ')" "$MPID"
kill -TERM "$MPID"
wait_for sh -c "! kill -0 $MPID 2>/dev/null"
expect_eq "detached daemon stops on SIGTERM" "$(ss -Htln "sport = :$PORT" | wc -l)" "0"

finish
