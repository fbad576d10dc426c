#!/usr/bin/env python3
"""A small HTTP/1.1 upstream for proxy tests: answers JSON describing the request it got.

usage: upstream.py PORT|unix:/PATH NAME
GET /hang sleeps 10 s; GET /redir answers 302 to its own absolute URL /v1/new; GET
/tillclose answers a body that ends when it closes the connection (no length);
GET /conns answers how many distinct client connections it has seen; GET /stats answers
how many connections it has accepted and requests it has read, in total.
The JSON also carries the raw request line and header lines it received ("line",
"headers": [[name, value], ...]). GET /big?mib=N answers N MiB of a fixed pattern
(64 KiB blocks of bytes 0..255), counting what it has written; GET /sent answers that
count as JSON ({"sent": BYTES, "done": 0|1}). GET /loc?to=URL answers 302 with URL,
percent-decoded, as its Location, byte for byte (control bytes included).
"""
import http.server
import json
import os
import socket
import socketserver
import sys
import time
import urllib.parse

where, name = sys.argv[1], sys.argv[2]
seen = set()
BLOCK = bytes(range(256)) * 256
big = {"sent": 0, "done": 0}
stats = {"accepted": 0, "requests": 0, "queries": 0}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        seen.add(id(self.connection))
        if self.path == "/stats":  # not counted: its own connection is taken off
            stats["queries"] += 1
            self.send_json({"accepted": stats["accepted"] - stats["queries"],
                            "requests": stats["requests"]})
            return
        stats["requests"] += 1
        if self.path.endswith("/hang"):
            time.sleep(10)
        if "/big?mib=" in self.path:
            self.send_big(int(self.path.split("=")[1]))
            return
        if self.path.endswith("/sent"):
            self.send_json(dict(big))
            return
        if self.path.endswith("/tillclose"):  # in one write, then the close
            self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\ntill the close\n")
            self.close_connection = True
            return
        if self.path.endswith("/redir"):
            self.send_response(302)
            self.send_header("Location", f"http://{self.headers.get('Host')}/v1/new")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "/loc?to=" in self.path:
            to = urllib.parse.unquote_to_bytes(self.path.split("?to=", 1)[1])
            self.wfile.write(b"HTTP/1.1 302 Found\r\nLocation: " + to +
                             b"\r\nContent-Length: 0\r\n\r\n")
            return
        info = {"name": name, "path": self.path, "host": self.headers.get("Host"),
                "xff": self.headers.get("X-Forwarded-For"),
                "xfp": self.headers.get("X-Forwarded-Proto"),
                "fwd": self.headers.get("Forwarded"), "conns": len(seen),
                "line": self.requestline, "headers": [[k, v] for k, v in self.headers.items()]}
        self.send_json(info)

    def send_json(self, info):
        body = json.dumps(info).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_big(self, mib):
        big["sent"], big["done"] = 0, 0
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(mib * 1024 * 1024))
        self.end_headers()
        try:
            for _ in range(mib * 16):
                self.wfile.write(BLOCK)
                big["sent"] += len(BLOCK)
        finally:
            big["done"] = 1

    def log_message(self, *a):
        pass


class TCP(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def process_request(self, request, client_address):
        stats["accepted"] += 1
        super().process_request(request, client_address)


class Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


if where.startswith("unix:"):
    path = where[5:]
    if os.path.exists(path):
        os.unlink(path)
    Unix(path, H).serve_forever()
else:
    TCP(("127.0.0.1", int(where)), H).serve_forever()
