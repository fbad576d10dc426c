#!/bin/bash
# The command line: -t, -h, -V, bad options, bad configs at start, a second instance.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

OUT=$T_DIR/out
SHIPPED=$TOP_SRCDIR/conf/percore.conf

"$PERCORE" -t -c "$SHIPPED" >"$OUT" 2>&1
expect_eq "-t accepts the shipped config" "$?:$(cat "$OUT")" "0:$SHIPPED: syntax ok"

BAD=$T_DIR/bad.conf
printf 'workers 2;\nservice s {\n    listen 127.0.0.1:1;\n    rute / { respond 200; }\n    route /x { respond 999; }\n}\n' >"$BAD"
"$PERCORE" -t -c "$BAD" >"$OUT" 2>&1
expect_eq "-t rejects a typo with file:line:col and a hint" "$?:$(head -n 1 "$OUT")" \
    "1:$BAD:4:5: unknown directive 'rute'; did you mean 'route'?"
check "-t reports every error and the count" grep -q "configuration has 2 errors" "$OUT"

"$PERCORE" -t -c "$T_DIR/missing.conf" >"$OUT" 2>&1
expect_eq "-t on a missing file" "$?:$(head -n 1 "$OUT")" \
    "1:$T_DIR/missing.conf: cannot read config: No such file or directory"

"$PERCORE" -h >"$OUT" 2>&1
RC=$?
# The exit status is part of the assertion, not only the text.
if [ "$RC" -eq 0 ] && grep -q "usage: percore \[-c FILE\] \[-t\] \[-f\] \[-w N\]" "$OUT"; then
    ok "-h prints usage and exits 0"
else
    not_ok "-h prints usage and exits 0" "exit $RC" "$(cat "$OUT")"
fi
check "-h names the default config path" grep -q "percore.conf" "$OUT"
"$PERCORE" -V >"$OUT" 2>&1
expect_eq "-V exits 0" "$?" "0"
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
expect_eq "the first instance still serves" "$(curl -s "http://127.0.0.1:$PORT/")" "Hello, world!"
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

# ---- Hostile configs: refused with file:line:col by -t and by a reload, never a crash. ----
H=$T_DIR/hostile
mkdir -p "$H"
# t_check NAME FILE WANT: -t exits 1 (not a signal, not a hang) and names WANT.
t_check() {
    timeout 10 "$PERCORE" -t -c "$2" >"$OUT" 2>&1
    rc=$?
    if [ "$rc" = 1 ] && grep -qF -- "$3" "$OUT"; then
        ok "$1"
    else
        not_ok "$1" "exit $rc, wanted 1 and: $3" "$(head -c 300 "$OUT")"
    fi
}
python3 -c "print('a {' * 50000 + '}' * 50000)" >"$H/nest.conf"
t_check "-t: 50,000 nested blocks" "$H/nest.conf" "$H/nest.conf:1:51: blocks nested deeper than 16"
python3 -c "print('service s {' + ' route / {' * 50000)" >"$H/nest2.conf"
t_check "-t: 50,000 nested routes" "$H/nest2.conf" "blocks nested deeper than 16"
python3 -c "print('include \"/' + '/' * 3000 + 'x.conf\";')" >"$H/slash.conf"
t_check "-t: an include of 3,000 slashes" "$H/slash.conf" "$H/slash.conf:1:9: include pattern '//"
python3 -c "print('include \"/' + '*/' * 3000 + 'x.conf\";')" >"$H/star.conf"
t_check "-t: an include of 3,000 '*/'" "$H/star.conf" "$H/star.conf:1:9: include pattern '/*/*/"
printf 'include "/%s/x.conf";\n' "$(printf '*/%.0s' $(seq 1 100))" >"$H/star100.conf"
t_check "-t: an include of 100 '*/'" "$H/star100.conf" "has more than 64 '/'"
python3 -c "print('workers 2;\ninclude \"' + '../' * 3000 + 'x.conf\";')" >"$H/dots.conf"
t_check "-t: an include of 3,000 '../'" "$H/dots.conf" "$H/dots.conf:2:9: include pattern"
printf 'include /*/*/*/*.conf;\n' >"$H/wild.conf"
t_check "-t: wildcards in too many directories" "$H/wild.conf" \
    "$H/wild.conf:1:9: include pattern '/*/*/*/*.conf' has wildcards in more than 2 path components"
printf 'include loop.conf;\n' >"$H/loop.conf"
ln -s loop.conf "$H/loop-link.conf"
printf 'include loop-link.conf;\n' >"$H/loop2.conf"
t_check "-t: an include loop through a symlink" "$H/loop2.conf" "include loop: '$H/loop.conf'"

# A FIFO (or device) is refused at once, as an include or as the config itself.
mkfifo "$H/fifo.conf"
printf 'workers 2;\ninclude %s/fifo.conf;\n' "$H" >"$H/incfifo.conf"
t_check "-t: include of a FIFO returns with an error" "$H/incfifo.conf" \
    "$H/incfifo.conf:2:9: cannot read included file '$H/fifo.conf': a FIFO"
mkdir "$H/d"
mkfifo "$H/d/b.conf"
printf 'workers 2;\n' >"$H/d/a.conf"
printf 'include %s/d/*.conf;\n' "$H" >"$H/globfifo.main"
t_check "-t: a FIFO matched by a pattern" "$H/globfifo.main" "$H/globfifo.main:1:9: cannot read included file '$H/d/b.conf': a FIFO"
t_check "-t: a FIFO as the config" "$H/fifo.conf" "$H/fifo.conf: cannot read config: a FIFO"
printf 'include /dev/zero;\n' >"$H/zero.conf"
t_check "-t: include of a device" "$H/zero.conf" "$H/zero.conf:1:9: cannot read included file '/dev/zero': a device"
printf 'service s {\n    listen 127.0.0.1:1 tls;\n    tls_certificate %s;\n    tls_key %s;\n    route / { respond 200; }\n}\n' \
    "$H/fifo.conf" "$H/fifo.conf" >"$H/tlsfifo.conf"
t_check "-t: a FIFO as a TLS certificate" "$H/tlsfifo.conf" \
    "$H/tlsfifo.conf:3:21: 'tls_certificate' $H/fifo.conf is a FIFO, not a regular file"
printf 'service s {\n    listen 127.0.0.1:1;\n    access_log %s;\n    route / { module %s; }\n}\n' \
    "$H/fifo.conf" "$H/fifo.conf" >"$H/logfifo.conf"
t_check "-t: a FIFO as an access log" "$H/logfifo.conf" \
    "$H/logfifo.conf:3:16: access log $H/fifo.conf is a FIFO, not a regular file"
t_check "-t: a FIFO as a module" "$H/logfifo.conf" \
    "$H/logfifo.conf:4:22: module $H/fifo.conf is a FIFO, not a regular file"

# Out-of-range times and sizes, in directives and handler options.
bad_value() { # NAME ROUTE_LINE SERVICE_LINE MAIN_LINE WANT
    printf '%s\nservice s {\n    listen 127.0.0.1:1;\n    %s\n    route / { %s; }\n}\n' \
        "$4" "$3" "$2" >"$H/value.conf"
    t_check "$1" "$H/value.conf" "$5"
}
bad_value "-t: proxy timeout=600000h" "proxy http://127.0.0.1:1/ timeout=600000h" "" "" \
    "$H/value.conf:5:41: invalid proxy timeout '600000h': expected a time from 1ms to 24h"
bad_value "-t: proxy connect_timeout=9223372036854775807h" \
    "proxy http://127.0.0.1:1/ connect_timeout=9223372036854775807h" "" "" \
    "$H/value.conf:5:41: invalid proxy connect_timeout '9223372036854775807h'"
bad_value "-t: proxy timeout=86400001ms" "proxy http://127.0.0.1:1/ timeout=86400001ms" "" "" \
    "invalid proxy timeout '86400001ms': expected a time from 1ms to 24h"
bad_value "-t: fastcgi timeout=25h" "fastcgi unix:/run/x.sock timeout=25h" "" "" \
    "$H/value.conf:5:40: invalid FastCGI timeout '25h': expected a time from 1ms to 24h"
bad_value "-t: idle_timeout 600000h" "respond 200" "idle_timeout 600000h;" "" \
    "$H/value.conf:4:18: invalid time '600000h' for 'idle_timeout': expected a number with unit ms, s, m or h, at most 24h"
bad_value "-t: shutdown_timeout 1441m" "respond 200" "" "shutdown_timeout 1441m;" \
    "$H/value.conf:1:18: invalid time '1441m' for 'shutdown_timeout'"
bad_value "-t: max_body_size 17179869184g" "respond 200" "max_body_size 17179869184g;" "" \
    "$H/value.conf:4:19: invalid size '17179869184g' for 'max_body_size': expected a number with unit k, m or g, at most 1g"
bad_value "-t: max_header_size 9007199254740993k" "respond 200" \
    "max_header_size 9007199254740993k;" "" "$H/value.conf:4:21: invalid size '9007199254740993k' for 'max_header_size': expected 1k to 400k"
bad_value "-t: a FastCGI port of 4294967377 (not 81)" "fastcgi 127.0.0.1:4294967377" "" "" \
    "$H/value.conf:5:23: invalid FastCGI address '127.0.0.1:4294967377'"

# A value with a newline is reported on one line.
printf 'workers "2\n3";\nservice s { listen 127.0.0.1:1; route / { respond 200; } }\n' >"$H/nl.conf"
t_check "-t: a value with a newline, escaped" "$H/nl.conf" \
    "$H/nl.conf:1:9: invalid value '2\\n3' for 'workers'"
expect_eq "-t: one line per error" "$(wc -l <"$OUT")" "2"

# SIGHUP with each hostile file: the master keeps serving and logs the error.
PORT=$(free_port)
hello_conf "$PORT" >"$CONF"
start_percore "$CONF" -w 1
n=0
hup_bad() { # NAME WANT, with $CONF already written
    n=$((n + 1))
    kill -HUP "$PC_PID"
    if wait_for log_count_at_least "reload failed" "$n" && kill -0 "$PC_PID" 2>/dev/null &&
        grep -qF -- "$2" "$PC_LOG" && [ "$(curl -s -m 5 "http://127.0.0.1:$PORT/")" = "Hello, world!" ]; then
        ok "reload with $1: the master keeps serving and logs the error"
    else
        not_ok "reload with $1: the master keeps serving and logs the error" \
            "$(tail -n 5 "$PC_LOG" | cut -c 1-300)"
    fi
}
cp "$H/nest.conf" "$CONF"
hup_bad "50,000 nested blocks" "$CONF:1:51: blocks nested deeper than 16"
cp "$H/star.conf" "$CONF"
hup_bad "3,000 '*/'" "$CONF:1:9: include pattern '/*/*/"
cp "$H/star100.conf" "$CONF"
hup_bad "100 '*/'" "$CONF:1:9: include pattern '/*/*/"
cp "$H/incfifo.conf" "$CONF"
hup_bad "a FIFO include" "$CONF:2:9: cannot read included file '$H/fifo.conf': a FIFO"
rm -f "$CONF"
mkfifo "$CONF"
hup_bad "a FIFO as the config" "$CONF: cannot read config: a FIFO"
rm -f "$CONF"
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { proxy http://127.0.0.1:1/ timeout=600000h; }\n}\n' \
    "$PORT" >"$CONF"
hup_bad "proxy timeout=600000h" \
    "$CONF:3:41: invalid proxy timeout '600000h': expected a time from 1ms to 24h"
printf 'workers "2\n3";\nservice s { listen 127.0.0.1:%s; route / { respond 200; } }\n' \
    "$PORT" >"$CONF"
hup_bad "a value with a newline" "$CONF:1:9: invalid value '2\\n3' for 'workers'"
check "the log has no line starting with the rest of the value" \
    sh -c "! grep -q \"^3' for\" '$PC_LOG'"
timeout 10 "$PERCORE" -s reload -c "$CONF" >"$OUT" 2>&1
check "percore -s reload answers the error on one line" \
    grep -qF "$CONF:1:9: invalid value '2\\n3' for 'workers'" "$OUT"
check "percore -s reload: no line holds the rest of the value" sh -c "! grep -q \"^3'\" '$OUT'"
stop_percore

finish
