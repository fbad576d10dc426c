#!/bin/sh
# Every shell script of the source tree is clean under shellcheck at its strictest (style)
# level; a check is only ever disabled in place, with the reason. One TAP line per script.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_tool shellcheck

cd "$SRC" || { echo "Bail out! no source tree at $SRC"; exit 99; }
# *.sh anywhere under these directories, and any other file there that starts with a
# sh/bash #! line (.ci/run, the Debian maintainer scripts).
scripts=$(find .ci bench packaging systemd tests -type f 2>/dev/null | sort | while read -r f; do
    case $f in
    *.sh) echo "$f" ;;
    *) head -n 1 "$f" 2>/dev/null | grep -Eq '^#! */(usr/)?bin/(env +)?(ba)?sh' && echo "$f" ;;
    esac
done)
[ -n "$scripts" ] || { echo "Bail out! no shell script found under $SRC"; exit 99; }

# One run for all (lib.sh is read once per script that sources it), then a line per script.
# shellcheck disable=SC2086 # one word per path; none has a blank
set -- quickstart.sh $scripts
out=$(shellcheck -f gcc "$@" 2>&1)
for f in "$@"; do
    mine=$(printf '%s\n' "$out" | awk -v f="$f:" 'index($0, f) == 1')
    if [ -z "$mine" ]; then ok "shellcheck $f"; else not_ok "shellcheck $f" "$mine"; fi
done
# Anything said about no script of the list (shellcheck could not run, say).
rest=$(printf '%s\n' "$out" | awk -v list="$*" '
    BEGIN { n = split(list, f, " ") }
    $0 != "" { for (i = 1; i <= n; i++) if (index($0, f[i] ":") == 1) next; print }')
if [ -z "$rest" ]; then ok "shellcheck said nothing else"; else not_ok "shellcheck said nothing else" "$rest"; fi
finish
