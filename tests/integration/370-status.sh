#!/bin/bash
# The status handler and `percore -s top`: a JSON document with one entry per worker (their
# real pids), services, routes and upstream servers with their health, that stays valid
# JSON whatever bytes a route's label holds; an HTML dashboard under a strict
# Content-Security-Policy that a real browser (headless Chromium) renders into one row per
# worker and per upstream server, and a screenshot of it; top's snapshots, one line per
# worker.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO="$(dirname "$0")/echo_upstream.py"
D=${T_DIR}
UP_PID=
cleanup() {
    stop_percore
    [ -n "${UP_PID}" ] && kill "${UP_PID}" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT

PORT=$(free_port)
PADMIN=$(free_port)
PUP=$(free_port)
PDEAD=$(free_port) # nothing listens
APP="http://127.0.0.1:${PORT}"
STATUS="http://127.0.0.1:${PADMIN}/status"

python3 "${ECHO}" "${PUP}" U &
UP_PID=$!
wait_for curl -sf -o /dev/null "http://127.0.0.1:${PUP}/count" || bail "upstream did not start"

# The regex route's label holds a double quote, backslashes, a control byte, a byte that is
# no UTF-8 and markup: the JSON must still parse, the page must show it as text.
CONF="${D}/percore.conf"
write_conf() {
    cat >"${CONF}" <<EOF
workers 2;
shutdown_timeout 5s;
upstream pool {
    server http://127.0.0.1:${PUP};
    server http://127.0.0.1:${PDEAD};
    health_check /healthz interval=200ms timeout=1s fall=1 rise=1;
}
service app {
    listen 127.0.0.1:${PORT};
    route = /hello { respond 200 "hi\n"; }
    route ~ "^/h\\"q\\\\\\\\b\\x01\\xff<x>" { respond 200 "q\n"; }
    route /up/ { proxy http://pool/; }
}
service admin {
    listen 127.0.0.1:${PADMIN};
    route = /status { status; }
    route / { respond 200 "$1\n"; }
}
EOF
}
write_conf one
"${PERCORE}" -c "${CONF}" -s top -n 1 >/dev/null 2>"${D}/top.err"
expect_eq "top without a master: exit 1" "$?" "1"
check "with 'no running percore'" grep -qF "percore: no running percore for '${CONF}'" "${D}/top.err"
start_percore "${CONF}"
MPID=${PC_PID}

# json FILE NAME=EXPR...: python expressions on the JSON document in FILE (as d), in one
# run (python starts slowly on a loaded machine); each result into J[NAME].
declare -A J
json() {
    local f=$1 k v
    shift
    J=()
    while IFS=$'\t' read -r k v; do J[$k]=$v; done < <(python3 - "$f" "$@" <<'PY'
import json, os, sys
try:
    d = json.load(open(sys.argv[1], "rb"))
except ValueError as e:
    print("parses\tno: %s" % e)
    sys.exit()
for a in sys.argv[2:]:
    k, e = a.split("=", 1)
    try:
        v = eval(e)
    except Exception as x:
        v = "error: %r" % x
    print(k + "\t" + str(v).replace("\n", " ").replace("\t", " "))
PY
)
}

fetch() {
    curl -s -o "$1" "${STATUS}?format=json"
}

# dead_is_down: the health checks have marked the dead server down, the other up.
dead_is_down() {
    fetch "${D}/s0" && json "${D}/s0" "x=sorted((u['server'].endswith(':${PUP}'), u['state']) for u in d['upstreams'])" &&
        [ "${J[x]}" = "[(False, 'down'), (True, 'up')]" ]
}
wait_for dead_is_down || bail "the dead upstream server was never marked down: $(cat "${D}/s0")"

# New connections each: both workers take some.
for _ in $(seq 1 10); do curl -s -o /dev/null "${APP}/hello"; done
for _ in $(seq 1 4); do curl -s -o /dev/null "${APP}/up/x"; done

# ---- JSON ----
H=${D}/headers
curl -s -D "${H}" -o "${D}/s1" "${STATUS}?format=json"
check "JSON: application/json, nosniff, no-store" sh -c "grep -qi '^content-type: application/json' '${H}' &&
    grep -qi '^x-content-type-options: nosniff' '${H}' && grep -qi '^cache-control: no-store' '${H}'"
# The label as JSON gives it: \xff as U+FFFD.
export HOSTILE=$'~ ^/h"q\\\\b\x01\xef\xbf\xbd<x>'
json "${D}/s1" \
    'parses=d["schema"] == 1' \
    'server=(d["server"]["pid"], d["server"]["generation"], d["server"]["stopping"])' \
    'pids=" ".join(str(p) for p in sorted(w["pid"] for w in d["workers"]))' \
    'slots=sorted((w["slot"], w["generation"]) for w in d["workers"])' \
    'by=d["server"]["answered_by"]' \
    'sum=sum(w["requests"] for w in d["workers"]) == d["totals"]["requests"] == d["latency"]["count"]' \
    'shape=all(set(w) >= {"cpu_seconds", "connections", "heartbeat_age_ms", "loop_lag"}
        and set(w["loop_lag"]) >= {"turns", "p50_seconds", "p99_seconds", "buckets"}
        and len(w["loop_lag"]["buckets"]) == len(d["loop_lag_bounds_seconds"]) for w in d["workers"])' \
    'app=[(s["requests"], s["by_class"]["2xx"]) for s in d["services"] if s["name"] == "app"]' \
    'routes=[r["route"] for r in d["routes"] if r["service"] == "app"] == ["= /hello", os.environ["HOSTILE"], "/up/"]' \
    "live=[(u['up'], u['requests'], u['responses']['2xx'], u['checked']) for u in d['upstreams'] if u['server'].endswith(':${PUP}')]" \
    "dead=[(u['up'], u['state'], u['why'], u['since'] is not None) for u in d['upstreams'] if u['server'].endswith(':${PDEAD}')]" \
    'pct=all(isinstance(d["latency"][k], float) for k in ("p50_seconds", "p90_seconds", "p99_seconds"))'
expect_eq "the document parses" "${J[parses]}" "True"
expect_eq "the server: the master's pid, generation 1, not stopping" "${J[server]}" "(${MPID}, 1, False)"
expect_eq "one entry per worker, with the pids of the master's children" "${J[pids]}" \
    "$(workers | tr '\n' ' ' | sed 's/ $//')"
expect_eq "workers: numbers 0 and 1, generation 1" "${J[slots]}" "[(0, 1), (1, 1)]"
check "answered by one of them" grep -qx "${J[by]}" <(workers)
expect_eq "the workers' requests add up to the total" "${J[sum]}" "True"
expect_eq "every worker's structure" "${J[shape]}" "True"
expect_eq "service app: 14 requests, all 2xx" "${J[app]}" "[(14, 14)]"
expect_eq "routes: the hostile label byte for byte" "${J[routes]}" "True"
check "the raw JSON escapes the label's bytes" grep -qF '"~ ^/h\"q\\\\b\u0001\ufffd\u003cx\u003e"' "${D}/s1"
expect_eq "the live server: up, 4 requests, 4 answered 2xx" "${J[live]}" "[(True, 4, 4, True)]"
expect_eq "the dead one: down by its health check, with why and since" "${J[dead]}" \
    "[(False, 'down', 'connection refused', True)]"
expect_eq "latency percentiles are numbers" "${J[pct]}" "True"
expect_eq "Accept: application/json gets JSON too" \
    "$(curl -s -H 'Accept: application/json' "${STATUS}" | head -c 11)" '{"schema":1'
expect_eq "POST: 405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${STATUS}")" "405"

# ---- the page ----
curl -s -D "${H}" -o "${D}/page.html" "${STATUS}"
check "HTML: text/html, nosniff" sh -c "grep -qi '^content-type: text/html' '${H}' &&
    grep -qi '^x-content-type-options: nosniff' '${H}'"
CSP=$(sed -n 's/^content-security-policy: //Ip' "${H}" | tr -d '\r')
check "its CSP starts from default-src 'none'" grep -q "^default-src 'none'; " <<<"${CSP}"
# The policy allows the page's own inline script and style by hash, and nothing else.
expect_eq "the CSP's hashes are those of the inline script and style" "$(python3 - "${D}/page.html" "${CSP}" <<'PY'
import base64, hashlib, re, sys
page = open(sys.argv[1], encoding="utf-8").read()
def h(s):
    return "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
csp = dict(p.strip().split(" ", 1) for p in sys.argv[2].split(";"))
print(csp["script-src"] == h(script) and csp["style-src"] == h(style) and
      csp["connect-src"] == "'self'" and "unsafe" not in sys.argv[2])
PY
)" "True"
check "no external asset" sh -c "! grep -Eq '(src|href)=' '${D}/page.html'"

# ---- percore -s top ----
"${PERCORE}" -c "${CONF}" -s top -n 2 >"${D}/top" 2>"${D}/top.err"
expect_eq "top -n 2: exit 0" "$?" "0"
expect_eq "two snapshots, each a header and a column line" \
    "$(grep -c '^percore master '"${MPID}"', generation 1, up .*: 2 workers, ' "${D}/top"):$(grep -c '^WORKER ' "${D}/top")" "2:2"
expect_eq "one line per worker in each: number, pid, generation" \
    "$(awk '$1 ~ /^[0-9]+$/ { print $1, $2, $3 }' "${D}/top" | sort -n -k2 | uniq -c | awk '{ print $1, $3, $4 }' | tr '\n' ' ')" \
    "$(for p in $(workers); do printf '2 %s 1 ' "$p"; done)"
check "not a terminal: no escape sequence" sh -c "! grep -q $'\033' '${D}/top'"
check "top's columns: CPU%, REQ/S, CONNS and LAG P99 for each" \
    sh -c "awk '\$1 ~ /^[0-9]+\$/ && NF != 7 { bad = 1 } END { exit bad }' '${D}/top'"

"${PERCORE}" -c "${CONF}" -s top -n 0 >/dev/null 2>"${D}/top.err"
expect_eq "-n 0: a usage error" "$?:$(cat "${D}/top.err")" \
    "1:percore: -n: expected a number from 1 to 1000000, got '0'"
"${PERCORE}" -c "${CONF}" -s status -n 2 >/dev/null 2>"${D}/top.err"
expect_eq "-n without -s top: a usage error" "$?:$(cat "${D}/top.err")" "1:percore: -n goes with -s top"

# ---- a reload: the new generation ----
write_conf two
"${PERCORE}" -c "${CONF}" -s reload >/dev/null 2>&1 || bail "reload failed"
fetch "${D}/s2"
json "${D}/s2" 'gen=d["server"]["generation"]' \
    'slots=sorted(w["slot"] for w in d["workers"] if w["generation"] == 2)'
expect_eq "after a reload: generation 2 serves" "${J[gen]}" "2"
expect_eq "its workers are listed as generation 2" "${J[slots]}" "[0, 1]"
# The old generation drains: wait for it to go, so that the browser sees two workers.
ROWS='rows=" ".join("worker %d %d %d" % (w["slot"], w["pid"], w["generation"])
    for w in sorted(d["workers"], key=lambda w: w["pid"]))'
gen2_only() {
    fetch "${D}/s2" && json "${D}/s2" 'n=len(d["workers"])' "${ROWS}" && [ "${J[n]}" = 2 ]
}
wait_for gen2_only || bail "the old workers did not go"

# ---- a real browser ----
# (last: it may skip the rest)
# CHROMIUM= names another browser binary.
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
if [ ! -x "${CHROMIUM}" ]; then
    T_NUM=$((T_NUM + 1))
    echo "ok ${T_NUM} # SKIP chromium is not installed (quickstart.sh installs it)"
    finish
    exit
fi
# chromium FLAGS...: headless, in this test's own profile, bounded (its whole process
# group goes at the end of the time); it may take long to start on a loaded machine. The
# virtual time budget lets the page's fetches and refreshes run before the DOM is taken.
chromium() {
    HOME="${D}" timeout -k 10 180 "${CHROMIUM}" --headless=new --no-sandbox --disable-gpu \
        --no-first-run --user-data-dir="${D}/chromium" --virtual-time-budget=5000 "$@" \
        2>>"${D}/chromium.err"
}
chromium --dump-dom "${STATUS}" >"${D}/dom.html"
python3 - "${D}/dom.html" >"${D}/dom.txt" <<'PY'
import html.parser, sys

class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.table = None
        self.rows = {}
        self.cell = None
        self.tags = set()
    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
            self.rows[self.table] = []
            self.body = False
        elif tag == "tbody":
            self.body = True
        elif tag == "tr" and self.body:
            self.rows[self.table].append([])
        elif tag == "td" and self.body:
            self.cell = ""
    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[self.table][-1].append(self.cell)
            self.cell = None
        elif tag == "table":
            self.body = False
    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

p = P()
p.feed(open(sys.argv[1], encoding="utf-8", errors="replace").read())
for w in p.rows.get("workers", []):
    print("worker", w[0], w[1], w[2])
for u in p.rows.get("upstreams", []):
    print("upstream", u[0], u[1].rsplit(":", 1)[1], u[2])
for r in p.rows.get("routes", []):
    print("route", repr(r[1]))
print("tag-x", "x" in p.tags)
PY
expect_eq "the browser's page: one row per worker, with its number, pid and generation" \
    "$(grep '^worker ' "${D}/dom.txt" | sort -k3 -n | tr '\n' ' ' | sed 's/ $//')" "${J[rows]}"
check "the pids are the master's children" test "$(workers | tr '\n' ' ')" = \
    "$(grep '^worker ' "${D}/dom.txt" | sort -k3 -n | awk '{ printf "%s ", $3 }')"
expect_eq "one row per upstream server, with its health" \
    "$(grep '^upstream ' "${D}/dom.txt" | sort | tr '\n' ' ')" \
    "$(printf 'upstream pool %s %s\n' "${PDEAD}" down "${PUP}" up | sort | tr '\n' ' ')"
expect_eq "the hostile route label is text in its cell, no element" \
    "$(grep -c "^route '~ ^/h\"q" "${D}/dom.txt"):$(grep '^tag-x' "${D}/dom.txt")" "1:tag-x False"
if [ "${T_FAILED}" -ne 0 ]; then
    sed 's/^/# dom: /' "${D}/dom.txt"
    tail -n 20 "${D}/chromium.err" | sed 's/^/# chromium: /'
fi

chromium --window-size=1280,900 --screenshot="${D}/status.png" "${STATUS}" >/dev/null
expect_eq "a screenshot: a 1280x900 PNG with something drawn on it" "$(python3 - "${D}/status.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", data[16:24])
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT":
        idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
print(w, h, len(set(zlib.decompress(idat))) > 16 and len(data) > 10000)
PY
)" "1280 900 True"

finish
