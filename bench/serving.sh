#!/bin/bash
# Static files (4 KiB, 64 KiB), reverse proxy and HTTP/2 over TLS: percore against Debian's
# nginx and h2o in the same run, all with 2 workers (threads for h2o). HTTP/1.1 scenarios use
# wrk (2 threads), HTTP/2 ones h2load (2 threads, 10 streams per connection). The proxy
# upstream is one more nginx (`return 200`) that the three proxies share. Prints req/s,
# p99 (wrk) and each peer's ratio to percore; a peer that is not installed is skipped.
#
#   bench/serving.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]
set -eu
DURATION=8
ROUNDS=3
CONNS=64
while getopts d:r:c: opt; do
    case $opt in
    d) DURATION=$OPTARG ;; r) ROUNDS=$OPTARG ;; c) CONNS=$OPTARG ;;
    *) sed -n '2,8p' "$0"; exit 1 ;;
    esac
done
TOP=$(cd "$(dirname "$0")/.." && pwd)
PERCORE=${PERCORE:-$TOP/_build/release/percore}
NGINX=${NGINX:-/usr/sbin/nginx}
H2O=${H2O:-/usr/bin/h2o}
TMP=$(mktemp -d /tmp/percore-bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"' EXIT
for t in wrk h2load openssl "$NGINX" "$PERCORE"; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
port() { while :; do p=$((RANDOM % 20000 + 10000)); [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }; done; }

# nginx's and h2o's workers run as nobody when started as root: the files must be readable
# to them (a 403 is much cheaper to send than a file, and would make the comparison
# meaningless; the answers are checked below).
chmod 755 "$TMP"
mkdir -p "$TMP/www"
head -c 4096 /dev/urandom >"$TMP/www/4k.bin"
head -c 65536 /dev/urandom >"$TMP/www/64k.bin"
chmod 644 "$TMP/www"/*
# shellcheck source=../tests/integration/cert.sh
. "$TOP/tests/integration/cert.sh"
self_signed_cert localhost "$TMP/cert.pem" "$TMP/key.pem"
chmod 644 "$TMP/key.pem"
UP=$(port)

# The shared upstream.
cat >"$TMP/up.conf" <<CONF
worker_processes 1; pid $TMP/up.pid; error_log $TMP/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "upstream\n"; } } }
CONF
"$NGINX" -c "$TMP/up.conf" -p "$TMP" -g 'daemon off;' 2>/dev/null &
PIDS+=($!)

# name plain-port tls-port, for each server.
SERVERS=()
start_percore() {
    local p t
    p=$(port)
    t=$(port)
    cat >"$TMP/percore.conf" <<CONF
workers 2;
service bench {
    listen 127.0.0.1:$p;
    listen 127.0.0.1:$t tls http2;
    tls_certificate $TMP/cert.pem;
    tls_key $TMP/key.pem;
    route /proxy/ { proxy http://127.0.0.1:$UP/; }
    route / { files $TMP/www; }
}
CONF
    "$PERCORE" -f -c "$TMP/percore.conf" 2>"$TMP/percore.log" &
    PIDS+=($!)
    SERVERS+=("percore $p $t")
}
start_nginx() {
    local p t
    p=$(port)
    t=$(port)
    cat >"$TMP/nginx.conf" <<CONF
worker_processes 2; pid $TMP/nginx.pid; error_log $TMP/nginx.err warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; sendfile on; tcp_nopush on;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$p reuseport; listen 127.0.0.1:$t ssl http2 reuseport;
    ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
    http2_max_requests 1000000; root $TMP/www;
    location /proxy/ { proxy_pass http://up/; proxy_http_version 1.1;
                       proxy_set_header Connection ""; } } }
CONF
    "$NGINX" -c "$TMP/nginx.conf" -p "$TMP" -g 'daemon off;' 2>/dev/null &
    PIDS+=($!)
    SERVERS+=("nginx $p $t")
}
start_h2o() {
    local p t
    p=$(port)
    t=$(port)
    cat >"$TMP/h2o.conf" <<CONF
num-threads: 2
user: nobody
error-log: $TMP/h2o.err
listen: {host: 127.0.0.1, port: $p}
listen:
  host: 127.0.0.1
  port: $t
  ssl: {certificate-file: $TMP/cert.pem, key-file: $TMP/key.pem}
hosts:
  default:
    paths:
      /proxy/: {proxy.reverse.url: "http://127.0.0.1:$UP/"}
      /: {file.dir: $TMP/www}
CONF
    "$H2O" -c "$TMP/h2o.conf" >/dev/null 2>&1 &
    PIDS+=($!)
    SERVERS+=("h2o $p $t")
}
start_percore
start_nginx
[ -x "$H2O" ] && start_h2o

# Every server must answer every scenario the same before anything is measured.
sleep 1
for s in "${SERVERS[@]}"; do
    read -r name p t <<<"$s"
    for u in "http://127.0.0.1:$p/4k.bin" "http://127.0.0.1:$p/64k.bin" \
             "http://127.0.0.1:$p/proxy/x" "https://127.0.0.1:$t/4k.bin"; do
        got=""
        for _ in $(seq 1 50); do
            got=$(curl -sk --http2 -o /dev/null -w '%{http_code} %{size_download}' "$u") || true
            [ "${got%% *}" = 200 ] && break
            sleep 0.1
        done
        case $u in */4k.bin) want="200 4096" ;; */64k.bin) want="200 65536" ;; *) want="200 9" ;; esac
        if [ "$got" != "$want" ]; then
            echo "bench: $name: $u answers '$got', not '$want'" >&2
            exit 1
        fi
    done
done

wrk_run() { # URL -> "rps p99ms"
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1" 2>&1 | awk '
        /Requests\/sec/ { rps = $2 }
        / 99%/ { v = $2; ms = v + 0; if (v ~ /us$/) ms /= 1000; else if (v ~ /[^m]s$/) ms *= 1000 }
        /Socket errors|Non-2xx/ { bad = "!" }
        END { printf "%.0f %.2f%s\n", rps, ms, bad }'
}
h2_run() { # URL -> "rps -"
    h2load -t2 -c"$CONNS" -m10 -D"$DURATION" "$1" 2>&1 | awk '
        /^finished in/ { rps = $4 }
        /^requests:/ { if ($10 + 0 > 0 || $12 + 0 > 0) bad = "!" }
        END { printf "%.0f -%s\n", rps, bad }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf 'percore %s, %s, %s: 2 workers each, %s connections, %ss, median of %s\n' \
    "$("$PERCORE" -V | cut -d' ' -f2)" "$("$NGINX" -v 2>&1 | sed 's/.*: //')" \
    "$([ -x "$H2O" ] && "$H2O" -v 2>/dev/null | head -n 1 || echo 'no h2o')" "$CONNS" "$DURATION" "$ROUNDS"
printf '(req/s, median; x: req/s as a multiple of percore; p99 in ms, wrk only; ! errors seen)\n\n'
names=()
for s in "${SERVERS[@]}"; do names+=("${s%% *}"); done
printf '%-20s' scenario
for n in "${names[@]}"; do printf '%10s' "$n"; done
for n in "${names[@]:1}"; do printf '%10s' "x $n"; done
for n in "${names[@]}"; do printf '%10s' "p99 ${n:0:5}"; done
printf '\n'
for sc in "static 4 KiB|http|/4k.bin" "static 64 KiB|http|/64k.bin" "proxy|http|/proxy/x" \
          "h2 TLS static 4 KiB|h2|/4k.bin"; do
    IFS='|' read -r label kind path <<<"$sc"
    rps=() p99=()
    for s in "${SERVERS[@]}"; do
        read -r name p t <<<"$s"
        : >"$TMP/r"
        for _ in $(seq 1 "$ROUNDS"); do
            if [ "$kind" = http ]; then
                wrk_run "http://127.0.0.1:$p$path" >>"$TMP/r"
            else
                h2_run "https://127.0.0.1:$t$path" >>"$TMP/r"
            fi
        done
        rps+=("$(cut -d' ' -f1 "$TMP/r" | median)$(if grep -q '!' "$TMP/r"; then echo '!'; fi)")
        p99+=("$(cut -d' ' -f2 "$TMP/r" | tr -d '!' | sort -n | median)")
    done
    printf '%-20s' "$label"
    for r in "${rps[@]}"; do printf '%10s' "$r"; done
    for r in "${rps[@]:1}"; do
        awk -v r="${r%!}" -v b="${rps[0]%!}" 'BEGIN { printf "%10s", sprintf("%.2f", r / b) }'
    done
    for v in "${p99[@]}"; do printf '%10s' "$v"; done
    printf '\n'
done
