/* Where a worker's event loop spends its time: the busy time of each loop turn (the
 * event_loop_lag histogram), the CPU time of each route's handler callbacks, the warning
 * for a slow turn, and the record of the callback running now that the master names when
 * it kills a stuck worker. Worker only; the counters go to its metrics slot. */
#ifndef PERCORE_LOOPLAG_H
#define PERCORE_LOOPLAG_H

#include <stdint.h>

#include "h2o_inc.h"

struct conf_route;
struct looplag_tag;
struct metrics_slot;

/* A handler callback being timed, on its caller's stack between looplag_enter and
 * looplag_leave. */
struct looplag_scope {
    const struct looplag_tag *tag; /* its route's, or NULL (not routed yet, or no route) */
    h2o_req_t *req;
    struct looplag_scope *outer; /* the callback this one runs inside of, or NULL */
    int64_t entry_ns;            /* CLOCK_MONOTONIC at entry */
    int64_t since_ns;            /* its time is counted up to this: entry, or when an inner
                                    one left */
    int req_outlives;            /* req is still alive at looplag_leave (the router's) */
};

/* Worker, at start: count into slot; slow_turn_ms 0 is off; a slow turn is logged when
 * line_allowed() (the worker's rate limit) says so. */
void looplag_init(struct metrics_slot *slot, int64_t slow_turn_ms, int (*line_allowed)(void));

/* Worker, once its pathconfs are final: pc serves route r of service (r's metrics index
 * midx, or -1). What the log names a callback of pc by is made here, once. */
void looplag_register(h2o_pathconf_t *pc, const char *service, const struct conf_route *r,
                      const char *label, int midx);

/* Around each h2o_evloop_run: begin arms the clock read when the loop wakes up; end
 * counts the turn's busy time (wake-up to now) and may log it as slow. */
void looplag_turn_begin(void);
void looplag_turn_end(void);

/* Worker, on its heartbeat and before it exits: reads its CPU time (one system call),
 * publishes it, and turns the wall time the routes' callbacks took since the last time
 * into CPU time. */
void looplag_fold(void);

/* A handler callback for req starts (its route is the one req's pathconf is registered
 * for); s lives on the caller's stack until looplag_leave(s), which must come before the
 * caller returns, in nesting order. Two CLOCK_MONOTONIC reads (vDSO) per pair, no system
 * call. */
void looplag_enter(struct looplag_scope *s, h2o_req_t *req);
void looplag_leave(struct looplag_scope *s);
/* The router: its request's route is now pc's (its scope was entered unrouted). */
void looplag_route(h2o_req_t *req, h2o_pathconf_t *pc);

/* The router's on_req, timed as a whole: routing and the handler's on_req. */
int looplag_on_req(h2o_handler_t *self, h2o_req_t *req,
                   int (*on_req)(h2o_handler_t *, h2o_req_t *));

#endif
