/* A service at run time, in a worker at start: translates the service's part of the conf
 * tree (routes, guards, headers, limits, timeouts) into its own libh2o configuration and
 * context, and tells each listening socket which services it serves. Also the request
 * logger every route ends with. */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "conf.h"
#include "conn.h"
#include "h2guard.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "reqcheck.h"
#include "sendguard.h"
#include "service_rt.h"
#include "tlsaccept.h"
#include "util.h"
#include "worker.h"

/* s for a log line: at most len bytes of it, with control bytes, bytes >= 0x80 and '\'
 * written as \xHH, so a request can neither forge log lines nor smuggle terminal escapes
 * or invalid UTF-8 into the journal. */
static const char *
printable(h2o_mem_pool_t *pool, h2o_iovec_t s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = s.len < len ? s.len : len;
    char *out = h2o_mem_alloc_pool(pool, n * 4 + 1), *p = out;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p = '\0';
    return out;
}

struct request_logger {
    h2o_logger_t super;
    struct access_log *access; /* the service's, or NULL */
    int svc;                   /* its metrics index, or -1 */
    struct metrics_slot *metrics;
};

/* Logger on every path: counts requests for the status line's req/s, writes the access
 * log, and logs what went wrong in handlers (libh2o's own printing is off, it has no
 * prefix or level). */
static void
on_request_done(h2o_logger_t *self, h2o_req_t *req)
{
    struct request_logger *rl = (struct request_logger *)self;
    struct access_log *al = rl->access;
    struct conn *c = worker_conn_of_req(req);
    struct timeval now = *h2o_get_timestamp(req->conn->ctx, NULL, NULL);
    int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                 (now.tv_usec - req->timestamps.request_begin_at.tv_usec);

    if (us < 0)
        us = 0;
    metrics_count(rl->metrics, rl->svc, req->res.status, req->bytes_sent, (uint64_t)us);
    h2guard_request_done(c, req);
    if (al != NULL)
        accesslog_write(al, req, (uint64_t)us);
    reqcheck_conn_logged(c, req, al, rl->svc);
    for (size_t i = 0; i < req->error_logs.size; i++) {
        const h2o_iovec_t *msg = &req->error_logs.entries[i].msg;
        if (worker_error_line_allowed())
            log_warnx("%s %s: %s", printable(&req->pool, req->input.method, 16),
                      printable(&req->pool, req->input.path, 256),
                      printable(&req->pool, *msg, 256));
    }
}

static void
add_request_logger(h2o_pathconf_t *pc, struct service_rt *rt, struct metrics_slot *metrics)
{
    struct request_logger *rl = (void *)h2o_create_logger(pc, sizeof(*rl));

    rl->super.log_access = on_request_done;
    rl->access = rt->access;
    rl->svc = rt->svc;
    rl->metrics = metrics;
}

static int
route_cmp(const void *a, const void *b)
{
    const struct conf_route *ra = *(struct conf_route *const *)a;
    const struct conf_route *rb = *(struct conf_route *const *)b;
    size_t la = strlen(ra->prefix), lb = strlen(rb->prefix);

    /* libh2o takes the first registered prefix that matches: longest first. */
    return la < lb ? 1 : la > lb ? -1 : strcmp(ra->prefix, rb->prefix);
}

static void
setup_headers(h2o_pathconf_t *pc, const struct conf_route *r)
{
    static const int cmd_of[] = {[HDR_SET] = H2O_HEADERS_CMD_SET,
                                 [HDR_ADD] = H2O_HEADERS_CMD_ADD,
                                 [HDR_UNSET] = H2O_HEADERS_CMD_UNSET};
    h2o_headers_command_t *cmds;

    if (r->nheaders == 0)
        return;
    /* Lives as long as the worker: libh2o keeps the pointer. */
    cmds = xcalloc(r->nheaders + 1, sizeof(*cmds));
    for (size_t i = 0; i < r->nheaders; i++) {
        h2o_iovec_t *name = xmalloc(sizeof(*name));
        const h2o_token_t *tok;
        const char *v = r->headers[i].value;

        *name = h2o_strdup(NULL, r->headers[i].name, SIZE_MAX);
        h2o_strtolower(name->base, name->len);
        tok = h2o_lookup_token(name->base, name->len);
        if (tok != NULL) {
            /* libh2o compares names by pointer: a known one is its token's own. */
            free(name->base);
            free(name);
            name = (h2o_iovec_t *)&tok->buf;
        }
        assert((size_t)r->headers[i].cmd < NELEMS(cmd_of));
        cmds[i].cmd = cmd_of[r->headers[i].cmd];
        cmds[i].name = name;
        cmds[i].value = v != NULL ? h2o_iovec_init(v, strlen(v)) : h2o_iovec_init("", 0);
    }
    cmds[r->nheaders].cmd = H2O_HEADERS_CMD_NULL;
    h2o_headers_register(pc, cmds);
}

/* libh2o reads requests of up to about 400 KiB of headers; a service may want less. */
struct header_limit {
    h2o_handler_t super;
    size_t max;
};

static int
on_header_limit(h2o_handler_t *self, h2o_req_t *req)
{
    size_t n = req->input.method.len + req->input.path.len + 12;

    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (n <= ((struct header_limit *)self)->max)
        return -1;
    h2o_send_error_generic(req, 431, hnd_reason(431),
                           "request header fields too large",
                           H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    return 0;
}

static void
add_header_limit(h2o_pathconf_t *pc, const struct conf_service *s)
{
    struct header_limit *hl;

    if (s->max_header_size >= CONF_MAX_HEADER_SIZE_MAX)
        return;
    hl = (void *)h2o_create_handler(pc, sizeof(*hl));
    hl->super.on_req = on_header_limit;
    hl->max = s->max_header_size;
}

static int
on_misdirected(h2o_handler_t *self, h2o_req_t *req)
{
    if (!tlsaccept_misdirected(req))
        return -1;
    h2o_send_error_generic(req, 421, hnd_reason(421),
                           "this connection is for another host; make a new one\n", 0);
    return 0;
}

/* libh2o 2.2.5 answers an HTTP/1.0 client that asked for keep-alive with a body of
 * unknown length (proxied chunked or till the upstream's close, or compressed) without
 * chunking, which 1.0 lacks, yet says keep-alive and keeps the connection: the client
 * cannot tell where the body ends. Such a response closes the connection instead. The
 * filter is registered before the handler's and compression's, so it sees the length
 * they leave. */
static void
on_framing_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    int status = req->res.status;

    if (req->version < 0x101 && req->res.content_length == SIZE_MAX && status >= 200 &&
        status != 204 && status != 304 &&
        !h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        req->http1_is_persistent = 0;
    h2o_setup_next_ostream(req, slot);
}

static void
add_framing_guard(h2o_pathconf_t *pc)
{
    h2o_create_filter(pc, sizeof(h2o_filter_t))->on_setup_ostream = on_framing_setup_ostream;
}

/* The checks every request of s goes through before its route's handler. */
static void
add_guards(h2o_pathconf_t *pc, const struct conf_service *s)
{
    reqcheck_register(pc);
    if (s->shared)
        h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_misdirected;
    add_header_limit(pc, s);
}

static void
setup_globalconf(h2o_globalconf_t *g, const struct conf *c, const struct conf_service *s)
{
    h2o_config_init(g);
    g->server_name = h2o_iovec_init(H2O_STRLIT("percore"));
    g->max_request_entity_size = s->max_body;
    g->handshake_timeout = (uint64_t)s->handshake_timeout_ms;
    g->http1.req_timeout = (uint64_t)s->header_timeout_ms;
    g->http2.idle_timeout = (uint64_t)s->idle_timeout_ms;
    /* Cleartext h2c (Upgrade or prior knowledge) stays off: it would bypass the reset
     * guard, which sits at ALPN (h2guard.c). */
    g->http1.upgrade_to_http2 = 0;
    g->http2.max_concurrent_requests_per_connection = c->http2_max_requests;
    /* A drain sends GOAWAY; streams still open when shutdown_timeout ends are cut. */
    g->http2.graceful_shutdown_timeout = (uint64_t)c->shutdown_timeout_ms;
}

static int
offers_http2(const struct conf_service *s)
{
    for (size_t i = 0; i < s->nlistens; i++)
        if (s->listens[i].http2)
            return 1;
    return 0;
}

/* Route r of s on pc, whole. */
static void
setup_route(h2o_pathconf_t *pc, const struct conf_service *s, const struct conf_route *r,
            struct service_rt *rt, struct metrics_slot *metrics)
{
    pc->error_log.emit_request_errors = 0; /* on_request_done logs them */
    /* First: its filter must be set up last, next to the connection. */
    sendguard_register(pc, s->send_timeout_ms, offers_http2(s), s->shared);
    add_framing_guard(pc);
    add_guards(pc, s);
    r->hnd->setup(pc, r->hnd_conf);
    setup_headers(pc, r);
    if (r->compress) {
        /* gzip only: Debian's libh2o is built without brotli. */
        static h2o_compress_args_t gzip = {.min_size = 256, .gzip = {.quality = 1},
                                           .brotli = {.quality = -1}};
        h2o_compress_register(pc, &gzip);
    }
    add_request_logger(pc, rt, metrics);
}

/* rt's libh2o host and routes for s: each route's pathconf runs the send guard's filter,
 * the request guards, the route's handler, its headers and compression, and the request
 * logger; requests no route matches get the same guards and logger. */
static void
setup_service(const struct conf *c, const struct conf_service *s, struct service_rt *rt,
              struct metrics_slot *metrics)
{
    h2o_hostconf_t *host;
    const struct conf_route **routes;

    rt->access = s->access_log != NULL ? accesslog_open(s->access_log) : NULL;
    rt->svc = metrics_service_index(s->name);
    setup_globalconf(&rt->gconf, c, s);
    host = h2o_config_register_host(&rt->gconf, h2o_iovec_init(s->name, strlen(s->name)),
                                    65535);
    /* A Link: rel=preload header must never turn into an HTTP/2 push. */
    host->http2.push_preload = 0;
    routes = xcalloc(s->nroutes, sizeof(*routes));
    for (size_t i = 0; i < s->nroutes; i++)
        routes[i] = &s->routes[i];
    qsort(routes, s->nroutes, sizeof(*routes), route_cmp);
    /* Finish each pathconf before registering the next: registering reallocs. */
    for (size_t i = 0; i < s->nroutes; i++)
        setup_route(h2o_config_register_path(host, routes[i]->prefix, 0), s, routes[i], rt,
                    metrics);
    free(routes);
    /* Requests no route matched (404s) are limited, counted and logged too. */
    sendguard_register(&host->fallback_path, s->send_timeout_ms, offers_http2(s), s->shared);
    add_framing_guard(&host->fallback_path);
    add_guards(&host->fallback_path, s);
    add_request_logger(&host->fallback_path, rt, metrics);
    rt->hosts[0] = host;
    rt->hosts[1] = NULL;
}

/* rt's context on loop, and an accept context of each kind (TLS ones with s's SSL_CTXs,
 * which get the SNI callback). */
static void
setup_contexts(const struct conf_service *s, struct service_rt *rt, h2o_loop_t *loop)
{
    void *ssl[LSN_KIND_MAX] = {[LSN_PLAIN] = NULL, [LSN_TLS] = s->ssl_ctx,
                               [LSN_TLS_H2] = s->ssl_ctx_h2};

    h2o_context_init(&rt->ctx, loop, &rt->gconf);
    for (size_t k = 0; k < LSN_KIND_MAX; k++)
        rt->actx[k] = (h2o_accept_ctx_t){.ctx = &rt->ctx, .hosts = rt->hosts, .ssl_ctx = ssl[k]};
    rt->http2_max_resets = s->http2_max_resets;
    for (size_t k = LSN_TLS; k < LSN_KIND_MAX; k++)
        if (ssl[k] != NULL)
            tlsaccept_prepare(ssl[k]);
}

struct service_rt *
service_rt_setup(const struct conf *c, h2o_loop_t *loop, struct metrics_slot *metrics)
{
    struct service_rt *services = xcalloc(c->nservices, sizeof(*services));

    for (size_t i = 0; i < c->nservices; i++) {
        setup_service(c, &c->services[i], &services[i], metrics);
        setup_contexts(&c->services[i], &services[i], loop);
    }
    return services;
}

static enum lsn_kind
kind_of(const struct conf_listen *cl)
{
    return cl->http2 ? LSN_TLS_H2 : cl->tls ? LSN_TLS : LSN_PLAIN;
}

/* The index of the service that l serves in this worker's config, or -1; *kind tells
 * whether its `listen` asked for TLS and HTTP/2. */
static int
service_of(const struct conf *c, const struct listener *l, enum lsn_kind *kind)
{
    *kind = LSN_PLAIN;
    for (size_t i = 0; i < c->nservices; i++) {
        if (l->owner == NULL || strcmp(c->services[i].name, l->owner) != 0)
            continue;
        if (l->activated)
            return (int)i;
        for (size_t j = 0; j < c->services[i].nlistens; j++) {
            const struct conf_listen *cl = &c->services[i].listens[j];
            if (listener_addr_equal(&cl->addr, &l->addr)) {
                *kind = kind_of(cl);
                return (int)i;
            }
        }
    }
    return -1;
}

static void
add_site(struct lsn_rt *lr, const struct conf_service *cs, struct service_rt *rt,
         enum lsn_kind kind)
{
    lr->sites = xreallocarray(lr->sites, lr->nsites + 1, sizeof(*lr->sites));
    lr->sites[lr->nsites++] = (struct tls_site){cs->server_names, cs->nserver_names,
                                                &rt->actx[kind], rt->http2_max_resets};
}

int
service_rt_serves(const struct conf *c, const struct listener *l)
{
    enum lsn_kind kind;

    return service_of(c, l, &kind) != -1;
}

struct lsn_rt *
service_rt_listener(const struct conf *c, struct service_rt *services, const struct listener *l)
{
    enum lsn_kind kind;
    int svc = service_of(c, l, &kind);
    struct lsn_rt *lr;

    if (svc == -1)
        return NULL;
    lr = xcalloc(1, sizeof(*lr));
    lr->send_timeout_ms = c->services[svc].send_timeout_ms;
    lr->owner = &services[svc];
    if (kind == LSN_PLAIN) {
        lr->actx = &services[svc].actx[LSN_PLAIN];
        return lr;
    }
    assert(kind == LSN_TLS || kind == LSN_TLS_H2);
    add_site(lr, &c->services[svc], &services[svc], kind);
    for (size_t i = 0; i < c->nservices; i++) {
        if ((int)i == svc)
            continue;
        for (size_t j = 0; j < c->services[i].nlistens; j++)
            if (listener_addr_equal(&c->services[i].listens[j].addr, &l->addr))
                add_site(lr, &c->services[i], &services[i],
                         kind_of(&c->services[i].listens[j]));
    }
    return lr;
}
