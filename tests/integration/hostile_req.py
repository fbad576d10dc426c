#!/usr/bin/env python3
"""Send a request with whatever bytes a test wants, and print the status it gets.

usage: hostile_req.py h1 PORT REQUEST
       hostile_req.py h2 PORT PATH [NAME VALUE]...

Arguments are written with Python's backslash escapes (\\xff, \\r\\n, \\x00) and sent as
those bytes. h1: REQUEST goes as is over a plain connection; prints the status of the
answer, or "closed". h2: one GET over TLS (ALPN h2, any certificate) with :path PATH,
:authority h2.test and the given headers, none of them checked or normalised by the
client; prints the response's status, "reset" or "closed".
"""
import socket
import ssl
import sys


def raw(s):
    return s.encode("latin-1").decode("unicode_escape").encode("latin-1")


mode, port = sys.argv[1], int(sys.argv[2])
if mode == "h1":
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(raw(sys.argv[3]))
    head = b""
    while b"\r\n" not in head:
        data = s.recv(4096)
        if not data:
            break
        head += data
    print(head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "closed")
    sys.exit(0)

import h2.config  # noqa: E402 (only HTTP/2 needs python3-h2)
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                    server_hostname="localhost")
conn = h2.connection.H2Connection(h2.config.H2Configuration(
    client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
    validate_inbound_headers=False))
conn.initiate_connection()
headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"h2.test"),
           (b":path", raw(sys.argv[3]))]
args = sys.argv[4:]
headers += [(raw(args[i]), raw(args[i + 1])) for i in range(0, len(args) - 1, 2)]
conn.send_headers(1, headers, end_stream=True)
s.sendall(conn.data_to_send())
status = None
while True:
    data = s.recv(65536)
    if not data:
        print("closed")
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            status = dict(ev.headers)[b":status"].decode()
        if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            print(status or "reset")
            sys.exit(0)
    s.sendall(conn.data_to_send())
