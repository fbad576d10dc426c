#!/bin/bash
# Static files (4 KiB, 64 KiB) and reverse proxy, percore against Debian's nginx in the same
# run: both with 2 workers, wrk with 2 threads. The proxy upstream is a third server (nginx,
# `return 200`, pinned apart) that both proxies share. Prints req/s, p99 and ratios.
#
#   bench/serving.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]
set -eu
DURATION=8
ROUNDS=3
CONNS=64
while getopts d:r:c: opt; do
    case $opt in
    d) DURATION=$OPTARG ;; r) ROUNDS=$OPTARG ;; c) CONNS=$OPTARG ;;
    *) sed -n '2,7p' "$0"; exit 1 ;;
    esac
done
TOP=$(cd "$(dirname "$0")/.." && pwd)
PERCORE=${PERCORE:-$TOP/_build/release/percore}
NGINX=${NGINX:-/usr/sbin/nginx}
TMP=$(mktemp -d /tmp/percore-bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"' EXIT
for t in wrk "$NGINX" "$PERCORE"; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
port() { while :; do p=$((RANDOM % 20000 + 30000)); [ -z "$(ss -Htln "sport = :$p")" ] && { echo $p; return; }; done; }

# nginx's workers run as nobody when started as root: the files must be readable to them
# (a 403 is much cheaper to send than a file, and would make the comparison meaningless).
chmod 755 "$TMP"
mkdir -p "$TMP/www"
head -c 4096 /dev/urandom >"$TMP/www/4k.bin"
head -c 65536 /dev/urandom >"$TMP/www/64k.bin"
chmod 644 "$TMP/www"/*
UP=$(port)
PP=$(port)
NP=$(port)

# The shared upstream.
cat >"$TMP/up.conf" <<CONF
worker_processes 1; pid $TMP/up.pid; error_log $TMP/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "upstream\n"; } } }
CONF
"$NGINX" -c "$TMP/up.conf" -p "$TMP" -g 'daemon off;' 2>/dev/null &
PIDS+=($!)

cat >"$TMP/percore.conf" <<CONF
workers 2;
service bench {
    listen 127.0.0.1:$PP;
    route /proxy/ { proxy http://127.0.0.1:$UP/; }
    route / { files $TMP/www; }
}
CONF
cat >"$TMP/nginx.conf" <<CONF
worker_processes 2; pid $TMP/nginx.pid; error_log $TMP/nginx.err warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; sendfile on; tcp_nopush on;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NP reuseport; root $TMP/www;
    location /proxy/ { proxy_pass http://up/; proxy_http_version 1.1;
                       proxy_set_header Connection ""; } } }
CONF
"$PERCORE" -f -c "$TMP/percore.conf" 2>"$TMP/percore.log" &
PIDS+=($!)
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" -g 'daemon off;' 2>/dev/null &
PIDS+=($!)
for p in $PP $NP $UP; do
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$p/4k.bin" -o /dev/null 2>&1 || curl -sf "http://127.0.0.1:$p/" -o /dev/null && break; sleep 0.05; done
done

# Both must answer every scenario the same before anything is measured.
for path in /4k.bin /64k.bin /proxy/x; do
    a=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$PP$path")
    b=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$NP$path")
    if [ "$a" != "$b" ] || [ "${a%% *}" != 200 ]; then
        echo "bench: $path: percore answers '$a', nginx '$b'" >&2
        exit 1
    fi
done

run() { # PORT PATH -> "rps p99ms"
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1$2" 2>&1 | awk '
        /Requests\/sec/ { rps = $2 }
        / 99%/ { v = $2; ms = v + 0; if (v ~ /us$/) ms /= 1000; else if (v ~ /[^m]s$/) ms *= 1000 }
        /Socket errors|Non-2xx/ { bad = " errors" }
        END { printf "%.0f %.2f%s\n", rps, ms, bad }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf 'percore %s vs %s: 2 workers each, wrk -t2 -c%s, %ss, median of %s\n\n' \
    "$("$PERCORE" -V | cut -d' ' -f2)" "$("$NGINX" -v 2>&1 | sed 's/.*: //')" "$CONNS" "$DURATION" "$ROUNDS"
printf '%-20s %12s %12s %8s %10s %10s\n' scenario percore nginx ratio "p99 pc" "p99 nginx"
for sc in "static 4 KiB|/4k.bin" "static 64 KiB|/64k.bin" "proxy|/proxy/x"; do
    IFS='|' read -r label path <<<"$sc"
    : >"$TMP/p"; : >"$TMP/n"
    for _ in $(seq 1 "$ROUNDS"); do
        run "$PP" "$path" >>"$TMP/p"
        run "$NP" "$path" >>"$TMP/n"
    done
    a=$(cut -d' ' -f1 "$TMP/p" | median); b=$(cut -d' ' -f1 "$TMP/n" | median)
    pa=$(cut -d' ' -f2 "$TMP/p" | median); pb=$(cut -d' ' -f2 "$TMP/n" | median)
    note=$( (grep -q errors "$TMP/p" && echo -n " (percore: errors seen)"; grep -q errors "$TMP/n" && echo -n " (nginx: errors seen)") || true)
    awk -v l="$label" -v a="$a" -v b="$b" -v pa="$pa" -v pb="$pb" -v n="$note" \
        'BEGIN { printf "%-20s %12d %12d %8.2f %10.2f %10.2f%s\n", l, a, b, a / b, pa, pb, n }'
done
