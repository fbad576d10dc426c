/* Where a worker's event loop spends its time (run by workers only).
 *
 * A loop turn's busy time runs from the moment epoll_wait returns to the end of the turn's
 * callbacks. libh2o 2.2.5 gives no hook at the wake-up: h2o_evloop_run polls, then runs the
 * callbacks, and its own exec_time_counter has gettimeofday's milliseconds. So percore
 * defines epoll_wait itself: the dynamic linker binds libh2o's call to the executable's
 * definition first, which makes the same system call (epoll_pwait with no signal mask is
 * epoll_wait) and then reads CLOCK_MONOTONIC once, only when the worker's loop armed it.
 * The end of the turn is one more read when h2o_evloop_run returns. Should the hook not be
 * bound (a libh2o with its own poller), turns are simply not counted.
 *
 * CPU time per route: reading CLOCK_THREAD_CPUTIME_ID is a system call (about 1.3 us),
 * too much twice per request. Each handler callback of a request instead reads
 * CLOCK_MONOTONIC at entry and exit (vDSO) and adds the wall time to its route; an inner
 * callback's time is its own, not its outer one's. On each heartbeat the worker reads its
 * thread CPU time once, and the routes' wall time since the last heartbeat is scaled by
 * (CPU time / busy wall time of the turns) over that period, at most 1: time the worker
 * spent preempted by other processes is not counted, and the routes' sum never exceeds
 * the worker's CPU time. What is measured is the handler code of a route (the router's
 * dispatch, the handler's on_req and the later callbacks of the proxy, FastCGI, module and
 * files handlers for the request), with the system calls they make; libh2o's own protocol
 * work around them (parsing, TLS, writes done after a callback returns) is not. Preemption
 * is assumed to fall evenly on a period's busy time.
 *
 * A slow turn (busy time at least slow_turn, and as much CPU time: the scale of the period
 * it ends, read then) logs the request whose callbacks held the loop longest in it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "conf.h"
#include "hnd.h"
#include "log.h"
#include "looplag.h"
#include "metrics.h"
#include "reqdata.h"
#include "util.h"

/* A callback's time of at least this long makes the slow-turn record take the request's
 * ID even when that means making it (rare: no request pays for it otherwise). */
#define HOLDER_ID_MIN_NS 1000000
/* A turn at least this busy ends a CPU-time period of its own (looplag_turn_end). */
#define FOLD_TURN_NS 10000000

/* What a pathconf's callbacks are counted and named as. */
struct looplag_tag {
    const h2o_pathconf_t *pc;
    int midx;      /* metrics route index, or -1 */
    int is_module; /* its code is a module's: the request ID is taken at once */
    char desc[METRICS_BUSY_DESC]; /* service 's' route '/x/' (module 'm') */
};

static struct {
    struct metrics_slot *slot; /* NULL: not initialised (unit tests, the fuzzer) */
    int64_t slow_turn_ns;      /* 0: off */
    int (*line_allowed)(void); /* the worker's rate limit of request error lines */
    /* Tags by pathconf: open addressing, a power of two kept at most half full. */
    struct looplag_tag **tags;
    size_t ntags, cap;
    struct looplag_scope *cur; /* the callback running now */
    const struct looplag_tag *published; /* whose desc the slot has, or NULL */
    /* The turn: armed before h2o_evloop_run; wake_ns set by epoll_wait's return. */
    int armed;
    int64_t wake_ns;
    int64_t acc_from_ns; /* its busy time before this went to the period already */
    /* The request whose callbacks took longest in this turn so far. */
    struct {
        const h2o_req_t *req;
        const struct looplag_tag *tag;
        int64_t ns;
        char id[REQTRACE_ID_MAX + 1];
    } holder;
    /* Since the last fold: the turns' busy time and each route's callbacks' wall time. */
    int64_t period_busy_ns;
    uint64_t cpu_ns; /* the thread's CPU time at the last fold */
    uint64_t route_wall_ns[METRICS_MAX_ROUTES];
} lag;

static inline int64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
thread_cpu_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
        return lag.cpu_ns;
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* The worker's slot is written by the worker alone (see metrics.c). */
static inline void
bump(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

int
epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    /* cppcheck-suppress nullPointer ; a NULL signal mask is epoll_pwait(2)'s epoll_wait */
    int n = epoll_pwait(epfd, events, maxevents, timeout, NULL);

    if (lag.armed) {
        lag.armed = 0;
        lag.wake_ns = mono_ns(); /* vDSO: errno is left as the poll set it */
        lag.acc_from_ns = lag.wake_ns;
    }
    return n;
}

void
looplag_init(struct metrics_slot *slot, int64_t slow_turn_ms, int (*line_allowed)(void))
{
    lag.slot = slot;
    lag.line_allowed = line_allowed;
    lag.slow_turn_ns = slow_turn_ms * 1000000;
    lag.cpu_ns = thread_cpu_ns();
    atomic_store_explicit(&slot->cpu_ns, lag.cpu_ns, memory_order_relaxed);
}

static size_t
tag_slot(const h2o_pathconf_t *pc)
{
    uintptr_t h = (uintptr_t)pc;

    h ^= h >> 17;
    h *= (uintptr_t)0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 7) & (lag.cap - 1);
}

static void
tag_put(struct looplag_tag *t)
{
    size_t i = tag_slot(t->pc);

    while (lag.tags[i] != NULL)
        i = (i + 1) & (lag.cap - 1);
    lag.tags[i] = t;
}

static const struct looplag_tag *
tag_find(const h2o_pathconf_t *pc)
{
    if (lag.ntags == 0 || pc == NULL)
        return NULL;
    for (size_t i = tag_slot(pc); lag.tags[i] != NULL; i = (i + 1) & (lag.cap - 1))
        if (lag.tags[i]->pc == pc)
            return lag.tags[i];
    return NULL;
}

void
looplag_register(h2o_pathconf_t *pc, const char *service, const struct conf_route *r,
                 const char *label, int midx)
{
    struct looplag_tag *t = xcalloc(1, sizeof(*t));

    t->pc = pc;
    t->midx = midx;
    t->is_module = r->hnd == &hnd_module_ops;
    if (t->is_module)
        snprintf(t->desc, sizeof(t->desc), "service '%s' route '%s' (module '%s')", service,
                 label, hnd_module_name(r->hnd_conf));
    else
        snprintf(t->desc, sizeof(t->desc), "service '%s' route '%s' (%s)", service, label,
                 r->hnd->name);
    if ((lag.ntags + 1) * 2 > lag.cap) {
        struct looplag_tag **old = lag.tags;
        size_t n = lag.cap;
        lag.cap = lag.cap == 0 ? 64 : lag.cap * 2;
        lag.tags = xcalloc(lag.cap, sizeof(*lag.tags));
        for (size_t i = 0; i < n; i++)
            if (old[i] != NULL)
                tag_put(old[i]);
        free(old);
    }
    tag_put(t);
    lag.ntags++;
}

/* ---- the callback running now, in the shared slot ---- */

_Static_assert(METRICS_REQUEST_ID_MAX == REQTRACE_ID_MAX, "the slot holds any request ID");

/* id, cut to fit dst (of cap bytes), always terminated. */
static void
copy_id(char *dst, size_t cap, const char *id)
{
    size_t n = strnlen(id, cap - 1);

    memcpy(dst, id, n);
    dst[n] = '\0';
}

/* The request's ID when it has one already (no new per-request record for it). req is
 * only a key here, never read: it may be a request its callback has just ended. */
static const char *
known_id(h2o_req_t *req)
{
    struct reqdata *rd = reqdata_find(req);

    return rd != NULL && rd->request_id[0] != '\0' ? rd->request_id : NULL;
}

static void
publish(const struct looplag_scope *s)
{
    struct metrics_slot *m = lag.slot;
    const char *id;

    if (m == NULL)
        return;
    if (s == NULL) {
        atomic_store_explicit(&m->busy_since_ns, 0, memory_order_relaxed);
        return;
    }
    /* The router's scope starts unrouted: the description stays for the next request of
     * the same route, which then costs no copy. */
    atomic_store_explicit(&m->busy_routed, s->tag != NULL, memory_order_relaxed);
    if (s->tag != NULL && s->tag != lag.published) {
        lag.published = s->tag;
        memcpy(m->busy_desc, s->tag->desc, strlen(s->tag->desc) + 1);
    }
    id = known_id(s->req);
    if (id != NULL)
        copy_id(m->busy_request_id, sizeof(m->busy_request_id), id);
    else
        m->busy_request_id[0] = '\0';
    atomic_store_explicit(&m->busy_since_ns, s->entry_ns, memory_order_relaxed);
}

/* s's callbacks ran ns more (until now): to its route, and to the turn's record. */
static void
charge(struct looplag_scope *s, int64_t ns)
{
    const char *id;

    if (s->tag != NULL && s->tag->midx >= 0)
        lag.route_wall_ns[s->tag->midx] += (uint64_t)ns;
    if (s->req == lag.holder.req && s->tag == lag.holder.tag) {
        lag.holder.ns += ns;
    } else if (ns > lag.holder.ns) {
        lag.holder.req = s->req;
        lag.holder.tag = s->tag;
        lag.holder.ns = ns;
        lag.holder.id[0] = '\0';
    } else {
        return;
    }
    /* Only the slow-turn line needs it, and the request may be gone by the turn's end. */
    if (lag.holder.id[0] != '\0' || lag.slow_turn_ns == 0 || lag.holder.ns < HOLDER_ID_MIN_NS)
        return;
    id = s->req_outlives ? reqdata_request_id(s->req) : known_id(s->req);
    if (id != NULL)
        copy_id(lag.holder.id, sizeof(lag.holder.id), id);
}

void
looplag_enter(struct looplag_scope *s, h2o_req_t *req)
{
    int64_t now = mono_ns();

    if (lag.cur != NULL) {
        charge(lag.cur, now - lag.cur->since_ns);
        lag.cur->since_ns = now;
    }
    s->tag = tag_find(req->pathconf);
    s->req = req;
    s->outer = lag.cur;
    s->entry_ns = now;
    s->since_ns = now;
    s->req_outlives = 0;
    lag.cur = s;
    /* A module's code is the one that may never return: its request gets its ID now, so
     * that the master can name it. Others show it when they have one. */
    if (s->tag != NULL && s->tag->is_module)
        (void)reqdata_request_id(req);
    publish(s);
}

void
looplag_leave(struct looplag_scope *s)
{
    int64_t now = mono_ns();

    charge(s, now - s->since_ns);
    lag.cur = s->outer;
    if (lag.cur != NULL)
        lag.cur->since_ns = now;
    publish(lag.cur);
}

void
looplag_route(h2o_req_t *req, h2o_pathconf_t *pc)
{
    struct looplag_scope *s = lag.cur;

    if (s == NULL || s->req != req)
        return;
    s->tag = tag_find(pc);
    if (s->tag != NULL && s->tag->is_module)
        (void)reqdata_request_id(req);
    publish(s);
}

int
looplag_on_req(h2o_handler_t *self, h2o_req_t *req, int (*on_req)(h2o_handler_t *, h2o_req_t *))
{
    struct looplag_scope s;
    int rc;

    looplag_enter(&s, req);
    /* libh2o's caller goes on using req after on_req returns. */
    s.req_outlives = 1;
    rc = on_req(self, req);
    looplag_leave(&s);
    return rc;
}

/* ---- turns, and the fold of wall time into CPU time ---- */

/* Ends the period at now: the routes' wall time since the last fold becomes CPU time in
 * the slot. Returns the period's scale (CPU time / busy time, at most 1). */
static double
fold_at(int64_t now)
{
    uint64_t cpu = thread_cpu_ns();
    double scale = 1.0;

    if (lag.slot == NULL)
        return scale;
    if (lag.wake_ns != 0) {
        lag.period_busy_ns += now - lag.acc_from_ns;
        lag.acc_from_ns = now;
    }
    if (lag.period_busy_ns > 0 && (double)(cpu - lag.cpu_ns) < (double)lag.period_busy_ns)
        scale = (double)(cpu - lag.cpu_ns) / (double)lag.period_busy_ns;
    for (int i = 0; i < METRICS_MAX_ROUTES; i++) {
        if (lag.route_wall_ns[i] == 0)
            continue;
        bump(&lag.slot->c.route_cpu_ns[i], (uint64_t)((double)lag.route_wall_ns[i] * scale));
        lag.route_wall_ns[i] = 0;
    }
    lag.period_busy_ns = 0;
    lag.cpu_ns = cpu;
    atomic_store_explicit(&lag.slot->cpu_ns, cpu, memory_order_relaxed);
    return scale;
}

void
looplag_fold(void)
{
    int64_t now = mono_ns();

    /* A callback under way has its time so far counted in this period. */
    if (lag.cur != NULL) {
        charge(lag.cur, now - lag.cur->since_ns);
        lag.cur->since_ns = now;
    }
    (void)fold_at(now);
}

void
looplag_turn_begin(void)
{
    lag.armed = 1;
    lag.wake_ns = 0;
    /* Even after a turn that went uncounted: the record is of one turn. */
    memset(&lag.holder, 0, sizeof(lag.holder));
}

static void
log_slow_turn(int64_t busy, double scale)
{
    const struct looplag_tag *t = lag.holder.tag;

    if (!lag.line_allowed())
        return;
    if (lag.holder.ns == 0) {
        log_warnx("slow event loop turn: %.1f ms busy (%.1f ms on the CPU), in no handler's "
                  "callback", busy / 1e6, busy * scale / 1e6);
        return;
    }
    /* "request ID: " before it, and REQUEST_ID= in the journal, when the request has one. */
    log_req_warnx(lag.holder.id[0] != '\0' ? lag.holder.id : NULL, NULL,
                  "slow event loop turn: %.1f ms busy (%.1f ms on the CPU); %.1f ms of it in "
                  "callbacks of %s", busy / 1e6, busy * scale / 1e6, lag.holder.ns / 1e6,
                  t != NULL ? t->desc : "a request not routed yet");
}

void
looplag_turn_end(void)
{
    int64_t now, busy;
    uint64_t us;
    size_t b = 0;

    lag.armed = 0;
    if (lag.wake_ns == 0 || lag.slot == NULL)
        return;
    now = mono_ns();
    busy = now - lag.wake_ns;
    us = (uint64_t)busy / 1000;
    while (b < METRICS_LAG_BUCKETS && us > metrics_lag_bucket_us[b])
        b++;
    if (b < METRICS_LAG_BUCKETS)
        bump(&lag.slot->c.lag_buckets[b], 1);
    bump(&lag.slot->c.lag_count, 1);
    bump(&lag.slot->c.lag_sum_us, us);
    lag.period_busy_ns += now - lag.acc_from_ns;
    /* A long turn ends a period of its own: its scale is then mostly its own (the CPU
     * read costs next to nothing beside such a turn), and tells whether the worker was
     * busy or waited for the CPU: another process must not make slow_turn log. */
    if (busy >= FOLD_TURN_NS || (lag.slow_turn_ns > 0 && busy >= lag.slow_turn_ns)) {
        double scale;
        lag.acc_from_ns = now;
        scale = fold_at(now);
        if (lag.slow_turn_ns > 0 && (double)busy * scale >= (double)lag.slow_turn_ns)
            log_slow_turn(busy, scale);
    }
    lag.wake_ns = 0;
}
