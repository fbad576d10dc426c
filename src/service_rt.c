/* Services at run time, in a worker at start: each listening address gets its own libh2o
 * configuration and context, in which every service on the address is a site (a hostconf
 * of its routes, guards, headers and limits) and one dispatch host runs the router
 * (router.c). Also the request logger every route ends with. */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "clientaddr.h"
#include "conf.h"
#include "conn.h"
#include "errordoc.h"
#include "h2guard.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "listener.h"
#include "log.h"
#include "looplag.h"
#include "metrics.h"
#include "otel.h"
#include "regex.h"
#include "reqcheck.h"
#include "reqdata.h"
#include "reqtrace.h"
#include "route_match.h"
#include "router.h"
#include "sendguard.h"
#include "service_rt.h"
#include "tlsaccept.h"
#include "tmpl.h"
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
    struct reqdata *rd = reqdata_find(req);
    int64_t now = rd != NULL && rd->start_us != 0 ? util_now_us() : 0;
    int64_t us = now - (rd != NULL ? rd->start_us : 0);

    if (us < 0)
        us = 0;
    metrics_count(rl->metrics, rl->svc, req->res.status, req->bytes_sent, (uint64_t)us);
    if (rd != NULL && rd->route != NULL && rd->route->midx >= 0)
        metrics_count_route(rl->metrics, rd->route->midx);
    if (rd != NULL && otel_sampled(rd))
        otel_request_end(req, rd, now != 0 ? now : util_now_us());
    h2guard_request_done(c, req);
    if (al != NULL)
        accesslog_write(al, req, (uint64_t)us);
    reqcheck_conn_logged(c, req, al, rl->svc);
    for (size_t i = 0; i < req->error_logs.size; i++) {
        const h2o_iovec_t *msg = &req->error_logs.entries[i].msg;
        if (worker_error_line_allowed())
            log_req_warnx(reqdata_request_id(req), rd != NULL && rd->trace.on ? rd->trace.trace_hex
                                                                             : NULL,
                          "%s %s: %s", printable(&req->pool, req->input.method, 16),
                          printable(&req->pool, req->input.path, 256),
                          printable(&req->pool, *msg, 256));
    }
}

static void
add_request_logger(h2o_pathconf_t *pc, const struct service_rt *rt, struct metrics_slot *metrics)
{
    struct request_logger *rl = (void *)h2o_create_logger(pc, sizeof(*rl));

    rl->super.log_access = on_request_done;
    rl->access = rt->access;
    rl->svc = rt->svc;
    rl->metrics = metrics;
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

/* A service on an address shared with services allowing larger bodies: libh2o takes up to
 * the largest, and each service holds to its own (libh2o has read the body by now). */
struct body_limit {
    h2o_handler_t super;
    uint64_t max;
};

static int
on_body_limit(h2o_handler_t *self, h2o_req_t *req)
{
    if (req->entity.base == NULL || req->entity.len <= ((struct body_limit *)self)->max)
        return -1;
    h2o_send_error_generic(req, 413, hnd_reason(413), "request body too large\n",
                           H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    return 0;
}

/* The checks every request of s goes through before its route's handler, on an address
 * whose body limit is addr_max. */
static void
add_guards(h2o_pathconf_t *pc, const struct conf_service *s, uint64_t addr_max)
{
    reqcheck_register(pc);
    if (s->shared)
        h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_misdirected;
    add_header_limit(pc, s);
    if (s->max_body < addr_max) {
        struct body_limit *bl = (void *)h2o_create_handler(pc, sizeof(*bl));
        bl->super.on_req = on_body_limit;
        bl->max = s->max_body;
    }
}

/* The address's configuration: connections are its default service's (timeouts), bodies
 * up to the largest limit of its services. */
static void
setup_globalconf(h2o_globalconf_t *g, const struct conf *c, const struct conf_service *s,
                 uint64_t max_body)
{
    h2o_config_init(g);
    g->server_name = h2o_iovec_init(H2O_STRLIT("percore"));
    g->max_request_entity_size = max_body;
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

/* Whether route r's templates (headers, request headers, its handler's) use variables:
 * the router then keeps the request's route and captures for them. */
static int
route_needs_env(const struct conf_service *s, const struct conf_route *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].tvalue != NULL && tmpl_has_vars(r->headers[i].tvalue))
            return 1;
    for (size_t i = 0; i < s->nreqheaders; i++)
        if (s->reqheaders[i].value != NULL && tmpl_has_vars(s->reqheaders[i].value))
            return 1;
    for (size_t i = 0; i < r->nreqheaders; i++)
        if (r->reqheaders[i].value != NULL && tmpl_has_vars(r->reqheaders[i].value))
            return 1;
    return r->hnd->uses_vars != NULL && r->hnd->uses_vars(r->hnd_conf);
}

/* Route r of s on pc, whole. */
static void
setup_route(h2o_pathconf_t *pc, const struct conf_service *s, const struct conf_route *r,
            const struct service_rt *rt, uint64_t addr_max, struct metrics_slot *metrics)
{
    pc->error_log.emit_request_errors = 0; /* on_request_done logs them */
    /* First: its filter must be set up last, next to the connection. */
    sendguard_register(pc, s->send_timeout_ms, offers_http2(s), s->shared);
    /* Before the handler's filters (the proxy's marks its upstream's responses first). */
    errordoc_register(pc, r->errors);
    add_framing_guard(pc);
    add_guards(pc, s, addr_max);
    router_register_reqheaders(pc, s, r);
    r->hnd->setup(pc, r->hnd_conf);
    if (!router_register_headers(pc, r))
        setup_headers(pc, r);
    reqtrace_register(pc, s);
    if (r->compress) {
        /* gzip only: Debian's libh2o is built without brotli. */
        static h2o_compress_args_t gzip = {.min_size = 256, .gzip = {.quality = 1},
                                           .brotli = {.quality = -1}};
        h2o_compress_register(pc, &gzip);
    }
    add_request_logger(pc, rt, metrics);
}

/* The path libh2o keeps for a route's pathconf, which handlers read as the part of the
 * request's path the route stands for: the prefix, the exact path, or nothing for a regex
 * (the whole path is then the suffix). */
static const char *
pathconf_path(const struct conf_route *r)
{
    return r->match == MATCH_REGEX ? "" : r->prefix;
}

char *
service_rt_route_label(const struct conf_route *r)
{
    const char *op = r->match == MATCH_EXACT ? "= "
                     : r->match == MATCH_REGEX ? (r->re->caseless ? "~* " : "~ ")
                                               : "";

    return xasprintf("%s%s", op, r->prefix);
}

/* Site st of service rt on address a: a hostconf of its routes in file order, and a
 * fallback for requests no route takes (the router's own answers). */
static void
setup_site(struct addr_rt *a, struct site_rt *st, struct service_rt *rt,
           struct metrics_slot *metrics)
{
    const struct conf_service *s = rt->conf;
    uint64_t addr_max = a->gconf.max_request_entity_size;
    h2o_hostconf_t *host;

    st->service = rt;
    host = h2o_config_register_host(&a->gconf, h2o_iovec_init(s->name, strlen(s->name)),
                                    65535);
    /* A Link: rel=preload header must never turn into an HTTP/2 push. */
    host->http2.push_preload = 0;
    /* Finish each pathconf before registering the next: registering reallocs. */
    for (size_t i = 0; i < s->nroutes; i++)
        setup_route(h2o_config_register_path(host, pathconf_path(&s->routes[i]), 0), s,
                    &s->routes[i], rt, addr_max, metrics);
    st->routes = xcalloc(s->nroutes, sizeof(*st->routes));
    for (size_t i = 0; i < s->nroutes; i++) {
        char *label = service_rt_route_label(&s->routes[i]);
        st->routes[i] = (struct route_rt){&s->routes[i], label, &host->paths.entries[i],
                                          route_needs_env(s, &s->routes[i]),
                                          metrics_route_index(s->name, label)};
        looplag_register(st->routes[i].pc, s->name, &s->routes[i], label, st->routes[i].midx);
    }
    st->table = route_table_build(s->routes, s->nroutes);
    /* Requests no route takes (404s) are limited, counted and logged too. */
    sendguard_register(&host->fallback_path, s->send_timeout_ms, offers_http2(s), s->shared);
    errordoc_register(&host->fallback_path, s->errors);
    add_framing_guard(&host->fallback_path);
    add_guards(&host->fallback_path, s, addr_max);
    router_register_answer(&host->fallback_path);
    reqtrace_register(&host->fallback_path, s);
    add_request_logger(&host->fallback_path, rt, metrics);
    st->host = host;
}

/* The dispatch host: the router, and for what libh2o answers before any handler (a 400,
 * a 413) the default service's guards on the response and logger. */
static void
setup_dispatch(struct addr_rt *a, struct metrics_slot *metrics)
{
    const struct service_rt *rt = a->sites[0].service;
    const struct conf_service *s = rt->conf;
    h2o_hostconf_t *host = h2o_config_register_host(
        &a->gconf, h2o_iovec_init(H2O_STRLIT("percore-router")), 65535);
    h2o_pathconf_t *pc = &host->fallback_path;

    host->http2.push_preload = 0;
    pc->error_log.emit_request_errors = 0;
    sendguard_register(pc, s->send_timeout_ms, offers_http2(s), s->shared);
    errordoc_register(pc, s->errors);
    add_framing_guard(pc);
    router_register(pc, a);
    add_request_logger(pc, rt, metrics);
    a->hosts[0] = host;
    a->hosts[1] = NULL;
}

struct service_rt *
service_rt_setup(const struct conf *c, h2o_loop_t *loop, struct metrics_slot *metrics)
{
    struct service_rt *services = xcalloc(c->nservices, sizeof(*services));

    (void)loop;
    (void)metrics;
    regex_worker_init();
    clientaddr_init(c, service_rt_req_service);
    reqtrace_init(c);
    for (size_t i = 0; i < c->nservices; i++) {
        const struct conf_service *s = &c->services[i];
        services[i].conf = s;
        services[i].access = s->access_log.format != ACCESSLOG_OFF
                                 ? accesslog_open(&s->access_log, s->name)
                                 : NULL;
        services[i].svc = metrics_service_index(s->name);
    }
    return services;
}

static enum lsn_kind
kind_of(const struct conf_listen *cl)
{
    return cl->http2 ? LSN_TLS_H2 : cl->tls ? LSN_TLS : LSN_PLAIN;
}

/* The listen of service s on address a, or NULL. */
static const struct conf_listen *
listen_of(const struct conf_service *s, const struct listen_addr *a)
{
    for (size_t j = 0; j < s->nlistens; j++)
        if (listener_addr_equal(&s->listens[j].addr, a))
            return &s->listens[j];
    return NULL;
}

/* The index of the service that owns l in this worker's config (socket activation: the one
 * of its name), or -1. */
static int
service_of(const struct conf *c, const struct listener *l)
{
    for (size_t i = 0; i < c->nservices; i++) {
        if (l->owner == NULL || strcmp(c->services[i].name, l->owner) != 0)
            continue;
        if (l->activated || listen_of(&c->services[i], &l->addr) != NULL)
            return (int)i;
    }
    return -1;
}

int
service_rt_serves(const struct conf *c, const struct listener *l)
{
    return service_of(c, l) != -1;
}

/* The services served on l, the default first: an activated socket serves its owner only;
 * an address, every service that listens on it. *kinds gets each one's listen kind. */
static size_t
services_on(const struct conf *c, const struct listener *l, int owner, size_t **idx,
            enum lsn_kind **kinds)
{
    size_t n = 0, dflt = 0;

    *idx = xcalloc(c->nservices, sizeof(**idx));
    *kinds = xcalloc(c->nservices, sizeof(**kinds));
    for (size_t i = 0; i < c->nservices; i++) {
        const struct conf_listen *cl = listen_of(&c->services[i], &l->addr);
        if (l->activated ? (int)i != owner : cl == NULL)
            continue;
        if (cl != NULL && cl->dflt)
            dflt = n;
        (*kinds)[n] = cl != NULL ? kind_of(cl) : LSN_PLAIN;
        (*idx)[n++] = i;
    }
    if (dflt != 0) {
        size_t i = (*idx)[dflt];
        enum lsn_kind k = (*kinds)[dflt];
        memmove(*idx + 1, *idx, dflt * sizeof(**idx));
        memmove(*kinds + 1, *kinds, dflt * sizeof(**kinds));
        (*idx)[0] = i;
        (*kinds)[0] = k;
    }
    return n;
}

static h2o_context_t **contexts;
static size_t ncontexts;

int
service_rt_peer_trusted(const struct lsn_rt *lr, const struct sockaddr *sa)
{
    for (size_t i = 0; i < lr->addr->nsites; i++) {
        const struct conf_trusted *t = &lr->addr->sites[i].service->conf->trusted;
        if (!clientaddr_match(t->nets, t->n, sa))
            return 0;
    }
    return 1;
}

const struct conf_service *
service_rt_req_service(h2o_req_t *req)
{
    struct addr_rt *a = H2O_STRUCT_FROM_MEMBER(struct addr_rt, ctx, req->conn->ctx);

    for (size_t i = 1; i < a->nsites; i++)
        if (a->sites[i].host == req->hostconf)
            return a->sites[i].service->conf;
    return a->sites[0].service->conf;
}

size_t
service_rt_contexts(h2o_context_t ***ctxs)
{
    *ctxs = contexts;
    return ncontexts;
}

/* The site names and accept contexts of a's sites (TLS: each with its service's SSL_CTX
 * for its listen's kind, which gets the SNI callback). */
static void
setup_names(struct addr_rt *a, const enum lsn_kind *kinds)
{
    a->names = xcalloc(a->nsites, sizeof(*a->names));
    for (size_t i = 0; i < a->nsites; i++) {
        struct site_rt *st = &a->sites[i];
        const struct conf_service *s = st->service->conf;
        void *ssl = kinds[i] == LSN_TLS_H2 ? s->ssl_ctx_h2 : kinds[i] == LSN_TLS ? s->ssl_ctx
                                                                                 : NULL;
        st->actx = (h2o_accept_ctx_t){.ctx = &a->ctx, .hosts = a->hosts, .ssl_ctx = ssl};
        if (ssl != NULL)
            tlsaccept_prepare(ssl);
        a->names[i] = (struct tls_site){s->server_names, s->nserver_names, &st->actx,
                                        s->http2_max_resets, st};
    }
}

struct lsn_rt *
service_rt_listener(const struct conf *c, struct service_rt *services, const struct listener *l,
                    h2o_loop_t *loop, struct metrics_slot *metrics)
{
    int owner = service_of(c, l);
    struct addr_rt *a;
    struct lsn_rt *lr;
    enum lsn_kind *kinds;
    size_t *idx;
    uint64_t max_body = 0;

    if (owner == -1)
        return NULL;
    a = xcalloc(1, sizeof(*a));
    a->nsites = services_on(c, l, owner, &idx, &kinds);
    assert(a->nsites >= 1);
    a->tls = kinds[0] != LSN_PLAIN;
    for (size_t i = 0; i < a->nsites; i++)
        if (c->services[idx[i]].max_body > max_body)
            max_body = c->services[idx[i]].max_body;
    setup_globalconf(&a->gconf, c, &c->services[idx[0]], max_body);
    a->sites = xcalloc(a->nsites, sizeof(*a->sites));
    for (size_t i = 0; i < a->nsites; i++)
        a->sites[i].service = &services[idx[i]];
    setup_dispatch(a, metrics);
    for (size_t i = 0; i < a->nsites; i++)
        setup_site(a, &a->sites[i], &services[idx[i]], metrics);
    h2o_context_init(&a->ctx, loop, &a->gconf);
    a->actx = (h2o_accept_ctx_t){.ctx = &a->ctx, .hosts = a->hosts};
    setup_names(a, kinds);
    contexts = xreallocarray(contexts, ncontexts + 1, sizeof(*contexts));
    contexts[ncontexts++] = &a->ctx;

    lr = xcalloc(1, sizeof(*lr));
    lr->owner = a->sites[0].service;
    lr->send_timeout_ms = lr->owner->conf->send_timeout_ms;
    lr->actx = &a->actx;
    lr->addr = a;
    /* Services sharing an address agree on it (conf.c). */
    lr->proxy_protocol = listen_of(lr->owner->conf, &l->addr) != NULL &&
                         listen_of(lr->owner->conf, &l->addr)->proxy_protocol;
    if (a->tls) {
        lr->sites = a->names;
        lr->nsites = a->nsites;
    }
    free(idx);
    free(kinds);
    return lr;
}
