/* Shared counters: a region the master maps before forking, with one slot per worker
 * process. Each worker writes only its own slot; the master reads them all for the
 * watchdog and the status line, and the metrics handler in any worker sums them. */
#ifndef PERCORE_METRICS_H
#define PERCORE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define METRICS_MAX_SERVICES 64 /* distinct service names counted per service */
#define METRICS_NAME_MAX 64
#define METRICS_CLASSES 5 /* 1xx .. 5xx */
#define METRICS_BUCKETS 16
#define METRICS_MAX_ROUTES 256 /* distinct (service, route) pairs counted per route */
#define METRICS_ROUTE_MAX 128  /* a route's label ("~ ^/v(\\d+)/", "= /x", "/api/") */
#define METRICS_LAG_BUCKETS 12
#define METRICS_REQUEST_ID_MAX 128 /* REQTRACE_ID_MAX: a request ID a proxy passed */
#define METRICS_MAX_WORKERS 512 /* worker numbers whose exited workers' loop turns are kept */
#define METRICS_BUSY_DESC 192   /* what a handler callback runs for (metrics_slot.busy_desc) */

/* Request durations' bucket upper bounds, in microseconds (+Inf is the count). */
extern const uint32_t metrics_bucket_us[METRICS_BUCKETS];
/* Event loop lag (a loop turn's busy time) bucket upper bounds, in microseconds. */
extern const uint32_t metrics_lag_bucket_us[METRICS_LAG_BUCKETS];

struct metrics_counts {
    _Atomic uint64_t requests;
    _Atomic uint64_t by_class[METRICS_MAX_SERVICES][METRICS_CLASSES];
    _Atomic uint64_t body_bytes;
    _Atomic uint64_t duration_us;
    _Atomic uint64_t buckets[METRICS_BUCKETS];
    /* Per route (metrics_route_index): requests, and the worker's CPU time spent in
     * the route's handler callbacks. */
    _Atomic uint64_t route_requests[METRICS_MAX_ROUTES];
    _Atomic uint64_t route_cpu_ns[METRICS_MAX_ROUTES];
    /* Loop turns by busy time: per bucket (not cumulative; past the last, only in
     * lag_count), their number and their sum. */
    _Atomic uint64_t lag_buckets[METRICS_LAG_BUCKETS];
    _Atomic uint64_t lag_count;
    _Atomic uint64_t lag_sum_us;
    /* Spans (otel.c) sent to the collector and accepted, and dropped: the queue was full,
     * the export failed or timed out, or the worker stopped first. */
    _Atomic uint64_t otel_spans_exported;
    _Atomic uint64_t otel_spans_dropped;
};

struct metrics_slot {
    _Atomic int64_t heartbeat_ms; /* CLOCK_MONOTONIC of the worker loop's last turn */
    _Atomic uint64_t conns;       /* open connections */
    pid_t pid;                    /* 0: free; set by the master */
    unsigned gen;                 /* the generation the worker serves; set by the master */
    unsigned wslot;               /* its worker number ("worker N"); set by the master */
    _Atomic uint64_t cpu_ns;      /* the worker's CPU time, as of its last heartbeat */
    /* The request whose handler callback runs now (looplag.c), for the master to name
     * when it kills a stuck worker: CLOCK_MONOTONIC ns at the callback's entry (0: no
     * callback runs), whether its request was routed yet, then "service 's' route '/x/'
     * (module 'm')", and the request ID ("" when it has none yet). Written by the worker
     * at each callback's entry and exit; the master reads them only once the loop has
     * stopped for worker_watchdog, when they no longer change. */
    _Atomic int64_t busy_since_ns;
    _Atomic int busy_routed;
    char busy_desc[METRICS_BUSY_DESC];
    char busy_request_id[METRICS_REQUEST_ID_MAX + 1];
    /* The system call the sandbox killed the worker for (sandbox.c): its number + 1, 0
     * for none, and its audit architecture. */
    _Atomic int sandbox_nr;
    _Atomic unsigned sandbox_arch;
    struct metrics_counts c;
};

/* The shared region. */
struct metrics_region;

/* Master: map room for n slots (never unmapped: workers of every generation use it); the
 * region goes to each worker in its heritage. */
struct metrics_region *metrics_init(unsigned n);
/* Worker, at start: use the region it inherited (the master's mapping, by fork). */
void metrics_attach(struct metrics_region *r);
/* Master: claim a free slot for a worker about to be forked; -1 if none is free. */
int metrics_claim(void);
/* Master: a worker has exited; fold its counts into the retired totals, free the slot. */
void metrics_release(int idx);
struct metrics_slot *metrics_slot(int idx);

/* Master, when a stop begins (SIGTERM, SIGINT, SIGQUIT; a reload is none): from then on
 * metrics_stopping() is true in every worker, of any generation, forked before or after.
 * Never undone: a stop is not called off. */
void metrics_set_stopping(void);
/* Whether the master has begun to stop: one load from the shared region, no system call
 * (the health handler asks it for each request). */
int metrics_stopping(void);

/* Master, before a generation starts: give each service name an index (kept across
 * reloads, so a service's counts go on). Worker: the index of a name, or -1. */
void metrics_register_service(const char *name);
int metrics_service_index(const char *name);
/* The name of index i, or NULL past the last. */
const char *metrics_service_name(int i);

/* Master, before a generation starts: give each (service, route label) pair an index,
 * kept across reloads. Worker: the index of a pair, or -1 (past METRICS_MAX_ROUTES). */
void metrics_register_route(const char *service, const char *label);
int metrics_route_index(const char *service, const char *label);
/* The pair of index i (0 and the names set), or -1 past the last. */
int metrics_route_name(int i, const char **service, const char **label);

/* Worker: count a request that ended with status, having sent body_bytes in us. */
void metrics_count(struct metrics_slot *s, int svc, int status, uint64_t body_bytes,
                   uint64_t us);

/* Worker: count a request that route idx (metrics_route_index) took. */
void metrics_count_route(struct metrics_slot *s, int idx);
/* The master as the shared region knows it, for the status handler and `percore -s top`. */
struct metrics_server {
    pid_t pid;          /* the master's, set by metrics_init */
    int64_t started_ms; /* CLOCK_MONOTONIC at metrics_init: the master's start */
    unsigned gen;       /* the serving generation (metrics_set_generation) */
    int stopping;       /* metrics_stopping() */
    unsigned nslots;    /* slots in the region: metrics_slot(0 .. nslots - 1) */
};
/* Master: generation gen serves from now on (its start, a reload that succeeded). */
void metrics_set_generation(unsigned gen);
/* Any process: the master's pid, start, serving generation and the slot count. */
void metrics_server(struct metrics_server *s);

/* Worker: count spans exported and dropped. */
void metrics_count_spans(struct metrics_slot *s, uint64_t exported, uint64_t dropped);

struct metrics_totals {
    uint64_t requests;
    uint64_t conns;
    unsigned workers;
};
/* Sum over live slots plus the counts of workers that have exited; with c non-NULL, all
 * counters too. */
void metrics_sum(struct metrics_totals *t, struct metrics_counts *c);

/* The loop turns of each worker number w (metrics_slot.wslot) below METRICS_MAX_WORKERS,
 * into out[w]: buckets (not cumulative), count and sum in us of its live workers (a
 * draining one and its successor alike) plus all its exited ones, so that they only grow;
 * live tells whether a live worker has number w. */
struct metrics_lag {
    uint64_t buckets[METRICS_LAG_BUCKETS];
    uint64_t count, sum_us;
    int live;
};
void metrics_lag_by_worker(struct metrics_lag out[METRICS_MAX_WORKERS]);

#endif
