/* The metrics handler: the counters of every worker of every generation (the shared
 * region, plus the workers that have exited) and those of the serving config's upstream
 * servers, in the Prometheus text format. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "metrics.h"
#include "upstate.h"
#include "util.h"

#define OUT_START (64 * 1024)
/* A thousand upstream servers with long names stay below it. */
#define OUT_MAX (64 * 1024 * 1024)

/* The text, grown as written (malloc'd; the response takes a copy). */
struct out {
    char *buf;
    size_t len, cap;
};

static void
put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        if (o->cap >= OUT_MAX)
            return; /* dropped whole: a line is never cut */
        o->cap *= 2;
        o->buf = xreallocarray(o->buf, o->cap, 1);
    }
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

/* ---- upstream servers ---- */

/* A label value as the text format wants it: backslash, double quote and newline escaped. */
static void
escape(const char *s, char *buf, size_t len)
{
    size_t n = 0;

    for (; *s != '\0' && n + 3 <= len; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            buf[n++] = '\\';
            buf[n++] = *s == '\n' ? 'n' : *s;
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
}

/* One server's labels, escaped. */
struct labels {
    char upstream[2 * UPSTATE_KEY_MAX], server[2 * UPSTATE_KEY_MAX];
};

static void
labels_of(const struct upstate *u, struct labels *l)
{
    char names[UPSTATE_KEY_MAX];
    const char *up, *srv;

    upstate_names(u, names, sizeof(names), &up, &srv);
    escape(up, l->upstream, sizeof(l->upstream));
    escape(srv, l->server, sizeof(l->server));
}

/* The servers of the serving config into us and their labels into lab, at most cap;
 * how many. */
static size_t
current_servers(struct upstate **us, struct labels *lab, size_t cap)
{
    size_t n = 0;

    for (int i = 0; i < UPSTATE_MAX && n < cap; i++) {
        if ((us[n] = upstate_current(i)) != NULL) {
            labels_of(us[n], &lab[n]);
            n++;
        }
    }
    return n;
}

#define LABELS "upstream=\"%s\",server=\"%s\""

static void
put_family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
put_hist(struct out *o, const char *name, const struct labels *l, struct upstate_hist *h)
{
    uint64_t cum = 0, count = atomic_load_explicit(&h->count, memory_order_relaxed);

    for (int b = 0; b < UPSTATE_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        put(o, "%s_bucket{" LABELS ",le=\"%g\"} %llu\n", name, l->upstream, l->server,
            upstate_bucket_us[b] / 1e6, (unsigned long long)cum);
    }
    /* Read apart from the buckets: +Inf never below the last of them. */
    if (count < cum)
        count = cum;
    put(o, "%s_bucket{" LABELS ",le=\"+Inf\"} %llu\n%s_sum{" LABELS "} %.6f\n"
           "%s_count{" LABELS "} %llu\n", name, l->upstream, l->server,
        (unsigned long long)count, name, l->upstream, l->server,
        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name,
        l->upstream, l->server, (unsigned long long)count);
}

static void
put_counts(struct out *o, struct upstate **us, const struct labels *lab, size_t n)
{
    put_family(o, "percore_upstream_requests_total", "counter",
               "Requests sent to an upstream server (each try).");
    for (size_t i = 0; i < n; i++)
        put(o, "percore_upstream_requests_total{" LABELS "} %llu\n", lab[i].upstream,
            lab[i].server, (unsigned long long)atomic_load(&us[i]->requests));
    put_family(o, "percore_upstream_responses_total", "counter",
               "Responses from an upstream server, by status class.");
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 5; k++)
            put(o, "percore_upstream_responses_total{" LABELS ",class=\"%dxx\"} %llu\n",
                lab[i].upstream, lab[i].server, k + 1,
                (unsigned long long)atomic_load(&us[i]->responses[k]));
    put_family(o, "percore_upstream_errors_total", "counter",
               "Failed tries at an upstream server, by kind.");
    for (size_t i = 0; i < n; i++)
        for (int k = UPSTATE_CONNECT_REFUSED; k < UPSTATE_RESULT_MAX; k++)
            put(o, "percore_upstream_errors_total{" LABELS ",kind=\"%s\"} %llu\n",
                lab[i].upstream, lab[i].server, upstate_result_names[k],
                (unsigned long long)atomic_load(&us[i]->errors[k]));
    put_family(o, "percore_upstream_retries_total", "counter",
               "Tries at an upstream server that retried a failed one.");
    for (size_t i = 0; i < n; i++)
        put(o, "percore_upstream_retries_total{" LABELS "} %llu\n", lab[i].upstream,
            lab[i].server, (unsigned long long)atomic_load(&us[i]->retries));
}

static void
put_upstreams(struct out *o)
{
    struct upstate **us;
    struct labels *lab;
    int64_t now = util_now_ms();
    size_t n = 0;

    for (int i = 0; i < UPSTATE_MAX; i++)
        n += upstate_current(i) != NULL;
    if (n == 0)
        return;
    us = xcalloc(n, sizeof(*us));
    lab = xcalloc(n, sizeof(*lab));
    n = current_servers(us, lab, n);
    put_family(o, "percore_upstream_up", "gauge",
               "Whether an upstream server is sent requests (health checks passed, not "
               "ejected).");
    for (size_t i = 0; i < n; i++)
        put(o, "percore_upstream_up{" LABELS "} %d\n", lab[i].upstream, lab[i].server,
            upstate_usable(us[i], now));
    put_counts(o, us, lab, n);
    put_family(o, "percore_upstream_in_flight", "gauge",
               "Requests under way at an upstream server.");
    for (size_t i = 0; i < n; i++) {
        int64_t v = atomic_load(&us[i]->in_flight);
        put(o, "percore_upstream_in_flight{" LABELS "} %lld\n", lab[i].upstream,
            lab[i].server, (long long)(v > 0 ? v : 0));
    }
    put_family(o, "percore_upstream_connect_seconds", "histogram",
               "Time to connect to an upstream server.");
    for (size_t i = 0; i < n; i++)
        put_hist(o, "percore_upstream_connect_seconds", &lab[i], &us[i]->connect);
    put_family(o, "percore_upstream_response_seconds", "histogram",
               "From a request sent to an upstream server to its response head.");
    for (size_t i = 0; i < n; i++)
        put_hist(o, "percore_upstream_response_seconds", &lab[i], &us[i]->response);
    free(us);
    free(lab);
}

/* ---- routes and event loops ---- */

/* Per (service, route) pair registered: requests, and the CPU time of its handler
 * callbacks (looplag.c says what is counted). */
static void
put_routes(struct out *o, const struct metrics_counts *c)
{
    char svc[2 * METRICS_NAME_MAX], route[2 * METRICS_ROUTE_MAX];
    const char *s, *r;

    put_family(o, "percore_route_requests_total", "counter", "Requests answered, by route.");
    for (int i = 0; metrics_route_name(i, &s, &r) == 0; i++) {
        escape(s, svc, sizeof(svc));
        escape(r, route, sizeof(route));
        put(o, "percore_route_requests_total{service=\"%s\",route=\"%s\"} %llu\n", svc, route,
            (unsigned long long)c->route_requests[i]);
    }
    put_family(o, "percore_route_cpu_seconds_total", "counter",
               "CPU time of a route's handler callbacks (their wall time, less the share the "
               "worker waited for the CPU).");
    for (int i = 0; metrics_route_name(i, &s, &r) == 0; i++) {
        escape(s, svc, sizeof(svc));
        escape(r, route, sizeof(route));
        put(o, "percore_route_cpu_seconds_total{service=\"%s\",route=\"%s\"} %.6f\n", svc,
            route, (double)c->route_cpu_ns[i] / 1e9);
    }
}

/* Per worker number: its live workers' loop turns and those of the workers that had the
 * number before (metrics_lag_by_worker), so that a series only grows across respawns and
 * reloads; a number no live worker has is left out. */
static void
put_loop_lag(struct out *o)
{
    struct metrics_lag *l = xcalloc(METRICS_MAX_WORKERS, sizeof(*l));

    put_family(o, "percore_event_loop_lag_seconds", "histogram",
               "Busy time of a worker's event loop turns: from the wake-up to the end of the "
               "turn's callbacks, during which the worker's other clients wait.");
    metrics_lag_by_worker(l);
    for (unsigned w = 0; w < METRICS_MAX_WORKERS; w++) {
        uint64_t cum = 0;
        if (!l[w].live)
            continue;
        for (int b = 0; b < METRICS_LAG_BUCKETS; b++) {
            cum += l[w].buckets[b];
            put(o, "percore_event_loop_lag_seconds_bucket{worker=\"%u\",le=\"%g\"} %llu\n", w,
                metrics_lag_bucket_us[b] / 1e6, (unsigned long long)cum);
        }
        put(o, "percore_event_loop_lag_seconds_bucket{worker=\"%u\",le=\"+Inf\"} %llu\n"
               "percore_event_loop_lag_seconds_sum{worker=\"%u\"} %.6f\n"
               "percore_event_loop_lag_seconds_count{worker=\"%u\"} %llu\n",
            w, (unsigned long long)(l[w].count > cum ? l[w].count : cum), w,
            (double)l[w].sum_us / 1e6, w, (unsigned long long)(l[w].count > cum ? l[w].count : cum));
    }
    free(l);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct metrics_counts *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    struct metrics_totals t;
    struct out o = {xmalloc(OUT_START), 0, OUT_START};
    char *body;

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
    put_routes(&o, c);
    put_loop_lag(&o);
    put(&o, "# HELP percore_otel_spans_exported_total Spans sent to the OTLP collector and "
            "accepted.\n"
            "# TYPE percore_otel_spans_exported_total counter\n"
            "percore_otel_spans_exported_total %llu\n"
            "# HELP percore_otel_spans_dropped_total Spans not exported: the queue was full, "
            "the export failed or timed out, or the worker stopped first.\n"
            "# TYPE percore_otel_spans_dropped_total counter\n"
            "percore_otel_spans_dropped_total %llu\n",
        (unsigned long long)c->otel_spans_exported, (unsigned long long)c->otel_spans_dropped);
    put_upstreams(&o);
    body = h2o_mem_alloc_pool(&req->pool, o.len > 0 ? o.len : 1);
    memcpy(body, o.buf, o.len);
    free(o.buf);
    req->res.status = 200;
    req->res.reason = hnd_reason(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    hnd_send_body(req, body, o.len);
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
