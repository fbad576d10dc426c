#!/usr/bin/env python3
"""Workers sharing one socket passed by systemd, against one SO_REUSEPORT socket per
worker (what percore opens itself): requests/s and how wrk's keep-alive connections
spread over the workers. Same run, same machine.

    PERCORE=path/to/percore bench/activation.py [-d SECONDS] [-r ROUNDS] [-w WORKERS]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from sd import Manager, free_port, listen_socket, wait_until, http_get  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("-d", type=int, default=5)
ap.add_argument("-r", type=int, default=3)
ap.add_argument("-w", type=int, default=2)
ap.add_argument("-c", type=int, default=100)
args = ap.parse_args()
os.environ.setdefault("PERCORE", os.path.join(os.path.dirname(__file__), "..", "_build",
                                              "release", "percore"))

mgr = Manager()
conf = os.path.join(mgr.dir, "percore.conf")


def run(mode):
    port = free_port()
    sock = None
    with open(conf, "w") as f:
        f.write(f"workers {args.w};\nservice hello {{\n")
        if mode == "reuseport":
            f.write(f"    listen 127.0.0.1:{port};\n")
        f.write('    route / { respond 200 "Hello, world!\\n"; }\n}\n')
    if mode == "shared":
        sock = listen_socket(port)
        mgr.start(conf, sockets=[(sock, "hello")], use_store=False)
    else:
        mgr.start(conf, use_store=False)
    wait_until(lambda: http_get(port) is not None)
    wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.c}", f"-d{args.d}s",
                            f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, text=True)
    time.sleep(args.d / 2)
    ss = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                        capture_output=True, text=True).stdout
    out = wrk.communicate()[0]
    mgr.stop()
    with mgr.lock:
        for fd in mgr.store.values():
            os.close(fd)
        mgr.store.clear()
    if sock:
        sock.close()
    per = {}
    for pid in re.findall(r"pid=(\d+)", ss):
        per[pid] = per.get(pid, 0) + 1
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    split = sorted(per.values(), reverse=True) + [0] * (args.w - len(per))
    return rps, split


results = {"reuseport": [], "shared": []}
for _ in range(args.r):
    for mode in ("reuseport", "shared"):
        results[mode].append(run(mode))
print(f"{args.w} workers, wrk -c{args.c} -d{args.d}s, {args.r} rounds")
for mode, rs in results.items():
    med = statistics.median(r for r, _ in rs)
    splits = " ".join("/".join(map(str, s)) for _, s in rs)
    print(f"{mode:10s} median {med:10.0f} req/s   connections per worker: {splits}")
a = statistics.median(r for r, _ in results["shared"])
b = statistics.median(r for r, _ in results["reuseport"])
print(f"shared/reuseport req/s ratio: {a / b:.2f}")
mgr.close()
