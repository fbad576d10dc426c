#!/bin/bash
# What the proxy sends upstream, whatever the client wrote: a path that stays under the
# upstream's path (every spelling of "..", with and without a route prefix), no hop-by-hop
# header nor one that Connection names, forwarding headers that only percore writes
# (Forwarded quoted, Via with percore's name), an upstream's Location passed on without raw
# control bytes nor a "//host" an empty Host would make, and a bounded read-ahead for a
# client that does not read.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

UP="$(dirname "$0")/upstream.py"
PA=$(free_port)
PORT=$(free_port)
python3 "$UP" "$PA" A &
UA=$!
cleanup() { stop_percore; kill "$UA" 2>/dev/null; wait "$UA" 2>/dev/null; }
trap cleanup EXIT
wait_for sh -c "curl -s http://127.0.0.1:$PA/ >/dev/null" || bail "upstream did not start"

V6=
if python3 -c "import socket; socket.socket(socket.AF_INET6).bind(('::1', $PORT))" 2>/dev/null; then
    V6="listen [::1]:$PORT;"
fi
CONF=$T_DIR/percore.conf
cat >"$CONF" <<CONF
workers 1;
service s {
    listen 127.0.0.1:$PORT;
    $V6
    route /api/ { proxy http://127.0.0.1:$PA/base/; }
    route /other/ { respond 200 "other\n"; }
    route /slow/ { proxy http://127.0.0.1:$PA/ timeout=3s buffer_size=1m; }
    route / { proxy http://127.0.0.1:$PA/base/; }
}
CONF
start_percore "$CONF"

# check.py PORT UPSTREAM_PORT WORKER_PID CLASS: runs one class of checks in one process
# (a loaded machine starts python slowly) and prints "ok TAB name" or "not ok TAB name TAB
# detail" per check.
cat >"$T_DIR/check.py" <<'PY'
import json, os, re, socket, sys, time, urllib.parse, urllib.request, zlib

port, up, wpid, what = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def report(good, name, detail=""):
    print("ok" if good else "not ok", name, detail, sep="\t", flush=True)


def exchange(target, hdrs, v6=False):
    """One GET with exactly these header lines; the whole answer, until the close."""
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.settimeout(30)
    s.connect(("::1" if v6 else "127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\n%s\r\nConnection: close\r\n\r\n"
               % (target, "\r\n".join(hdrs))).encode("latin-1"))
    d = b""
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
    s.close()
    return d


def raw(target, *hdrs, v6=False):
    """One GET; returns (status, target the upstream got, its header lines) or Nones."""
    if not any(h.lower().startswith("host:") for h in hdrs):
        hdrs = ("Host: 127.0.0.1",) + hdrs
    head, _, body = exchange(target, hdrs, v6).partition(b"\r\n\r\n")
    status = head.split(b" ")[1].decode() if b" " in head else "none"
    try:
        j = json.loads(body)
        return status, j["line"].split(" ")[1], j["headers"]
    except ValueError:
        return status, None, None


def values(hdrs, name):
    return [v for k, v in hdrs if k.lower() == name]


def under_base(target):
    """Under /base/ for an upstream that decodes once, reads '\\' as '/' and ';...' as a
    parameter, and resolves dot segments."""
    path = target.split("?", 1)[0]
    for p in (path, urllib.parse.unquote(path)):
        if any(seg.split(";")[0] in ("..", ".") for seg in re.split(r"[/\\]", p)):
            return False
    return path.startswith("/base/")


def path_case(target, want=None):
    """400, or 200 with a target under /base/ (want exactly, if given)."""
    status, got, _ = raw(target)
    if status == "400" and want is None:
        return report(True, f"path '{target}': 400")
    good = status == "200" and got is not None and under_base(got) and want in (None, got)
    report(good, f"path '{target}': upstream got '{got}'",
           f"status {status}, wanted {want or '400 or a path under /base/'}")


def paths():
    for t in ("/../x", "/%2e%2e/x", "/.%2e/x", "/%2E%2e/x", "/%2e%2E/x", "/..%2fx", "/..%2Fx",
              "/a/..%2f..%2fx", "/a%2f..%2f..%2fx", "/./../x", "/a/b/../../../x", "/%2e/%2e%2e/x"):
        path_case(t, "/base/x")
    for t in ("/..;/x", "/..;a=b/x", "/..\\x", "/a\\..\\..\\x", "/%5c..%5cx", "/..%5cx",
              "/%2e%2e%5cx", "/%5C%2E%2E%5Cx", "/..%3b/x"):
        path_case(t)
    path_case("/%252e%252e/x", "/base/%252e%252e/x")
    path_case("/%252e%252e%252fx", "/base/%252e%252e%252fx")
    path_case("/a%20b/%E2%82%AC", "/base/a%20b/%E2%82%AC")
    path_case("/a?q=../..&r=%2e%2e", "/base/a?q=../..&r=%2e%2e")
    # A query byte no request target may hold is encoded, not passed on raw.
    path_case("/a?q=\u00e9\"<x>", "/base/a?q=%E9%22%3Cx%3E")
    # Nor one outside RFC 3986's query characters: a '#' is no fragment upstream, and
    # the client's "%XX" escapes are kept, a lone '%' encoded.
    path_case("/p?a=1#frag&x<y", "/base/p?a=1%23frag&x%3Cy")
    path_case("/p?a={b}|c^[d]`e\\f", "/base/p?a=%7Bb%7D%7Cc%5E%5Bd%5D%60e%5Cf")
    path_case("/p?a=%41%4a%zz&b=100%&c=%4", "/base/p?a=%41%4a%25zz&b=100%25&c=%254")
    path_case("/p?a=b:c@d/e?f!$&'()*+,;=~", "/base/p?a=b:c@d/e?f!$&%27()*+,;=~")
    # With a route prefix: the path is normalised before the route is chosen.
    path_case("/api/a/%2e%2e/b", "/base/b")
    path_case("/api/x?q=1", "/base/x?q=1")
    for t in ("/api/../x", "/api/%2e%2e/x", "/api/.%2e/x", "/api/..%2f..%2fx", "/api/a/../../x"):
        path_case(t, "/base/x")
    for t in ("/api/..;/x", "/api/%5c..%5cx", "/api/..\\x"):
        path_case(t)


def hdr_case(names, *hdrs):
    """None of names reached the upstream; X-Kept did."""
    _, _, got = raw("/h", "X-Kept: yes", *hdrs)
    got = [k.lower() for k, _ in got or []]
    bad = [n for n in names if n in got]
    report(not bad and "x-kept" in got, "not forwarded: " + " ".join(names),
           f"forwarded: {bad}; upstream got {got}")


def headers():
    hdr_case(["x-secret"], "Connection: close, X-Secret", "X-Secret: s")
    hdr_case(["x-internal-auth"], "Connection: keep-alive, X-Internal-Auth", "x-internal-auth: a")
    hdr_case(["x-secret-two"], "Connection: X-SECRET-TWO", "x-Secret-Two: s")
    hdr_case(["x-a", "x-b", "x-c"], "Connection: x-a", "X-A: 1", "Connection:  ,x-b ,, x-c\t",
             "X-B: 2", "X-C: 3")
    hdr_case(["cookie"], "Connection: Cookie", "Cookie: a=1")
    hdr_case(["proxy-connection"], "Proxy-Connection: keep-alive")
    hdr_case(["keep-alive"], "Keep-Alive: timeout=5")
    hdr_case(["te", "trailer"], "TE: trailers", "Trailer: X-T")
    hdr_case(["upgrade"], "Upgrade: foo/1")
    hdr_case(["proxy-authorization"], "Proxy-Authorization: Basic dTpw")
    got = values(raw("/h", "Connection: X-Secret")[2], "connection")
    report(got == ["keep-alive"], "Connection upstream is percore's own", f"got {got}")


TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
PAIR = re.compile(r"\s*(" + TOKEN + r")=(" + TOKEN + r'|"(?:[^"\\]|\\.)*")\s*')


def parse_forwarded(val):
    """RFC 7239: elements by ',', pairs by ';', token or quoted-string values."""
    elems, cur, i = [], {}, 0
    while i < len(val):
        m = PAIR.match(val, i)
        if not m:
            return "unparsable: " + val
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        cur.setdefault(m.group(1).lower(), []).append(v)
        i = m.end()
        if i < len(val) and val[i] == ",":
            elems.append(cur)
            cur = {}
        i += 1
    return elems + [cur]


def forwarded():
    # A Host that is not host[:port] never reaches a handler (400 before any); the ones
    # that do are quoted in Forwarded, so none can add an element or a parameter.
    for host in ('x;for=198.51.100.8', 'x,for=198.51.100.8', 'x;for="198.51.100.8"', 'x"y',
                 'a\\";for=198.51.100.8;x=\\"', 'x, 1.1 evil'):
        status, line, _ = raw("/h", "Host: " + host)
        report(status == "400" and line is None, f"Host '{host}': 400, nothing proxied",
               f"got {status} {line}")
    for host in ('www.example.test:8080', '[::1]:8080', '[2001:db8::1]', 'a_b.example'):
        got = parse_forwarded(", ".join(values(raw("/h", "Host: " + host)[2] or [], "forwarded")))
        want = [{"for": ["127.0.0.1"], "proto": ["http"], "host": [host]}]
        report(got == want, f"Forwarded with Host '{host}': one element, percore's", f"got {got}")
    via = values(raw("/h", "Host: evil.example")[2] or [], "via")
    report(via == ["1.1 percore"], "Via names percore, not the client's Host", f"got {via}")
    via = values(raw("/h", "Via: 1.0 fred")[2], "via")
    report(via == ["1.0 fred", "1.1 percore"], "a client's Via first, percore's last", f"got {via}")
    _, _, got = raw("/h", "Host: app.example", "Forwarded: for=198.51.100.8;proto=https",
                    "X-Forwarded-For: 198.51.100.8", "X-Forwarded-Proto: https",
                    "X-Forwarded-Host: evil.example", "X-Real-IP: 198.51.100.8",
                    "X-Forwarded-Port: 443", "x-forwarded-for: 198.51.100.9",
                    "FORWARDED: for=198.51.100.9")
    for name, want in (("forwarded", ['for=127.0.0.1;proto=http;host="app.example"']),
                       ("x-forwarded-for", ["127.0.0.1"]), ("x-forwarded-proto", ["http"]),
                       ("x-forwarded-host", ["app.example"]), ("x-real-ip", []),
                       ("x-forwarded-port", [])):
        report(values(got, name) == want, f"a client's {name} is replaced by percore's {want}",
               f"got {values(got, name)}")
    if sys.argv[5:] == ["v6"]:
        got = values(raw("/h", v6=True)[2], "forwarded")
        report(got == ['for="[::1]";proto=http;host="127.0.0.1"'],
               "Forwarded for an IPv6 client: quoted and bracketed", f"got {got}")


def head(target, *hdrs):
    """One GET with exactly these header lines (no Host added); returns (status, its
    header lines as bytes), or (None, [])."""
    lines = exchange(target, hdrs).partition(b"\r\n\r\n")[0].split(b"\r\n")
    return lines[0].split(b" ")[1].decode() if b" " in lines[0] else None, lines[1:]


def browser_host(loc):
    """The host a browser sends a redirect to (None: this one): it drops tab, CR and LF,
    reads '\\' as '/', and "//x" (or "http://x", "http:///x") names host x."""
    u = re.sub(r"[\t\r\n]", "", loc).replace("\\", "/")
    m = re.match(r"(?i)(?:https?:)?//+([^/?#]*)", u)
    return m.group(1) if m else None


def loc_case(sent, want, host="Host:", goes_to=None):
    """The upstream answers Location: sent; the client gets want, which a browser reads as
    a link to goes_to (None: this host), with no raw control byte, and no line that is not
    a header."""
    status, lines = head("/loc?to=" + urllib.parse.quote(sent, safe=""), host)
    got = [l[10:].decode("latin-1") for l in lines if l.lower().startswith(b"location: ")]
    bad = [l for l in lines if not re.match(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+: ", l)]
    good = (status == "302" and got == [want] and not bad and
            not re.search(r"[\x00-\x20\x7f]", want) and
            browser_host(want) == goes_to)
    report(good, f"{host} Location {sent!r} from the upstream: {want!r}",
           f"status {status}, got {got}, lines not headers {bad}")


def locations():
    up_ = f"http://127.0.0.1:{up}/base"
    # With an empty Host, libh2o's rewrite gives "http:///..."; a path goes instead, from
    # one '/' whatever the run of '/', '\\', tab, CR and LF after it.
    for sent in ("/\t/evil.example/", "/\t\\\t/evil.example/", "//\\\t/\\evil.example/",
                 "/\\\t\t/evil.example/", "/\t\t//evil.example/"):
        loc_case(up_ + sent, "/evil.example/")
    loc_case(up_ + "/%09/evil.example/", "/%09/evil.example/")
    loc_case(up_ + "/%0d%0a/evil.example/", "/%0d%0a/evil.example/")
    loc_case(up_ + "/a\tb/c", "/a%09b/c")
    # With a Host the rewrite names it; a tab, rewritten or not, goes encoded.
    loc_case(up_ + "/\t/evil.example/", "http://h.example/%09/evil.example/", "Host: h.example",
             "h.example")
    loc_case("http://other.example/\t/x", "http://other.example/%09/x", "Host: h.example",
             "other.example")
    loc_case("/\t/evil.example/", "/%09/evil.example/", "Host: h.example")
    # A folded line goes, not as a header without a name.
    loc_case(up_ + "/\r\n\t/evil.example/", "/")
    loc_case(up_ + "/a\r\n /evil.example/", "/a")
    # No upstream header holds a raw CR, LF or other control but tab: the response is refused.
    for sent in ("/\r/evil.example/", "/\n/evil.example/", "/\r\r\n/evil.example/", "/\x01/x",
                 "/\x7f/x"):
        status, lines = head("/loc?to=" + urllib.parse.quote(up_ + sent, safe=""), "Host:")
        got = [l for l in lines if l.lower().startswith(b"location")]
        report(status == "502" and not got, f"Location {sent!r} from the upstream: 502",
               f"status {status}, got {got}")


def slow():
    """A client that reads nothing, then everything."""
    def rss():
        return next(int(l.split()[1]) for l in open(f"/proc/{wpid}/status")
                    if l.startswith("VmRSS"))

    def temp_files():
        n = 0
        for fd in os.listdir(f"/proc/{wpid}/fd"):
            try:
                n += "h2o.b." in os.readlink(f"/proc/{wpid}/fd/{fd}")
            except OSError:
                pass
        return n

    def sent():
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{up}/sent", timeout=30))

    rss0 = rss()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /slow/big?mib=96 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # Until the upstream makes no progress for 2 s (it blocks on a full socket) or is done.
    last, since, t0 = -1, time.time(), time.time()
    while time.time() - t0 < 90:
        v = sent()
        if v["done"]:
            break
        if v["sent"] != last:
            last, since = v["sent"], time.time()
        elif time.time() - since > 2:
            break
        time.sleep(0.2)
    v = sent()
    report(not v["done"] and v["sent"] < 48 << 20,
           "a client that reads nothing: the upstream is not read to the end",
           f"{v['sent'] >> 20} MiB of 96 sent")
    report(temp_files() == 0, "no temp file for the response")
    # AddressSanitizer keeps freed memory in quarantine: a looser bound there.
    grown, bound = (rss() - rss0) >> 10, 64 if sys.argv[5:] == ["asan"] else 24
    report(grown < bound, f"the worker's RSS grows by less than {bound} MiB ({grown} MiB)")
    # The route's timeout is 3 s: reading nothing for longer than that is not an upstream
    # timeout.
    while time.time() - since < 4:
        time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    crc, n, buf = 0, 0, b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(1 << 20)
        if not d:
            break
        buf += d
    _, _, body = buf.partition(b"\r\n\r\n")
    crc, n = zlib.crc32(body), len(body)
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        crc, n = zlib.crc32(d, crc), n + len(d)
    want = 0
    for _ in range(96 * 16):
        want = zlib.crc32(bytes(range(256)) * 256, want)
    report(n == 96 << 20 and crc == want,
           "then, read after more than the upstream's timeout, the whole response", f"{n} bytes")


globals()[what]()
PY
# run_checks CLASS [ARG]: the class's checks as TAP lines; check.py failing, or saying
# nothing, is a failure too (a crash must not leave the checks it never ran unreported).
run_checks() {
    local out=$T_DIR/checks.out rc n=0
    python3 "$T_DIR/check.py" "$PORT" "$PA" "$(workers)" "$@" >"$out" 2>&1
    rc=$?
    while IFS=$'\t' read -r res name detail; do
        n=$((n + 1))
        if [ "$res" = ok ]; then ok "$name"; else not_ok "$name" "$detail"; fi
    done < <(sed '/^\(ok\|not ok\)\t/!s/^/not ok\tcheck.py: /' "$out")
    if [ "$rc" -ne 0 ] || [ "$n" -eq 0 ]; then
        not_ok "check.py $1 ran to its end" "exit $rc, $n lines"
    fi
}

# ---- 2.2: the path stays under the upstream's ----
run_checks paths
expect_eq "'/api/../other/' is the other route's" \
    "$(curl -s --path-as-is "http://127.0.0.1:$PORT/api/../other/")" "other"
# ---- 2.3: hop-by-hop headers and those Connection names stay here ----
run_checks headers
# ---- 2.4: forwarding headers are percore's, quoted ----
run_checks forwarded ${V6:+v6}
# ---- the upstream's Location holds no raw control byte, nor a "//host" ----
run_checks locations
# ---- 2.7: a client that reads nothing costs about the buffer, not the response ----
run_checks slow "$(ldd "$PERCORE" | grep -q libasan && echo asan)"
expect_eq "a client that reads at once gets all of it" \
    "$(curl -s "http://127.0.0.1:$PORT/slow/big?mib=32" | cksum)" \
    "$(python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 256 * 16 * 32)' | cksum)"

printf 'service s {\n    listen 127.0.0.1:%s;\n    route / { proxy http://127.0.0.1:1/ buffer_size=1k; }\n}\n' \
    "$PORT" >"$T_DIR/bad.conf"
"$PERCORE" -t -c "$T_DIR/bad.conf" >"$T_DIR/out" 2>&1
check "buffer_size below 4k is a config error at its position" \
    grep -q "bad.conf:3:41: invalid proxy buffer_size '1k': expected 4k to 1g" "$T_DIR/out"

finish
