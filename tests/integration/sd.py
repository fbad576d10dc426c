"""A stand-in for systemd's service manager, for integration tests: a notify socket
(with sender credentials and the fd store), socket activation (named sockets moved to
fd 3.. with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES), the watchdog variables, and TAP output.
"""
import array
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PERCORE = os.environ.get("PERCORE", os.path.abspath("percore"))
_num = 0
_failed = 0


def ok(cond, name, detail=""):
    global _num, _failed
    _num += 1
    if cond:
        print(f"ok {_num} - {name}", flush=True)
    else:
        _failed += 1
        print(f"not ok {_num} - {name}", flush=True)
        for line in str(detail).splitlines():
            print(f"# {line}", flush=True)
    return cond


def eq(got, want, name):
    return ok(got == want, name, f"got:    {got!r}\nwanted: {want!r}")


def finish():
    print(f"1..{_num}", flush=True)
    sys.exit(1 if _failed else 0)


def skip_all(why):
    print(f"1..0 # SKIP {why}")
    sys.exit(0)


def free_port():
    """A free loopback port below the ephemeral range (no client can be using it)."""
    import random
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError):
        low = 32768
    low = low if low > 11000 else 32768
    for _ in range(200):
        port = random.randrange(10000, low)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        out = subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True)
        if not out.stdout.strip():
            return port
    raise RuntimeError("no free port")


def listen_socket(port, reuseport=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def http_get(port, path="/", timeout=3):
    r = subprocess.run(["curl", "-s", "-m", str(timeout), f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


class Manager:
    """Runs one percore at a time the way systemd would, and records what it says."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="percore-sd.")
        self.notify_path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.notify_path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (pid, text)
        self.times = []  # monotonic arrival time of each message
        self.store = {}  # FDNAME -> fd, as the fd store keeps them
        self.lock = threading.Lock()
        self.pid = None
        self.log = os.path.join(self.dir, "percore.log")
        self._stop = False
        self.thread = threading.Thread(target=self._recv_loop, daemon=True)
        self.thread.start()

    def _recv_loop(self):
        fds_size = array.array("i").itemsize * 16
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(fds_size) +
                                               socket.CMSG_SPACE(12))
            pid, fds = None, []
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", data[:12])[0]
                elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[:len(data) - len(data) % a.itemsize])
                    fds.extend(a)
            text = msg.decode(errors="replace")
            fields = dict(l.split("=", 1) for l in text.split("\n") if "=" in l)
            with self.lock:
                self.messages.append((pid, text))
                self.times.append(time.monotonic())
                if fields.get("FDSTORE") == "1" and fds:
                    name = fields.get("FDNAME", "stored")
                    old = self.store.pop(name, None)
                    if old is not None:
                        os.close(old)
                    self.store[name] = fds[0]
                    fds = fds[1:]
                if fields.get("FDSTOREREMOVE") == "1":
                    old = self.store.pop(fields.get("FDNAME", ""), None)
                    if old is not None:
                        os.close(old)
            for fd in fds:
                os.close(fd)

    def start(self, conf, sockets=(), watchdog_usec=None, args=(), use_store=True):
        """sockets: [(socket-or-fd, name)]; the fd store's sockets follow them."""
        passed = [(s.fileno() if hasattr(s, "fileno") else s, n) for s, n in sockets]
        if use_store:
            with self.lock:
                passed += [(fd, n) for n, fd in sorted(self.store.items())]
        logf = open(self.log, "ab")
        pid = os.fork()
        if pid == 0:
            try:
                import fcntl
                os.dup2(logf.fileno(), 1)
                os.dup2(logf.fileno(), 2)
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 512) for fd, _ in passed]
                for i, fd in enumerate(high):
                    os.dup2(fd, 3 + i, inheritable=True)
                os.closerange(3 + len(high), 4096)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                       "NOTIFY_SOCKET": self.notify_path}
                if passed:
                    env.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(passed)),
                               LISTEN_FDNAMES=":".join(n for _, n in passed))
                if watchdog_usec:
                    env.update(WATCHDOG_USEC=str(watchdog_usec), WATCHDOG_PID=str(os.getpid()))
                os.execve(PERCORE, [PERCORE, "-f", "-c", conf, *args], env)
            finally:
                os._exit(127)
        logf.close()
        self.pid = pid
        return pid

    def says(self, prefix, since=0):
        with self.lock:
            return [(p, t) for p, t in self.messages[since:] if t.startswith(prefix) or
                    ("\n" + prefix) in t]

    def times_of(self, prefix, since=0):
        with self.lock:
            return [t for (p, m), t in zip(self.messages[since:], self.times[since:])
                    if m.startswith(prefix)]

    def mark(self):
        with self.lock:
            return len(self.messages)

    def wait_says(self, prefix, since=0, timeout=10):
        return wait_until(lambda: self.says(prefix, since), timeout)

    def exited(self):
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False
        self.status = status
        return True

    def stop(self, timeout=15):
        if self.pid is None:
            return None
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not wait_until(self.exited, timeout):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -9
        self.pid = None
        return self.status

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return sorted(int(p) for p in out.stdout.split())

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def close(self):
        if self.pid is not None:
            self.stop()
        self._stop = True
        self.thread.join()
        for fd in self.store.values():
            os.close(fd)
        self.store.clear()
