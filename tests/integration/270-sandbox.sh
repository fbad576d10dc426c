#!/bin/bash
# The worker sandbox: each worker runs under its seccomp allowlist (Seccomp: 2, no new
# privileges); a module that calls execve or fork gets its worker killed, the master's log
# names the call and the worker comes back while the others serve; with `worker_sandbox off;`
# the same requests are answered; a module that says it needs the sandbox off is refused
# by `percore -t` while it is on.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v cc >/dev/null || skip_all "no C compiler to build the test module"
command -v curl >/dev/null || skip_all "curl not installed"
MOD=$T_DIR/sandbox.so
OPTOUT=$T_DIR/optout.so
build() { # OUT [CFLAGS...]
    out=$1
    shift
    cc -shared -fPIC -Wall -Werror -I"$TOP_SRCDIR/include" "$@" -o "$out" \
        "$TOP_SRCDIR/tests/modules/sandbox.c"
}
build "$MOD" || bail "cannot build the test module"
build "$OPTOUT" -DNEEDS_SYSCALLS || bail "cannot build the opting-out module"
PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT

write_conf() { # MODULE [MAIN DIRECTIVES]
    cat >"$CONF" <<CONF
workers 2;
shutdown_timeout 5s;
$2
service s {
    listen 127.0.0.1:$PORT;
    access_log $T_DIR/access.log;
    route /x/ { module $1; }
    route / { respond 200 "Hello, world!\n"; }
}
CONF
}

# status_of PID FIELD: the value of a /proc/PID/status line.
status_of() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

# confined: every worker of the running master (two of them) is in seccomp filter mode
# with no_new_privs.
confined() {
    local pids n=0
    pids=$(workers)
    for pid in $pids; do
        [ "$(status_of "$pid" Seccomp)" = 2 ] && [ "$(status_of "$pid" NoNewPrivs)" = 1 ] &&
            n=$((n + 1))
    done
    [ "$n" -eq 2 ] && [ "$(echo "$pids" | wc -w)" -eq 2 ]
}

two_workers() {
    [ "$(nworkers)" -eq 2 ]
}

# The sandbox on (the default).
write_conf "$MOD"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
expect_eq "-t accepts a module that does not say it needs the sandbox off" "$?" "0"
start_percore "$CONF"
check "each worker runs with Seccomp: 2 and NoNewPrivs: 1" confined
expect_eq "a sandboxed worker serves" "$(curl -s "$URL/")" "Hello, world!"
expect_eq "and runs the module" "$(curl -s "$URL/x/none")" "no call"

BEFORE=$(workers | paste -sd,)
curl -s -o /dev/null "$URL/x/exec"
check "execve kills the worker, and the log names the call" wait_for log_has \
    "died (signal 31, Bad system call) on system call execve, which the sandbox forbids, respawning"
check "the log names the worker" \
    grep -Eq "worker [01] \(pid [0-9]+\) died \(signal 31" "$PC_LOG"
expect_eq "the others serve meanwhile" "$(curl -s "$URL/")" "Hello, world!"
wait_for two_workers
check "the worker is respawned, sandboxed too" wait_for confined
check "one new worker" test "$(workers | paste -sd,)" != "$BEFORE"
expect_eq "serving goes on" "$(curl -s "$URL/x/none")" "no call"

curl -s -o /dev/null "$URL/x/fork"
check "fork kills the worker (clone)" wait_for log_has \
    "on system call clone3\?, which the sandbox forbids"
wait_for two_workers
check "respawned again" wait_for confined
expect_eq "and serving goes on" "$(curl -s "$URL/")" "Hello, world!"

curl -s -o /dev/null "$URL/x/setown"
check "fcntl(F_SETOWN) kills the worker: no signals to other processes" wait_for log_has \
    "on system call fcntl, which the sandbox forbids"
wait_for two_workers
check "respawned once more" wait_for confined

# Rotated logs are reopened inside the sandbox: the one writing open it allows.
ENDS=$(worker_ends)
mv "$T_DIR/access.log" "$T_DIR/access.log.1"
kill -USR1 "$PC_PID"
wait_for log_count_at_least "log files reopened" 3
curl -s -o /dev/null "$URL/after-rotation"
check "after SIGUSR1 the access log is a new file" \
    wait_for grep -q '/after-rotation' "$T_DIR/access.log"
expect_eq "no worker died for the reopen" "$(worker_ends)" "$ENDS"
expect_eq "still two sandboxed workers" "$(confined && echo yes)" "yes"
stop_percore

# `worker_sandbox off;`: the same requests are answered.
write_conf "$MOD" "worker_sandbox off;"
start_percore "$CONF"
expect_eq "without the sandbox, workers have no filter" \
    "$(for p in $(workers); do status_of "$p" Seccomp; done | sort -u)" "0"
expect_eq "execve returns to the module" "$(curl -s "$URL/x/exec")" \
    "execve: No such file or directory"
expect_eq "fork works" "$(curl -s "$URL/x/fork")" "forked"
check "no worker died" sh -c "! grep -q 'died\|exited with status\|respawning' '$PC_LOG'"
stop_percore

# A module that says it needs the sandbox off.
write_conf "$OPTOUT"
LINE=$(grep -n 'route /x/' "$CONF" | cut -d: -f1)
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
rc=$?
check "-t refuses it while the sandbox is on" test "$rc" -ne 0
check "at its place, naming the module and the directive to set" grep -qF \
    "$CONF:$LINE:17: module 'sandbox' ($OPTOUT) needs system calls the worker sandbox forbids: set 'worker_sandbox off;' to use it" \
    "$T_DIR/out"
write_conf "$OPTOUT" "worker_sandbox off;"
"$PERCORE" -t -c "$CONF" >"$T_DIR/out" 2>&1
expect_eq "-t accepts it with worker_sandbox off" "$?" "0"

finish
