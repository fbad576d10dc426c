/* The metrics handler: the counters of every worker of every generation (the shared
 * region, plus the workers that have exited) in the Prometheus text format. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "metrics.h"

#define OUT_MAX (64 * 1024)

struct out {
    char *buf;
    size_t len;
};

static void
put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->len >= OUT_MAX)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, OUT_MAX - o->len, fmt, ap);
    va_end(ap);
    o->len = n < 0 ? o->len : o->len + (size_t)n < OUT_MAX ? o->len + (size_t)n : OUT_MAX;
}

static void
put_requests(struct out *o, const struct metrics_counts *c)
{
    const char *name;

    put(o, "# HELP percore_requests_total Requests answered, by service and status class.\n"
           "# TYPE percore_requests_total counter\n");
    for (int i = 0; (name = metrics_service_name(i)) != NULL; i++)
        for (int k = 0; k < METRICS_CLASSES; k++)
            put(o, "percore_requests_total{service=\"%s\",code=\"%dxx\"} %llu\n", name, k + 1,
                (unsigned long long)c->by_class[i][k]);
}

static void
put_durations(struct out *o, const struct metrics_counts *c)
{
    uint64_t cum = 0;

    put(o, "# HELP percore_request_duration_seconds From the first byte of a request to the "
           "end of its response.\n"
           "# TYPE percore_request_duration_seconds histogram\n");
    for (int b = 0; b < METRICS_BUCKETS; b++) {
        cum += c->buckets[b];
        put(o, "percore_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
            metrics_bucket_us[b] / 1e6, (unsigned long long)cum);
    }
    put(o, "percore_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
           "percore_request_duration_seconds_sum %.6f\n"
           "percore_request_duration_seconds_count %llu\n",
        (unsigned long long)c->requests, (double)c->duration_us / 1e6,
        (unsigned long long)c->requests);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct metrics_counts *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    struct metrics_totals t;
    struct out o = {h2o_mem_alloc_pool(&req->pool, OUT_MAX), 0};

    metrics_sum(&t, c);
    put_requests(&o, c);
    put(&o, "# HELP percore_response_body_bytes_total Response body bytes sent.\n"
            "# TYPE percore_response_body_bytes_total counter\n"
            "percore_response_body_bytes_total %llu\n",
        (unsigned long long)c->body_bytes);
    put_durations(&o, c);
    put(&o, "# HELP percore_connections Open client connections.\n"
            "# TYPE percore_connections gauge\n"
            "percore_connections %llu\n"
            "# HELP percore_workers Worker processes, draining ones included.\n"
            "# TYPE percore_workers gauge\n"
            "percore_workers %u\n",
        (unsigned long long)t.conns, t.workers);
    req->res.status = 200;
    req->res.reason = hnd_reason(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    hnd_send_body(req, o.buf, o.len);
    return 0;
}

static int
metrics_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    *out = NULL;
    return 0;
}

static void
metrics_free(void *p)
{
}

static void
metrics_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_req;
}

const struct hnd_ops hnd_metrics_ops = {
    .name = "metrics",
    .min_args = 0,
    .max_args = 0,
    .usage = "metrics",
    .parse = metrics_parse,
    .setup = metrics_setup,
    .free_conf = metrics_free,
};
