#!/usr/bin/env python3
"""Peers of percore's control socket for 200-control.sh. Every mode ends by itself within
60 s. SOCK is the control socket's path (may be empty: then only the abstract name that
percore once used, "\\0percore/<fnv1a-64 of the config's real path>", is tried).

  squat CONF SOCK OUT      bind SOCK and the abstract name (what it can), answer every
                           client like a master whose reload worked; OUT lists what it bound
  fake CONF SOCK OUT TEXT  as squat, and also write this process's pid into the pidfile
                           beside SOCK; answer TEXT (\\n escapes) and close
  stale CONF SOCK          leave a socket file at SOCK that nobody listens on
  silent CONF SOCK OUT     connect and send nothing; OUT gets "connected", then
                           "closed: <what the master sent>" when the master drops it
  send CONF SOCK PART...   send each PART 0.3 s apart (\\r and \\n escapes), print the answer
  reloads CONF SOCK OUT N  connect N times and send "reload" on each; OUT gets "sent N",
                           then print the last line of each answer
"""
import os
import socket
import sys
import time

mode, conf, sock = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]


def abstract():
    h = 0xcbf29ce484222325
    for b in os.path.realpath(conf).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "\0percore/%016x" % h


def unescape(s):
    return s.replace("\\r", "\r").replace("\\n", "\n").encode()


def listeners():
    bound = []
    for addr in ([sock] if sock else []) + [abstract()]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not addr.startswith("\0"):
                os.makedirs(os.path.dirname(addr), 0o700, exist_ok=True)
            s.bind(addr)
            s.listen(16)
            bound.append((s, "abstract" if addr.startswith("\0") else "path"))
        except OSError as e:
            print(f"cannot bind {addr!r}: {e}", file=sys.stderr)
            s.close()
    return bound


def serve(bound, out, answer):
    with open(out + ".tmp", "w") as f:
        f.write(" ".join(name for _, name in bound) + "\n")
    os.rename(out + ".tmp", out)
    import select
    end = time.monotonic() + 60
    while time.monotonic() < end:
        r, _, _ = select.select([s for s, _ in bound], [], [], 1)
        for s in r:
            c, _ = s.accept()
            c.settimeout(1)
            try:
                c.recv(64)
                c.sendall(answer)
            except OSError:
                pass
            c.close()


def connect():
    for addr in ([sock] if sock else []) + [abstract()]:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(addr)
            return c
        except OSError:
            c.close()
    sys.exit("cannot connect")


if mode == "squat":
    serve(listeners(), args[0], b"reload done: generation 99 serving with 1 worker\nok\n")
elif mode == "fake":
    with open(sock[:-len(".sock")] + ".pid", "w") as f:
        f.write(f"{os.getpid()}\n")
    serve(listeners(), args[0], unescape(args[1]))
elif mode == "stale":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.makedirs(os.path.dirname(sock), 0o700, exist_ok=True)
    s.bind(sock)
    s.close()
elif mode == "silent":
    import select
    conns = [connect() for _ in range(int(args[1]) if len(args) > 1 else 1)]
    out = args[0]
    with open(out, "w") as f:
        f.write(f"connected {len(conns)}\n")
    got = {c: b"" for c in conns}
    end = time.monotonic() + 60
    while conns and time.monotonic() < end:
        r, _, _ = select.select(conns, [], [], 1)
        for c in r:
            try:
                b = c.recv(4096)
            except OSError:
                b = b""
            got[c] += b
            if not b:
                conns.remove(c)
    with open(out, "a") as f:
        f.write("closed: " + next(iter(got.values())).decode(errors="replace").strip() + "\n")
elif mode == "send":
    c = connect()
    for i, part in enumerate(args):
        if i:
            time.sleep(0.3)
        c.sendall(unescape(part))
    c.settimeout(30)
    got = b""
    try:
        while True:
            b = c.recv(4096)
            if not b:
                break
            got += b
    except OSError:
        pass
    sys.stdout.write(got.decode(errors="replace"))
elif mode == "reloads":
    import select
    conns = []
    for _ in range(int(args[1])):
        c = connect()
        c.sendall(b"reload\n")
        conns.append(c)
    with open(args[0] + ".tmp", "w") as f:
        f.write(f"sent {len(conns)}\n")
    os.rename(args[0] + ".tmp", args[0])
    got = {c: b"" for c in conns}
    open_ = list(conns)
    end = time.monotonic() + 50
    while open_ and time.monotonic() < end:
        r, _, _ = select.select(open_, [], [], 1)
        for c in r:
            try:
                b = c.recv(4096)
            except OSError:
                b = b""
            got[c] += b
            if not b:
                open_.remove(c)
    for c in conns:
        lines = got[c].decode(errors="replace").strip().splitlines()
        print(lines[-1] if lines else "(no answer)")
