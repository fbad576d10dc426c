#!/usr/bin/env python3
"""A small HTTP/1.1 upstream for proxy tests: answers JSON describing the request it got.

usage: upstream.py PORT|unix:/PATH NAME
GET /hang sleeps 10 s; GET /redir answers 302 to its own absolute URL /v1/new;
GET /conns answers how many distinct client connections it has seen; GET /stats answers
how many connections it has accepted and requests it has read, in total.
"""
import http.server
import json
import os
import socket
import socketserver
import sys
import time

where, name = sys.argv[1], sys.argv[2]
seen = set()
stats = {"accepted": 0, "requests": 0, "queries": 0}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        seen.add(id(self.connection))
        if self.path == "/stats":  # not counted: its own connection is taken off
            stats["queries"] += 1
            self.answer(json.dumps({"accepted": stats["accepted"] - stats["queries"],
                                    "requests": stats["requests"]}).encode() + b"\n")
            return
        stats["requests"] += 1
        if self.path.endswith("/hang"):
            time.sleep(10)
        if self.path.endswith("/redir"):
            self.send_response(302)
            self.send_header("Location", f"http://{self.headers.get('Host')}/v1/new")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        info = {"name": name, "path": self.path, "host": self.headers.get("Host"),
                "xff": self.headers.get("X-Forwarded-For"),
                "xfp": self.headers.get("X-Forwarded-Proto"),
                "fwd": self.headers.get("Forwarded"), "conns": len(seen)}
        self.answer(json.dumps(info).encode() + b"\n")

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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
