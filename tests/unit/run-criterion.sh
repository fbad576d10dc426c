#!/bin/sh
# Run one criterion test binary with its report as TAP on stdout, for automake's TAP driver.
prog=$1
shift
exec "$prog" --tap=- --jobs=1 "$@"
