#!/usr/bin/env python3
"""An HTTP/1.1 upstream for routing tests: every request gets 200 and JSON describing it.

usage: echo_upstream.py PORT LABEL

The JSON is {"method", "path" (the request target exactly as received), "headers":
[[name, value], ...] (in the order received, repeats kept), "body_len", "upstream": LABEL}.
Any method; keep-alive; a Content-Length or chunked body is read and counted. A target
whose path holds "/status/NNN" (NNN a status from 200 to 599) is answered with NNN and the
body "upstream NNN\n" instead, so a test can tell an upstream's own error from percore's.
Environment: ECHO_STATUS=NNN answers every request (but /count) with NNN and "upstream
NNN"; ECHO_TLS_CERT and ECHO_TLS_KEY (PEM files) make it serve HTTPS; ECHO_ADDR is the
loopback address it listens on (127.0.0.1 by default).
GET /count answers {"requests": N, "checks": M}, the requests answered before it (itself not
counted), so a test can tell how many attempts reached this upstream; requests with
User-Agent percore-health (health checks) count in M, not N.
Ready once a request is answered: tests wait for that, as for upstream.py.
"""
import http.server
import json
import re
import os
import socketserver
import ssl
import sys
import threading
import time

port, label = int(sys.argv[1]), sys.argv[2]
STATUS = re.compile(r"/status/([2-5][0-9][0-9])(?:[/?]|$)")
counted = {"requests": 0, "checks": 0}
lock = threading.Lock()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        """The request body's length, read to its end."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            n = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return n
                n += len(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return len(self.rfile.read(length)) if length > 0 else 0

    def answer(self):
        body_len = self.read_body()
        if self.path == "/count":
            with lock:
                body = json.dumps(counted).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        kind = "checks" if self.headers.get("User-Agent") == "percore-health" else "requests"
        with lock:
            counted[kind] += 1
        if self.path.endswith("/slow"):
            time.sleep(2)
        m = STATUS.search(self.path.split("?", 1)[0])
        forced = os.environ.get("ECHO_STATUS")
        if m or forced:
            status = int(forced or m.group(1))
            body = f"upstream {status}\n".encode()
            ctype = "text/plain"
        else:
            status = 200
            body = json.dumps({"method": self.command, "path": self.path,
                               "headers": [[k, v] for k, v in self.headers.items()],
                               "body_len": body_len, "upstream": label}).encode() + b"\n"
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = answer

    def log_message(self, *a):
        pass


class TCP(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


server = TCP((os.environ.get("ECHO_ADDR", "127.0.0.1"), port), H)
if os.environ.get("ECHO_TLS_CERT"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["ECHO_TLS_CERT"], os.environ["ECHO_TLS_KEY"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
