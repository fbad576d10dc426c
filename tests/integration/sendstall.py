#!/usr/bin/env python3
"""Clients that stop taking a response, or take it slowly, for send_timeout tests.

usage: sendstall.py MODE PORT PATH [ARGS...]
  stall PORT PATH plain|tls BOUND
      HTTP/1.1 GET (over TLS without ALPN if asked), then never read. Prints
      "closed MS LPORT" once the server has closed or reset the connection (its TCP state
      is no longer ESTABLISHED), or "open MS LPORT" when BOUND seconds have passed.
  hold PORT PATH plain|tls
      The same request; prints "LPORT" at once, then holds the connection (until killed).
  h2 PORT PATH zero|noupdate|ping BOUND
      HTTP/2 over TLS: a GET whose stream window the client never opens (zero: a
      SETTINGS_INITIAL_WINDOW_SIZE of 0; noupdate: the default 64 KiB and no
      WINDOW_UPDATE; ping: zero, and a PING every 500 ms, which the server answers).
      Reads and answers every frame. Prints "closed MS STATUS DATA" or
      "open MS STATUS DATA" (STATUS of the response headers, DATA body bytes received).
  h2hold PORT PATH
      HTTP/2 over TLS: the zero-window GET; prints "STATUS" once the response headers
      came, then holds the connection, answering frames (until killed).
  h2slow PORT PATH RATE SECONDS [BEHIND]
      HTTP/2 over TLS: a GET whose stream window the client opens at RATE bytes/s (it
      acknowledges data no faster) for SECONDS. Prints "open DATA" or "closed DATA MS".
      With OTHER, a GET of that path too, on a second stream whose window the client
      never opens; "open" is then followed by the bytes that stream got.
  slow PORT PATH plain|tls RATE SECONDS
      HTTP/1.1 GET read at RATE bytes/s through a small receive buffer for SECONDS.
      Prints "open BYTES" if the connection was still open and the body still coming,
      or "closed BYTES MS" if it ended first.
"""
import socket
import ssl
import sys
import time

TCP_ESTABLISHED = 1


def connect(port, tls, alpn=None, rcvbuf=None):
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    if tls != "tls":
        return raw
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols([alpn])
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == alpn, s.selected_alpn_protocol()
    return s  # the TCP socket's fd now belongs to s


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def established(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_ESTABLISHED


def stall(port, path, tls, bound):
    s = connect(port, tls)
    s.sendall(request(path))
    t0 = time.monotonic()
    state = "open"
    while time.monotonic() - t0 < float(bound):
        if not established(s):
            state = "closed"
            break
        time.sleep(0.05)
    print(state, int((time.monotonic() - t0) * 1000), s.getsockname()[1], flush=True)


def hold(port, path, tls):
    s = connect(port, tls)
    s.sendall(request(path))
    print(s.getsockname()[1], flush=True)
    while True:
        time.sleep(1)


def h2_get(port, path, mode):
    import h2.config
    import h2.connection
    import h2.settings

    s = connect(port, "tls", "h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if mode in ("zero", "ping"):
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "https"),
                            (":authority", "localhost")], end_stream=True)
    s.sendall(conn.data_to_send())
    return s, conn


def h2_stall(port, path, mode, bound):
    import h2.events

    s, conn = h2_get(port, path, mode)
    t0 = time.monotonic()
    status, data, state = "-", 0, "open"
    pinged = t0
    s.settimeout(0.1)
    while time.monotonic() - t0 < float(bound):
        if mode == "ping" and time.monotonic() - pinged >= 0.5:
            pinged = time.monotonic()
            conn.ping(b"percore!")
            try:
                s.sendall(conn.data_to_send())
            except OSError:
                state = "closed"
                break
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            state = "closed"
            break
        if not chunk:
            state = "closed"
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status", b"-").decode()
            elif isinstance(ev, h2.events.DataReceived):
                data += len(ev.data)  # never acknowledged: the window stays shut
        out = conn.data_to_send()  # SETTINGS and PING acknowledgements only
        if out:
            try:
                s.sendall(out)
            except OSError:
                state = "closed"
                break
    print(state, int((time.monotonic() - t0) * 1000), status, data, flush=True)


def h2hold(port, path):
    import h2.events

    s, conn = h2_get(port, path, "zero")
    s.settimeout(None)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                print(dict(ev.headers).get(b":status", b"-").decode(), flush=True)
        out = conn.data_to_send()
        if out:
            s.sendall(out)


def h2slow(port, path, rate, seconds, other_path=None):
    import h2.config
    import h2.connection
    import h2.events

    rate, seconds = int(rate), float(seconds)
    s = connect(port, "tls", "h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "https"),
                            (":authority", "localhost")], end_stream=True)
    if other_path:
        conn.send_headers(sid + 2, [(":method", "GET"), (":path", other_path),
                                    (":scheme", "https"), (":authority", "localhost")],
                          end_stream=True)
    s.sendall(conn.data_to_send())
    t0 = time.monotonic()
    got, acked, other = 0, 0, 0
    s.settimeout(0.1)
    while time.monotonic() - t0 < seconds:
        try:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionResetError
        except socket.timeout:
            chunk = b""
        except (ConnectionResetError, ssl.SSLError, OSError):
            print("closed", got, int((time.monotonic() - t0) * 1000), flush=True)
            return
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                got += ev.flow_controlled_length
            elif isinstance(ev, h2.events.DataReceived):
                other += ev.flow_controlled_length
        # Open the window no faster than RATE: acknowledge what arrived, paced.
        allowed = int(rate * (time.monotonic() - t0)) - acked
        n = min(got - acked, allowed)
        if n > 0:
            conn.acknowledge_received_data(n, sid)
            acked += n
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    print("open" if established(s) else "closed", got, *([other] if other_path else []),
          flush=True)


def slow(port, path, tls, rate, seconds):
    rate, seconds = int(rate), float(seconds)
    s = connect(port, tls, rcvbuf=16384)
    s.sendall(request(path))
    t0 = time.monotonic()
    got = 0
    s.settimeout(5)
    while time.monotonic() - t0 < seconds:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            print("closed", got, int((time.monotonic() - t0) * 1000), flush=True)
            return
        got += len(chunk)
        ahead = got / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    print("open" if established(s) else "closed", got, flush=True)


modes = {"stall": stall, "hold": hold, "h2": h2_stall, "h2hold": h2hold, "h2slow": h2slow, "slow": slow}
modes[sys.argv[1]](int(sys.argv[2]), *sys.argv[3:])
