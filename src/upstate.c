/* Upstream servers' shared health and counters (mapped by the master, changed by workers
 * with atomics only). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "heritage.h"
#include "log.h"
#include "upstate.h"
#include "util.h"

const uint32_t upstate_bucket_us[UPSTATE_BUCKETS] = {
    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *const upstate_result_names[UPSTATE_RESULT_MAX] = {
    [UPSTATE_OK] = "ok",
    [UPSTATE_ABORTED] = "aborted",
    [UPSTATE_CONNECT_REFUSED] = "connect_refused",
    [UPSTATE_CONNECT_FAILED] = "connect_failed",
    [UPSTATE_CONNECT_TIMEOUT] = "connect_timeout",
    [UPSTATE_RESPONSE_TIMEOUT] = "response_timeout",
    [UPSTATE_CLOSED] = "closed",
    [UPSTATE_INVALID] = "invalid_response",
    [UPSTATE_TLS] = "tls",
    [UPSTATE_STATUS] = "retry_status",
};

struct upstate_region {
    _Atomic unsigned nrecs; /* records handed out so far; those past it are all zero */
    struct upstate recs[UPSTATE_MAX];
    /* Each worker slot's share of every record's in_flight, written by that worker only:
     * what the master takes back when the worker dies with requests in flight. */
    _Atomic int32_t inflight[UPSTATE_WORKER_SLOTS][UPSTATE_MAX];
};

/* This process's way to the region: the master's own mapping; a worker's, inherited by
 * fork, set again by upstate_attach from its heritage. */
static struct upstate_region *region;
static _Atomic int32_t *my_inflight; /* a worker's row of region->inflight */

/* Master only: the registrations of the config loaded last, until it is committed or
 * discarded. */
#define P_REGISTERED 0x1
#define P_CHECKED 0x2
static unsigned char pending[UPSTATE_MAX];
static size_t npending;
/* Master: the last generation whose config had each record, and the oldest running. */
static unsigned last_gen[UPSTATE_MAX];
static unsigned oldest_gen;

/* The passive window: its start (ms) and its count of failures in one word, so that one
 * compare-exchange moves both. */
#define WIN_COUNT_BITS 20
#define WIN_COUNT_MAX ((1u << WIN_COUNT_BITS) - 1)
#define WIN(start, n) ((uint64_t)(start) << WIN_COUNT_BITS | (n))
#define WIN_START(w) ((int64_t)((w) >> WIN_COUNT_BITS))
#define WIN_COUNT(w) ((unsigned)((w) & WIN_COUNT_MAX))

/* The lease: the holder's pid (below 2^22, Linux's PID_MAX_LIMIT) and its expiry (ms). */
#define LEASE_EXP_BITS 42
#define LEASE_EXP_MASK ((UINT64_C(1) << LEASE_EXP_BITS) - 1)
#define LEASE(pid, exp) ((uint64_t)(pid) << LEASE_EXP_BITS | ((uint64_t)(exp) & LEASE_EXP_MASK))
#define LEASE_PID(l) ((pid_t)((l) >> LEASE_EXP_BITS))
#define LEASE_EXP(l) ((int64_t)((l) & LEASE_EXP_MASK))

#define RELAXED memory_order_relaxed

static inline void
add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add_explicit(v, n, RELAXED);
}

void
upstate_policy_init(struct upstate_policy *p)
{
    *p = (struct upstate_policy){
        .max_fails = UPSTATE_DEFAULT_MAX_FAILS,
        .fail_timeout_ms = UPSTATE_DEFAULT_FAIL_TIMEOUT_MS,
        .check = {
            .path = NULL,
            .interval_ms = UPSTATE_DEFAULT_CHECK_INTERVAL_MS,
            .timeout_ms = UPSTATE_DEFAULT_CHECK_TIMEOUT_MS,
            .fall = UPSTATE_DEFAULT_FALL,
            .rise = UPSTATE_DEFAULT_RISE,
            .status_min = UPSTATE_DEFAULT_STATUS_MIN,
            .status_max = UPSTATE_DEFAULT_STATUS_MAX,
        },
    };
}

/* ---- master ---- */

struct upstate_region *
upstate_init(void)
{
    ASSERT_MASTER();
    if (region != NULL)
        return region;
    region = mmap(NULL, sizeof(*region), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
    if (region == MAP_FAILED)
        fatal("mmap of the upstream servers' region (%zu bytes)", sizeof(*region));
    return region;
}

static int
find(const char *key)
{
    unsigned n = atomic_load(&region->nrecs);

    for (unsigned i = 0; i < n; i++)
        if (region->recs[i].key[0] != '\0' && strcmp(region->recs[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* A record for a new key: one never used, else one that neither the config being loaded
 * nor that of any generation still running has (workers of a draining generation still
 * write theirs). -1 if none. */
static int
make(const char *key, size_t len)
{
    unsigned n = atomic_load(&region->nrecs);
    int idx = -1;
    struct upstate *u;

    if (n < UPSTATE_MAX) {
        idx = (int)n;
        atomic_store(&region->nrecs, n + 1);
    } else {
        for (unsigned i = 0; i < n && idx == -1; i++)
            if (!(atomic_load(&region->recs[i].flags) & UPSTATE_F_CURRENT) && pending[i] == 0 &&
                last_gen[i] < oldest_gen)
                idx = (int)i;
        if (idx == -1)
            return -1;
    }
    u = &region->recs[idx];
    memset(u, 0, sizeof(*u));
    memcpy(u->key, key, len + 1);
    atomic_store(&u->since_ms, util_now_ms());
    return idx;
}

int
upstate_register(const char *key, int checked)
{
    size_t len = strlen(key);
    int idx;

    ASSERT_MASTER(); /* the only writer of keys */
    if (len == 0 || len >= UPSTATE_KEY_MAX) {
        errno = len == 0 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    upstate_init();
    idx = find(key);
    if (idx != -1 && pending[idx] != 0) {
        pending[idx] |= checked ? P_CHECKED : 0;
        return idx;
    }
    if (npending >= UPSTATE_CONF_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (idx == -1)
        idx = make(key, len);
    if (idx == -1) {
        errno = ENOSPC;
        return -1;
    }
    pending[idx] = P_REGISTERED | (checked ? P_CHECKED : 0);
    npending++;
    return idx;
}

/* Record u no longer has active checks: their verdict goes with them. */
static void
unchecked(struct upstate *u, int current, int64_t now)
{
    char buf[UPSTATE_KEY_MAX];
    const char *up, *srv;

    atomic_store(&u->lease, 0);
    atomic_store(&u->checks_ok, 0);
    atomic_store(&u->checks_failed, 0);
    if (atomic_exchange(&u->down, 0)) {
        atomic_store(&u->since_ms, now);
        if (current) {
            upstate_names(u, buf, sizeof(buf), &up, &srv);
            log_info("upstream '%s' server '%s' has no health checks any more: up", up, srv);
        }
    }
}

void
upstate_set_oldest(unsigned gen)
{
    ASSERT_MASTER();
    oldest_gen = gen;
}

void
upstate_commit(unsigned gen)
{
    int64_t now = util_now_ms();
    unsigned n;

    ASSERT_MASTER();
    if (region == NULL)
        return;
    n = atomic_load(&region->nrecs);
    for (unsigned i = 0; i < n; i++) {
        struct upstate *u = &region->recs[i];
        unsigned was = atomic_load(&u->flags), is = 0;

        if (pending[i] & P_REGISTERED) {
            is = UPSTATE_F_CURRENT | (pending[i] & P_CHECKED ? UPSTATE_F_CHECKED : 0);
            last_gen[i] = gen;
        }
        if ((was & UPSTATE_F_CHECKED) && !(is & UPSTATE_F_CHECKED))
            unchecked(u, is & UPSTATE_F_CURRENT, now);
        atomic_store_explicit(&u->flags, is, memory_order_release);
        pending[i] = 0;
    }
    npending = 0;
}

void
upstate_discard(void)
{
    ASSERT_MASTER();
    memset(pending, 0, sizeof(pending));
    npending = 0;
}

void
upstate_worker_gone(int slot, pid_t pid)
{
    unsigned n;

    ASSERT_MASTER();
    if (region == NULL)
        return;
    n = atomic_load(&region->nrecs);
    for (unsigned i = 0; i < n; i++) {
        /* Read first: no write (and no line taken from the workers) for a record the worker
         * never used. */
        if (slot >= 0 && slot < UPSTATE_WORKER_SLOTS && atomic_load(&region->inflight[slot][i])) {
            int32_t mine = atomic_exchange(&region->inflight[slot][i], 0);
            atomic_fetch_sub(&region->recs[i].in_flight, mine);
        }
        upstate_lease_drop(&region->recs[i], pid);
    }
}

/* The local time of monotonic time t, for the status. */
static void
when(int64_t t, int64_t now_ms, int64_t wall_ms, char *buf, size_t len)
{
    /* In milliseconds: the two clocks' offset is the same at every call, so is the second. */
    time_t at = (time_t)((wall_ms - (now_ms - t)) / 1000);
    struct tm tm;

    if (localtime_r(&at, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "?");
}

void
upstate_describe(const struct upstate *u_, int64_t now_ms, int64_t wall_ms, char *buf,
                 size_t len)
{
    struct upstate *u = (struct upstate *)u_; /* atomic loads take no const */
    char names[UPSTATE_KEY_MAX], t1[32], t2[32], why[64];
    const char *up, *srv;
    int64_t until = atomic_load(&u->down_until_ms), since = atomic_load(&u->since_ms);
    int64_t inflight = atomic_load(&u->in_flight);
    uint64_t last = atomic_load(&u->last_check);
    uint64_t cause = atomic_load(&u->eject_cause);
    int n;

    upstate_names(u, names, sizeof(names), &up, &srv);
    if (atomic_load(&u->down)) {
        when(since, now_ms, wall_ms, t1, sizeof(t1));
        upstate_check_why((enum upstate_result)(last >> 32), (int)(uint32_t)last, why,
                          sizeof(why));
        n = snprintf(buf, len, "upstream %s server %s: down since %s (health check: %s)", up,
                     srv, t1, why);
    } else if (until > now_ms) {
        when(atomic_load(&u->ejected_ms), now_ms, wall_ms, t1, sizeof(t1));
        when(until, now_ms, wall_ms, t2, sizeof(t2));
        upstate_check_why((enum upstate_result)(cause >> 32), (int)(uint32_t)cause, why,
                          sizeof(why));
        n = snprintf(buf, len, "upstream %s server %s: down since %s until %s (ejected "
                     "after failed requests, the last: %s)", up, srv, t1, t2, why);
    } else {
        when(until > since ? until : since, now_ms, wall_ms, t1, sizeof(t1));
        n = snprintf(buf, len, "upstream %s server %s: up since %s", up, srv, t1);
    }
    if (n >= 0 && (size_t)n < len && inflight > 0)
        snprintf(buf + n, len - (size_t)n, ", %lld in flight", (long long)inflight);
}

size_t
upstate_status_text(int64_t now_ms, int64_t wall_ms, char *buf, size_t len)
{
    char line[UPSTATE_KEY_MAX + 256];
    size_t n = 0, more = 0, room = len - 64; /* kept for the count */
    struct upstate *u;

    assert(len >= 128);
    buf[0] = '\0';
    for (int i = 0; i < UPSTATE_MAX; i++) {
        size_t l;
        if ((u = upstate_current(i)) == NULL)
            continue;
        upstate_describe(u, now_ms, wall_ms, line, sizeof(line));
        l = strlen(line);
        if (n + (n > 0) + l >= room) {
            more++;
            continue;
        }
        if (n > 0)
            buf[n++] = '\n';
        memcpy(buf + n, line, l + 1);
        n += l;
    }
    if (more > 0)
        n += (size_t)snprintf(buf + n, len - n, "%s... and %zu more upstream servers",
                              n > 0 ? "\n" : "", more);
    return n;
}

/* ---- workers ---- */

void
upstate_attach(struct upstate_region *r, int slot)
{
    ASSERT_WORKER();
    assert(r != NULL && slot >= 0 && slot < UPSTATE_WORKER_SLOTS);
    region = r;
    my_inflight = r->inflight[slot];
}

/* ---- any process ---- */

struct upstate *
upstate_get(int idx)
{
    assert(region != NULL && idx >= 0 && idx < UPSTATE_MAX);
    return &region->recs[idx];
}

struct upstate *
upstate_current(int idx)
{
    struct upstate *u;

    if (region == NULL || idx < 0 || (unsigned)idx >= atomic_load(&region->nrecs))
        return NULL;
    u = &region->recs[idx];
    if (!(atomic_load_explicit(&u->flags, memory_order_acquire) & UPSTATE_F_CURRENT))
        return NULL;
    return u;
}

void
upstate_names(const struct upstate *u, char *buf, size_t len, const char **upstream,
              const char **server)
{
    char *sp;

    /* Bounded: a record the master is making anew may be read half-written. */
    snprintf(buf, len, "%.*s", (int)strnlen(u->key, sizeof(u->key) - 1), u->key);
    sp = strchr(buf, ' ');
    *upstream = buf;
    *server = "";
    if (sp != NULL) {
        *sp = '\0';
        *server = sp + 1;
    }
}

int
upstate_usable(struct upstate *u, int64_t now_ms)
{
    return !atomic_load_explicit(&u->down, RELAXED) &&
           atomic_load_explicit(&u->down_until_ms, RELAXED) <= now_ms;
}

static void
observe(struct upstate_hist *h, uint64_t us)
{
    size_t b = 0;

    while (b < UPSTATE_BUCKETS && us > upstate_bucket_us[b])
        b++;
    if (b < UPSTATE_BUCKETS)
        add(&h->buckets[b], 1);
    add(&h->count, 1);
    add(&h->sum_us, us);
}

/* A span for the log: "60 s", or "1500 ms" when not whole seconds. */
static const char *
span_text(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%lld s", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lld ms", (long long)ms);
    return buf;
}

/* Take u out for fail_timeout unless it already is; the worker that does logs it. */
static void
eject(struct upstate *u, const struct upstate_policy *p, enum upstate_result r, int status,
      unsigned n, int64_t now)
{
    int64_t until = atomic_load(&u->down_until_ms);
    char buf[UPSTATE_KEY_MAX], why[64], span[32];
    const char *up, *srv;

    if (until > now || !atomic_compare_exchange_strong(&u->down_until_ms, &until,
                                                        now + p->fail_timeout_ms))
        return;
    atomic_store(&u->ejected_ms, now);
    atomic_store(&u->eject_cause, (uint64_t)r << 32 | (uint32_t)status);
    /* On probation once back: the window starts at its return and is full already. */
    atomic_store(&u->fails, WIN(now + p->fail_timeout_ms, p->max_fails));
    add(&u->ejections, 1);
    upstate_names(u, buf, sizeof(buf), &up, &srv);
    upstate_check_why(r, status, why, sizeof(why));
    span_text(p->fail_timeout_ms, span, sizeof(span));
    log_warnx("upstream '%s' server '%s' is down for %s: %u failed request%s within %s (the "
              "last: %s)", up, srv, span, n, n == 1 ? "" : "s", span, why);
}

static void
passive_fail(struct upstate *u, const struct upstate_policy *p, enum upstate_result r,
             int status, int64_t now)
{
    uint64_t old = atomic_load(&u->fails), new;

    if (now < 0)
        now = 0;
    do {
        int64_t start = WIN_START(old);
        unsigned n = WIN_COUNT(old);
        /* A window starts with a failure and lasts fail_timeout; after an ejection, its
         * start is the return, so failures while out (of requests sent before) count into
         * the probation. */
        if (n == 0 || now - start >= p->fail_timeout_ms)
            new = WIN(now, 1);
        else
            new = WIN(start, n < WIN_COUNT_MAX ? n + 1 : n);
    } while (!atomic_compare_exchange_weak(&u->fails, &old, new));
    if (WIN_COUNT(new) >= p->max_fails)
        eject(u, p, r, status, WIN_COUNT(new), now);
}

/* Failures below max_fails stay counted until their window ends (nginx); a success after
 * an ejection ends the probation, and the worker that sees it logs it. */
static void
passive_ok(struct upstate *u, const struct upstate_policy *p, int64_t now)
{
    uint64_t old = atomic_load(&u->fails);
    char buf[UPSTATE_KEY_MAX];
    const char *up, *srv;

    if (WIN_COUNT(old) < p->max_fails || now < atomic_load(&u->down_until_ms))
        return;
    if (!atomic_compare_exchange_strong(&u->fails, &old, 0))
        return;
    upstate_names(u, buf, sizeof(buf), &up, &srv);
    log_info("upstream '%s' server '%s' is back: a request succeeded after it was taken out", up,
             srv);
}

void
upstate_report(struct upstate *u, const struct upstate_policy *p, enum upstate_result r,
               uint64_t connect_us, uint64_t response_us, int status, int64_t now_ms)
{
    assert(r >= 0 && r < UPSTATE_RESULT_MAX);
    add(&u->requests, 1);
    if (status >= 100 && status < 600)
        add(&u->responses[status / 100 - 1], 1);
    if (r != UPSTATE_OK && r != UPSTATE_ABORTED)
        add(&u->errors[r], 1);
    if (connect_us != UPSTATE_NONE)
        observe(&u->connect, connect_us);
    if (response_us != UPSTATE_NONE)
        observe(&u->response, response_us);
    if (p == NULL || p->max_fails == 0 || r == UPSTATE_ABORTED)
        return;
    if (r == UPSTATE_OK)
        passive_ok(u, p, now_ms);
    else
        passive_fail(u, p, r, status, now_ms);
}

void
upstate_count_retry(struct upstate *u)
{
    add(&u->retries, 1);
}

/* This worker's share first: a worker dying between the two steps leaves the total one
 * off at worst, never a share the master could not take back. */
int64_t
upstate_inflight_inc(struct upstate *u)
{
    if (my_inflight != NULL) {
        _Atomic int32_t *mine = &my_inflight[u - region->recs];
        atomic_store_explicit(mine, atomic_load_explicit(mine, RELAXED) + 1, RELAXED);
    }
    return atomic_fetch_add_explicit(&u->in_flight, 1, RELAXED) + 1;
}

void
upstate_inflight_dec(struct upstate *u)
{
    if (my_inflight != NULL) {
        _Atomic int32_t *mine = &my_inflight[u - region->recs];
        atomic_store_explicit(mine, atomic_load_explicit(mine, RELAXED) - 1, RELAXED);
    }
    atomic_fetch_sub_explicit(&u->in_flight, 1, RELAXED);
}

int
upstate_lease_take(struct upstate *u, pid_t pid, int64_t now_ms, int64_t ms)
{
    uint64_t old = atomic_load(&u->lease), new = LEASE(pid, now_ms + ms);

    assert(pid > 0 && pid < (1 << 22));
    for (;;) {
        pid_t holder = LEASE_PID(old);
        if (holder != 0 && holder != pid && LEASE_EXP(old) > now_ms)
            return 0;
        if (atomic_compare_exchange_weak(&u->lease, &old, new))
            return 1;
    }
}

pid_t
upstate_lease_holder(struct upstate *u, int64_t now_ms)
{
    uint64_t l = atomic_load(&u->lease);

    return LEASE_PID(l) != 0 && LEASE_EXP(l) > now_ms ? LEASE_PID(l) : 0;
}

void
upstate_lease_drop(struct upstate *u, pid_t pid)
{
    uint64_t old = atomic_load(&u->lease);

    if (pid > 0 && LEASE_PID(old) == pid)
        (void)atomic_compare_exchange_strong(&u->lease, &old, 0);
}

void
upstate_check_why(enum upstate_result r, int detail, char *buf, size_t len)
{
    switch (r) {
    case UPSTATE_OK:
    case UPSTATE_STATUS:
        snprintf(buf, len, "status %d", detail);
        break;
    case UPSTATE_ABORTED:
        snprintf(buf, len, "aborted");
        break;
    case UPSTATE_CONNECT_REFUSED:
        snprintf(buf, len, "connection refused");
        break;
    case UPSTATE_CONNECT_FAILED:
        if (detail > 0)
            snprintf(buf, len, "cannot connect: %s", strerror(detail));
        else
            snprintf(buf, len, "cannot connect");
        break;
    case UPSTATE_CONNECT_TIMEOUT:
        snprintf(buf, len, "connect timed out");
        break;
    case UPSTATE_RESPONSE_TIMEOUT:
        snprintf(buf, len, "no response in time");
        break;
    case UPSTATE_CLOSED:
        snprintf(buf, len, "closed before a response");
        break;
    case UPSTATE_INVALID:
        snprintf(buf, len, "not an HTTP/1.x response");
        break;
    case UPSTATE_TLS:
        snprintf(buf, len, "TLS handshake failed");
        break;
    default:
        snprintf(buf, len, "unknown");
        break;
    }
}

/* Mark u down (or up); the worker whose compare-exchange does it logs it. */
static void
flip(struct upstate *u, int down, unsigned n, enum upstate_result r, int detail, int64_t now)
{
    int was = !down;
    char buf[UPSTATE_KEY_MAX], why[64];
    const char *up, *srv;

    if (!atomic_compare_exchange_strong(&u->down, &was, down))
        return;
    atomic_store(&u->since_ms, now);
    upstate_names(u, buf, sizeof(buf), &up, &srv);
    upstate_check_why(r, detail, why, sizeof(why));
    if (down)
        log_warnx("upstream '%s' server '%s' is down: %u health check%s failed in a row (the "
                  "last: %s)", up, srv, n, n == 1 ? "" : "s", why);
    else
        log_info("upstream '%s' server '%s' is up: %u health check%s passed in a row (%s)",
                 up, srv, n, n == 1 ? "" : "s", why);
}

void
upstate_check_report(struct upstate *u, const struct upstate_policy *p, enum upstate_result r,
                     int detail, int64_t now_ms)
{
    unsigned n;

    atomic_store(&u->last_check, (uint64_t)r << 32 | (uint32_t)detail);
    if (r == UPSTATE_OK) {
        atomic_store(&u->checks_failed, 0);
        n = atomic_fetch_add(&u->checks_ok, 1) + 1;
        if (n >= (p->check.rise > 0 ? p->check.rise : 1))
            flip(u, 0, n, r, detail, now_ms);
    } else {
        atomic_store(&u->checks_ok, 0);
        n = atomic_fetch_add(&u->checks_failed, 1) + 1;
        if (n >= (p->check.fall > 0 ? p->check.fall : 1))
            flip(u, 1, n, r, detail, now_ms);
    }
}
