#!/bin/sh
# C functions percore does not call: each has a bounded or checked replacement (util.h,
# snprintf, strtol-based parsers), which is what a reviewer should see instead. One TAP line
# per function; a hit names its file:line.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

for fn in atoi atol atoll strcpy strcat strncat sprintf vsprintf gets strtok; do
    # A call: the name as a whole word, then "(" (comments do not name these either).
    hits=$(grep -nE "(^|[^A-Za-z0-9_])${fn}[[:space:]]*\\(" "$SRC"/src/*.c "$SRC"/src/*.h \
        "$SRC"/include/percore/*.h 2>/dev/null | sed "s|^$SRC/||")
    if [ -z "$hits" ]; then
        ok "no $fn() in src/"
    else
        not_ok "no $fn() in src/" "$hits"
    fi
done
finish
