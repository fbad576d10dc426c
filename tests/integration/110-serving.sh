#!/bin/bash
# Serving handlers: files (index, MIME, conditional requests, ranges, traversal and
# symlink guards, listings), redirect, response headers (set/add/unset) and gzip.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

ROOT=$T_DIR/www
mkdir -p "$ROOT/sub" "$ROOT/empty" "$T_DIR/www-evil" "$T_DIR/outside"
printf '<h1>home</h1>\n' >"$ROOT/index.html"
printf '<h1>sub</h1>\n' >"$ROOT/sub/index.html"
head -c 4096 /dev/zero | tr '\0' 'a' >"$ROOT/a.txt"
printf 'body { color: red; }\n' >"$ROOT/style.css"
python3 -c "print('compress me ' * 500)" >"$ROOT/big.txt"
python3 -c "print('a larger text to compress, in several chunks\n' * 4000)" >"$ROOT/large.txt"
head -c 3000000 /dev/urandom >"$ROOT/large.bin"
mkfifo "$ROOT/fifo"
printf 'secret\n' >"$T_DIR/outside/secret.txt"
printf 'evil\n' >"$T_DIR/www-evil/x.txt"
ln -s "$T_DIR/outside/secret.txt" "$ROOT/leak.txt"
ln -s "$T_DIR/outside" "$ROOT/leakdir"
ln -s "$ROOT/a.txt" "$ROOT/inside.txt"
GONE=$T_DIR/gone
mkdir -p "$GONE"
printf 'here\n' >"$GONE/x.txt"

PORT=$(free_port)
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 2;
service s {
    listen 127.0.0.1:$PORT;
    route /static/ { files $ROOT; header_unset Last-Modified; header_add X-Files yes; }
    route /list/ { files $ROOT listing; }
    route /gz/ { files $ROOT; compress on; }
    route /old/ { redirect 301 https://example.com/new/; }
    route /moved { redirect 308 https://example.com/fixed exact; }
    route /gone/ { files $GONE; }
    route / { files $ROOT; }
}
CONF
start_percore "$CONF"
URL=http://127.0.0.1:$PORT

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
hdr() { # NAME URL [CURL ARGS]: value of response header NAME
    n=$1
    shift
    curl -s -D - -o /dev/null "$@" | tr -d '\r' | awk -v n="$n" 'BEGIN{IGNORECASE=1} index(tolower($0), tolower(n) ": ") == 1 {sub(/^[^:]*: /, ""); print; exit}'
}

expect_eq "index.html for /" "$(curl -s "$URL/")" "<h1>home</h1>"
expect_eq "file content" "$(curl -s "$URL/a.txt" | wc -c)" "4096"
expect_eq "MIME type from the extension" "$(curl -s -o /dev/null -w '%{content_type}' "$URL/style.css")" "text/css"
ETAG=$(hdr ETag "$URL/a.txt")
LM=$(hdr Last-Modified "$URL/a.txt")
check "ETag and Last-Modified are sent" [ -n "$ETAG" -a -n "$LM" ]
expect_eq "If-None-Match gives 304" "$(code -H "If-None-Match: $ETAG" "$URL/a.txt")" "304"
expect_eq "If-Modified-Since gives 304" "$(code -H "If-Modified-Since: $LM" "$URL/a.txt")" "304"
expect_eq "a range gives 206 with its bytes" \
    "$(curl -s -w ' %{http_code}' -r 10-19 "$URL/a.txt")" "aaaaaaaaaa 206"
expect_eq "Content-Range" "$(hdr Content-Range "$URL/a.txt" -r 10-19)" "bytes 10-19/4096"
expect_eq "a range past the end is 416" "$(code -r 5000-6000 "$URL/a.txt")" "416"
expect_eq "a directory without slash redirects" "$(code "$URL/sub")" "301"
expect_eq "its index" "$(curl -s "$URL/sub/")" "<h1>sub</h1>"
expect_eq "missing file is 404" "$(code "$URL/nope.txt")" "404"
expect_eq "directory listing is off by default" "$(code "$URL/empty/")" "404"
expect_eq "listing when asked" "$(code "$URL/list/empty/")" "200"
for p in "/../outside/secret.txt" "/%2e%2e/outside/secret.txt" "/static/../../outside/secret.txt" \
         "/%2E%2E/%2E%2E/etc/passwd" "/..%2f..%2fetc/passwd" "/../www-evil/x.txt"; do
    # An answer is needed too: no answer at all (a dead worker) must not pass.
    st=$(curl -s --path-as-is -o "$T_DIR/body" -w '%{http_code}' "$URL$p")
    body=$(cat "$T_DIR/body" 2>/dev/null)
    case $st:$body in
    000:* | *secret* | *root:* | *evil*) not_ok "traversal $p stays inside the root" "$st $body" ;;
    *) ok "traversal $p stays inside the root" ;;
    esac
done
expect_eq "a symlink out of the root is 404" "$(code "$URL/leak.txt")" "404"
expect_eq "a symlinked directory out of the root is 404" "$(code "$URL/leakdir/secret.txt")" "404"
expect_eq "a symlink inside the root is served" "$(curl -s "$URL/inside.txt" | wc -c)" "4096"
# Whole files above 32 KiB go out with sendfile(2) on cleartext HTTP/1.1.
expect_eq "a large file arrives whole" \
    "$(curl -s "$URL/large.bin" | cmp - "$ROOT/large.bin" && echo same)" "same"
expect_eq "and so it does to a slow reader" \
    "$(curl -s --limit-rate 4M "$URL/large.bin" | cmp - "$ROOT/large.bin" && echo same)" "same"
expect_eq "its Content-Length" "$(hdr Content-Length "$URL/large.bin")" "3000000"
expect_eq "its ETag is the one HEAD gives" "$(hdr ETag "$URL/large.bin")" "$(hdr ETag "$URL/large.bin" -I)"
expect_eq "HEAD of a large file has no body" "$(curl -s -I "$URL/large.bin" -o /dev/null -w '%{size_download}')" "0"
expect_eq "keep-alive goes on after a large file" \
    "$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects}' "$URL/large.bin" "$URL/a.txt" "$URL/large.bin" | tr -d '\n')" "100"
expect_eq "a range of a large file" "$(curl -s -r 2999990- "$URL/large.bin" | wc -c)" "10"
printf 'version 1\n' >"$ROOT/changing.txt"
curl -s "$URL/changing.txt" >/dev/null
printf 'version 2, longer\n' >"$ROOT/changing.txt.new"
mv "$ROOT/changing.txt.new" "$ROOT/changing.txt"
expect_eq "a file replaced between requests is served new" "$(curl -s "$URL/changing.txt")" "version 2, longer"
expect_eq "a FIFO in the root is 404 and does not block the worker" "$(code -m 5 "$URL/fifo")" "404"
expect_eq "the worker still answers" "$(curl -s -m 5 "$URL/")" "<h1>home</h1>"
expect_eq "header_unset removes a header" "$(hdr Last-Modified "$URL/static/a.txt")" ""
expect_eq "header_add adds one" "$(hdr X-Files "$URL/static/a.txt")" "yes"
expect_eq "prefix stripped: /static/a.txt is root/a.txt" "$(curl -s "$URL/static/a.txt" | wc -c)" "4096"

expect_eq "gzip when accepted" "$(hdr Content-Encoding "$URL/gz/big.txt" -H 'Accept-Encoding: gzip')" "gzip"
expect_eq "gzip body decodes to the file" \
    "$(curl -s --compressed "$URL/gz/big.txt" | cmp - "$ROOT/big.txt" && echo same)" "same"
check "gzip is smaller" [ "$(curl -s -H 'Accept-Encoding: gzip' "$URL/gz/big.txt" | wc -c)" -lt 1000 ]
expect_eq "Vary: Accept-Encoding" "$(hdr Vary "$URL/gz/big.txt" -H 'Accept-Encoding: gzip')" "accept-encoding"
expect_eq "a large text file gzipped in chunks decodes to the file" \
    "$(curl -s --compressed "$URL/gz/large.txt" | cmp - "$ROOT/large.txt" && echo same)" "same"
expect_eq "no gzip when not accepted" "$(hdr Content-Encoding "$URL/gz/big.txt")" ""
expect_eq "no gzip where compress is off" "$(hdr Content-Encoding "$URL/big.txt" -H 'Accept-Encoding: gzip')" ""

expect_eq "redirect keeps the path suffix and query" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$URL/old/a/b?x=1")" \
    "301 https://example.com/new/a/b?x=1"
expect_eq "redirect exact" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$URL/moved/else?q")" \
    "308 https://example.com/fixed"

# The files root is opened by the master when the config is read: a root removed later
# costs no worker its life, and a reload that names it fails at its position.
expect_eq "a second root serves" "$(curl -s "$URL/gone/x.txt")" "here"
rm -rf "$GONE"
slot0() { for p in $(workers); do [ "$(ps -o comm= -p "$p")" = percore-w0 ] && echo "$p"; done; }
VICTIM=$(slot0)
kill -KILL "$VICTIM"
replaced() { NEWPID=$(slot0); [ -n "$NEWPID" ] && [ "$NEWPID" != "$VICTIM" ]; }
wait_for replaced || not_ok "the killed worker is replaced"
# Enough connections that the kernel hands some to the new worker's socket (bounded: with
# no worker behind it, a connection would wait).
for _ in $(seq 1 20); do curl -s -m 5 -o /dev/null -H 'Connection: close' "$URL/a.txt"; done
expect_eq "a worker started after its root was removed serves" \
    "$(curl -s -m 5 -H 'Connection: close' "$URL/a.txt" | wc -c):$(slot0)" "4096:$NEWPID"
check "and did not exit" sh -c "! grep -q -e 'document root' -e 'exited with status' '$PC_LOG'"
expect_eq "the removed root is 404, not an error" "$(code -m 5 "$URL/gone/x.txt")" "404"
BEFORE=$(workers | paste -sd,)
kill -HUP "$PC_PID"
wait_for log_has "reload failed" || not_ok "a reload naming a missing root fails"
check "a reload naming a missing root fails at its position" \
    log_has "$CONF:9:26: document root '$GONE': No such file or directory"
check "and keeps the old generation serving" \
    log_has "reload failed: configuration has errors; generation .* keeps serving"
expect_eq "the old config still serves" "$(curl -s -m 5 "$URL/")" "<h1>home</h1>"
expect_eq "its workers untouched" "$(workers | paste -sd,)" "$BEFORE"

stop_percore
printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { files %s; }\n}\n' "$PORT" "$T_DIR/nodir" >"$CONF"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
check "a missing document root is a config error at its position" \
    grep -q "$CONF:3:21: document root '$T_DIR/nodir': No such file or directory" "$T_DIR/out"

finish
