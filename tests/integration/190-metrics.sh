#!/bin/bash
# The metrics handler: Prometheus text with requests by service and status class, summed
# over all workers, kept across a reload and a worker that dies; a duration histogram
# whose count is the number of requests.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PORT2=$(free_port)
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
service a {
    listen 127.0.0.1:$PORT;
    route / { respond 200 "a\n"; }
    route /metrics { metrics; }
}
service b {
    listen 127.0.0.1:$PORT2;
    route / { respond 404 "b\n"; }
}
CONF
start_percore "$CONF"
M=http://127.0.0.1:$PORT/metrics

# value NAME-AND-LABELS: the sample's value in a fresh scrape.
value() {
    curl -s "$M" | awk -v k="$1" '$1 == k { print $2 }'
}

# New connections each: the kernel spreads them over both workers.
for _ in $(seq 1 20); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/"
    curl -s -o /dev/null "http://127.0.0.1:$PORT2/"
done
curl -s "$M" >"$T_DIR/m1"
check "Prometheus text format" grep -q '^# TYPE percore_requests_total counter$' "$T_DIR/m1"
expect_eq "service a: 20 requests answered 2xx, from both workers together" \
    "$(awk '$1 == "percore_requests_total{service=\"a\",code=\"2xx\"}" { print $2 }' "$T_DIR/m1")" "20"
expect_eq "service b: 20 answered 4xx" \
    "$(awk '$1 == "percore_requests_total{service=\"b\",code=\"4xx\"}" { print $2 }' "$T_DIR/m1")" "20"
expect_eq "the histogram's count is every request" \
    "$(awk '$1 == "percore_request_duration_seconds_count" { print $2 }' "$T_DIR/m1")" "40"
expect_eq "and so is its +Inf bucket" \
    "$(awk '$1 == "percore_request_duration_seconds_bucket{le=\"+Inf\"}" { print $2 }' "$T_DIR/m1")" "40"
# shellcheck disable=SC2016 # awk's own $2
check "durations are measured, not turn stamps: the sum of 40 is at least 40 us" \
    awk '$1 == "percore_request_duration_seconds_sum" { exit !($2 >= 0.00004) }' "$T_DIR/m1"
# shellcheck disable=SC2016
check "and below a second each" \
    awk '$1 == "percore_request_duration_seconds_sum" { exit !($2 < 40) }' "$T_DIR/m1"
expect_eq "body bytes: 40 bodies of 2" \
    "$(awk '$1 == "percore_response_body_bytes_total" { print $2 }' "$T_DIR/m1")" "80"
expect_eq "two workers" "$(awk '$1 == "percore_workers" { print $2 }' "$T_DIR/m1")" "2"
check "every sample line is NAME[{LABELS}] NUMBER" \
    sh -c "! grep -v '^#' '$T_DIR/m1' | grep -Evq '^[a-z_]+(\\{[a-z]+=\"[^\"]*\"(,[a-z]+=\"[^\"]*\")*\\})? [0-9.e+-]+\$'"

# A worker killed, then a reload: counts of exited workers are kept.
kill -9 "$(workers | head -n 1)"
wait_for sh -c "[ \$(pgrep -c -P $PC_PID) -eq 2 ]"
"$PERCORE" -s reload -c "$CONF" >/dev/null 2>&1
curl -s -o /dev/null "http://127.0.0.1:$PORT2/"
expect_eq "after a worker died and a reload, b's 4xx count went on (20 + 1)" \
    "$(value 'percore_requests_total{service="b",code="4xx"}')" "21"
check "and a's includes the earlier scrape" [ "$(value 'percore_requests_total{service="a",code="2xx"}')" -ge 21 ]
stop_percore

printf 'service c {\n    listen 127.0.0.1:%s;\n    route / { metrics all; }\n}\n' "$PORT" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "metrics takes no argument" grep -q "$CONF:3:23: wrong number of arguments for 'metrics'; usage: metrics" "$T_DIR/out"

finish
