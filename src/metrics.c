/* Shared per-worker counters and heartbeats (mapped by the master, written by workers). */
#include "config.h"

#include <assert.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heritage.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* From 50 µs: a request served from memory takes tens of microseconds. */
const uint32_t metrics_bucket_us[METRICS_BUCKETS] = {
    50,    100,    250,    500,    1000,    2500,    5000,    10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

const uint32_t metrics_lag_bucket_us[METRICS_LAG_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

struct metrics_route_name {
    char service[METRICS_NAME_MAX];
    char label[METRICS_ROUTE_MAX];
};

struct metrics_region {
    unsigned nslots;
    char names[METRICS_MAX_SERVICES][METRICS_NAME_MAX];
    _Atomic unsigned nnames;
    struct metrics_route_name routes[METRICS_MAX_ROUTES];
    _Atomic unsigned nroutes;
    _Atomic int stopping; /* the master has begun to stop (metrics_set_stopping) */
    pid_t master_pid;     /* set once, by metrics_init */
    int64_t started_ms;
    _Atomic unsigned gen; /* the serving generation */
    struct metrics_counts retired; /* workers that have exited */
    struct {
        _Atomic uint64_t buckets[METRICS_LAG_BUCKETS];
        _Atomic uint64_t count, sum_us;
    } retired_lag[METRICS_MAX_WORKERS]; /* their loop turns, by worker number */
    struct metrics_slot slots[];
};

/* This process's way to the region: the master's own mapping, made by metrics_init; a
 * worker's, inherited by fork, is set again by metrics_attach from its heritage. */
static struct metrics_region *region;

struct metrics_region *
metrics_init(unsigned n)
{
    ASSERT_MASTER();
    assert(region == NULL); /* once: workers of every generation share this one */
    region = mmap(NULL, sizeof(*region) + n * sizeof(region->slots[0]),
                  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        fatal("mmap of %u metrics slots", n);
    region->nslots = n;
    /* Called by the master in its final process (after it detached), at its start. */
    region->master_pid = getpid();
    region->started_ms = util_now_ms();
    return region;
}

void
metrics_attach(struct metrics_region *r)
{
    ASSERT_WORKER();
    assert(r != NULL);
    region = r;
}

int
metrics_claim(void)
{
    ASSERT_MASTER();
    for (unsigned i = 0; i < region->nslots; i++) {
        if (region->slots[i].pid == 0) {
            memset(&region->slots[i], 0, sizeof(region->slots[i]));
            region->slots[i].pid = -1; /* reserved until the fork returns */
            return (int)i;
        }
    }
    return -1;
}

/* to += from, counter by counter (both are arrays of _Atomic uint64_t). */
static void
add_counts(struct metrics_counts *to, const struct metrics_counts *from)
{
    _Atomic uint64_t *t = (_Atomic uint64_t *)to;
    const _Atomic uint64_t *f = (const _Atomic uint64_t *)from;

    for (size_t i = 0; i < sizeof(*to) / sizeof(*t); i++)
        atomic_fetch_add_explicit(&t[i], atomic_load_explicit(&f[i], memory_order_relaxed),
                                  memory_order_relaxed);
}

/* Worker number w's exited workers keep its loop turns (the master is the only writer). */
static void
add_lag(unsigned w, const struct metrics_counts *c)
{
    if (w >= METRICS_MAX_WORKERS)
        return;
    for (int b = 0; b < METRICS_LAG_BUCKETS; b++)
        atomic_fetch_add(&region->retired_lag[w].buckets[b], atomic_load(&c->lag_buckets[b]));
    atomic_fetch_add(&region->retired_lag[w].count, atomic_load(&c->lag_count));
    atomic_fetch_add(&region->retired_lag[w].sum_us, atomic_load(&c->lag_sum_us));
}

void
metrics_release(int idx)
{
    ASSERT_MASTER();
    if (idx < 0 || (unsigned)idx >= region->nslots)
        return;
    add_counts(&region->retired, &region->slots[idx].c);
    add_lag(region->slots[idx].wslot, &region->slots[idx].c);
    memset(&region->slots[idx], 0, sizeof(region->slots[idx]));
}

struct metrics_slot *
metrics_slot(int idx)
{
    assert(idx >= 0 && (unsigned)idx < region->nslots);
    return &region->slots[idx];
}

void
metrics_set_stopping(void)
{
    ASSERT_MASTER(); /* the only writer: no worker can make the others fail */
    atomic_store_explicit(&region->stopping, 1, memory_order_relaxed);
}

int
metrics_stopping(void)
{
    return atomic_load_explicit(&region->stopping, memory_order_relaxed);
}

void
metrics_set_generation(unsigned gen)
{
    ASSERT_MASTER();
    atomic_store_explicit(&region->gen, gen, memory_order_relaxed);
}

void
metrics_server(struct metrics_server *s)
{
    s->pid = region->master_pid;
    s->started_ms = region->started_ms;
    s->gen = atomic_load_explicit(&region->gen, memory_order_relaxed);
    s->stopping = metrics_stopping();
    s->nslots = region->nslots;
}

int
metrics_service_index(const char *name)
{
    unsigned n = atomic_load(&region->nnames);

    for (unsigned i = 0; i < n; i++)
        if (strncmp(region->names[i], name, METRICS_NAME_MAX) == 0)
            return (int)i;
    return -1;
}

void
metrics_register_service(const char *name)
{
    unsigned n = atomic_load(&region->nnames);

    ASSERT_MASTER(); /* the only writer of the names */
    if (metrics_service_index(name) != -1)
        return;
    if (n == METRICS_MAX_SERVICES || strlen(name) >= METRICS_NAME_MAX) {
        log_warnx("service '%s' is not counted by service in the metrics (at most %d names "
                  "of fewer than %d characters)", name, METRICS_MAX_SERVICES, METRICS_NAME_MAX);
        return;
    }
    memcpy(region->names[n], name, strlen(name) + 1); /* fits: checked above */
    atomic_store(&region->nnames, n + 1);
}

const char *
metrics_service_name(int i)
{
    return i >= 0 && (unsigned)i < atomic_load(&region->nnames) ? region->names[i] : NULL;
}

int
metrics_route_index(const char *service, const char *label)
{
    unsigned n = atomic_load(&region->nroutes);

    for (unsigned i = 0; i < n; i++)
        if (strncmp(region->routes[i].service, service, METRICS_NAME_MAX) == 0 &&
            strncmp(region->routes[i].label, label, METRICS_ROUTE_MAX) == 0)
            return (int)i;
    return -1;
}

void
metrics_register_route(const char *service, const char *label)
{
    unsigned n = atomic_load(&region->nroutes);

    ASSERT_MASTER(); /* the only writer of the names */
    if (metrics_route_index(service, label) != -1)
        return;
    if (n == METRICS_MAX_ROUTES || strlen(service) >= METRICS_NAME_MAX ||
        strlen(label) >= METRICS_ROUTE_MAX) {
        log_warnx("route '%s' of service '%s' is not counted by route in the metrics (at "
                  "most %d routes, labels of fewer than %d characters)", label, service,
                  METRICS_MAX_ROUTES, METRICS_ROUTE_MAX);
        return;
    }
    memcpy(region->routes[n].service, service, strlen(service) + 1);
    memcpy(region->routes[n].label, label, strlen(label) + 1);
    atomic_store(&region->nroutes, n + 1);
}

int
metrics_route_name(int i, const char **service, const char **label)
{
    if (i < 0 || (unsigned)i >= atomic_load(&region->nroutes))
        return -1;
    *service = region->routes[i].service;
    *label = region->routes[i].label;
    return 0;
}

/* Only the slot's worker writes it: a plain load and store, no locked instruction, and
 * readers still never see a torn value. */
static inline void
bump(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void
metrics_count(struct metrics_slot *s, int svc, int status, uint64_t body_bytes, uint64_t us)
{
    struct metrics_counts *c = &s->c;
    int class = status / 100 - 1;
    size_t b = 0;

    ASSERT_WORKER(); /* a slot's only writer is its worker */
    bump(&c->requests, 1);
    if (svc >= 0 && class >= 0 && class < METRICS_CLASSES)
        bump(&c->by_class[svc][class], 1);
    bump(&c->body_bytes, body_bytes);
    bump(&c->duration_us, us);
    while (b < METRICS_BUCKETS && us > metrics_bucket_us[b])
        b++;
    if (b < METRICS_BUCKETS)
        bump(&c->buckets[b], 1);
}

void
metrics_count_route(struct metrics_slot *s, int idx)
{
    ASSERT_WORKER();
    if (idx >= 0 && idx < METRICS_MAX_ROUTES)
        bump(&s->c.route_requests[idx], 1);
}

void
metrics_count_spans(struct metrics_slot *s, uint64_t exported, uint64_t dropped)
{
    ASSERT_WORKER();
    bump(&s->c.otel_spans_exported, exported);
    bump(&s->c.otel_spans_dropped, dropped);
}

void
metrics_sum(struct metrics_totals *t, struct metrics_counts *c)
{
    t->requests = atomic_load(&region->retired.requests);
    t->conns = 0;
    t->workers = 0;
    if (c != NULL) {
        memset(c, 0, sizeof(*c));
        add_counts(c, &region->retired);
    }
    for (unsigned i = 0; i < region->nslots; i++) {
        struct metrics_slot *s = &region->slots[i];
        if (s->pid <= 0)
            continue;
        t->workers++;
        t->requests += atomic_load(&s->c.requests);
        t->conns += atomic_load(&s->conns);
        if (c != NULL)
            add_counts(c, &s->c);
    }
}

void
metrics_lag_by_worker(struct metrics_lag out[METRICS_MAX_WORKERS])
{
    memset(out, 0, METRICS_MAX_WORKERS * sizeof(*out));
    for (unsigned w = 0; w < METRICS_MAX_WORKERS; w++) {
        for (int b = 0; b < METRICS_LAG_BUCKETS; b++)
            out[w].buckets[b] = atomic_load(&region->retired_lag[w].buckets[b]);
        out[w].count = atomic_load(&region->retired_lag[w].count);
        out[w].sum_us = atomic_load(&region->retired_lag[w].sum_us);
    }
    for (unsigned i = 0; i < region->nslots; i++) {
        struct metrics_slot *s = &region->slots[i];
        struct metrics_lag *l;
        if (s->pid <= 0 || s->wslot >= METRICS_MAX_WORKERS)
            continue;
        l = &out[s->wslot];
        l->live = 1;
        for (int b = 0; b < METRICS_LAG_BUCKETS; b++)
            l->buckets[b] += atomic_load(&s->c.lag_buckets[b]);
        l->count += atomic_load(&s->c.lag_count);
        l->sum_us += atomic_load(&s->c.lag_sum_us);
    }
}
