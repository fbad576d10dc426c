#!/bin/bash
# `user` and `group`: started as root, the master stays root and its workers drop to that
# user once set up (ids, no supplementary groups, no capabilities, no_new_privs), reloads
# included; an unknown user is a positioned config error; started as another user, percore
# refuses a `user` it cannot switch to and accepts its own.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "not root"
NOBODY_UID=$(id -u nobody 2>/dev/null) || skip_all "no user nobody"
NOBODY_GID=$(id -g nobody)
DAEMON_GID=$(getent group daemon | cut -d: -f3)
[ -n "$DAEMON_GID" ] || skip_all "no group daemon"
command -v curl >/dev/null || skip_all "curl not installed"

PORT=$(free_port)
CONF=$T_DIR/percore.conf
URL=http://127.0.0.1:$PORT/
chmod 755 "$T_DIR"

write_conf() { # PRIVILEGE_DIRECTIVES
    { printf 'workers 2;\n%s\n' "$1"; hello_conf "$PORT"; } >"$CONF"
    chmod 644 "$CONF"
}

# status_of PID FIELD: the values of a /proc/PID/status line, space-separated.
status_of() {
    awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ +/, ""); print }' "/proc/$1/status"
}

# dropped PID UID GID: every id, groups, capabilities and no_new_privs of a worker.
dropped() {
    local pid=$1 u=$2 g=$3 groups
    expect_eq "worker $pid: Uid" "$(status_of "$pid" Uid | tr -s ' \t' ' ')" "$u $u $u $u"
    expect_eq "worker $pid: Gid" "$(status_of "$pid" Gid | tr -s ' \t' ' ')" "$g $g $g $g"
    groups=$(status_of "$pid" Groups)
    if [ -z "$groups" ] || [ "$groups" = "$g" ]; then
        ok "worker $pid: no supplementary groups ('$groups')"
    else
        not_ok "worker $pid: no supplementary groups" "Groups: $groups"
    fi
    for cap in CapEff CapPrm CapInh CapAmb; do
        expect_eq "worker $pid: $cap" "$(status_of "$pid" "$cap")" 0000000000000000
    done
    expect_eq "worker $pid: NoNewPrivs" "$(status_of "$pid" NoNewPrivs)" 1
    # Not dumpable: its /proc files belong to root, so no process of its user (another
    # worker taken over) reads its memory.
    expect_eq "worker $pid: /proc/PID/mem is root's, not its user's" \
        "$(stat -c %u "/proc/$pid/mem")" 0
}

# all_dropped UID GID: the check for each worker of the running master (two of them).
all_dropped() {
    local pids
    pids=$(workers)
    expect_eq "two workers" "$(echo "$pids" | wc -w)" 2
    for pid in $pids; do dropped "$pid" "$1" "$2"; done
}

reload_and_wait() {
    local done_before
    done_before=$(grep -c "reload done" "$PC_LOG")
    kill -HUP "$PC_PID"
    wait_for log_count_at_least "reload done" $((done_before + 1))
}

# An unknown user or group is an error at its place in `percore -t`.
write_conf 'user percore-no-such-user;'
out=$("$PERCORE" -t -c "$CONF" 2>&1)
rc=$?
check "percore -t fails on an unknown user" test "$rc" -ne 0
check "the unknown user is named at file:line:col" \
    grep -qF "$CONF:2:6: unknown user 'percore-no-such-user'" <<<"$out"
write_conf 'user nobody; group percore-no-such-group;'
out=$("$PERCORE" -t -c "$CONF" 2>&1)
check "the unknown group is named at file:line:col" \
    grep -qF "$CONF:2:20: unknown group 'percore-no-such-group'" <<<"$out"

# Root with `user nobody;`: the workers drop, the master does not.
write_conf 'user nobody;'
start_percore "$CONF"
expect_eq "the master stays root" "$(status_of "$PC_PID" Uid | tr -s ' \t' ' ')" "0 0 0 0"
all_dropped "$NOBODY_UID" "$NOBODY_GID"
expect_eq "dropped workers serve" "$(curl -s "$URL")" "Hello, world!"

# A reload's new workers drop too, and `group` overrides the primary group.
OLD=$(workers | paste -sd,)
reload_and_wait || not_ok "reload finished"
wait_for sh -c "[ \"\$(pgrep -P $PC_PID | sort -n | paste -sd,)\" != '$OLD' ]"
wait_for sh -c "[ \"\$(pgrep -c -P $PC_PID)\" -eq 2 ]"
check "the reload made new workers" test "$(workers | paste -sd,)" != "$OLD"
all_dropped "$NOBODY_UID" "$NOBODY_GID"
write_conf 'user nobody; group daemon;'
OLD=$(workers | paste -sd,)
reload_and_wait || not_ok "reload with group finished"
wait_for sh -c "[ \"\$(pgrep -P $PC_PID | sort -n | paste -sd,)\" != '$OLD' ]"
wait_for sh -c "[ \"\$(pgrep -c -P $PC_PID)\" -eq 2 ]"
all_dropped "$NOBODY_UID" "$DAEMON_GID"
expect_eq "serving after the reloads" "$(curl -s "$URL")" "Hello, world!"
expect_eq "the master is still root" "$(status_of "$PC_PID" Uid | tr -s ' \t' ' ')" "0 0 0 0"
stop_percore

# Not root: another user is refused with a clear message, its own user is fine.
AS_NOBODY=(env -u XDG_RUNTIME_DIR -u RUNTIME_DIRECTORY TMPDIR="$T_DIR/tmp"
    setpriv --reuid nobody --regid nogroup --clear-groups)
mkdir -m 1777 "$T_DIR/tmp"
if "${AS_NOBODY[@]}" "$PERCORE" -h >/dev/null 2>&1; then
    write_conf 'user root;'
    out=$(timeout 20 "${AS_NOBODY[@]}" "$PERCORE" -f -c "$CONF" 2>&1)
    rc=$?
    check "as nobody, 'user root' is refused" test "$rc" -ne 0 -a "$rc" -ne 124
    check "with a clear message" grep -qF \
        "user: percore runs as uid $NOBODY_UID, not root: cannot switch to 'root' (uid 0)" \
        <<<"$out"
    write_conf 'user nobody;'
    start_percore_as_nobody() {
        : >"$PC_LOG"
        "${AS_NOBODY[@]}" "$PERCORE" -f -c "$CONF" >>"$PC_LOG" 2>&1 &
        PC_PID=$!
        wait_for log_has "ready:"
    }
    check "as nobody, 'user nobody' starts" start_percore_as_nobody
    expect_eq "and serves" "$(curl -s "$URL")" "Hello, world!"
    # A reload to a user it cannot become fails, and the workers keep serving.
    write_conf 'user root;'
    kill -HUP "$PC_PID"
    check "as nobody, a reload to 'user root' fails" \
        wait_for log_has "reload failed: configuration has errors"
    check "with the same message" log_has "user: percore runs as uid $NOBODY_UID, not root"
    expect_eq "the old workers keep serving" "$(curl -s "$URL")" "Hello, world!"
    stop_percore
else
    for _ in 1 2 3 4 5 6 7; do ok "# SKIP nobody cannot run $PERCORE"; done
fi

finish
