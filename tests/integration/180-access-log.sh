#!/bin/bash
# Access logs: one combined-format line per request (plus the time taken) in the service's
# file, hostile bytes escaped, SIGUSR1 reopening after rotation, and a log path the
# workers could not write as a config error that percore -t reports without creating it.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
QUIET=$(free_port)
LOG=$T_DIR/access.log
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
service s {
    listen 127.0.0.1:$PORT;
    access_log $LOG;
    route / { respond 200 "logged\n"; }
}
service quiet {
    listen 127.0.0.1:$QUIET;
    route / { respond 200 "quiet\n"; }
}
CONF
"$PERCORE" -t -c "$CONF" >/dev/null 2>&1
check "percore -t does not create the log file" [ ! -e "$LOG" ]
start_percore "$CONF"
URL=http://127.0.0.1:$PORT

curl -s -o /dev/null -A 'test/1.0' -e 'http://ref.example/' "$URL/a?b=1"
curl -s -o /dev/null -A "evil\" agent\\" "$URL/q"
curl -s -o /dev/null -X POST --data-binary 'body' "$URL/post"
curl -s -o /dev/null "http://127.0.0.1:$QUIET/"
# Lines are written at the end of the worker's loop turn: wait for them, bounded.
lines_at_least() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
wait_for lines_at_least "$LOG" 3
expect_eq "one line per request of the service, none for the other" "$(wc -l <"$LOG")" "3"
check "the combined format, with the time taken" grep -Eq \
    '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} [+-][0-9]{4}\] "GET /a\?b=1 HTTP/1\.1" 200 7 "http://ref\.example/" "test/1\.0" [0-9]+\.[0-9]{3}$' "$LOG"
check "quotes and backslashes in fields are escaped" grep -Fq '"evil\x22 agent\x5c"' "$LOG"
check "the method is logged" grep -q '"POST /post HTTP/1.1" 200' "$LOG"

# 200 requests over keep-alive from both workers: every one logged, every line whole.
PIDS=
for _ in 1 2 3 4; do
    # shellcheck disable=SC2046
    curl -s $(for i in $(seq 1 50); do printf -- '-o /dev/null %s ' "$URL/k$i"; done) &
    PIDS="$PIDS $!"
done
# shellcheck disable=SC2086
wait $PIDS
wait_for lines_at_least "$LOG" 203
expect_eq "200 more requests, 200 more lines" "$(wc -l <"$LOG")" "203"
expect_eq "every line is whole" "$(grep -Evc '^127\.0\.0\.1 - - \[.*\] ".*" [0-9]{3} [0-9]+ ".*" ".*" [0-9.]+$' "$LOG")" "0"

# Rotation: move the file away, SIGUSR1, and the next line goes to a new file.
mv "$LOG" "$LOG.1"
kill -USR1 "$PC_PID"
# The master and every worker reopen their logs on the signal (three lines); a request
# after that lands in the new file.
wait_for log_count_at_least "log files reopened" 3
curl -s -o /dev/null "$URL/after"
wait_for lines_at_least "$LOG" 1
expect_eq "after SIGUSR1 a new file gets the new lines" "$(grep -c '/after' "$LOG" 2>/dev/null)" "1"
expect_eq "and the rotated one keeps the old ones" "$(wc -l <"$LOG.1")" "203"
stop_percore

# The error log file is reopened on SIGUSR1 too, by the master and each worker, again and
# again: each rotation's lines land in a new file of the same name.
ELOG=$T_DIR/error.log
sed "1i log $ELOG;" "$CONF" >"$T_DIR/elog.conf"
start_elog() {
    : >"$PC_LOG"
    "$PERCORE" -f -c "$T_DIR/elog.conf" >>"$PC_LOG" 2>&1 &
    PC_PID=$!
    wait_for grep -q "ready:" "$ELOG" || bail "percore with an error log file did not start"
}
reopened() { [ "$(grep -c "log files reopened" "$ELOG" 2>/dev/null)" -ge 3 ]; }
start_elog
for n in 1 2 3; do
    mv "$ELOG" "$ELOG.$n"
    kill -USR1 "$PC_PID"
    wait_for reopened
    check "rotation $n: the master and both workers write to the new error log" reopened
done
stop_percore
expect_eq "no stray file beside the logs" \
    "$(find "$T_DIR" -maxdepth 1 -newer "$ELOG.1" -type f ! -name 'error.log*' ! -name 'access.log*' | wc -l)" "0"

# A log the workers could not write is a config error at its position.
mkdir -p "$T_DIR/ro"
chmod 555 "$T_DIR/ro"
sed -i "s|access_log $LOG;|access_log $T_DIR/ro/a.log;|" "$CONF"
# Root writes into a 555 directory: as root, the check runs as nobody, who must read the
# config.
AS_USER=()
if [ "$(id -u)" -eq 0 ]; then
    AS_USER=(setpriv --reuid nobody --regid nogroup --clear-groups)
    chmod a+rx "$T_DIR"
    chmod a+r "$CONF"
fi
"${AS_USER[@]}" "$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "an unwritable directory is an error" \
    grep -q "$CONF:4:16: access log $T_DIR/ro/a.log: cannot create it in $T_DIR/ro: Permission denied" "$T_DIR/out"
sed -i "s|access_log $T_DIR/ro/a.log;|access_log $T_DIR/missing/a.log;|" "$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a missing directory is an error" \
    grep -q "$CONF:4:16: access log $T_DIR/missing/a.log: cannot create it in $T_DIR/missing: No such file or directory" "$T_DIR/out"
sed -i "s|access_log $T_DIR/missing/a.log;|access_log relative.log;|" "$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a relative path is an error" grep -q "$CONF:4:16: 'access_log' needs an absolute path, 'journal' or 'off'" "$T_DIR/out"

finish
