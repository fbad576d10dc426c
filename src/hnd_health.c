/* The health handler, for the load balancers in front of percore: 200 "ok" while the
 * instance serves, 503 "draining" from the moment its stop begins, so that a balancer
 * takes it out of rotation during shutdown_delay, while the listeners still accept. A
 * reload is no stop: the generation draining after one still answers 200 (the new one
 * serves). Served by workers, which learn of the stop from a flag the master sets in the
 * shared region (metrics.c), read for each request without a system call. */
#include "config.h"

#include "h2o_inc.h"
#include "hnd.h"
#include "metrics.h"

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static const char ok[] = "ok\n", draining[] = "draining\n";
    int stopping = metrics_stopping();

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        h2o_send_error_405(req, hnd_reason(405), "method not allowed\n",
                           H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    req->res.status = stopping ? 503 : 200;
    req->res.reason = hnd_reason(req->res.status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; charset=utf-8"));
    /* An answer about this instance now: no cache may keep it, no filter may change it. */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    req->compress_hint = H2O_COMPRESS_HINT_DISABLE;
    /* A balancer that keeps its connection would come back to this worker, which is about
     * to go: it is told to make a new one (HTTP/1; HTTP/2 gets GOAWAY when the drain
     * begins). */
    if (stopping)
        req->http1_is_persistent = 0;
    req->res.content_length = stopping ? sizeof(draining) - 1 : sizeof(ok) - 1;
    hnd_send_body(req, stopping ? draining : ok, req->res.content_length);
    return 0;
}

static int
health_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    *out = NULL;
    return 0;
}

static void
health_free(void *p)
{
}

static void
health_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_req;
}

const struct hnd_ops hnd_health_ops = {
    .name = "health",
    .min_args = 0,
    .max_args = 0,
    .usage = "health",
    .parse = health_parse,
    .setup = health_setup,
    .free_conf = health_free,
};
