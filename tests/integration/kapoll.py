#!/usr/bin/env python3
"""A load balancer's health checker on one kept-alive HTTP/1.1 connection.

usage: kapoll.py PORT OUT PATH [SWITCH_FILE SWITCH_PATH]
GETs PATH every 50 ms on a single connection and appends one line per response to OUT:
"STATUS PATH CONNECTION" (the Connection header's value, "-" when absent). Once
SWITCH_FILE exists it asks for SWITCH_PATH instead. It ends with a line "closed" when the
server closes the connection (or answers "Connection: close"), or "timeout" after 60 s.
"""
import os
import socket
import sys
import time

port, out, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
switch_file = sys.argv[4] if len(sys.argv) > 5 else None
switch_path = sys.argv[5] if len(sys.argv) > 5 else None


def note(line):
    with open(out, "a") as f:
        f.write(line + "\n")


def response(s, buf):
    """One response from s (buf: bytes already read); (status, connection, rest) or None."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = head.split(b" ")[1].decode()
    length, conn = 0, "-"
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"connection":
            conn = v.strip().decode().lower()
    while len(rest) < length:
        chunk = s.recv(4096)
        if not chunk:
            return None
        rest += chunk
    return status, conn, rest[length:]


s = socket.create_connection(("127.0.0.1", port), timeout=10)
deadline = time.monotonic() + 60
buf = b""
while time.monotonic() < deadline:
    if switch_file and os.path.exists(switch_file):
        path = switch_path
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        r = response(s, buf)
    except OSError:
        r = None
    if r is None:
        note("closed")
        sys.exit(0)
    status, conn, buf = r
    note(f"{status} {path} {conn}")
    if conn == "close":
        note("closed")
        sys.exit(0)
    time.sleep(0.05)
note("timeout")
