#!/bin/sh
# Runs libFuzzer harnesses for a bounded time each (`make fuzz`): first over their seed
# corpus and regression inputs once, as a regression test, then fuzzing a copy of the
# corpus (new inputs never land in the source tree). One line per harness:
#   PASS: fuzz_conf: 262144 executions in 60 s (4369 exec/s)
#   FAIL: fuzz_conf: crash, input kept in /tmp/percore-fuzz.X/conf/crash-...
# Exits 1 if any harness failed.
#
#   run.sh FUZZDIR HARNESS...
# FUZZDIR is tests/fuzz of the source tree: a harness fuzz_NAME takes its seeds from
# corpus/NAME/, regression inputs from regress/NAME/ and a dictionary from NAME.dict, each
# if there. Environment: FUZZ_SECONDS (60) per harness; FUZZ_ARGS, more libFuzzer options
# (-jobs=2, say); FUZZ_WORK, where copies, logs and findings go (a new temporary directory,
# removed when every harness passed, else kept).
set -u

usage() {
    echo "usage: run.sh FUZZDIR HARNESS..." >&2
    exit 2
}

[ "$#" -ge 2 ] || usage
FUZZDIR=$1
shift
SECONDS_EACH=${FUZZ_SECONDS:-60}
case ${SECONDS_EACH} in
'' | *[!0-9]*) echo "run.sh: FUZZ_SECONDS must be a number of seconds" >&2 && exit 2 ;;
*) ;;
esac
if [ -n "${FUZZ_WORK:-}" ]; then
    WORK=${FUZZ_WORK}
    mkdir -p "${WORK}" || exit 2
    own_work=0
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/percore-fuzz.XXXXXX") || exit 2
    own_work=1
fi

# final_stat NAME LOG: a libFuzzer final statistic from LOG.
final_stat() {
    sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

# The first finding libFuzzer wrote into DIR, if any.
finding() {
    for f in "$1"/crash-* "$1"/leak-* "$1"/timeout-* "$1"/oom-* "$1"/slow-unit-*; do
        [ -e "${f}" ] && echo "${f}" && return 0
    done
    return 1
}

# fail HARNESS WHY LOG: report a failed harness with the end of its log.
fail() {
    echo "FAIL: $1: $2"
    tail -n 40 "$3" | sed 's/^/    /'
    failed=$((failed + 1))
}

failed=0
for harness in "$@"; do
    name=$(basename "${harness}")
    short=${name#fuzz_}
    dir=${WORK}/${short}
    mkdir -p "${dir}/corpus" "${dir}/tmp"
    if [ -d "${FUZZDIR}/corpus/${short}" ]; then
        cp -R "${FUZZDIR}/corpus/${short}/." "${dir}/corpus/"
    fi
    set -- -timeout=25 -artifact_prefix="${dir}/"
    if [ -f "${FUZZDIR}/${short}.dict" ]; then
        set -- "$@" -dict="${FUZZDIR}/${short}.dict"
    fi
    # Replay: every seed and regression input once. The harness's scratch files
    # (fuzz_conf's sandbox) go with the rest, in TMPDIR.
    replay=${dir}/corpus
    if [ -d "${FUZZDIR}/regress/${short}" ]; then
        replay="${replay} ${FUZZDIR}/regress/${short}"
    fi
    # shellcheck disable=SC2086 # replay is one or two paths, without blanks
    if ! TMPDIR=${dir}/tmp "${harness}" "$@" -runs=0 ${replay} >"${dir}/replay.log" 2>&1; then
        found=$(finding "${dir}") || found="see ${dir}/replay.log"
        fail "${name}" "a seed or regression input failed: ${found}" "${dir}/replay.log"
        continue
    fi
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
    TMPDIR=${dir}/tmp "${harness}" "$@" -max_total_time="${SECONDS_EACH}" -print_final_stats=1 \
        ${FUZZ_ARGS:-} "${dir}/corpus" >"${dir}/fuzz.log" 2>&1
    rc=$?
    if found=$(finding "${dir}"); then
        fail "${name}" "input kept in ${found}" "${dir}/fuzz.log"
    elif [ "${rc}" -ne 0 ]; then
        fail "${name}" "exit status ${rc}" "${dir}/fuzz.log"
    else
        execs=$(final_stat number_of_executed_units "${dir}/fuzz.log")
        rate=$(final_stat average_exec_per_sec "${dir}/fuzz.log")
        echo "PASS: ${name}: ${execs:-?} executions in ${SECONDS_EACH} s (${rate:-?} exec/s)"
    fi
done

if [ "${failed}" -eq 0 ]; then
    [ "${own_work}" -eq 1 ] && rm -rf "${WORK}"
    exit 0
fi
echo "run.sh: ${failed} harness(es) failed; logs and inputs are in ${WORK}"
exit 1
