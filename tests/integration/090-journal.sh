#!/bin/bash
# `log journal`: every line reaches journald with its priority and structured fields
# (PERCORE_ROLE, WORKER_SLOT, GENERATION, and the sender's pid). journald is stood in for
# by a receiver on /run/systemd/journal/socket inside a private mount namespace.
if [ -z "${PERCORE_IN_NS:-}" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
        echo "1..0 # SKIP needs root and unshare for a private mount namespace"
        exit 0
    fi
    export PERCORE_IN_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
if ! mount -t tmpfs tmpfs /run/systemd 2>/dev/null; then
    mkdir -p /run/systemd
    mount -t tmpfs tmpfs /run/systemd || bail "cannot mount a tmpfs on /run/systemd"
fi
mkdir -p /run/systemd/journal
JSON=$T_DIR/journal.json
: >"$JSON"
python3 "$(dirname "$0")/journal_rx.py" /run/systemd/journal/socket "$JSON" &
RX=$!
wait_for test -S /run/systemd/journal/socket || bail "receiver did not start"

PORT=$(free_port)
CONF=$T_DIR/percore.conf
PDEAD=$(free_port)
{
    printf 'log journal;\nworkers 2;\nrequest_id on;\ntracing { }\n'
    hello_conf "$PORT"
    printf 'service dead {\n    listen 127.0.0.1:%s;\n    route / { proxy http://127.0.0.1:1/; }\n}\n' "$PDEAD"
} >"$CONF"
: >"$PC_LOG"
"$PERCORE" -f -v -c "$CONF" >>"$PC_LOG" 2>&1 &
PC_PID=$!
MASTER=$PC_PID
wait_for grep -q '"MESSAGE": "master: ready: 2 workers' "$JSON" || not_ok "ready reached the journal"
expect_eq "serves with log journal" "$(curl -s "http://127.0.0.1:$PORT/")" "Hello, world!"
FAILED_ID=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PDEAD/x" | tr -d '\r' |
    sed -n 's/^x-request-id: //Ip')
wait_for grep -q "request $FAILED_ID: GET /x" "$JSON"
VICTIM=$(workers | head -n 1)
kill -KILL "$VICTIM"
wait_for grep -q "died (signal 9" "$JSON"
stop_percore
wait_for grep -q '"MESSAGE": "master: stopped"' "$JSON"
kill "$RX"
wait "$RX" 2>/dev/null

# The generation the master announced; its workers' lines must carry the same.
GEN=$(sed -n 's/.*"MESSAGE": "master: ready: [0-9]* workers serving generation \([0-9]*\)".*/\1/p' "$JSON" |
    head -n 1)
check "the ready line names the generation ($GEN)" test -n "$GEN"
q() { # PYTHON-EXPRESSION over entries e: prints the matching entries' count
    python3 -c "
import json, sys
es = [json.loads(l) for l in open('$JSON')]
print(sum(1 for e in es if $1))"
}
check "stderr stays quiet: lines go to the journal" sh -c "! grep -q 'ready:' '$PC_LOG'"
expect_eq "master line with PRIORITY=6, PERCORE_ROLE=master and the master's pid" \
    "$(q "e.get('MESSAGE','').startswith('master: ready: 2 workers') and e.get('PRIORITY')=='6' and e.get('PERCORE_ROLE')=='master' and e.get('_PID')=='$MASTER' and e.get('SYSLOG_IDENTIFIER')=='percore'")" "1"
expect_eq "crash report is a warning (PRIORITY=4)" \
    "$(q "'worker' in e.get('MESSAGE','') and 'died (signal 9' in e.get('MESSAGE','') and e.get('PRIORITY')=='4'")" "1"
expect_eq "worker lines carry PERCORE_ROLE=worker, WORKER_SLOT and GENERATION" \
    "$(q "e.get('PERCORE_ROLE')=='worker' and e.get('WORKER_SLOT') in ('0','1') and e.get('GENERATION')=='$GEN' and e.get('_PID')!='$MASTER' and e.get('MESSAGE','').startswith('worker '+e.get('WORKER_SLOT')+':')" | awk '{print ($1 >= 2)}')" "1"
expect_eq "a failed request's line has REQUEST_ID= and TRACE_ID= fields" \
    "$(q "e.get('REQUEST_ID')=='$FAILED_ID' and len(e.get('TRACE_ID',''))==32 and 'GET /x' in e.get('MESSAGE','')")" "1"
expect_eq "debug lines have PRIORITY=7" \
    "$(q "e.get('PRIORITY')=='7'" | awk '{print ($1 >= 1)}')" "1"

finish
