/* Loop lag and route CPU time (src/looplag.c): a callback's time goes to its own route and
 * not to the one it runs inside of; the slot names the callback running now; a turn is
 * timed from the epoll_wait hook; time spent off the CPU is scaled away, and a turn made
 * slow by it is not logged. Work is measured in the thread's CPU time, which bounds the
 * counters from below, and the test's own clock bounds them from above, so a loaded
 * machine cannot fail them. */
#include "../../src/looplag.c"

#include <criterion/criterion.h>
#include <unistd.h>

#include "metrics.h"

static struct metrics_slot *slot;
static h2o_pathconf_t pc_a, pc_b, pc_dispatch;
static struct conf_route route = {.hnd = &hnd_respond_ops};
static int lines;

static int
count_line(void)
{
    lines++;
    return 1;
}

static void
setup(void)
{
    slot = calloc(1, sizeof(*slot));
    cr_assert_not_null(slot);
    looplag_init(slot, 10, count_line);
    looplag_register(&pc_a, "s", &route, "/a/", 0);
    looplag_register(&pc_b, "s", &route, "/b/", 1);
}

static void
teardown(void)
{
    free(slot);
}

/* Spend ms of the thread's CPU time: as much wall time or more, whatever the load. */
static void
spin_ms(int ms)
{
    uint64_t until = thread_cpu_ns() + (uint64_t)ms * 1000000;

    while (thread_cpu_ns() < until)
        ;
}

static h2o_req_t *
new_req(h2o_pathconf_t *pc)
{
    h2o_req_t *req = calloc(1, sizeof(*req));

    cr_assert_not_null(req);
    req->pathconf = pc;
    return req;
}

TestSuite(looplag, .init = setup, .fini = teardown);

Test(looplag, inner_callback_time_is_its_own)
{
    h2o_req_t *a = new_req(&pc_a), *b = new_req(&pc_b);
    struct looplag_scope sa, sb;
    int64_t t0, t1, in0, in1;

    t0 = mono_ns();
    looplag_enter(&sa, a);
    spin_ms(3);
    in0 = mono_ns();
    looplag_enter(&sb, b);
    cr_assert_str_eq(slot->busy_desc, "service 's' route '/b/' (respond)");
    cr_assert_eq(atomic_load(&slot->busy_routed), 1);
    cr_assert_geq(atomic_load(&slot->busy_since_ns), in0);
    spin_ms(5);
    looplag_leave(&sb);
    in1 = mono_ns();
    cr_assert_str_eq(slot->busy_desc, "service 's' route '/a/' (respond)");
    /* Since the outer callback's entry, not since the inner one left. */
    cr_assert_geq(atomic_load(&slot->busy_since_ns), t0);
    cr_assert_leq(atomic_load(&slot->busy_since_ns), in0);
    spin_ms(2);
    looplag_leave(&sa);
    t1 = mono_ns();
    cr_assert_eq(atomic_load(&slot->busy_since_ns), 0, "no callback runs");
    looplag_fold();
    uint64_t ra = atomic_load(&slot->c.route_cpu_ns[0]), rb = atomic_load(&slot->c.route_cpu_ns[1]);
    /* No turn was counted: no scale, the wall time as it is. */
    cr_assert_geq(rb, 5000000, "%llu", (unsigned long long)rb);
    cr_assert_leq(rb, (uint64_t)(in1 - in0));
    cr_assert_geq(ra, 5000000, "%llu", (unsigned long long)ra);
    cr_assert_leq(ra + rb, (uint64_t)(t1 - t0));
    cr_assert_neq(atomic_load(&slot->cpu_ns), 0, "the heartbeat publishes the CPU time");
    free(a);
    free(b);
}

static int
route_to_a(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    cr_assert_eq(atomic_load(&slot->busy_routed), 0, "routing: no route to name yet");
    cr_assert_neq(atomic_load(&slot->busy_since_ns), 0);
    looplag_route(req, &pc_a);
    cr_assert_eq(atomic_load(&slot->busy_routed), 1);
    cr_assert_str_eq(slot->busy_desc, "service 's' route '/a/' (respond)");
    spin_ms(2);
    return 0;
}

Test(looplag, the_router_scope_takes_its_route)
{
    h2o_req_t *req = new_req(&pc_dispatch);

    h2o_mem_init_pool(&req->pool);
    cr_assert_eq(looplag_on_req(NULL, req, route_to_a), 0);
    cr_assert_eq(atomic_load(&slot->busy_since_ns), 0);
    /* Its callback took over a millisecond of the turn, with slow_turn on: the record of
     * the turn has the request's ID, made while the request was sure to be there. */
    cr_assert_eq(strlen(lag.holder.id), 32);
    cr_assert_str_eq(lag.holder.id, reqdata_request_id(req));
    looplag_fold();
    cr_assert_geq(atomic_load(&slot->c.route_cpu_ns[0]), 2000000);
    cr_assert_eq(atomic_load(&slot->c.route_cpu_ns[1]), 0);
    h2o_mem_clear_pool(&req->pool);
    free(req);
}

/* One loop turn: the hook armed, a poll that returns at once, then work. */
static void
turn(void (*work)(int), int ms)
{
    struct epoll_event ev;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    cr_assert_neq(ep, -1);
    looplag_turn_begin();
    cr_assert_eq(epoll_wait(ep, &ev, 1, 0), 0);
    work(ms);
    looplag_turn_end();
    close(ep);
}

Test(looplag, a_turn_is_timed_from_the_poll)
{
    uint64_t n = 0;

    turn(spin_ms, 3);
    cr_assert_eq(atomic_load(&slot->c.lag_count), 1);
    cr_assert_geq(atomic_load(&slot->c.lag_sum_us), 3000);
    for (int b = 0; b < METRICS_LAG_BUCKETS; b++) {
        n += atomic_load(&slot->c.lag_buckets[b]);
        if (atomic_load(&slot->c.lag_buckets[b]) == 1) {
            cr_assert_geq(metrics_lag_bucket_us[b], atomic_load(&slot->c.lag_sum_us));
            cr_assert(b == 0 || metrics_lag_bucket_us[b - 1] < atomic_load(&slot->c.lag_sum_us));
        }
    }
    cr_assert_leq(n, 1, "one bucket, or none past the last");
    /* A loop that never polled (the hook not bound) counts nothing. */
    looplag_turn_begin();
    looplag_turn_end();
    cr_assert_eq(atomic_load(&slot->c.lag_count), 1);
}

static void
sleep_in_a(int ms)
{
    h2o_req_t *a = new_req(&pc_a);
    struct looplag_scope s;
    struct timespec ts = {0, (long)ms * 1000000};

    looplag_enter(&s, a);
    while (nanosleep(&ts, &ts) == -1)
        ;
    looplag_leave(&s);
    free(a);
}

static void
spin_in_b(int ms)
{
    h2o_req_t *b = new_req(&pc_b);
    struct looplag_scope s;

    looplag_enter(&s, b);
    spin_ms(ms);
    looplag_leave(&s);
    free(b);
}

Test(looplag, time_off_the_cpu_is_not_counted)
{
    /* 30 ms asleep in a callback stands for 30 ms of waiting for the CPU: the turn is past
     * slow_turn (10 ms) in wall time, not in CPU time. */
    turn(sleep_in_a, 30);
    cr_assert_lt(atomic_load(&slot->c.route_cpu_ns[0]), 10000000, "%llu",
                 (unsigned long long)atomic_load(&slot->c.route_cpu_ns[0]));
    cr_assert_eq(lines, 0, "a turn made long off the CPU is not logged");
    /* 30 ms on the CPU is. */
    turn(spin_in_b, 30);
    cr_assert_geq(atomic_load(&slot->c.route_cpu_ns[1]), 15000000, "%llu",
                  (unsigned long long)atomic_load(&slot->c.route_cpu_ns[1]));
    cr_assert_eq(lines, 1, "a turn long on the CPU is logged");
}
