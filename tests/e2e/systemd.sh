#!/bin/bash
# End to end under a real systemd as PID 1: a Debian 12 tree booted with systemd-nspawn,
# percore installed into it, then what a sysadmin does with systemctl. TAP output.
#
#   tests/e2e/systemd.sh DEB_DIR      (holding percore_*.deb, from packaging/build-deb.sh)
#   tests/e2e/systemd.sh BUILD_DIR    (a build configured with --prefix=/usr --sysconfdir=/etc,
#                                      installed with make install)
#
# The debootstrapped tree is cached in $PERCORE_E2E_CACHE (default /var/cache/percore-e2e).
# PERCORE_E2E_STORM=N: how many restarts, then reloads, the storm under load makes (5).
set -u
BUILD=$(cd "${1:?usage: systemd.sh BUILD_DIR}" && pwd)
CACHE=${PERCORE_E2E_CACHE:-/var/cache/percore-e2e}
TREE=$CACHE/tree
N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
    N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"
    shift; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/# /'; done
}
check() { name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:    '$2'" "wanted: '$3'"; fi; }
skip_all() { echo "1..0 # SKIP $1"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
for t in systemd-nspawn debootstrap nsenter; do
    command -v "$t" >/dev/null || skip_all "$t not installed (systemd-container, debootstrap)"
done
[ -d /sys/fs/cgroup/unified ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
    skip_all "no cgroup hierarchy for nspawn"

RUNTIME_DEPS=systemd,systemd-sysv,dbus,curl,procps,iproute2,wrk,libh2o-evloop0.13,libssl3,libc-ares2,man-db
if [ ! -x "$TREE/usr/bin/wrk" ] || [ ! -x "$TREE/usr/bin/man" ] ||
    ! ls "$TREE"/usr/lib/*/libh2o-evloop.so.0.13 "$TREE"/usr/lib/*/libcares.so.2 >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # $(REPO_URI) is apt's format field, not a shell expansion
    MIRROR=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
             awk '$2=="bookworm"{print $1; exit}')
    rm -rf "$TREE"
    mkdir -p "$CACHE"
    if ! debootstrap --variant=minbase --include="$RUNTIME_DEPS" bookworm "$TREE" \
            "${MIRROR:-http://deb.debian.org/debian/}" >"$CACHE/debootstrap.log" 2>&1; then
        echo "Bail out! debootstrap failed: $(tail -n 3 "$CACHE/debootstrap.log")"
        exit 99
    fi
fi

WORK=$(mktemp -d /tmp/percore-e2e.XXXXXX)
INST=$WORK/inst
mkdir -p "$INST"
if ls "$BUILD"/percore_*.deb >/dev/null 2>&1; then
    MODE=deb
    cp "$BUILD"/percore_*.deb "$INST"/
else
    MODE='make'
    make -s -C "$BUILD" install DESTDIR="$INST" >"$WORK/install.log" 2>&1 ||
        { echo "Bail out! make install failed"; cat "$WORK/install.log"; exit 99; }
fi

CG=percore-e2e-$$
for h in systemd unified; do [ -d /sys/fs/cgroup/$h ] && mkdir -p /sys/fs/cgroup/$h/$CG; done
(
    for h in systemd unified; do
        [ -d /sys/fs/cgroup/$h/$CG ] && echo $BASHPID >/sys/fs/cgroup/$h/$CG/cgroup.procs
    done
    exec systemd-nspawn -D "$TREE" -b --register=no --keep-unit --private-network \
        --volatile=overlay --bind-ro="$INST":/inst --machine=percore-e2e-$$ \
        --console=read-only
) >"$WORK/console.log" 2>&1 &
NS=$!
# Everything the container ran is in our cgroup: kill what is left there, even when the
# boot or a check failed half way (a container's systemd must never outlive the test).
kill_cgroup() {
    if [ -f /sys/fs/cgroup/unified/$CG/cgroup.kill ]; then
        echo 1 >/sys/fs/cgroup/unified/$CG/cgroup.kill 2>/dev/null
    fi
    for _ in $(seq 1 50); do
        pids=$(find /sys/fs/cgroup/systemd/$CG /sys/fs/cgroup/unified/$CG -name cgroup.procs \
            -exec cat {} + 2>/dev/null | sort -u)
        [ -z "$pids" ] && return 0
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null
        sleep 0.1
    done
}
cleanup() {
    [ -n "${L:-}" ] && timeout 10 nsenter -t "$L" -a systemctl poweroff >/dev/null 2>&1
    for _ in $(seq 1 100); do kill -0 "$NS" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NS" 2>/dev/null
    wait "$NS" 2>/dev/null
    kill_cgroup
    for h in systemd unified; do
        [ -d /sys/fs/cgroup/$h/$CG ] && find /sys/fs/cgroup/$h/$CG -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# The container's PID 1: the child of nspawn that its own PID namespace numbers 1
# ("NSpid: <host pid> 1"). nspawn first forks a short-lived helper that is its only child
# for a few ms; that one lives in the host's namespace and is never the answer.
container_init() {
    for p in $(ps --ppid "$NS" -o pid=); do
        ns=$(awk '/^NSpid:/ {print NF, $NF}' "/proc/$p/status" 2>/dev/null)
        [ "$ns" = "3 1" ] && { echo "$p"; return 0; }
    done
    return 1
}
L=
for _ in $(seq 1 600); do
    L=$(container_init) && break
    kill -0 "$NS" 2>/dev/null || break
    sleep 0.05
done
[ -n "$L" ] || { echo "Bail out! nspawn did not start"; cat "$WORK/console.log"; exit 99; }
E() { nsenter -t "$L" -a "$@"; }
# sig SIGNAL PID: only ever a real process (never 0 or empty: that would be a group).
sig() {
    case $2 in
    '' | 0 | 1 | *[!0-9]*) echo "# refusing to signal pid '$2'"; return 1 ;;
    esac
    E kill -"$1" "$2"
}
# Booting takes about a second; allow much more on a loaded machine.
for _ in $(seq 1 600); do
    st=$(E systemctl is-system-running 2>/dev/null)
    case $st in running|degraded) break ;; esac
    sleep 0.1
done
case $st in
running | degraded) ok "container booted systemd ($st)" ;;
*) not_ok "container booted systemd" "state: $st" ;;
esac

CONF=/etc/percore/percore.conf
if [ "$MODE" = deb ]; then
    # The package creates the user, enables and starts the service.
    if E sh -c 'dpkg -i /inst/percore_*.deb' >"$WORK/dpkg.out" 2>&1; then
        ok "dpkg -i installs the package"
    else
        not_ok "dpkg -i installs the package" "$(cat "$WORK/dpkg.out")"
        echo "Bail out! nothing to test without the package"
        exit 99
    fi
    expect_eq "the package enabled the service" "$(E systemctl is-enabled percore)" "enabled"
    expect_eq "and started it" "$(E systemctl is-active percore)" "active"
    expect_eq "it serves the shipped config" "$(E curl -s -m 5 http://127.0.0.1:8080/)" \
        "Hello, world!"
    for f in /usr/sbin/percore /etc/percore/percore.conf /lib/systemd/system/percore.service \
        /lib/systemd/system/percore.socket /usr/lib/sysusers.d/percore.conf \
        /usr/lib/tmpfiles.d/percore.conf /etc/logrotate.d/percore \
        /usr/share/man/man8/percore.8.gz /usr/share/man/man5/percore.conf.5.gz \
        /usr/share/doc/percore/copyright; do
        check "installed: $f" E test -e "$f"
    done
    check "percore.conf is a conffile" sh -c \
        "nsenter -t $L -a dpkg-query -W -f='\${Conffiles}' percore | grep -q '/etc/percore/percore.conf'"
    check "man percore renders" sh -c "nsenter -t $L -a man -P cat percore 2>/dev/null | grep -q 'percore.conf'"
    check "man percore.conf renders" sh -c \
        "nsenter -t $L -a man -P cat percore.conf 2>/dev/null | grep -q 'shutdown_timeout'"
    E systemctl stop percore
else
    # tar keeps the tree's /lib -> usr/lib symlink (merged /usr) where cp would fail.
    E sh -c 'tar -C /inst -cf - . | tar -C / --keep-directory-symlink -xf - &&
        systemd-sysusers && systemd-tmpfiles --create && systemctl daemon-reload' >/dev/null
fi
check "percore user exists" E id percore

# Socket activation: the first connection to the socket starts the service.
E systemctl start percore.socket
expect_eq "percore.socket is listening" "$(E systemctl is-active percore.socket)" "active"
expect_eq "a connection to the socket starts percore and gets hello" \
    "$(E curl -s -m 10 http://127.0.0.1:8081/)" "Hello, world!"
expect_eq "percore.service is active" "$(E systemctl is-active percore)" "active"
expect_eq "its own listen address serves too" "$(E curl -s http://127.0.0.1:8080/)" "Hello, world!"
MAIN=$(E systemctl show -p MainPID --value percore)
expect_eq "runs as the percore user" "$(E ps -o user= -p "$MAIN" | tr -d ' ')" "percore"
STATUS=$(E systemctl status percore --no-pager 2>&1)
if printf '%s' "$STATUS" | grep -Eq 'Status: "generation 1: [0-9]+/[0-9]+ workers up, [0-9]+ req/s'; then
    ok "STATUS line shows in systemctl status"
else
    not_ok "STATUS line shows in systemctl status" "$STATUS"
fi

# A good reload, then a bad one that must fail and keep serving.
E sed -i 's/Hello, world!/Hello again!/' "$CONF"
E systemctl reload percore
expect_eq "systemctl reload with a good config exits 0" "$?" "0"
expect_eq "the new config serves" "$(E curl -s http://127.0.0.1:8080/)" "Hello again!"
E sh -c "echo 'wrokers 3;' >> $CONF"
E systemctl reload percore >"$WORK/reload.out" 2>&1
RC=$?
check "systemctl reload with a bad config fails (exit $RC)" [ "$RC" -ne 0 ]
JOURNAL=$(E journalctl -u percore --no-pager -o cat 2>&1)
if printf '%s' "$JOURNAL" | grep -q "$CONF:[0-9]*:1: unknown directive 'wrokers'; did you mean 'workers'?"; then
    ok "the reload's error with file:line:col is in the unit's journal"
else
    not_ok "the reload's error is in the journal" "$(printf '%s' "$JOURNAL" | tail -n 15)"
fi
expect_eq "the old config keeps serving" "$(E curl -s http://127.0.0.1:8080/)" "Hello again!"
expect_eq "still active" "$(E systemctl is-active percore)" "active"
E sed -i '/^wrokers 3;$/d' "$CONF"

# Files under the hardened unit (system call filter, read-only system): a small file in
# one write, a large one by sendfile, both whole.
E sh -c 'printf "service files {\n    listen 127.0.0.1:8082;\n    access_log /var/log/percore/access.log;\n    route / { files /usr/sbin; }\n}\n" >/etc/percore/conf.d/files.conf'
E systemctl reload percore
expect_eq "a files service added by reload serves a large file whole" \
    "$(E sh -c 'curl -s http://127.0.0.1:8082/percore | cmp - /usr/sbin/percore && echo same')" "same"
expect_eq "and answers a missing one 404" \
    "$(E curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8082/nope)" "404"
# The log is written at the end of the worker's loop turn: wait for it, bounded.
logged() {
    E grep -c '"GET /percore HTTP/1.1" 200\|"GET /nope HTTP/1.1" 404' /var/log/percore/access.log \
        2>/dev/null
}
for _ in $(seq 1 100); do [ "$(logged)" = 2 ] && break; sleep 0.1; done
expect_eq "its access log in /var/log/percore has both requests" "$(logged)" "2"
E rm -f /etc/percore/conf.d/files.conf
E systemctl reload percore

# Access logs to the real journald: an entry per request, found by its fields.
E sh -c 'printf "service jlog {\n    listen 127.0.0.1:8083;\n    access_log journal;\n    route = /ok { respond 200; }\n}\n" >/etc/percore/conf.d/jlog.conf'
E systemctl reload percore
E curl -s -o /dev/null -A e2e-agent http://127.0.0.1:8083/missing
jlogged() {
    E journalctl -t percore-access PERCORE_STATUS=404 PERCORE_SERVICE=jlog --no-pager -o cat \
        2>/dev/null | grep -c '"GET /missing HTTP/1.1" 404'
}
for _ in $(seq 1 100); do [ "$(jlogged)" = 1 ] && break; sleep 0.1; done
expect_eq "journalctl PERCORE_STATUS=404 finds the journal access log's entry" "$(jlogged)" "1"
expect_eq "its fields are the journal's own" "$(E journalctl -t percore-access \
    PERCORE_SERVICE=jlog --no-pager -o export | grep -c '^PERCORE_USER_AGENT=e2e-agent$')" "1"
E rm -f /etc/percore/conf.d/jlog.conf
E systemctl reload percore

# Restart under load: the fd store keeps the sockets, nothing is refused.
E wrk -t2 -c20 -d5s http://127.0.0.1:8080/ >"$WORK/wrk.out" 2>&1 &
WRK=$!
# Restart once wrk's connections are all up (it runs 5 s; it has them within a fraction).
LOADED=no
for _ in $(seq 1 100); do
    if [ "$(E ss -Htn state established '( dport = :8080 )' | wc -l)" -ge 20 ]; then
        LOADED=yes
        break
    fi
    sleep 0.05
done
expect_eq "wrk's 20 connections are up before the restart" "$LOADED" "yes"
E systemctl restart percore
wait $WRK
if grep -q "requests in" "$WORK/wrk.out" && ! grep -q -e "Socket errors" -e "Non-2xx" "$WORK/wrk.out"; then
    ok "systemctl restart under load: zero failed requests ($(awk '/requests in/ {print $1}' "$WORK/wrk.out"))"
else
    not_ok "systemctl restart under load: zero failed requests" "$(cat "$WORK/wrk.out")"
fi
NEWMAIN=$(E systemctl show -p MainPID --value percore)
check "restart started a new master" [ "$NEWMAIN" != "$MAIN" ]

# A storm of restarts, then of reloads, under wrk keep-alive and Connection: close load
# (bench/storm.sh -C, which runs it longer with -R): across each restart the fd store keeps
# the listeners, so no request fails and no connection is refused.
STORM_N=${PERCORE_E2E_STORM:-5}
"$(dirname "$0")/../../bench/storm.sh" -C "$L" -R "$STORM_N" -c 20 >"$WORK/storm.out" 2>&1
STORM_OUT=$(cat "$WORK/storm.out")
while read -r verdict rest; do
    case $verdict in
    PASS) ok "$rest" ;;
    FAIL) not_ok "$rest" "$STORM_OUT" ;;
    *) ;;
    esac
done <<<"$STORM_OUT"
check "the restart and reload storm ran" grep -q '^PASS systemctl reload' "$WORK/storm.out"
printf '%s\n' "$STORM_OUT" | sed 's/^/# /'

# A worker hung on purpose is killed and replaced.
E sh -c 'echo "worker_watchdog 2s;" > /etc/percore/conf.d/watchdog.conf'
E systemctl reload percore
MAIN=$(E systemctl show -p MainPID --value percore)
VICTIM=$(E pgrep -P "$MAIN" | head -n 1)
sig STOP "$VICTIM"
REPLACED=no
for _ in $(seq 1 100); do
    if ! E pgrep -P "$MAIN" | grep -qx "$VICTIM" && [ "$(E pgrep -c -P "$MAIN")" -ge 1 ]; then
        REPLACED=yes
        break
    fi
    sleep 0.1
done
expect_eq "a hung worker is replaced" "$REPLACED" "yes"
check "the journal says which worker hung" \
    sh -c "nsenter -t $L -a journalctl -u percore --no-pager -o cat | grep -q 'pid $VICTIM) is stuck'"
expect_eq "serving after the hung worker" "$(E curl -s http://127.0.0.1:8080/)" "Hello again!"

# A hung master misses its watchdog pings: systemd kills and restarts it.
E mkdir -p /etc/systemd/system/percore.service.d
E sh -c 'printf "[Service]\nWatchdogSec=2s\n" > /etc/systemd/system/percore.service.d/wd.conf'
E systemctl daemon-reload
E systemctl restart percore
MAIN=$(E systemctl show -p MainPID --value percore)
sig STOP "$MAIN"
RESTARTED=no
for _ in $(seq 1 300); do
    M=$(E systemctl show -p MainPID --value percore)
    if [ "$M" != "$MAIN" ] && [ "$M" != 0 ] && [ "$(E systemctl is-active percore)" = active ]; then
        RESTARTED=yes
        break
    fi
    sleep 0.1
done
expect_eq "a hung master is killed by the watchdog and restarted" "$RESTARTED" "yes"
check "the journal records the watchdog timeout" \
    sh -c "nsenter -t $L -a journalctl -u percore --no-pager | grep -qi 'watchdog timeout'"
E rm -f /etc/systemd/system/percore.service.d/wd.conf
E systemctl daemon-reload

E systemctl stop percore percore.socket
expect_eq "systemctl stop: inactive" "$(E systemctl is-active percore)" "inactive"
# Negations run inside the container: nsenter failing must not pass for "nothing there".
check "nothing left running" E sh -c '! pgrep -x percore >/dev/null'
check "the master logged a clean stop" \
    sh -c "nsenter -t $L -a journalctl -u percore --no-pager -o cat | grep -q 'master: stopped'"

if [ "$MODE" = deb ]; then
    E rm -f /etc/percore/conf.d/watchdog.conf # the test's own drop-in: a user file
    E systemctl start percore
    E apt-get purge -y percore >"$WORK/purge.out" 2>&1
    expect_eq "apt-get purge succeeds" "$?" "0"
    check "purge leaves nothing running" E sh -c '! pgrep -x percore >/dev/null'
    check "purge removes /etc/percore" E test ! -e /etc/percore
    check "purge removes the unit" E test ! -e /lib/systemd/system/percore.service
    check "purge removes the enablement" \
        E test ! -e /etc/systemd/system/multi-user.target.wants/percore.service
    check "purge removes the logs directory" E test ! -e /var/log/percore
fi

echo "1..$N"
[ "$FAILED" -eq 0 ]
