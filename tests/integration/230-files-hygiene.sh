#!/bin/bash
# files hygiene: every kind of request is answered from the file opened beneath the root,
# so a symbolic link swapped in and out under it never leaks the outside file (GET, HEAD,
# ranges, conditional requests, index files); a NUL in the path is refused rather than
# cutting the name opened short of the name that gives the type; Range headers are bounded
# (too many or overlapping ranges get the whole file once, never a multiple of it).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need_tls
HELPER="$(dirname "$0")/filerace.py"
ROOT=$T_DIR/www
mkdir -p "$ROOT/dir" "$ROOT/realdir" "$T_DIR/outside"
touch "$ROOT/realdir/inside-entry.txt" "$ROOT/realdir/<img src=x onerror=alert(1)>.txt"
ln -s realdir "$ROOT/ldir"
head -c 7777 /dev/zero | tr '\0' 'S' >"$T_DIR/outside/secret.txt"
head -c 5000 /dev/zero | tr '\0' 'i' >"$ROOT/inside.txt"
ln "$ROOT/inside.txt" "$ROOT/race.txt"
ln "$ROOT/inside.txt" "$ROOT/dir/index.html"
printf 'plain text\n' >"$ROOT/a.txt"
mkdir -p "$ROOT/sub"
printf 'sub index\n' >"$ROOT/sub/index.html"
head -c 100000 /dev/urandom >"$ROOT/big.bin"

PORT=$(free_port)
TPORT=$(free_port)
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 1;
service s {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TPORT tls http2;
    $TLS_FILES
    max_header_size 64k;
    route /l/ { files $ROOT listing; }
    route / { files $ROOT; }
}
CONF
start_percore "$CONF"
U=http://127.0.0.1:$PORT

# 1. The symlink race, every kind of request: up to 2,000 requests per kind in ~15 s in
# all, and at least 50 of each kind however loaded the machine is.
python3 "$HELPER" race "$PORT" "$ROOT" "$T_DIR/outside/secret.txt" 15 >"$T_DIR/race" 2>&1 ||
    not_ok "the race client ran" "$(cat "$T_DIR/race")"
for kind in GET HEAD range multirange if-none-match if-none-match-other if-modified-since \
    if-range index index-HEAD listing absolute-link absolute-link-range; do
    line=$(grep "^$kind " "$T_DIR/race")
    case $line in
    *" leaked=0") ok "race, $kind: the outside file never leaks ($line)" ;;
    *) not_ok "race, $kind: the outside file never leaks" "${line:-no result}" ;;
    esac
    served=$(sed -n 's/.* served=\([0-9]*\).*/\1/p' <<<"$line")
    check "race, $kind: the inside file is still served" [ "${served:-0}" -gt 0 ]
done
check "the worker survived the race" [ "$(curl -s "$U/a.txt")" = "plain text" ]

got=$(curl -s "$U/l/realdir/")
check "a listing names the directory's entries" grep -q 'href="./inside-entry.txt"' <<<"$got"
check "a listing escapes names" grep -q '&lt;img src=x onerror=alert(1)&gt;.txt' <<<"$got"
case $got in *"<img"*) not_ok "a listing never holds a name's markup" "$got" ;;
*) ok "a listing never holds a name's markup" ;; esac

# 2. A NUL in the path: never a.txt as text/html (or as anything).
for p in "/a.txt%00.html" "/a.txt%00" "/a.txt%00/" "/sub%00/index.html" "/a.txt%00.html?x=1" \
    "/%00a.txt"; do
    got=$(curl -s --path-as-is -o "$T_DIR/body" -w '%{http_code} %{content_type}' "$U$p")
    case $got in
    400* | 404*) if grep -q "plain text" "$T_DIR/body"; then
            not_ok "NUL: $p is refused" "$got, body: $(cat "$T_DIR/body")"
        else ok "NUL: $p is refused ($got)"; fi ;;
    *) not_ok "NUL: $p is refused" "$got" ;;
    esac
done
expect_eq "a.txt is still text/plain" "$(curl -s -o /dev/null -w '%{content_type}' "$U/a.txt")" \
    "text/plain"

# 3. Ranges on a 100,000 byte file, all asked by one client: NAME|RANGE|STATUS PARTS ok.
many() { # many N SPEC: "bytes=SPEC,SPEC,..." N times
    python3 -c "import sys; print('bytes=' + ','.join([sys.argv[2]] * int(sys.argv[1])))" "$1" "$2"
}
seq_ranges() { # seq_ranges N: "bytes=0-0,2-2,4-4,..." N disjoint one-byte ranges
    python3 -c "import sys; print('bytes=' + ','.join('%d-%d' % (2*i, 2*i) for i in range(int(sys.argv[1]))))" "$1"
}
cat >"$T_DIR/cases" <<EOF2
30 KB of '0-' is the whole file once|$(many 10000 0-)|200 1 ok
many '-1' is the whole file once|$(many 5000 -1)|200 1 ok
many '0-0' is the whole file once|$(many 5000 0-0)|200 1 ok
overlapping 0-10,5-20,...|bytes=0-10,5-20,15-30,25-40|200 1 ok
one range inside another|bytes=0-99999,10-20|200 1 ok
a suffix overlapping a range|bytes=0-99990,-20|200 1 ok
300 disjoint one-byte ranges|$(seq_ranges 300)|200 1 ok
17 disjoint ranges|$(seq_ranges 17)|200 1 ok
16 disjoint ranges are honoured|$(seq_ranges 16)|206 16 ok
descending, disjoint|bytes=50-59,0-9|206 2 ok
a huge last position|bytes=0-99999999999999999999999999|206 1 ok
a huge first position is unsatisfiable|bytes=99999999999999999999-|416 0 ok
a huge suffix is the whole file|bytes=-99999999999999999999|206 1 ok
whitespace around commas|bytes=0-9 ,  20-29|206 2 ok
a tab after a comma|bytes=0-9,	20-29|206 2 ok
empty list elements|bytes=,0-9,,|206 1 ok
unsatisfiable|bytes=200000-300000|416 0 ok
a zero suffix is unsatisfiable|bytes=-0|416 0 ok
unsatisfiable beside a satisfiable one|bytes=200000-,0-4|206 1 ok
last before first is ignored|bytes=9-5|200 1 ok
not bytes|items=0-5|200 1 ok
upper-case unit|BYTES=0-4|206 1 ok
EOF2
cut -d'|' -f2 "$T_DIR/cases" | sed 's/\\t/\t/' |
    python3 "$HELPER" ranges "$PORT" /big.bin "$ROOT/big.bin" >"$T_DIR/ranges" 2>&1
i=0
while IFS='|' read -r name _ want; do
    i=$((i + 1))
    expect_eq "range: $name" "$(sed -n "${i}p" "$T_DIR/ranges")" "$want"
done <"$T_DIR/cases"

# The same flood over HTTP/2: one copy of the file, not ten thousand.
got=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code} %{size_download}' \
    --resolve "localhost:$TPORT:127.0.0.1" -H "Range: $(many 10000 0-)" \
    "https://localhost:$TPORT/big.bin")
expect_eq "HTTP/2: 30 KB of '0-' is the whole file once" "$got" "2 200 100000"
got=$(curl -sk --http2 -o "$T_DIR/h2body" -w '%{http_version} %{http_code}' \
    --resolve "localhost:$TPORT:127.0.0.1" -r 10-19 "https://localhost:$TPORT/big.bin")
expect_eq "HTTP/2: a range" "$got $(cmp -s "$T_DIR/h2body" <(tail -c +11 "$ROOT/big.bin" | head -c 10) && echo same)" \
    "2 206 same"

finish
