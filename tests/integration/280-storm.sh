#!/bin/bash
# A short storm (bench/storm.sh runs it, for minutes, with figures): under wrk keep-alive,
# wrk Connection: close and h2load, 20 SIGHUPs (every fourth a bad config), 3 workers
# SIGKILLed and one SIGSTOPped for 2 s. No request fails from the reloads, a killed worker
# loses at most its in-flight requests, the master's and the workers' fds are the same
# after the storm as before and their memory has not grown, and no worker ended otherwise.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

for t in wrk h2load openssl; do
    command -v "$t" >/dev/null || skip_all "$t not installed"
done
[ "$(id -u)" -eq 0 ] || skip_all "needs root (ss -p names the connections of each worker)"

STORM=$TOP_SRCDIR/bench/storm.sh
# RSS within 2 MiB (not judged under a sanitizer: its allocator keeps freed memory).
PERCORE=$PERCORE "$STORM" -n 20 -b 4 -k 3 -s 1 -d 1 -c 16 -t 2048 >"$T_DIR/storm.out" 2>&1
RC=$?
[ "$RC" -eq 2 ] && bail "the storm could not start: $(tail -n 5 "$T_DIR/storm.out")"
OUT=$(cat "$T_DIR/storm.out")
while read -r verdict rest; do
    case $verdict in
    PASS) ok "$rest" ;;
    FAIL) not_ok "$rest" "$OUT" ;;
    SKIP) ok "# SKIP $rest" ;;
    *) ;;
    esac
done <<<"$OUT"
expect_eq "the storm judged every target" "$(grep -c -E '^(PASS|FAIL|SKIP) ' "$T_DIR/storm.out")" 9
# The figures, for the log.
sed 's/^/# /' "$T_DIR/storm.out"
finish
