/* The upstream servers' shared state (src/upstate.c): keys kept across loads, passive
 * ejection and probation, fall and rise, the health-check lease, the counters under two
 * processes at once, what a worker that dies leaves behind; and the metrics handler's
 * upstream series (src/hnd_metrics.c). */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The exposition's helpers are static: the tests call them. */
#include "../../src/hnd_metrics.c"

#include "ctl.h"
#include "heritage.h"
#include "upstate.h"

/* ---- helpers ---- */

static struct upstate_policy pol;

static void
setup(void)
{
    upstate_policy_init(&pol);
    pol.max_fails = 3;
    pol.fail_timeout_ms = 10000;
    pol.check.fall = 2;
    pol.check.rise = 3;
}

TestSuite(upstate, .init = setup);

/* Register key in a load of its own and commit it: the record. */
static struct upstate *
serving(const char *key, int checked)
{
    int idx = upstate_register(key, checked);

    cr_assert_geq(idx, 0, "register '%s': %s", key, strerror(errno));
    upstate_commit(1);
    return upstate_get(idx);
}

static void
fail(struct upstate *u, int64_t now)
{
    upstate_report(u, &pol, UPSTATE_CONNECT_REFUSED, UPSTATE_NONE, UPSTATE_NONE, 0, now);
}

static void
ok(struct upstate *u, int64_t now)
{
    upstate_report(u, &pol, UPSTATE_OK, 100, 2000, 200, now);
}

/* stderr, where the log goes, into a file until log_end; what was logged then. */
static char logpath[64];
static int saved_stderr = -1;

static void
log_begin(void)
{
    int fd;

    snprintf(logpath, sizeof(logpath), "/tmp/percore-upstate.XXXXXX");
    fd = mkstemp(logpath);
    cr_assert_neq(fd, -1);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_neq(dup2(fd, STDERR_FILENO), -1);
    close(fd);
}

static char *
log_end(void)
{
    static char text[64 * 1024];
    FILE *f;
    size_t n;

    cr_assert_neq(dup2(saved_stderr, STDERR_FILENO), -1);
    close(saved_stderr);
    f = fopen(logpath, "r");
    cr_assert_not_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(logpath);
    return text;
}

static int
count(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- keys and loads ---- */

Test(upstate, a_key_keeps_its_record_and_state_across_loads)
{
    struct upstate *a = serving("api http://10.0.0.1:8080", 0);
    int b;

    fail(a, 1000);
    cr_assert_eq(atomic_load(&a->requests), 1);
    /* The next load: the same key, the same record, its counts kept. */
    b = upstate_register("api http://10.0.0.2:8080", 0);
    cr_assert_eq(upstate_register("api http://10.0.0.1:8080", 0), (int)(a - upstate_get(0)));
    upstate_commit(1);
    cr_assert_neq(b, (int)(a - upstate_get(0)));
    cr_assert_eq(atomic_load(&a->requests), 1);
    cr_assert_eq(upstate_current((int)(a - upstate_get(0))), a);
    cr_assert_not_null(upstate_current(b));
}

Test(upstate, only_the_serving_config_s_servers_are_current)
{
    int a = upstate_register("api http://a", 0), b;

    cr_assert_null(upstate_current(a), "not before its config serves");
    upstate_commit(1);
    cr_assert_not_null(upstate_current(a));
    /* A reload that fails: its new server never becomes current, nor is `a` dropped. */
    b = upstate_register("api http://b", 0);
    upstate_discard();
    cr_assert_null(upstate_current(b));
    cr_assert_not_null(upstate_current(a));
    /* A reload without `a`. */
    b = upstate_register("api http://b", 0);
    upstate_commit(1);
    cr_assert_null(upstate_current(a));
    cr_assert_not_null(upstate_current(b));
    cr_assert_null(upstate_current(-1));
    cr_assert_null(upstate_current(UPSTATE_MAX));
}

Test(upstate, bad_keys_and_a_full_table_are_refused)
{
    char key[UPSTATE_KEY_MAX + 1];
    int first = -1;

    memset(key, 'k', UPSTATE_KEY_MAX);
    key[UPSTATE_KEY_MAX] = '\0';
    cr_assert_eq(upstate_register(key, 0), -1);
    cr_assert_eq(errno, ENAMETOOLONG);
    cr_assert_eq(upstate_register("", 0), -1);
    cr_assert_eq(errno, EINVAL);
    key[UPSTATE_KEY_MAX - 1] = '\0';
    cr_assert_geq(upstate_register(key, 0), 0, "the longest key fits");
    upstate_discard();

    /* A config of the most servers; one more is refused. */
    for (int i = 0; i < UPSTATE_CONF_MAX; i++) {
        snprintf(key, sizeof(key), "u http://10.0.%d.%d", i / 256, i % 256);
        int idx = upstate_register(key, 0);
        cr_assert_geq(idx, 0, "server %d", i);
        if (i == 0)
            first = idx;
    }
    cr_assert_eq(upstate_register("u http://one.more", 0), -1);
    cr_assert_eq(errno, E2BIG);
    upstate_commit(1);
    fail(upstate_get(first), 1);
    /* Another as large, all new servers, replaces it: there is room for both. */
    upstate_set_oldest(1);
    for (int i = 0; i < UPSTATE_CONF_MAX; i++) {
        snprintf(key, sizeof(key), "v http://10.0.%d.%d", i / 256, i % 256);
        cr_assert_geq(upstate_register(key, 0), 0, "server %d", i);
    }
    upstate_commit(2);
    /* While generation 1 still runs (draining), its records are not given up. */
    cr_assert_eq(upstate_register("u http://one.more", 0), -1);
    cr_assert_eq(errno, ENOSPC);
    upstate_discard();
    /* Once it is gone, a new key gets one of them, its state and counts zeroed. */
    upstate_set_oldest(2);
    cr_assert_eq(upstate_register("u http://one.more", 0), first);
    cr_assert_str_eq(upstate_get(first)->key, "u http://one.more");
    cr_assert_eq(atomic_load(&upstate_get(first)->requests), 0);
    cr_assert(upstate_usable(upstate_get(first), util_now_ms()));
    /* The next new key gets the next free one. */
    cr_assert_eq(upstate_register("u http://yet.another", 0), (int)(first + 1));
    upstate_commit(3);
    cr_assert_not_null(upstate_current(first));
}

Test(upstate, names_split_at_the_first_space)
{
    struct upstate *u = serving("api unix:/run/app sock", 0);
    char buf[UPSTATE_KEY_MAX];
    const char *up, *srv;

    upstate_names(u, buf, sizeof(buf), &up, &srv);
    cr_assert_str_eq(up, "api");
    cr_assert_str_eq(srv, "unix:/run/app sock");
}

/* ---- passive ejection ---- */

Test(upstate, max_fails_within_fail_timeout_eject_for_fail_timeout)
{
    struct upstate *u = serving("api http://a", 0);
    char *log;

    log_begin();
    fail(u, 1000);
    fail(u, 2000);
    cr_assert(upstate_usable(u, 2000), "two failures of three");
    fail(u, 10999); /* the window began at 1000 */
    log = log_end();
    cr_assert_not(upstate_usable(u, 11000));
    cr_assert_not(upstate_usable(u, 20998));
    cr_assert(upstate_usable(u, 20999), "back after fail_timeout");
    cr_assert_eq(atomic_load(&u->ejections), 1);
    cr_assert_eq(count(log, "upstream 'api' server 'http://a' is down for 10 s: 3 failed "
                            "requests within 10 s (the last: connection refused)"), 1,
                 "%s", log);
}

Test(upstate, failures_further_apart_than_fail_timeout_do_not_eject)
{
    struct upstate *u = serving("api http://a", 0);

    for (int64_t t = 0; t < 100000; t += 5001)
        fail(u, t);
    cr_assert(upstate_usable(u, 100000));
    cr_assert_eq(atomic_load(&u->ejections), 0);
    /* Successes do not clear failures within their window (nginx). */
    fail(u, 200000);
    fail(u, 200001);
    ok(u, 200002);
    fail(u, 200003);
    cr_assert_not(upstate_usable(u, 200004));
}

Test(upstate, back_from_an_ejection_one_failure_ejects_again_and_a_success_ends_it)
{
    struct upstate *u = serving("api http://a", 0);
    char *log;

    for (int i = 0; i < 3; i++)
        fail(u, 1000);
    cr_assert_not(upstate_usable(u, 1000));
    /* A request sent before it went out fails while it is out: no longer ejection. */
    fail(u, 5000);
    cr_assert(upstate_usable(u, 11000));
    /* On probation: one failure. */
    fail(u, 12000);
    cr_assert_not(upstate_usable(u, 12000));
    cr_assert(upstate_usable(u, 22000));
    cr_assert_eq(atomic_load(&u->ejections), 2);
    /* A success ends the probation, once (logged once); then it takes three again. */
    log_begin();
    ok(u, 22000);
    ok(u, 22001);
    log = log_end();
    cr_assert_eq(count(log, "upstream 'api' server 'http://a' is back"), 1, "%s", log);
    fail(u, 23000);
    fail(u, 23001);
    cr_assert(upstate_usable(u, 23002));
    fail(u, 23002);
    cr_assert_not(upstate_usable(u, 23002));
}

Test(upstate, max_fails_0_never_ejects_and_aborted_requests_do_not_count)
{
    struct upstate *u = serving("api http://a", 0);

    pol.max_fails = 0;
    for (int i = 0; i < 100; i++)
        fail(u, 1000);
    cr_assert(upstate_usable(u, 1000));
    pol.max_fails = 1;
    upstate_report(u, &pol, UPSTATE_ABORTED, UPSTATE_NONE, UPSTATE_NONE, 0, 2000);
    cr_assert(upstate_usable(u, 2000));
    cr_assert_eq(atomic_load(&u->requests), 101);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_ABORTED]), 0);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_CONNECT_REFUSED]), 100);
    /* A 5xx that retry_on names is a failure, its class counted too. */
    upstate_report(u, &pol, UPSTATE_STATUS, 50, 900, 503, 3000);
    cr_assert_not(upstate_usable(u, 3000));
    cr_assert_eq(atomic_load(&u->responses[4]), 1);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_STATUS]), 1);
}

/* ---- active checks: fall, rise ---- */

static void
check(struct upstate *u, enum upstate_result r, int detail, int64_t now)
{
    upstate_check_report(u, &pol, r, detail, now);
}

Test(upstate, fall_failed_checks_in_a_row_down_rise_passed_ones_up)
{
    struct upstate *u = serving("api http://a", 1);
    char *log;

    log_begin();
    check(u, UPSTATE_CONNECT_REFUSED, ECONNREFUSED, 1000);
    cr_assert(upstate_usable(u, 1000), "one of two");
    check(u, UPSTATE_OK, 200, 2000);
    check(u, UPSTATE_CONNECT_REFUSED, ECONNREFUSED, 3000);
    cr_assert(upstate_usable(u, 3000), "not in a row");
    check(u, UPSTATE_STATUS, 503, 4000);
    cr_assert_not(upstate_usable(u, 4000));
    cr_assert_eq(atomic_load(&u->since_ms), 4000);
    check(u, UPSTATE_STATUS, 503, 5000);
    check(u, UPSTATE_OK, 200, 6000);
    check(u, UPSTATE_OK, 200, 7000);
    check(u, UPSTATE_RESPONSE_TIMEOUT, 0, 8000);
    check(u, UPSTATE_OK, 200, 9000);
    check(u, UPSTATE_OK, 200, 10000);
    cr_assert_not(upstate_usable(u, 10000), "two of three since the last failure");
    check(u, UPSTATE_OK, 204, 11000);
    cr_assert(upstate_usable(u, 11000));
    cr_assert_eq(atomic_load(&u->since_ms), 11000);
    log = log_end();
    cr_assert_eq(count(log, "upstream 'api' server 'http://a' is down: 2 health checks "
                            "failed in a row (the last: status 503)"), 1, "%s", log);
    cr_assert_eq(count(log, "upstream 'api' server 'http://a' is up: 3 health checks "
                            "passed in a row (status 204)"), 1, "%s", log);
    cr_assert_eq(count(log, "upstream"), 2, "one line per change: %s", log);
}

Test(upstate, a_server_whose_checks_go_away_is_up_again)
{
    struct upstate *u = serving("api http://a", 1);

    cr_assert(atomic_load(&u->flags) & UPSTATE_F_CHECKED);
    check(u, UPSTATE_CONNECT_REFUSED, 0, 1000);
    check(u, UPSTATE_CONNECT_REFUSED, 0, 2000);
    cr_assert_not(upstate_usable(u, 2000));
    /* Reloaded with the same checks: still down. */
    serving("api http://a", 1);
    cr_assert_not(upstate_usable(u, 3000));
    /* Reloaded without: nothing would ever bring it back. */
    serving("api http://a", 0);
    cr_assert(upstate_usable(u, 3000));
    cr_assert_not(atomic_load(&u->flags) & UPSTATE_F_CHECKED);
}

Test(upstate, check_reasons_in_words)
{
    char buf[64];

    upstate_check_why(UPSTATE_CONNECT_REFUSED, ECONNREFUSED, buf, sizeof(buf));
    cr_assert_str_eq(buf, "connection refused");
    upstate_check_why(UPSTATE_CONNECT_FAILED, ENETUNREACH, buf, sizeof(buf));
    cr_assert_str_eq(buf, "cannot connect: Network is unreachable");
    upstate_check_why(UPSTATE_STATUS, 503, buf, sizeof(buf));
    cr_assert_str_eq(buf, "status 503");
    upstate_check_why(UPSTATE_RESPONSE_TIMEOUT, 0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "no response in time");
    upstate_check_why(UPSTATE_CONNECT_TIMEOUT, 0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "connect timed out");
}

/* ---- the lease ---- */

Test(upstate, one_holder_at_a_time_until_it_expires_or_drops_it)
{
    struct upstate *u = serving("api http://a", 1);

    cr_assert_eq(upstate_lease_holder(u, 0), 0);
    cr_assert(upstate_lease_take(u, 100, 1000, 500));
    cr_assert_not(upstate_lease_take(u, 200, 1000, 500));
    cr_assert(upstate_lease_take(u, 100, 1400, 500), "renewed");
    cr_assert_not(upstate_lease_take(u, 200, 1899, 500));
    cr_assert_eq(upstate_lease_holder(u, 1899), 100);
    cr_assert(upstate_lease_take(u, 200, 1900, 500), "expired: taken over");
    cr_assert_eq(upstate_lease_holder(u, 1900), 200);
    upstate_lease_drop(u, 100); /* not its own any more: nothing */
    cr_assert_eq(upstate_lease_holder(u, 1900), 200);
    upstate_lease_drop(u, 200);
    cr_assert_eq(upstate_lease_holder(u, 1900), 0);
    cr_assert(upstate_lease_take(u, 100, 1900, 500));
}

Test(upstate, the_lease_of_a_worker_that_died_is_taken_over_at_once)
{
    struct upstate *u = serving("api http://a", 1);
    int64_t now = util_now_ms();
    int status;
    pid_t pid = fork();

    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct upstate_region *r = upstate_init();
        process_role = ROLE_WORKER;
        upstate_attach(r, 3);
        _exit(upstate_lease_take(u, getpid(), now, 60000) ? 0 : 1);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(upstate_lease_holder(u, now), pid, "the region is shared");
    cr_assert_not(upstate_lease_take(u, getpid(), now, 60000), "still held for a minute");
    /* The master reaps it. */
    upstate_worker_gone(3, pid);
    cr_assert_eq(upstate_lease_holder(u, now), 0);
    cr_assert(upstate_lease_take(u, getpid(), now, 60000));
}

/* ---- counters ---- */

Test(upstate, counts_by_class_kind_and_time)
{
    struct upstate *u = serving("api http://a", 0);

    pol.max_fails = 0;
    upstate_report(u, &pol, UPSTATE_OK, 80, 1500, 200, 1);
    upstate_report(u, &pol, UPSTATE_OK, UPSTATE_NONE, 30000, 404, 1);
    upstate_report(u, &pol, UPSTATE_OK, UPSTATE_NONE, 20000000, 502, 1);
    upstate_report(u, &pol, UPSTATE_CONNECT_TIMEOUT, UPSTATE_NONE, UPSTATE_NONE, 0, 1);
    upstate_report(u, &pol, UPSTATE_RESPONSE_TIMEOUT, 120, UPSTATE_NONE, 0, 1);
    upstate_report(u, &pol, UPSTATE_TLS, UPSTATE_NONE, UPSTATE_NONE, 0, 1);
    upstate_report(u, &pol, UPSTATE_CLOSED, 90, UPSTATE_NONE, 0, 1);
    upstate_count_retry(u);
    cr_assert_eq(atomic_load(&u->requests), 7);
    cr_assert_eq(atomic_load(&u->responses[1]), 1);
    cr_assert_eq(atomic_load(&u->responses[3]), 1);
    cr_assert_eq(atomic_load(&u->responses[4]), 1);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_CONNECT_TIMEOUT]), 1);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_RESPONSE_TIMEOUT]), 1);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_TLS]), 1);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_CLOSED]), 1);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_OK]), 0);
    cr_assert_eq(atomic_load(&u->retries), 1);
    /* connect: 80, 120, 90 us: all in the 100 and 250 us buckets. */
    cr_assert_eq(atomic_load(&u->connect.count), 3);
    cr_assert_eq(atomic_load(&u->connect.sum_us), 290);
    cr_assert_eq(atomic_load(&u->connect.buckets[0]), 2);
    cr_assert_eq(atomic_load(&u->connect.buckets[1]), 1);
    /* response: 1.5 ms, 30 ms, 20 s (past the last bucket: in the count only). */
    cr_assert_eq(atomic_load(&u->response.count), 3);
    cr_assert_eq(atomic_load(&u->response.buckets[4]), 1);
    cr_assert_eq(atomic_load(&u->response.buckets[8]), 1);
    cr_assert_eq(atomic_load(&u->response.buckets[UPSTATE_BUCKETS - 1]), 0);
    cr_assert_eq(upstate_inflight_inc(u), 1);
    cr_assert_eq(upstate_inflight_inc(u), 2);
    upstate_inflight_dec(u);
    cr_assert_eq(atomic_load(&u->in_flight), 1);
}

#define ROUNDS 20000

/* A worker in a child: waits for go, then reports ROUNDS failures and as many requests in
 * flight and done, at one instant (one window); keep requests stay in flight when it
 * exits. */
static pid_t
worker(struct upstate *u, int slot, int go, int keep)
{
    struct upstate_region *r = upstate_init();
    pid_t pid = fork();
    char c;

    cr_assert_neq(pid, -1);
    if (pid != 0)
        return pid;
    process_role = ROLE_WORKER;
    upstate_attach(r, slot);
    if (read(go, &c, 1) != 1)
        _exit(2);
    for (int i = 0; i < ROUNDS; i++) {
        upstate_inflight_inc(u);
        upstate_report(u, &pol, UPSTATE_CLOSED, UPSTATE_NONE, 700, 0, 5000);
        upstate_inflight_dec(u);
    }
    for (int i = 0; i < keep; i++)
        upstate_inflight_inc(u);
    _exit(0);
}

Test(upstate, two_processes_count_exactly_and_the_ejection_is_logged_once)
{
    struct upstate *u = serving("api http://a", 0);
    int go[2], status;
    pid_t a, b;
    char *log;

    pol.max_fails = 5;
    cr_assert_eq(pipe(go), 0);
    log_begin();
    a = worker(u, 0, go[0], 0);
    b = worker(u, 1, go[0], 0);
    cr_assert_eq(write(go[1], "gg", 2), 2);
    cr_assert_eq(waitpid(a, &status, 0), a);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(waitpid(b, &status, 0), b);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    log = log_end();
    cr_assert_eq(atomic_load(&u->requests), 2 * ROUNDS);
    cr_assert_eq(atomic_load(&u->errors[UPSTATE_CLOSED]), 2 * ROUNDS);
    cr_assert_eq(atomic_load(&u->response.count), 2 * ROUNDS);
    cr_assert_eq(atomic_load(&u->response.sum_us), 2 * ROUNDS * 700);
    cr_assert_eq(atomic_load(&u->in_flight), 0);
    cr_assert_eq(atomic_load(&u->ejections), 1, "one window, one ejection");
    cr_assert_eq(count(log, "is down for"), 1, "logged by one worker: %s", log);
    close(go[0]);
    close(go[1]);
}

Test(upstate, requests_in_flight_in_a_worker_that_died_are_taken_back)
{
    struct upstate *u = serving("api http://a", 0);
    int go[2], status;
    pid_t a;

    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(upstate_inflight_inc(u), 1, "the master's own (a test's)");
    a = worker(u, 7, go[0], 5);
    cr_assert_eq(write(go[1], "g", 1), 1);
    cr_assert_eq(waitpid(a, &status, 0), a);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(atomic_load(&u->in_flight), 6);
    upstate_worker_gone(7, a);
    cr_assert_eq(atomic_load(&u->in_flight), 1);
    upstate_worker_gone(7, a); /* twice: nothing more */
    cr_assert_eq(atomic_load(&u->in_flight), 1);
    close(go[0]);
    close(go[1]);
}

/* ---- what percore -s status says ---- */

Test(upstate, status_lines)
{
    struct upstate *u = serving("api http://10.0.0.1:8080", 1);
    time_t wall = 1700000000;
    char line[512], want[512], t[32], t2[32];
    struct tm tm;
    time_t at;

    /* now is 100 s after the checks took it down. */
    check(u, UPSTATE_CONNECT_REFUSED, ECONNREFUSED, 900000);
    check(u, UPSTATE_CONNECT_REFUSED, ECONNREFUSED, 1000000);
    upstate_describe(u, 1100000, wall * 1000, line, sizeof(line));
    at = wall - 100;
    strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", localtime_r(&at, &tm));
    snprintf(want, sizeof(want), "upstream api server http://10.0.0.1:8080: down since %s "
             "(health check: connection refused)", t);
    cr_assert_str_eq(line, want);

    for (int i = 0; i < 3; i++)
        check(u, UPSTATE_OK, 200, 1100000);
    for (int i = 0; i < 3; i++)
        upstate_report(u, &pol, UPSTATE_STATUS, UPSTATE_NONE, 10, 502, 1100000);
    upstate_inflight_inc(u);
    upstate_describe(u, 1105000, wall * 1000, line, sizeof(line));
    at = wall - 5;
    strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", localtime_r(&at, &tm));
    at = wall + 5;
    strftime(t2, sizeof(t2), "%Y-%m-%d %H:%M:%S", localtime_r(&at, &tm));
    snprintf(want, sizeof(want), "upstream api server http://10.0.0.1:8080: down since %s "
             "until %s (ejected after failed requests, the last: status 502), 1 in flight",
             t, t2);
    cr_assert_str_eq(line, want);

    upstate_describe(u, 1120000, wall * 1000, line, sizeof(line));
    at = wall - 10;
    strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", localtime_r(&at, &tm));
    snprintf(want, sizeof(want), "upstream api server http://10.0.0.1:8080: up since %s, "
             "1 in flight", t);
    cr_assert_str_eq(line, want);
}

/* What the client reads of one ctl_reply of text. */
static size_t
through_the_control_socket(const char *text, char *got, size_t len)
{
    int sv[2];
    size_t n = 0;
    ssize_t r;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ctl_reply(sv[0], text);
    close(sv[0]);
    while (n < len && (r = read(sv[1], got + n, len - n)) > 0)
        n += (size_t)r;
    close(sv[1]);
    return n;
}

Test(upstate, the_status_of_a_thousand_servers_reaches_the_client_whole)
{
    static char text[CTL_REPLY_MAX], got[2 * CTL_REPLY_MAX];
    char key[UPSTATE_KEY_MAX];
    size_t n;

    cr_assert_eq(upstate_status_text(0, 0, text, sizeof(text)), 0);
    cr_assert_str_eq(text, "");
    for (int i = 0; i < UPSTATE_CONF_MAX; i++) {
        snprintf(key, sizeof(key), "api http://10.0.%d.%d:8080", i / 256, i % 256);
        cr_assert_geq(upstate_register(key, 0), 0);
    }
    upstate_commit(1);
    n = upstate_status_text(util_now_ms(), (int64_t)time(NULL) * 1000, text, sizeof(text));
    cr_assert_eq(count(text, "\n"), UPSTATE_CONF_MAX - 1, "a line each");
    cr_assert_eq(strncmp(text, "upstream api server http://10.0.0.0:8080: up since ", 51), 0,
                 "%.80s", text);
    cr_assert_eq(through_the_control_socket(text, got, sizeof(got)), n + 1);
    cr_assert_eq(memcmp(got, text, n), 0);

    /* Keys of the longest, after a config without servers: not all fit; those left out
     * are counted. */
    upstate_commit(1);
    for (int i = 0; i < UPSTATE_CONF_MAX; i++) {
        memset(key, 'x', sizeof(key));
        snprintf(key, 32, "api http://%d/", i);
        key[strlen(key)] = 'x';
        key[UPSTATE_KEY_MAX - 1] = '\0';
        cr_assert_geq(upstate_register(key, 0), 0);
    }
    upstate_commit(1);
    n = upstate_status_text(util_now_ms(), (int64_t)time(NULL) * 1000, text, sizeof(text));
    cr_assert_leq(n, CTL_REPLY_MAX - 1);
    cr_assert_gt(n, CTL_REPLY_MAX - 400, "as full as it gets");
    cr_assert_not_null(strstr(text, " more upstream servers"));
    cr_assert_eq(through_the_control_socket(text, got, sizeof(got)), n + 1,
                 "one write, whole");
}

/* ---- the metrics ---- */

static char *
exposition(void)
{
    static struct out o;

    free(o.buf);
    o = (struct out){xmalloc(OUT_START), 0, OUT_START};
    put_upstreams(&o);
    o.buf[o.len] = '\0'; /* put leaves room for it */
    return o.buf;
}

static void
has(const char *text, const char *line)
{
    char want[1024];

    snprintf(want, sizeof(want), "\n%s\n", line);
    cr_assert_not_null(strstr(text, want), "'%s' in:\n%s", line, text);
}

Test(upstate, metrics_of_the_serving_config_s_servers)
{
    struct upstate *a, *b;
    char *text;

    cr_assert_str_eq(exposition(), "", "nothing without servers");
    a = upstate_get(upstate_register("api http://10.0.0.1:8080", 0));
    b = upstate_get(upstate_register("odd \"q\\\nx", 0));
    upstate_register("old http://gone", 0);
    upstate_commit(1);
    upstate_register("api http://10.0.0.1:8080", 0);
    upstate_register("odd \"q\\\nx", 0);
    upstate_commit(1);
    pol.max_fails = 1;
    upstate_report(a, &pol, UPSTATE_OK, 300, 1200, 200, util_now_ms());
    upstate_report(a, &pol, UPSTATE_OK, UPSTATE_NONE, 40000, 200, util_now_ms());
    upstate_report(b, &pol, UPSTATE_CONNECT_REFUSED, UPSTATE_NONE, UPSTATE_NONE, 0,
                   util_now_ms());
    upstate_count_retry(a);
    upstate_inflight_inc(a);
    text = exposition();
    cr_assert_null(strstr(text, "gone"), "only current servers");
    has(text, "# TYPE percore_upstream_up gauge");
    has(text, "percore_upstream_up{upstream=\"api\",server=\"http://10.0.0.1:8080\"} 1");
    has(text, "percore_upstream_up{upstream=\"odd\",server=\"\\\"q\\\\\\nx\"} 0");
    has(text, "percore_upstream_requests_total{upstream=\"api\",server=\"http://10.0.0.1:8080\"} 2");
    has(text, "percore_upstream_responses_total{upstream=\"api\",server=\"http://10.0.0.1:8080\","
              "class=\"2xx\"} 2");
    has(text, "percore_upstream_responses_total{upstream=\"api\",server=\"http://10.0.0.1:8080\","
              "class=\"5xx\"} 0");
    has(text, "percore_upstream_errors_total{upstream=\"odd\",server=\"\\\"q\\\\\\nx\","
              "kind=\"connect_refused\"} 1");
    has(text, "percore_upstream_errors_total{upstream=\"api\",server=\"http://10.0.0.1:8080\","
              "kind=\"retry_status\"} 0");
    has(text, "percore_upstream_retries_total{upstream=\"api\",server=\"http://10.0.0.1:8080\"} 1");
    has(text, "percore_upstream_in_flight{upstream=\"api\",server=\"http://10.0.0.1:8080\"} 1");
    has(text, "# TYPE percore_upstream_connect_seconds histogram");
    has(text, "percore_upstream_connect_seconds_bucket{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\",le=\"0.00025\"} 0");
    has(text, "percore_upstream_connect_seconds_bucket{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\",le=\"0.0005\"} 1");
    has(text, "percore_upstream_connect_seconds_count{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\"} 1");
    has(text, "percore_upstream_response_seconds_bucket{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\",le=\"0.0025\"} 1");
    has(text, "percore_upstream_response_seconds_bucket{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\",le=\"0.05\"} 2");
    has(text, "percore_upstream_response_seconds_bucket{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\",le=\"+Inf\"} 2");
    has(text, "percore_upstream_response_seconds_sum{upstream=\"api\","
              "server=\"http://10.0.0.1:8080\"} 0.041200");
    cr_assert_eq(count(text, "# TYPE"), 8, "each family once");
}
