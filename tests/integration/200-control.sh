#!/bin/bash
# The control socket of `percore -s`: no other user can answer in percore's place, a taken
# socket stops the start, a stale one is replaced, the client never dies of SIGPIPE and
# trusts only the master, and a silent or slow client never holds up the master.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PEER=$T_DIR/ctlpeer.py
cp "$(dirname "$0")/ctlpeer.py" "$PEER"
chmod 755 "$T_DIR"
chmod 644 "$PEER"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
{ printf 'workers 1;\n'; hello_conf "$PORT"; } >"$CONF"
chmod 644 "$CONF"
HELPERS=
OUT=$T_DIR/out
ERR=$T_DIR/err
# Another user, and the python it can run.
AS_NOBODY=(env -u XDG_RUNTIME_DIR -u RUNTIME_DIRECTORY TMPDIR="$T_DIR/tmp"
    setpriv --reuid nobody --regid nogroup --clear-groups)
PY=/usr/bin/python3 # not a per-user shim: it starts fast and runs as any user
[ -x "$PY" ] || PY=$(command -v python3)
"${AS_NOBODY[@]}" "$PY" -c pass 2>/dev/null || skip_all "nobody cannot run $PY"

cleanup() {
    for p in $HELPERS; do kill "$p" 2>/dev/null; done
    stop_percore
}
trap cleanup EXIT

# helper MODE SOCK ARGS...: a ctlpeer.py for $CONF in the background, as root.
helper() {
    "$PY" "$PEER" "$1" "$CONF" "${@:2}" 2>>"$T_DIR/helper.err" &
}

# try_start: start percore; 0 once it is ready (PC_PID set), 1 if it exited (PC_RC, log).
try_start() {
    : >"$PC_LOG"
    "$PERCORE" -f -c "$CONF" >>"$PC_LOG" 2>&1 &
    PC_PID=$!
    for _ in $(seq 1 100); do
        if log_has "ready:"; then return 0; fi
        if ! kill -0 "$PC_PID" 2>/dev/null; then
            wait "$PC_PID"
            PC_RC=$?
            PC_PID=
            return 1
        fi
        sleep 0.1
    done
    bail "percore neither became ready nor exited"
}

ctl() { # CMD: run percore -s CMD; RC, $OUT and $ERR hold the result
    "$PERCORE" -c "$CONF" -s "$1" >"$OUT" 2>"$ERR"
    RC=$?
}

# ---- no master ----
for cmd in reload status; do
    ctl "$cmd"
    if [ "$RC" -eq 1 ] && grep -q "^percore: no running percore for '$CONF'" "$ERR"; then
        ok "-s $cmd without a master: exit 1, 'no running percore'"
    else
        not_ok "-s $cmd without a master: exit 1, 'no running percore'" "rc $RC" "$(cat "$ERR")"
    fi
done
SOCK=$(sed -n 's/.*control socket \(\/.*\.sock\): .*/\1/p' "$ERR")
check "the message names the control socket" [ -n "$SOCK" ]
PIDFILE=${SOCK%.sock}.pid
ctl bogus
expect_eq "-s with an unknown command: exit 1" "$RC:$(cat "$ERR")" \
    "1:percore: -s: unknown command 'bogus' (expected 'reload', 'status' or 'top')"

# ---- another user binds first what percore would use ----
mkdir -m 1777 "$T_DIR/nobody"
"${AS_NOBODY[@]}" "$PY" "$PEER" squat "$CONF" "$SOCK" "$T_DIR/nobody/squat" \
    2>>"$T_DIR/helper.err" &
SQUAT=$!
HELPERS="$HELPERS $SQUAT"
wait_for test -f "$T_DIR/nobody/squat" || bail "the squatter did not start"
check "another user cannot create a socket where percore's is" \
    sh -c "! grep -qw path '$T_DIR/nobody/squat'"
if try_start; then
    # The generation after the one the master says it serves.
    GEN=$(sed -n 's/.*ready: .* serving generation \([0-9]*\).*/\1/p' "$PC_LOG")
    ctl reload
    if [ -n "$GEN" ] && [ "$RC" -eq 0 ] &&
        grep -q "reload done: generation $((GEN + 1)) serving" "$OUT"; then
        ok "with another user squatting, -s reload gets the real master's answer"
    else
        not_ok "with another user squatting, -s reload gets the real master's answer" \
            "rc $RC" "$(cat "$OUT" "$ERR")"
    fi
    stop_percore
else
    if [ "$PC_RC" -ne 0 ] && grep -q "control" "$PC_LOG"; then
        ok "with another user squatting, start-up fails naming the control socket"
    else
        not_ok "with another user squatting, start-up fails naming the control socket" \
            "$(cat "$PC_LOG")"
    fi
fi
kill "$SQUAT" 2>/dev/null
wait "$SQUAT" 2>/dev/null

# ---- a live listener of percore's own user at the path: start-up fails ----
rm -f "$T_DIR/squat"
helper squat "$SOCK" "$T_DIR/squat"
SQUAT=$!
HELPERS="$HELPERS $SQUAT"
wait_for test -f "$T_DIR/squat" || bail "the squatter did not start"
if try_start; then
    not_ok "a live listener on the control socket: start-up fails" "$(cat "$PC_LOG")"
    stop_percore
else
    expect_eq "a live listener on the control socket: start-up fails with exit 1" \
        "$PC_RC:$(head -n 1 "$PC_LOG")" \
        "1:master: control socket $SOCK is in use by another process (pid $SQUAT, uid 0)"
fi
expect_eq "and nothing listens on its port" "$(ss -Htln "sport = :$PORT" | wc -l)" "0"
kill "$SQUAT" 2>/dev/null
wait "$SQUAT" 2>/dev/null

# ---- a socket file left by a master that died is replaced ----
rm -f "$SOCK"
"$PY" "$PEER" stale "$CONF" "$SOCK"
check "a stale socket file is there" test -S "$SOCK"
if try_start; then
    ctl status
    check "percore starts over a stale socket file and answers -s status" [ "$RC" -eq 0 ]
    check "and says it replaced it" log_has "removed the stale control socket $SOCK"
else
    not_ok "percore starts over a stale socket file" "$(cat "$PC_LOG")"
fi
FIRST=$PC_PID

# ---- a second master of the same configuration (moved to another port) ----
PORT2=$(free_port)
sed -i "s/127.0.0.1:$PORT;/127.0.0.1:$PORT2;/" "$CONF"
timeout 10 "$PERCORE" -f -c "$CONF" >"$OUT" 2>&1
expect_eq "a second master of the same configuration refuses to start" \
    "$?:$(head -n 1 "$OUT")" \
    "1:master: another percore (pid $FIRST) is running with this configuration: $PIDFILE is locked"
sed -i "s/127.0.0.1:$PORT2;/127.0.0.1:$PORT;/" "$CONF"
ctl status
check "the first one still answers" [ "$RC" -eq 0 ]

# ---- one write, no SIGPIPE: 200 reloads and 100 status requests ----
for cmd in reload status; do
    bad=0 sig=0 first='' runs=200
    [ "$cmd" = status ] && runs=100
    for i in $(seq 1 "$runs"); do
        ctl "$cmd"
        if [ "$cmd" = reload ]; then want="reload done: generation"; else want="generation"; fi
        if [ "$RC" -ne 0 ] || ! grep -q "^$want" "$OUT"; then
            bad=$((bad + 1))
            [ "$RC" -gt 128 ] && sig=$((sig + 1))
            [ -z "$first" ] && first="run $i: rc $RC: $(cat "$OUT" "$ERR")"
        fi
    done
    if [ "$bad" -eq 0 ]; then
        ok "-s $cmd $runs times: every one exits 0 with the master's answer"
    else
        not_ok "-s $cmd $runs times: every one exits 0 with the master's answer" \
            "$bad failed, $sig of them killed by a signal" "$first"
    fi
done
check "the master still runs" kill -0 "$PC_PID"

# ---- a full reload queue: the master says it is busy ----
# While the master is stopped, a SIGHUP and 17 reload commands wait for it. Once it goes
# on, it starts the SIGHUP's reload first, then reads one batch of 16 commands, which all
# wait for the next reload: the queue is full, and the 17th is told so.
kill -STOP "$PC_PID"
wait_for grep -q '^State:[[:space:]]*T' "/proc/$PC_PID/status" || not_ok "the master stops"
kill -HUP "$PC_PID"
"$PY" "$PEER" reloads "$CONF" "$SOCK" "$T_DIR/reloads" 17 >"$T_DIR/answers" \
    2>>"$T_DIR/helper.err" &
RELOADS=$!
HELPERS="$HELPERS $RELOADS"
wait_for grep -q "^sent 17" "$T_DIR/reloads" || not_ok "17 reload commands are sent"
kill -CONT "$PC_PID"
wait "$RELOADS"
expect_eq "a reload command beyond 16 waiting is told the master is busy" \
    "$(grep -c '^error: too many clients already wait for a reload$' "$T_DIR/answers")" "1"
expect_eq "and the 16 waiting get the next reload's result" \
    "$(grep -c '^ok$' "$T_DIR/answers")" "16"

# ---- a silent client does not hold up a reload ----
helper silent "$SOCK" "$T_DIR/silent"
HELPERS="$HELPERS $!"
wait_for grep -q connected "$T_DIR/silent" 2>/dev/null || bail "the silent client did not connect"
T0=$(date +%s%N)
ctl reload
T1=$(date +%s%N)
MS=$(((T1 - T0) / 1000000))
if [ "$RC" -eq 0 ] && grep -q "^reload done" "$OUT"; then
    ok "-s reload beside a silent client exits 0 ($MS ms)"
else
    not_ok "-s reload beside a silent client exits 0" "rc $RC" "$(cat "$OUT" "$ERR")"
fi
check "it returned while the silent client was still connected" \
    sh -c "! grep -q closed '$T_DIR/silent'"
check "within a few seconds ($MS ms)" [ "$MS" -lt 5000 ]
for _ in $(seq 1 200); do # the master drops it after 10 s
    grep -q closed "$T_DIR/silent" && break
    sleep 0.1
done
expect_eq "the silent client is dropped in the end, told why" \
    "$(sed -n 's/^closed: //p' "$T_DIR/silent")" "error: no command received in time"

# More silent clients than the master keeps waiting, then a reload.
helper silent "$SOCK" "$T_DIR/silent20" 20
HELPERS="$HELPERS $!"
wait_for grep -q "connected 20" "$T_DIR/silent20" 2>/dev/null ||
    bail "the silent clients did not connect"
ctl reload
check "-s reload beside 20 silent clients exits 0" [ "$RC" -eq 0 ]

# A slow client, its line in pieces; a line that never ends; a line with CRLF.
expect_eq "a command line sent in pieces is answered" \
    "$("$PY" "$PEER" send "$CONF" "$SOCK" "sta" "t" "us\n" | tail -n 1)" "ok"
expect_eq "CRLF ends a line too" \
    "$("$PY" "$PEER" send "$CONF" "$SOCK" "status\r\n" | tail -n 1)" "ok"
expect_eq "a line too long is refused" \
    "$("$PY" "$PEER" send "$CONF" "$SOCK" "$(printf 'x%.0s' $(seq 1 200))")" \
    "error: command line too long"
expect_eq "an unknown command is refused by the master" \
    "$("$PY" "$PEER" send "$CONF" "$SOCK" "stop\n")" \
    "error: unknown command (expected 'reload', 'status' or 'top')"
ctl status
check "the master answers after all of them" [ "$RC" -eq 0 ]
stop_percore
check "the master removes its socket and pidfile on the way out" \
    sh -c "[ ! -e '$SOCK' ] && [ ! -e '$PIDFILE' ]"

# ---- the client trusts only the master ----
# A process of the same user at the path, not named by the pidfile.
rm -f "$T_DIR/squat"
helper squat "$SOCK" "$T_DIR/squat"
SQUAT=$!
HELPERS="$HELPERS $SQUAT"
wait_for test -f "$T_DIR/squat" || bail "the squatter did not start"
ctl reload
if [ "$RC" -eq 1 ] && grep -q "not by the master" "$ERR" && ! grep -q "generation 99" "$OUT"; then
    ok "-s reload to a listener that is not the master: exit 1, not its text"
else
    not_ok "-s reload to a listener that is not the master: exit 1, not its text" \
        "rc $RC" "$(cat "$OUT" "$ERR")"
fi
kill "$SQUAT" 2>/dev/null
wait "$SQUAT" 2>/dev/null
rm -f "$SOCK" "$PIDFILE"

# One that passes for the master but does not answer like one.
for answer in 'hello\n' 'ok' '' 'generation 1\nokay\n'; do
    rm -f "$T_DIR/fake" "$SOCK"
    helper fake "$SOCK" "$T_DIR/fake" "$answer"
    FAKE=$!
    HELPERS="$HELPERS $FAKE"
    wait_for test -f "$T_DIR/fake" || bail "the fake master did not start"
    ctl reload
    if [ "$RC" -eq 1 ] && grep -q -e "not a valid answer" -e "no answer" "$ERR"; then
        ok "an answer '$answer' is not valid: exit 1"
    else
        not_ok "an answer '$answer' is not valid: exit 1" "rc $RC" "$(cat "$OUT" "$ERR")"
    fi
    kill "$FAKE" 2>/dev/null
    wait "$FAKE" 2>/dev/null
done
rm -f "$SOCK" "$PIDFILE"

# ---- without root, the fallback directory must be percore's user's own ----
mkdir -p "$T_DIR/tmp/percore-65534"
chmod 1777 "$T_DIR/tmp"
chmod 777 "$T_DIR/tmp/percore-65534"
timeout 10 "${AS_NOBODY[@]}" "$PERCORE" -f -c "$CONF" >"$OUT" 2>&1
expect_eq "a fallback directory made by another user stops the start" \
    "$?:$(head -n 1 "$OUT")" \
    "1:master: control directory $T_DIR/tmp/percore-65534 belongs to uid 0, not to uid 65534"
rm -rf "$T_DIR/tmp/percore-65534"
: >"$PC_LOG"
"${AS_NOBODY[@]}" "$PERCORE" -f -c "$CONF" >>"$PC_LOG" 2>&1 &
PC_PID=$!
wait_for log_has "ready:" || not_ok "percore as nobody starts" "$(cat "$PC_LOG")"
expect_eq "as nobody, the control directory is made private" \
    "$(stat -c '%U %a' "$T_DIR/tmp/percore-65534")" "nobody 700"
"${AS_NOBODY[@]}" "$PERCORE" -c "$CONF" -s status >"$OUT" 2>&1
check "and -s status as nobody reaches the master" [ "$?" -eq 0 ]
stop_percore

finish
