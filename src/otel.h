/* OpenTelemetry span export, per worker: the spans of sampled requests (a server span per
 * request, a client span per upstream attempt) are copied into a bounded queue as they
 * end and sent in batches as OTLP/HTTP JSON to the `otlp_endpoint` of the `tracing` block,
 * over one keep-alive connection on the worker's own loop. Nothing here waits: a full
 * queue, a collector that is down, refuses or is slow, only drops spans, which are counted
 * (percore_otel_spans_dropped_total). Worker only. */
#ifndef PERCORE_OTEL_H
#define PERCORE_OTEL_H

#include <stdint.h>

#include "h2o_inc.h"
#include "reqdata.h"

struct conf;
struct conf_upserver;
struct metrics_slot;

/* 1 while this worker exports spans, else 0: what a request's trace flags are masked with
 * (otel_sampled), so an unsampled request or a worker without export pays one test. */
extern uint8_t otel_mask;

/* Whether rd's request is sampled and its spans exported. */
static inline int
otel_sampled(const struct reqdata *rd)
{
    return (rd->trace.flags & otel_mask) != 0;
}

/* Worker, at start, before its sandbox: export if c's tracing block names an endpoint,
 * counting in m; wslot is the worker's number (the percore.worker resource attribute).
 * c outlives the worker. */
void otel_init(const struct conf *c, h2o_loop_t *loop, struct metrics_slot *m, unsigned wslot);

/* An upstream attempt of a sampled request (its server span the parent). */
struct otel_attempt {
    uint8_t span_id[8];                 /* the span the upstream was told of */
    int64_t start_us;                   /* monotonic */
    const struct conf_upserver *server; /* the config's (outlives the worker) */
    unsigned resend;                    /* attempts before this one, for this request */
    int status;                         /* the response's, 0: none */
    const char *error;                  /* why it failed (a static string), NULL: it did not */
};

/* The attempt ended now (failed, or gave up): its client span goes to the queue. */
void otel_attempt_end(const struct reqdata *rd, const struct otel_attempt *a);
/* The attempt got its response, whose body is still to come: its span ends with the
 * request (otel_request_end), when the body's end is known. a is copied into req's pool. */
void otel_attempt_answered(h2o_req_t *req, struct reqdata *rd, const struct otel_attempt *a);

/* The request logger, for a sampled request that ended at now_us (monotonic, the clock
 * the logger read): its server span (and the span of an attempt left open by
 * otel_attempt_answered) go to the queue. */
void otel_request_end(h2o_req_t *req, struct reqdata *rd, int64_t now_us);

/* Worker, stopping, once its connections are gone: a last export of what is queued, for
 * at most budget_ms; what is left is counted as dropped. */
void otel_finish(int64_t budget_ms);

#endif
