#!/usr/bin/env python3
"""percore under a stand-in for systemd: READY/RELOADING/STOPPING/STATUS in order and from
the master, `percore -s reload` that tells the truth, the fd store across restarts, socket
activation by name, and the watchdog."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd import (PERCORE, Manager, eq, finish, free_port, http_get, listen_socket, ok,
                skip_all, wait_until)

for tool in ("curl", "wrk", "ss"):
    if subprocess.run(["which", tool], capture_output=True).returncode != 0:
        skip_all(f"{tool} not installed")

mgr = Manager()
conf = os.path.join(mgr.dir, "percore.conf")
P = free_port()


def write_conf(body, port=P, extra="", head="workers 2;\nshutdown_timeout 5s;\n"):
    with open(conf, "w") as f:
        f.write(head + extra +
                f"service hello {{\n    listen 127.0.0.1:{port};\n"
                f"    route / {{ respond 200 \"{body}\"; }}\n}}\n")


def ctl(cmd):
    return subprocess.run([PERCORE, "-c", conf, "-s", cmd], capture_output=True, text=True,
                          timeout=60)


def fields(text):
    return dict(l.split("=", 1) for l in text.split("\n") if "=" in l)


# ---- notify: READY, STATUS, RELOADING, STOPPING ----
write_conf("v1")
pid = mgr.start(conf)
ok(mgr.wait_says("READY=1"), "READY=1 once the workers accept")
ready = mgr.says("READY=1")[0]
eq(ready[0], pid, "READY=1 comes from the master (NotifyAccess=main)")
status_line = re.search(r"STATUS=generation (\d+): 2/2 workers up, \d+ req/s, \d+ connections",
                        ready[1])
ok(status_line is not None, "READY carries a STATUS line", ready[1])
# The generation the master says it serves; a reload makes the next one.
gen = int(status_line.group(1)) if status_line else -1
eq(http_get(P), "v1", "serving once READY")
m0 = mgr.mark()
ok(mgr.wait_says(f"STATUS=generation {gen}", since=m0, timeout=5),
   "STATUS refreshed periodically")
st = ctl("status")
ok(st.returncode == 0 and f"generation {gen}: 2/2 workers up" in st.stdout,
   "percore -s status prints the status line", st.stdout + st.stderr)
with mgr.lock:
    stored = sorted(mgr.store)
eq(stored, [f"L.127.0.0.1_{P}.0", f"L.127.0.0.1_{P}.1"],
   "both reuseport sockets are in the fd store")

# A good reload through the control socket.
write_conf("v2")
m0 = mgr.mark()
r = ctl("reload")
ok(r.returncode == 0 and f"reload done: generation {gen + 1} serving with 2 workers" in r.stdout,
   "percore -s reload exits 0 once the new config serves", r.stdout + r.stderr)
eq(http_get(P), "v2", "the new config serves right after the command returns")
rel = mgr.says("RELOADING=1", since=m0)
ok(len(rel) == 1 and re.fullmatch(r"\d+", fields(rel[0][1]).get("MONOTONIC_USEC", "")),
   "RELOADING=1 with MONOTONIC_USEC", rel)
msgs = [t for _, t in mgr.messages[m0:] if "RELOADING=1" in t or "READY=1" in t]
ok(len(msgs) == 2 and "RELOADING=1" in msgs[0] and "READY=1" in msgs[1],
   "READY=1 follows RELOADING=1", msgs)
ok("last reload" in msgs[-1] and "ok" in msgs[-1], "STATUS reports the reload", msgs[-1])

# A bad reload: the command fails with the error, the old config keeps serving.
write_conf("v3")
text = open(conf).read().replace("respond 200", "respnd 200")
open(conf, "w").write(text)
m0 = mgr.mark()
r = ctl("reload")
eq(r.returncode, 1, "percore -s reload exits 1 on a bad config")
ok(f"{conf}:5:15: unknown directive 'respnd'; did you mean 'respond'?" in r.stderr,
   "the reload command prints the error with file:line:col", r.stderr)
ok(f"generation {gen + 1} keeps serving" in r.stderr, "and says the old generation keeps serving",
   r.stderr)
eq(http_get(P), "v2", "old config still serves after the failed reload")
msgs = [t for _, t in mgr.messages[m0:] if "RELOADING=1" in t or "READY=1" in t]
ok(len(msgs) == 2 and "READY=1" in msgs[1] and
   f"failed, old config kept: {conf}:5:15: unknown directive 'respnd'" in msgs[1],
   "READY=1 after a failed reload, with the error in STATUS", msgs)

# SIGHUP also goes through RELOADING/READY.
write_conf("v4")
m0 = mgr.mark()
os.kill(pid, signal.SIGHUP)
ok(mgr.wait_says("READY=1", since=m0) and mgr.says("RELOADING=1", since=m0),
   "SIGHUP: RELOADING=1 then READY=1")
wait_until(lambda: http_get(P) == "v4")
eq(http_get(P), "v4", "SIGHUP reload serves the new config")
senders = {p for p, _ in mgr.messages}
eq(senders, {pid}, "every notification came from the master")

# ---- fd store: restart under load refuses nothing ----
wrk = subprocess.Popen(["wrk", "-t2", "-c20", "-d4s", f"http://127.0.0.1:{P}/"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def established(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return len(out.splitlines())


wait_until(lambda: established(P) >= 20)
m0 = mgr.mark()
status = mgr.stop()
ok(mgr.wait_says("STOPPING=1", since=m0, timeout=3), "STOPPING=1 on the way out")
eq(status, 0, "exit status 0 after SIGTERM")
pid = mgr.start(conf)
ok(mgr.wait_says("READY=1", since=m0), "restarted with the stored sockets")
out = wrk.communicate()[0]
reqs = re.search(r"(\d+) requests in", out)
ok(reqs and int(reqs.group(1)) > 1000 and "Socket errors" not in out and "Non-2xx" not in out,
   "restart under load: zero failed requests", out)
eq(subprocess.run(["ss", "-Htln", f"sport = :{P}"], capture_output=True,
                  text=True).stdout.count("LISTEN"), 2, "still exactly 2 listening sockets")

# A config on another port: the stale stored sockets are closed and removed.
Q = free_port()
write_conf("q", port=Q)
mgr.stop()
pid = mgr.start(conf)
mgr.wait_says("READY=1", since=mgr.mark() - 1)
wait_until(lambda: http_get(Q) == "q")
with mgr.lock:
    stored = sorted(mgr.store)
eq(stored, [f"L.127.0.0.1_{Q}.0", f"L.127.0.0.1_{Q}.1"],
   "stale sockets removed from the fd store (FDSTOREREMOVE)")
eq(subprocess.run(["ss", "-Htln", f"sport = :{P}"], capture_output=True, text=True).stdout,
   "", "the old port is closed")
mgr.stop()
with mgr.lock:
    for fd in mgr.store.values():
        os.close(fd)
    mgr.store.clear()

# ---- socket activation ----
A1, A2, H = free_port(), free_port(), free_port()
s1, s2 = listen_socket(A1), listen_socket(A2)
with open(conf, "w") as f:
    f.write("workers 2;\n"
            "service api {\n    route / { respond 200 \"api\"; }\n}\n"
            f"service hello {{\n    listen 127.0.0.1:{H};\n"
            "    route / { respond 200 \"hello\"; }\n}\n")
m0 = mgr.mark()
pid = mgr.start(conf, sockets=[(s1, "api"), (s2, "api")], use_store=False)
ok(mgr.wait_says("READY=1", since=m0), "READY with activated sockets")
eq((http_get(A1), http_get(A2), http_get(H)), ("api", "api", "hello"),
   "two ListenStream= sockets named 'api' serve service api; hello keeps its own listen")
ok("for service 'api' (shared by all workers)" in mgr.logtext(),
   "the log says activated sockets are shared by the workers")
mgr.stop()

m0 = mgr.mark()
s3 = listen_socket(free_port())
pid = mgr.start(conf, sockets=[(s1, "api"), (s3, "nosuch")], use_store=False)
wait_until(mgr.exited)
ok(os.WIFEXITED(mgr.status) and os.WEXITSTATUS(mgr.status) == 1 and
   "systemd passed a socket named 'nosuch' (FileDescriptorName=) but no service has that "
   "name" in mgr.logtext(), "a passed socket no service claims is an error",
   mgr.logtext()[-500:])
mgr.pid = None
pid = mgr.start(conf, sockets=[], use_store=False)
wait_until(mgr.exited)
ok(os.WEXITSTATUS(mgr.status) == 1 and
   "service 'api' has no 'listen' and systemd passed no socket named 'api'" in mgr.logtext(),
   "a service whose socket is missing is an error")
mgr.pid = None
r = subprocess.run([PERCORE, "-t", "-c", conf], capture_output=True, text=True)
eq(r.returncode, 0, "percore -t (ExecStartPre, no sockets) accepts a service without listen")
for s in (s1, s2, s3):
    s.close()

# ---- watchdog ----
write_conf("wd", port=P, extra="worker_watchdog 4s;\n")
m0 = mgr.mark()
pid = mgr.start(conf, watchdog_usec=1000000, use_store=False)
mgr.wait_says("READY=1", since=m0)
wait_until(lambda: len(mgr.says("WATCHDOG=1", since=m0)) >= 4)
pings = mgr.says("WATCHDOG=1", since=m0)
times = mgr.times_of("WATCHDOG=1", since=m0)
gap = max((b - a for a, b in zip(times, times[1:])), default=99)
ok(len(pings) >= 4 and all(p == pid for p, _ in pings) and gap < 0.9,
   f"WATCHDOG=1 every half WatchdogSec from the master (largest gap {gap:.2f} s)")
victim = mgr.workers()[0]
os.kill(victim, signal.SIGSTOP)
t_stop = time.monotonic()
ok(wait_until(lambda: victim not in mgr.workers() and len(mgr.workers()) == 2, timeout=10),
   "a worker whose loop is stuck is killed and replaced")
t_gone = time.monotonic() - t_stop
ok(3.5 <= t_gone <= 7, f"after worker_watchdog (4 s): {t_gone:.1f} s")
log = mgr.logtext()
ok(re.search(rf"worker \d \(pid {victim}\) is stuck: its event loop has not turned for \d+ ms "
             r"\(worker_watchdog 4000 ms\), killing it", log) is not None,
   "the log says which worker and why", log[-600:])
m1 = mgr.mark()
ok(wait_until(lambda: mgr.says("WATCHDOG=1", since=m1), timeout=3),
   "pings resume once the replacement runs")
stamps = [t for t in mgr.times_of("WATCHDOG=1", since=m0) if t >= t_stop]
gaps = [b - a for a, b in zip([t_stop] + stamps, stamps)]
ok(gaps and max(gaps) >= 1.0,
   f"no WATCHDOG=1 while a worker's heartbeat is stale (longest gap {max(gaps or [0]):.1f} s)",
   [round(t - t_stop, 2) for t in stamps])
eq(http_get(P), "wd", "serving after the hang")
mgr.stop()

mgr.close()
finish()
