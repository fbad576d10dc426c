#!/bin/bash
# OpenTelemetry span export (OTLP/HTTP JSON) to a python collector stand-in: a server span
# per sampled request and a client span per upstream attempt, linked to the caller's span
# and to the upstream's traceparent, with their attributes and resource; nothing for an
# unsampled traceparent; 10,000 requests at `sample 0.1` give 1,000 +- 10% server spans; a
# collector killed, then one that stops answering, changes nothing for clients and only
# drops spans (counted, the export timing out); a stopping worker exports what it holds.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

COLLECTOR="$(dirname "$0")/otlp_collector.py"
ECHO="$(dirname "$0")/echo_upstream.py"
COL_PID=
UP_PID=
UP2_PID=
cleanup() {
    stop_percore
    if [ -n "$COL_PID" ]; then
        kill -CONT "$COL_PID" 2>/dev/null
        kill "$COL_PID" 2>/dev/null
    fi
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null
    [ -n "$UP2_PID" ] && kill "$UP2_PID" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT

command -v h2load >/dev/null || skip_all "h2load (nghttp2-client) not installed"

PORT=$(free_port)
CPORT=$(free_port)
UPORT=$(free_port)
UPORT2=$(free_port)
DEAD=$(free_port)
URL=http://127.0.0.1:$PORT
TRACE=4bf92f3577b34da6a3ce929d0e0e4736
CSPAN=00f067aa0ba902b7

start_collector() {
    python3 "$COLLECTOR" "$CPORT" &
    COL_PID=$!
    wait_for curl -sf -o /dev/null "http://127.0.0.1:$CPORT/count" || bail "no collector"
}

# collected KEY: a count of the collector's (spans, server, client, exports, bad).
collected() {
    curl -s -m 5 "http://127.0.0.1:$CPORT/count" |
        python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null || echo -1
}

# trace_spans TRACE N: the collector has N spans or more of TRACE.
trace_spans() {
    [ "$(curl -s -m 5 "http://127.0.0.1:$CPORT/spans?trace=$1" |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' 2>/dev/null)" \
        -ge "$2" ]
}

metric() {
    curl -s -m 5 "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

metric_above() {
    [ "$(metric "$1")" -gt "$2" ] 2>/dev/null
}

# settled KEY: the collector's count stays the same over a second (nothing more coming).
settled() {
    a=$(collected "$1")
    sleep 1
    [ "$a" = "$(collected "$1")" ]
}

# h2load_ok N OUT [ARGS...]: N HTTP/1.1 requests over 10 connections, all answered 2xx.
h2load_ok() {
    n=$1 out=$2
    shift 2
    h2load --h1 -n "$n" -c 10 "$@" >"$out" 2>&1
    grep -q "requests: $n total, $n started, $n done, $n succeeded" "$out" &&
        grep -q "status codes: $n 2xx" "$out"
}

start_collector
python3 "$ECHO" "$UPORT" up &
UP_PID=$!
wait_for curl -sf -o /dev/null "http://127.0.0.1:$UPORT/count" || bail "no upstream"
ECHO_STATUS=503 python3 "$ECHO" "$UPORT2" busy &
UP2_PID=$!
wait_for curl -sf -o /dev/null "http://127.0.0.1:$UPORT2/count" || bail "no second upstream"

CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
shutdown_timeout 5s;
request_id on;
tracing {
    otlp_endpoint http://localhost:$CPORT/v1/traces;
    sample 0.1;
    service_name percore-test;
    export_interval 200ms;
    export_timeout 2s;
}
upstream retrying {
    server http://127.0.0.1:$UPORT2;
    server http://127.0.0.1:$UPORT;
    balance hash \$arg_k;
    retries 1;
    retry_on 503;
    retry_budget 100%;
    max_fails 0;
}
service s {
    listen 127.0.0.1:$PORT;
    route /retry/ { proxy http://retrying; }
    route /api/ { proxy http://127.0.0.1:$UPORT; }
    route /dead/ { proxy http://127.0.0.1:$DEAD connect_timeout=2s; }
    route /metrics { metrics; }
    route / { respond 200 "hi\n"; }
}
CONF
start_percore "$CONF"

# ---- parent and child, attributes, resource ----
curl -s -D "$T_DIR/h1" -o "$T_DIR/b1" -H "traceparent: 00-$TRACE-$CSPAN-01" \
    "$URL/api/x%20y?q=1"
check "the proxied request with a sampled traceparent is answered" grep -q '"upstream": "up"' "$T_DIR/b1"
check "its server and client spans reach the collector" wait_for trace_spans "$TRACE" 2
curl -s "http://127.0.0.1:$CPORT/spans?trace=$TRACE" >"$T_DIR/s1"
RID=$(awk 'tolower($1) == "x-request-id:" { print $2 }' "$T_DIR/h1" | tr -d '\r')
out=$(python3 - "$T_DIR/s1" "$T_DIR/b1" "$CSPAN" "$PORT" "$UPORT" "$RID" <<'PY'
import json, sys, time
spans = json.load(open(sys.argv[1]))
body = json.load(open(sys.argv[2]))
cspan, port, uport, rid = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
bad = []
def want(cond, what):
    if not cond:
        bad.append(what)
srv = [s for s in spans if s["kind"] == 2]
cli = [s for s in spans if s["kind"] == 3]
want(len(srv) == 1 and len(cli) == 1, "one server and one client span: %r" % spans)
if not bad:
    s, c = srv[0], cli[0]
    tp = [v for k, v in body["headers"] if k.lower() == "traceparent"]
    want(s["parentSpanId"] == cspan, "server span's parent is the caller's span")
    want(c["parentSpanId"] == s["spanId"], "client span's parent is the server span")
    want(tp == ["00-%s-%s-01" % (s["traceId"], c["spanId"])],
         "upstream saw the client span as parent: %r" % tp)
    want(s["name"] == "GET /api/" and c["name"] == "GET", "names: %r %r" % (s["name"], c["name"]))
    a = s["attrs"]
    for k, v in {"http.request.method": "GET", "url.path": "/api/x%20y", "http.route": "/api/",
                 "http.response.status_code": 200, "client.address": "127.0.0.1",
                 "server.address": "127.0.0.1:%d" % port, "network.protocol.version": "1.1",
                 "percore.service": "s", "percore.request_id": rid}.items():
        want(a.get(k) == v, "server %s: %r, wanted %r" % (k, a.get(k), v))
    a = c["attrs"]
    for k, v in {"http.request.method": "GET", "server.address": "127.0.0.1",
                 "server.port": uport, "http.request.resend_count": 0,
                 "http.response.status_code": 200}.items():
        want(a.get(k) == v, "client %s: %r, wanted %r" % (k, a.get(k), v))
    want("status" not in s and "status" not in c, "no error status")
    r = s["resource"]
    want(r.get("service.name") == "percore-test" and r.get("host.name") and
         isinstance(r.get("process.pid"), int) and r.get("percore.worker") in (0, 1) and
         len(r.get("service.instance.id", "")) == 36, "resource: %r" % r)
    now = time.time_ns()
    st, se = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
    ct, ce = int(c["startTimeUnixNano"]), int(c["endTimeUnixNano"])
    want(abs(now - st) < 60e9, "server span starts now: %d vs %d" % (st, now))
    want(st <= ct <= ce <= se, "the client span lies within the server span: %r"
         % [st, ct, ce, se])
print("\n".join(bad) if bad else "ok")
PY
)
expect_eq "links, attributes, resource and times" "$out" "ok"

# ---- a path with bytes no JSON string holds as they are ----
T8=66666666666666666666666666666666
curl -s -o /dev/null -H "traceparent: 00-$T8-6666666666666666-01" \
    --request-target "$(printf '/raw/\xff\xc3\xa9"\\?q=\xff')" "$URL/"
check "a hostile path's span comes" wait_for trace_spans "$T8" 1
out=$(curl -s "http://127.0.0.1:$CPORT/spans?trace=$T8" | python3 -c '
import json, sys
print(ascii(json.load(sys.stdin)[0]["attrs"]["url.path"]))')
expect_eq "its url.path: valid UTF-8 kept, other bytes as U+00XX, no query" "$out" \
    "'/raw/\\xff\\xe9\"\\\\'"
expect_eq "and the collector refused no export" "$(collected bad)" "0"

# ---- a failed attempt ----
T2=0af7651916cd43dd8448eb211c80319c
code=$(curl -s -o /dev/null -w '%{http_code}' -H "traceparent: 00-$T2-b7ad6b7169203331-01" \
    "$URL/dead/x")
expect_eq "an upstream that refuses: 502" "$code" "502"
check "its spans reach the collector" wait_for trace_spans "$T2" 2
out=$(curl -s "http://127.0.0.1:$CPORT/spans?trace=$T2" | python3 -c '
import json, sys
spans = json.load(sys.stdin)
s = [x for x in spans if x["kind"] == 2][0]
c = [x for x in spans if x["kind"] == 3][0]
print(s["attrs"]["http.response.status_code"], s.get("status"), s["attrs"].get("error.type"),
      c["attrs"].get("error.type"), c.get("status"), "http.response.status_code" in c["attrs"])')
expect_eq "502 is an error on the server span; the attempt failed to connect" \
    "$out" "502 {'code': 2} 502 connect_failed {'code': 2} False"

# ---- a retry: a span per attempt, each the parent its upstream was told of ----
for k in $(seq 10 21); do
    curl -s -o "$T_DIR/r$k" -H "traceparent: 00-$(printf '%032x' "$k")-7777777777777777-01" \
        "$URL/retry/?k=$k"
done
check "the retried requests' spans come" wait_for trace_spans "$(printf '%032x' 21)" 2
check "and no more are coming" wait_for settled spans
out=$(curl -s "http://127.0.0.1:$CPORT/spans" | python3 -c '
import json, sys
d = sys.argv[1]
spans = json.load(sys.stdin)
seen = 0
for k in range(10, 22):
    t = "%032x" % k
    s = [x for x in spans if x["traceId"] == t and x["kind"] == 2]
    c = sorted((x for x in spans if x["traceId"] == t and x["kind"] == 3),
               key=lambda x: int(x["startTimeUnixNano"]))
    if len(c) != 2:
        continue
    seen += 1
    body = json.load(open("%s/r%d" % (d, k)))
    tp = [v for n, v in body["headers"] if n.lower() == "traceparent"]
    a, b = c[0]["attrs"], c[1]["attrs"]
    got = (a.get("error.type"), a.get("http.response.status_code"), a.get("http.request.resend_count"),
           c[0].get("status"), b.get("error.type"), b.get("http.response.status_code"),
           b.get("http.request.resend_count"), c[0]["spanId"] != c[1]["spanId"],
           all(x["parentSpanId"] == s[0]["spanId"] for x in c),
           tp == ["00-%s-%s-01" % (t, c[1]["spanId"])])
    want = ("retry_status", 503, 0, {"code": 2}, None, 200, 1, True, True, True)
    if got != want:
        print("trace", t, got)
        sys.exit()
print("ok" if seen > 0 else "no request was retried")' "$T_DIR")
expect_eq "a retried request: the 503 attempt's span (error, resend 0) and the next (200, resend 1)" \
    "$out" "ok"

# ---- unsampled: nothing; the next sampled request on the same connection comes ----
T3=11111111111111111111111111111111
T4=22222222222222222222222222222222
curl -s -o /dev/null -o /dev/null -H "traceparent: 00-$T3-1111111111111111-00" "$URL/a" \
    --next -H "traceparent: 00-$T4-2222222222222222-01" "$URL/b"
check "a sampled request's span comes" wait_for trace_spans "$T4" 1
check "an unsampled traceparent (flags 00) exports nothing" \
    [ "$(curl -s "http://127.0.0.1:$CPORT/spans?trace=$T3")" = "[]" ]

# ---- 10,000 requests at sample 0.1 ----
check "10,000 requests answered" h2load_ok 10000 "$T_DIR/bulk" "$URL/bulk"
check "the collector's count settles" wait_for settled server
out=$(curl -s "http://127.0.0.1:$CPORT/spans" | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin) if x["kind"] == 2 and x["attrs"].get("url.path") == "/bulk"]
ok = all(x["resource"].get("service.name") == "percore-test" and
         x["attrs"].get("http.request.method") == "GET" and
         x["attrs"].get("http.response.status_code") == 200 for x in s)
print(len(s), ok)')
n=${out% *}
check "1,000 +- 10% server spans for 10,000 requests (got $n)" [ "$n" -ge 900 ] && [ "$n" -le 1100 ]
expect_eq "each with service.name, method and status" "${out#* }" "True"
expect_eq "nothing dropped so far" "$(metric percore_otel_spans_dropped_total)" "0"
check "exported_total counts what the collector got" wait_for sh -c \
    "[ \"\$(curl -s $URL/metrics | awk '\$1 == \"percore_otel_spans_exported_total\" { print \$2 }')\" = \"\$(curl -s http://127.0.0.1:$CPORT/count | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"spans\"])')\" ]"
check "the metrics have HELP and TYPE lines" sh -c \
    "curl -s $URL/metrics | grep -q '^# TYPE percore_otel_spans_dropped_total counter$'"
expect_eq "no export was refused" "$(collected bad)" "0"

# ---- a collector that sends interim responses before its answer ----
curl -s -o /dev/null "http://127.0.0.1:$CPORT/interim?on=1"
T7=55555555555555555555555555555555
curl -s -o /dev/null -H "traceparent: 00-$T7-5555555555555555-01" "$URL/interim"
check "spans answered after a 100 and a 103 are exported" wait_for trace_spans "$T7" 1
expect_eq "and none dropped" "$(metric percore_otel_spans_dropped_total)" "0"
T9=77777777777777777777777777777777
curl -s -o /dev/null -H "traceparent: 00-$T9-7777777777777777-01" "$URL/interim"
check "the connection goes on for the next export" wait_for trace_spans "$T9" 1
expect_eq "still none dropped" "$(metric percore_otel_spans_dropped_total)" "0"
curl -s -o /dev/null "http://127.0.0.1:$CPORT/interim?on=0"

# ---- the collector killed: clients see nothing, spans are dropped ----
SAMPLED=(-H "traceparent: 00-$TRACE-$CSPAN-01")
kill -KILL "$COL_PID"
wait "$COL_PID" 2>/dev/null
COL_PID=
check "with the collector dead, 2,000 sampled requests all answered 200" \
    h2load_ok 2000 "$T_DIR/dead" "${SAMPLED[@]}" "$URL/"
check "percore_otel_spans_dropped_total grows" wait_for metric_above percore_otel_spans_dropped_total 0
check "the failure is logged" wait_for log_has "span export to http://localhost:$CPORT/v1/traces failed"

# ---- a collector that accepts and never answers ----
start_collector
T5=33333333333333333333333333333333
curl -s -o /dev/null -H "traceparent: 00-$T5-3333333333333333-01" "$URL/again" \
    --next -o /dev/null -H "traceparent: 00-$T5-3333333333333333-01" "$URL/again"
check "a collector back: spans come again" wait_for trace_spans "$T5" 1
check "and percore says so" wait_for log_has "span export to .* works again"
D1=$(metric percore_otel_spans_dropped_total)
kill -STOP "$COL_PID"
check "with the collector stopped, 500 sampled requests all answered 200" \
    h2load_ok 500 "$T_DIR/stopped" "${SAMPLED[@]}" "$URL/"
max=$(awk '/^time for request:/ { print $5 }' "$T_DIR/stopped")
check "promptly: the slowest took $max (export_timeout is 2s)" \
    sh -c "echo '$max' | grep -Eq '^[0-9.]+(us|ms)$'"
check "the export times out" wait_for log_has "no response in time (export_timeout)"
check "and its spans are counted as dropped" wait_for metric_above percore_otel_spans_dropped_total "$D1"
kill -CONT "$COL_PID"

# ---- a stopping worker exports what it holds ----
stop_percore
sed -i -e 's/export_interval 200ms;/export_interval 24h; span_batch 1000;/' \
    -e 's/workers 2;/workers 1;/' "$CONF"
start_percore "$CONF"
T6=44444444444444444444444444444444
for i in 1 2 3; do
    curl -s -o /dev/null -H "traceparent: 00-$T6-444444444444444$i-01" "$URL/last"
done
check "before the stop, nothing was sent (a day's interval, a batch not full)" \
    [ "$(curl -s "http://127.0.0.1:$CPORT/spans?trace=$T6")" = "[]" ]
stop_percore
check "at the stop, the worker's last export sends them" trace_spans "$T6" 3

finish
