#!/bin/sh
# The manual pages are free of mandoc warnings (and errors): one TAP line per page.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need_tool mandoc

for page in "$SRC"/man/*.[1-9]; do
    name=${page#"$SRC"/}
    if out=$(mandoc -T lint -W warning "$page" 2>&1) && [ -z "$out" ]; then
        ok "mandoc -T lint $name"
    else
        not_ok "mandoc -T lint $name" "$out"
    fi
done
finish
