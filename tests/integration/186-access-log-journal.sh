#!/bin/bash
# `access_log journal`: each request is a journal entry with a PERCORE_NAME= field per
# value (absent ones left out) and a short MESSAGE=, under SYSLOG_IDENTIFIER=percore-access;
# a client's newlines and bytes cannot make another field or entry; fields= picks; a journal
# that is gone costs entries, never requests. journald is stood in for by a receiver on
# /run/systemd/journal/socket inside a private mount namespace, as in 090-journal.sh.
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

ECHO="$(dirname "$0")/echo_upstream.py"
HOSTILE="$(dirname "$0")/hostile_req.py"
UP_PID=
RX=
cleanup() {
    stop_percore
    for p in $UP_PID $RX; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
if ! mount -t tmpfs tmpfs /run/systemd 2>/dev/null; then
    mkdir -p /run/systemd
    mount -t tmpfs tmpfs /run/systemd || bail "cannot mount a tmpfs on /run/systemd"
fi
mkdir -p /run/systemd/journal
JSON=$T_DIR/journal.json
: >"$JSON"
start_rx() {
    python3 "$(dirname "$0")/journal_rx.py" /run/systemd/journal/socket "$JSON" &
    RX=$!
    wait_for test -S /run/systemd/journal/socket || bail "receiver did not start"
}
start_rx

PORT=$(free_port)
TLS=$(free_port)
SUB=$(free_port)
UP=$(free_port)
DEAD=$(free_port)
python3 "$ECHO" "$UP" U &
UP_PID=$!
wait_for curl -sf -o /dev/null "http://127.0.0.1:$UP/" || bail "the upstream did not start"
self_signed_cert localhost "$T_DIR/cert.pem" "$T_DIR/key.pem" || bail "no certificate"
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
service j {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TLS tls http2;
    tls_certificate $T_DIR/cert.pem;
    tls_key $T_DIR/key.pem;
    access_log journal;
    route = /hello { respond 200 "hello\n"; }
    route /up/ { proxy http://127.0.0.1:$UP/; }
    route /dead/ { proxy http://127.0.0.1:$DEAD/; }
}
service sub {
    listen 127.0.0.1:$SUB;
    access_log journal fields=status,path;
    route / { respond 204; }
}
CONF
start_percore "$CONF"
URL=http://127.0.0.1:$PORT
# count PYTHON-EXPRESSION over entries e (only percore-access ones): how many match.
count() {
    python3 -c "
import json, sys
es = [json.loads(l) for l in open('$JSON')]
es = [e for e in es if e.get('SYSLOG_IDENTIFIER') == 'percore-access']
print(sum(1 for e in es if $1))"
}
entries_at_least() { [ "$(count True)" -ge "$1" ]; }
# entry UA KEYS...: those fields of the entry with that user agent, one per line ("-":
# absent).
entry() {
    python3 -c "
import json, sys
for l in open('$JSON'):
    e = json.loads(l)
    if e.get('PERCORE_USER_AGENT') == sys.argv[1]:
        print('\n'.join(e.get(k, '-') for k in sys.argv[2:]))" "$@"
}

curl -s -o /dev/null -A t-hello "$URL/hello"
curl -s -o /dev/null -A t-up "$URL/up/a"
curl -s -o /dev/null -A t-dead "$URL/dead/x"
curl -s -o /dev/null -A t-404 "$URL/none"
# A newline in a header value (HTTP/2 lets a client send one) must not make a field.
H2=$(python3 "$HOSTILE" h2 "$TLS" '/h2/\xff\nPERCORE_STATUS=200' \
    user-agent 't-h2\nPERCORE_STATUS=200\nMESSAGE=forged\x00\xc0\x80')
expect_eq "the HTTP/2 request is answered (400: control bytes in its path)" "$H2" "400"
curl -s -o /dev/null "http://127.0.0.1:$SUB/s"
wait_for entries_at_least 6
expect_eq "one entry per request" "$(count True)" "6"

expect_eq "a 200: message, priority and fields" "$(entry t-hello MESSAGE PRIORITY PERCORE_STATUS \
    PERCORE_SERVICE PERCORE_ROUTE PERCORE_CLIENT PERCORE_METHOD PERCORE_PATH PERCORE_PROTOCOL \
    PERCORE_HOST PERCORE_BYTES PERCORE_UPSTREAM_ADDR PERCORE_TIME | sed 's/ [0-9.]*$/ SECS/')" \
    "127.0.0.1 \"GET /hello HTTP/1.1\" 200 6 SECS
6
200
j
= /hello
127.0.0.1
GET
/hello
HTTP/1.1
127.0.0.1:$PORT
6
-
-"
check "with a request ID and a duration in seconds" test \
    "$(count "e.get('PERCORE_USER_AGENT') == 't-hello' and len(e['PERCORE_REQUEST_ID']) == 32 and
        e['PERCORE_DURATION'].count('.') == 1 and len(e['PERCORE_DURATION'].split('.')[1]) == 6")" = 1
expect_eq "journalctl PERCORE_STATUS=502 finds the failed upstream's" \
    "$(count "e.get('PERCORE_STATUS') == '502'")" "1"
expect_eq "a failed upstream: its address, one attempt, no status or times" \
    "$(entry t-dead PERCORE_UPSTREAM_ADDR PERCORE_UPSTREAM_ATTEMPTS PERCORE_UPSTREAM_STATUS \
        PERCORE_UPSTREAM_CONNECT_TIME PERCORE_UPSTREAM_TIME)" \
    "http://127.0.0.1:$DEAD/
1
-
-
-"
check "a failed upstream: the error names it" \
    test "$(count "'upstream http://127.0.0.1:$DEAD/' in e.get('PERCORE_ERROR', '')")" = 1
expect_eq "proxied: the upstream's status and times" \
    "$(entry t-up PERCORE_UPSTREAM_ADDR PERCORE_UPSTREAM_STATUS PERCORE_UPSTREAM_ATTEMPTS |
        tr '\n' ' ')$(count "e.get('PERCORE_USER_AGENT') == 't-up' and
        all(float(e[k]) >= 0 for k in ('PERCORE_UPSTREAM_CONNECT_TIME',
            'PERCORE_UPSTREAM_HEADER_TIME', 'PERCORE_UPSTREAM_TIME'))")" \
    "http://127.0.0.1:$UP/ 200 1 1"
expect_eq "a 404 has no route field" "$(entry t-404 PERCORE_STATUS PERCORE_ROUTE | tr '\n' ' ')" \
    "404 - "

UA='t-h2\x0aPERCORE_STATUS=200\x0aMESSAGE=forged\x00\xc0\x80'
expect_eq "hostile bytes stay in their fields, escaped" \
    "$(count "e.get('PERCORE_USER_AGENT') == r'$UA' and e['PERCORE_STATUS'] == '400' and
        e['PERCORE_PATH'] == r'/h2/\xff\x0aPERCORE_STATUS=200' and
        e['MESSAGE'].startswith('127.0.0.1 \"GET /h2/\\\\xff\\\\x0aPERCORE_STATUS=200 HTTP/2\" 400')")" "1"
expect_eq "no entry was forged" "$(count "e.get('MESSAGE') == 'forged' or
    (e.get('PERCORE_STATUS') == '200' and e.get('PERCORE_USER_AGENT') != 't-hello' and
     e.get('PERCORE_USER_AGENT') != 't-up')")" "0"
check "every value is one line of UTF-8 without control characters" python3 -c "
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    for k, v in e.items():
        assert '\ufffd' not in v and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in v), (k, v)
" "$JSON"
expect_eq "fields= picks: status and path only" \
    "$(python3 -c "
import json
for l in open('$JSON'):
    e = json.loads(l)
    if e.get('PERCORE_PATH') == '/s':
        print(sorted(k for k in e if k.startswith('PERCORE_')), e['PERCORE_STATUS'])")" \
    "['PERCORE_PATH', 'PERCORE_STATUS'] 204"

# No journal: requests are served as before, and the lost entries are counted in a warning.
kill "$RX"
wait "$RX" 2>/dev/null
RX=
rm -f /run/systemd/journal/socket
for i in 1 2 3; do
    expect_eq "served without a journal ($i)" "$(curl -s "$URL/hello")" "hello"
done
# The warning is rate-limited per worker: a worker that has not warned yet does now.
wait_for grep -q "journal access log: [0-9]* entries dropped" "$PC_LOG"
check "dropped entries are counted in a warning" \
    grep -q "journal access log: [0-9]* entries dropped: No such file or directory" "$PC_LOG"
: >"$JSON"
start_rx
curl -s -o /dev/null -A t-back "$URL/hello"
wait_for entries_at_least 1
expect_eq "a journal that comes back gets the next entries" "$(count "e.get('PERCORE_USER_AGENT') == 't-back'")" "1"

finish
