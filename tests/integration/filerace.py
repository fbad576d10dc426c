#!/usr/bin/env python3
"""Clients for the files handler tests.

filerace.py race PORT ROOT OUTSIDE SECONDS: swaps symbolic links to OUTSIDE (a file outside
the root) in and out under ROOT while requests of every kind ask for the names being
swapped; prints one line per kind: KIND served=N leaked=N (leaked: any answer carrying a
byte, the size or the ETag of OUTSIDE).

filerace.py ranges PORT PATH FILE < VALUES: for each Range value on stdin (one a line), one
line: the status, the number of parts in the body (1 for a whole file or a single range, 0
for 416) and "ok" when the body is exactly what that status promises for FILE and its
length is less than twice the file's, else "bad" and why."""
import http.client
import os
import re
import signal
import sys
import time


MIN_PER_KIND = 50


def swapper(root, outside):
    """Forever: race.txt and dir/index.html alternate between a file inside the root (a
    hard link, so its ETag stays) and a symbolic link to OUTSIDE; abs.txt between absolute
    links to inside.txt and to OUTSIDE; ldir between a link to a directory inside the root
    and one to OUTSIDE's directory."""
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    inside = os.path.join(root, "inside.txt")
    swaps = [(os.path.join(root, "race.txt"), lambda t: os.link(inside, t), outside),
             (os.path.join(root, "dir", "index.html"), lambda t: os.link(inside, t), outside),
             (os.path.join(root, "abs.txt"), lambda t: os.symlink(inside, t), outside),
             (os.path.join(root, "ldir"), lambda t: os.symlink("realdir", t),
              os.path.dirname(outside))]
    while True:
        for name, make_inside, target in swaps:
            tmp = name + ".swap"
            for make in (lambda t: os.symlink(target, t), make_inside):
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                make(tmp)
                os.rename(tmp, name)


def etag_of(path):
    st = os.stat(path)
    return '"%08x-%x"' % (int(st.st_mtime) & 0xFFFFFFFF, st.st_size)


def race(port, root, outside, seconds):
    secret = open(outside, "rb").read()
    inside = open(os.path.join(root, "inside.txt"), "rb").read()
    bad_etag, good_etag = etag_of(outside), etag_of(os.path.join(root, "inside.txt"))
    kinds = [
        ("GET", "GET", "/race.txt", {}),
        ("HEAD", "HEAD", "/race.txt", {}),
        ("range", "GET", "/race.txt", {"Range": "bytes=0-9"}),
        ("multirange", "GET", "/race.txt", {"Range": "bytes=0-1,4-5"}),
        ("if-none-match", "GET", "/race.txt", {"If-None-Match": good_etag}),
        ("if-none-match-other", "GET", "/race.txt", {"If-None-Match": '"x"'}),
        ("if-modified-since", "GET", "/race.txt",
         {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:01 GMT"}),
        ("if-range", "GET", "/race.txt", {"Range": "bytes=0-9", "If-Range": good_etag}),
        ("index", "GET", "/dir/", {}),
        ("index-HEAD", "HEAD", "/dir/", {}),
        ("listing", "GET", "/l/ldir/", {}),
        # An absolute link that lands inside the root takes the realpath check.
        ("absolute-link", "GET", "/abs.txt", {}),
        ("absolute-link-range", "GET", "/abs.txt", {"Range": "bytes=0-9"}),
    ]
    pid = os.fork()
    if pid == 0:
        swapper(root, outside)
    try:
        # A loaded machine gets fewer requests, not a longer test; but every kind gets at
        # least MIN_PER_KIND, however late it starts, so none is judged on no requests.
        per_kind = seconds / len(kinds)
        for kind, method, path, headers in kinds:
            served = leaked = 0
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            stop = time.monotonic() + per_kind
            n = 0
            while n < MIN_PER_KIND or (n < 2000 and time.monotonic() < stop):
                n += 1
                conn.request(method, path, headers=headers)
                r = conn.getresponse()
                body = r.read()
                h = {k.lower(): v for k, v in r.getheaders()}
                if (secret[:16] in body or os.path.basename(outside).encode() in body or h.get("etag") == bad_etag or
                        h.get("content-length") == str(len(secret)) or
                        h.get("content-range", "").endswith("/%d" % len(secret))):
                    leaked += 1
                elif r.status in (200, 206, 304):
                    served += 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.close()
            print("%s served=%d leaked=%d" % (kind, served, leaked), flush=True)
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def parts_of(status, headers, body, data):
    """The parts body holds: [(first, last, bytes)], or a string saying what is wrong."""
    if status == 200:
        return [(0, len(data) - 1, body)]
    if status == 416:
        return [] if headers.get("content-range") == "bytes */%d" % len(data) else "no range"
    if status != 206:
        return "status"
    m = re.match(r"multipart/byteranges; boundary=(\S+)$", headers.get("content-type", ""))
    if m is None:
        cr = re.match(r"bytes (\d+)-(\d+)/(\d+)$", headers.get("content-range", ""))
        if cr is None or int(cr.group(3)) != len(data):
            return "content-range"
        return [(int(cr.group(1)), int(cr.group(2)), body)]
    sep = b"--" + m.group(1).encode()
    if not body.startswith(sep + b"\r\n") or not body.endswith(b"\r\n" + sep + b"--\r\n"):
        return "multipart framing"
    out = []
    for c in body[len(sep) + 2:-len(sep) - 6].split(b"\r\n" + sep + b"\r\n"):
        head, _, part = c.partition(b"\r\n\r\n")
        cr = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head)
        if cr is None or int(cr.group(3)) != len(data):
            return "part content-range"
        out.append((int(cr.group(1)), int(cr.group(2)), part))
    return out


def ranges(port, path, file, values):
    data = open(file, "rb").read()
    for v in values:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers={"Range": v})
        r = conn.getresponse()
        h = {k.lower(): v for k, v in r.getheaders()}
        length = int(h.get("content-length", "-1"))
        why = ""
        if not 0 <= length < 2 * len(data):
            why = "content-length %d" % length  # and never read an unbounded answer
            parts = []
        else:
            body = r.read()
            parts = parts_of(r.status, h, body, data)
            if isinstance(parts, str):
                why, parts = parts, []
            elif len(body) != length:
                why = "short body"
            elif any(p != data[a:b + 1] for a, b, p in parts):
                why = "bytes differ"
        print("%d %d %s" % (r.status, len(parts), "bad " + why if why else "ok"), flush=True)
        conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "race":
        race(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        ranges(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.stdin.read().splitlines())
