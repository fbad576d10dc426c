#!/usr/bin/env python3
"""A deliberately slow HTTP/1.1 client: small receive buffer, bounded read rate.

usage: slowget.py PORT PATH RATE_BYTES_PER_S [STARTED_FILE]
Prints "STATUS BODY_BYTES" when the server closes or the body is complete, or
"error BODY_BYTES" when the connection is cut before the announced Content-Length.
STARTED_FILE, if given, is created once the response head has arrived, so that a test
can wait for the request to be in flight instead of sleeping.
"""
import socket
import sys
import time

port, path, rate = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
started = sys.argv[4] if len(sys.argv) > 4 else None
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
s.settimeout(60)
s.connect(("127.0.0.1", port))
s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        print("error 0")
        sys.exit(1)
    buf += chunk
head, body = buf.split(b"\r\n\r\n", 1)
if started:
    open(started, "w").close()
status = head.split(b" ")[1].decode()
length = None
for line in head.split(b"\r\n")[1:]:
    k, _, v = line.partition(b":")
    if k.strip().lower() == b"content-length":
        length = int(v)
got = len(body)
start = time.monotonic()
while length is None or got < length:
    try:
        chunk = s.recv(16384)
    except (ConnectionResetError, socket.timeout):
        break
    if not chunk:
        break
    got += len(chunk)
    ahead = got / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(f"{status if length is None or got == length else 'error'} {got}")
