#!/usr/bin/env python3
"""An OTLP/HTTP collector stand-in (JSON encoding only) for the span export tests.

usage: otlp_collector.py PORT

POST /v1/traces (any path but those below): the body must be OTLP JSON
(resourceSpans/scopeSpans/spans, Content-Type application/json); each span is kept with
its resource's attributes, and the answer is 200 with "{}" (keep-alive). A body that is not
JSON, or not such a document, gets 400 and is counted in "bad".
GET /interim?on=1 (or 0): each POST's answer comes after a 100 Continue and a 103 Early
Hints, which an HTTP/1.1 client must skip (RFC 9110 15.2), from now on (or no longer).
GET /count: {"spans", "server", "client", "exports", "bad"}: spans received in all, by kind
(2 server, 3 client), export requests, and rejected ones.
GET /spans: every span received, in order, as a JSON list; each is the span as sent, with
"resource" (its resource's attributes as a {key: value} map) and "attrs" (the span's
attributes likewise) added. GET /spans?trace=ID: only the spans of that trace.
Ready once it answers GET /count.
"""
import http.server
import json
import socketserver
import sys
import threading
import urllib.parse

port = int(sys.argv[1])
spans = []
counts = {"spans": 0, "server": 0, "client": 0, "exports": 0, "bad": 0}
lock = threading.Lock()
interim = {"on": False}


def value_of(v):
    """An OTLP AnyValue as a python value."""
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def attr_map(attrs):
    return {a["key"]: value_of(a["value"]) for a in attrs}


def flatten(doc):
    """The spans of an OTLP document, each with its resource and attributes as maps."""
    out = []
    for rs in doc["resourceSpans"]:
        res = attr_map(rs.get("resource", {}).get("attributes", []))
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "name", "kind", "startTimeUnixNano",
                          "endTimeUnixNano"):
                    if k not in s:
                        raise ValueError("span without " + k)
                s = dict(s)
                s["resource"] = res
                s["attrs"] = attr_map(s.get("attributes", []))
                out.append(s)
    return out


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        try:
            if self.headers.get("Content-Type") != "application/json":
                raise ValueError("content type")
            got = flatten(json.loads(body.decode("utf-8")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            with lock:
                counts["bad"] += 1
            self.reply(400, json.dumps({"error": str(e)}).encode())
            return
        if interim["on"]:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n"
                             b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
        with lock:
            spans.extend(got)
            counts["exports"] += 1
            counts["spans"] += len(got)
            counts["server"] += sum(1 for s in got if s["kind"] == 2)
            counts["client"] += sum(1 for s in got if s["kind"] == 3)
        self.reply(200, b"{}")

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        with lock:
            if u.path == "/interim":
                interim["on"] = q.get("on") == ["1"]
                body = json.dumps(interim)
            elif u.path == "/count":
                body = json.dumps(counts)
            elif u.path == "/spans":
                body = json.dumps([s for s in spans
                                   if "trace" not in q or s["traceId"] == q["trace"][0]])
            else:
                body = None
        if body is None:
            self.reply(404, b"not found\n", "text/plain")
        else:
            self.reply(200, body.encode() + b"\n")

    def log_message(self, *a):
        pass


class TCP(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


TCP(("127.0.0.1", port), H).serve_forever()
