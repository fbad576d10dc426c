#!/bin/bash
# The systemd units: `systemd-analyze verify` is clean and the service's exposure is at
# most 1.5 (`systemd-analyze security`), checked offline against the built files.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null || skip_all "systemd-analyze not installed"
SERVICE=$TOP_BUILDDIR/systemd/percore.service
SOCKET=$TOP_SRCDIR/systemd/percore.socket
[ -f "$SERVICE" ] || bail "$SERVICE not built"

OUT=$T_DIR/out
systemd-analyze security --offline=yes --threshold=15 "$SERVICE" >"$OUT" 2>&1
ST=$?
SCORE=$(sed -n 's/.*Overall exposure level for percore.service: \([0-9.]*\).*/\1/p' "$OUT")
if [ "$ST" -eq 0 ] && [ -n "$SCORE" ]; then
    ok "exposure $SCORE is at most 1.5"
else
    not_ok "exposure at most 1.5" "$(tail -n 20 "$OUT")"
fi

# verify needs the units it refers to and the binary at its ExecStart path.
ROOT=$T_DIR/root
UNITDIR=$ROOT/usr/lib/systemd/system
mkdir -p "$UNITDIR"
for d in /usr/lib/systemd/system /lib/systemd/system; do
    [ -d "$d" ] && cp -a "$d"/. "$UNITDIR"/ 2>/dev/null
done
cp "$SERVICE" "$SOCKET" "$UNITDIR"/
EXEC=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$SERVICE")
mkdir -p "$ROOT$(dirname "$EXEC")"
cp "$PERCORE" "$ROOT$EXEC"
(cd "$UNITDIR" && systemd-analyze verify --man=no --root="$ROOT" percore.socket \
    percore.service) >"$OUT" 2>&1
ST=$?
if [ "$ST" -eq 0 ] && [ ! -s "$OUT" ]; then
    ok "systemd-analyze verify is clean"
else
    not_ok "systemd-analyze verify is clean" "exit $ST" "$(cat "$OUT")"
fi

check "service is Type=notify" grep -qx "Type=notify" "$SERVICE"
check "ExecReload waits for the reload result" grep -q "^ExecReload=.* -s reload$" "$SERVICE"
check "ExecStartPre checks the config" grep -q "^ExecStartPre=.* -t -c " "$SERVICE"
check "socket names its service" grep -qx "FileDescriptorName=hello" "$SOCKET"

finish
