#!/bin/bash
# An HTTP/1 client's connection while the proxy waits for its answer (src/holdread.c: the
# socket stays polled, nothing is read): requests pipelined in one write, a request sent
# while the one before waits on its upstream, a half-close then, a client that leaves,
# many requests on one kept connection; in cleartext and over TLS.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need_tls
UP="$(dirname "$0")/upstream.py"
PA=$(free_port)
PORT=$(free_port)
TPORT=$(free_port)
python3 "${UP}" "${PA}" A &
UA=$!
cleanup() { stop_percore; kill "${UA}" 2>/dev/null; wait "${UA}" 2>/dev/null; }
trap cleanup EXIT
wait_for sh -c "curl -s http://127.0.0.1:${PA}/ >/dev/null" || bail "upstream did not start"

CONF=${T_DIR}/percore.conf
cat >"${CONF}" <<CONF
workers 1;
service s {
    listen 127.0.0.1:${PORT};
    route /slow/ { proxy http://127.0.0.1:${PA}/v1/ timeout=1s; }
    route / { proxy http://127.0.0.1:${PA}/v1/; }
}
service t {
    listen 127.0.0.1:${TPORT} tls;
    ${TLS_FILES}
    route /slow/ { proxy http://127.0.0.1:${PA}/v1/ timeout=1s; }
    route / { proxy http://127.0.0.1:${PA}/v1/; }
}
CONF
start_percore "${CONF}"
WORKER=$(workers)

# check.py PORT UPSTREAM_PORT tls|plain: prints "ok TAB name" or "not ok TAB name TAB
# detail" per check.
cat >"${T_DIR}/check.py" <<'PY'
import json, socket, ssl, sys, time, urllib.request

port, up, tls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "tls"
kind = "TLS" if tls else "cleartext"


def report(good, name, detail=""):
    print("ok" if good else "not ok", f"{kind}: {name}", detail, sep="\t", flush=True)


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


class Reader:
    """Responses off one connection, each as (status, body)."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(l.split(":", 1)[1]) for l in lines
                      if l.lower().startswith("content-length:"))
        while len(self.buf) < length:
            self.fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split(" ")[1]), body

    def at_eof(self):
        try:
            while True:
                self.fill()
        except EOFError:
            return self.buf == b""


def get(path):
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def path_of(body):
    try:
        return json.loads(body)["path"]
    except ValueError:
        return None


def upstream_requests():
    with urllib.request.urlopen(f"http://127.0.0.1:{up}/stats", timeout=20) as r:
        return json.load(r)["requests"]


def hang_then(after):
    """A request the upstream holds (answered 504 after its route's 1 s timeout); once
    the upstream has it, after(socket) runs. The reader is returned."""
    n = upstream_requests()
    s = connect()
    s.sendall(get("/slow/hang"))
    for _ in range(200):
        if upstream_requests() > n:
            break
        time.sleep(0.05)
    after(s)
    return Reader(s)


def pipelined():
    s = connect()
    s.sendall(get("/a") + get("/b") + get("/c"))
    r = Reader(s)
    got = [path_of(r.response()[1]) for _ in range(3)]
    report(got == ["/v1/a", "/v1/b", "/v1/c"], "three requests in one write, answered in order",
           f"got {got}")
    s.close()


def behind_a_wait():
    r = hang_then(lambda s: s.sendall(get("/after")))
    first, (status, body) = r.response()[0], r.response()
    report(first == 504 and status == 200 and path_of(body) == "/v1/after",
           "a request sent while the one before waits: both answered, in order",
           f"got {first}, then {status} {body[:60]!r}")
    r.s.sendall(get("/more"))
    status, body = r.response()
    report(status == 200 and path_of(body) == "/v1/more", "and the connection serves on",
           f"got {status} {body[:60]!r}")
    r.s.close()


def half_close():
    # Under TLS too the TCP half-close goes under the session, with no close_notify.
    r = hang_then(lambda s: socket.socket.shutdown(s, socket.SHUT_WR))
    try:
        status = r.response()[0]
        eof = r.at_eof()
    except (EOFError, OSError) as e:
        status, eof = repr(e), False
    report(status == 504 and eof,
           "a client that half-closes while it waits gets its answer, then the close",
           f"got {status}, eof {eof}")


def leaves():
    hang_then(lambda s: s.close())
    s = connect()
    s.sendall(get("/next"))
    status, body = Reader(s).response()
    report(status == 200 and path_of(body) == "/v1/next",
           "a client that leaves while it waits: the next one is served", f"got {status}")
    s.close()


def kept():
    s = connect()
    r = Reader(s)
    got = []
    for i in range(200):
        s.sendall(get(f"/k{i}"))
        got.append(path_of(r.response()[1]))
    bad = [(i, g) for i, g in enumerate(got) if g != f"/v1/k{i}"]
    report(not bad, "200 requests one after the other on one connection",
           f"first wrong: {bad[:1]}")
    s.close()


for check in (pipelined, behind_a_wait, half_close, leaves, kept):
    try:
        check()
    except Exception as e:  # a hang or a reset is a failed check, not a silent stop
        report(False, check.__name__, repr(e))
PY
# run_checks PORT UPSTREAM_PORT tls|plain: the checks as TAP lines; check.py failing, or
# saying nothing, is a failure too.
run_checks() {
    local out=${T_DIR}/checks.out rc n=0
    python3 "${T_DIR}/check.py" "$@" >"${out}" 2>&1
    rc=$?
    while IFS=$'\t' read -r res name detail; do
        n=$((n + 1))
        if [[ "${res}" = ok ]]; then ok "${name}"; else not_ok "${name}" "${detail}"; fi
    done < <(sed '/^\(ok\|not ok\)\t/!s/^/not ok\tcheck.py: /' "${out}" || true)
    if [[ "${rc}" -ne 0 ]] || [[ "${n}" -eq 0 ]]; then
        not_ok "check.py $3 ran to its end" "exit ${rc}, ${n} lines"
    fi
}
run_checks "${PORT}" "${PA}" plain
run_checks "${TPORT}" "${PA}" tls
NOW=$(workers)
expect_eq "the same worker served it all" "${NOW}" "${WORKER}"

finish
