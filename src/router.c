/* The router, run for every request (percore.conf(5) "ROUTING"): site by Host (or the SNI
 * the TLS handshake saw), the service's rewrites, the route from the site's table, the
 * route's rewrites (which may route again), then the route's pathconf is bound and its
 * handlers run as libh2o would have run them. A request whose route uses no variable
 * touches no per-request record. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conn.h"
#include "hnd.h"
#include "looplag.h"
#include "regex.h"
#include "reqdata.h"
#include "reqtrace.h"
#include "route_match.h"
#include "router.h"
#include "service_rt.h"
#include "tlsaccept.h"
#include "tmpl.h"
#include "util.h"
#include "worker.h"

struct router {
    h2o_handler_t super;
    struct addr_rt *addr;
};

/* The site for req: the only one; over TLS, the one SNI chose; else the one the Host
 * names, or the default. */
static struct site_rt *
pick_site(struct addr_rt *a, h2o_req_t *req)
{
    const struct tls_site *ts;
    const struct conn *c;
    h2o_iovec_t host;
    uint16_t port;
    char name[256];

    if (a->nsites == 1)
        return &a->sites[0];
    if (a->tls) {
        c = worker_conn_of_req(req);
        return c != NULL && c->tls.site != NULL ? c->tls.site->site : &a->sites[0];
    }
    if (req->authority.len == 0 ||
        h2o_url_parse_hostport(req->authority.base, req->authority.len, &host, &port) == NULL)
        return &a->sites[0];
    while (host.len > 0 && host.base[host.len - 1] == '.')
        host.len--;
    if (host.len == 0 || host.len >= sizeof(name) || memchr(host.base, '\0', host.len) != NULL)
        return &a->sites[0];
    memcpy(name, host.base, host.len);
    name[host.len] = '\0';
    ts = tlsaccept_find_site(a->names, a->nsites, name);
    return ts != NULL ? ts->site : &a->sites[0];
}

/* Bind pc (of site) to req and run its handlers in order, as libh2o runs a pathconf's;
 * -1 when all declined (libh2o then answers 404 through pc's filters and loggers). */
static int
run(h2o_req_t *req, struct site_rt *site, h2o_pathconf_t *pc)
{
    h2o_req_bind_conf(req, site->host, pc);
    looplag_route(req, pc);
    for (size_t i = 0; i < pc->handlers.size; i++)
        if (pc->handlers.entries[i]->on_req(pc->handlers.entries[i], req) == 0)
            return 0;
    return -1;
}

static void
env_of_site(struct tmpl_env *env, const struct site_rt *site)
{
    const struct conf_service *s = site->service->conf;

    memset(env, 0, sizeof(*env));
    env->service = s->name;
    env->server_name = s->nserver_names > 0 ? s->server_names[0] : NULL;
}

void
router_tmpl_env(h2o_req_t *req, struct tmpl_env *env, unsigned uses)
{
    struct reqdata *rd = reqdata_find(req);

    memset(env, 0, sizeof(*env));
    if (rd != NULL && rd->site != NULL)
        env_of_site(env, rd->site);
    if (rd != NULL && rd->route != NULL) {
        env->route = rd->route->label;
        env->subject = rd->subject;
        env->ov = rd->ov;
        env->nov = rd->nov;
    }
    if (uses & (1u << TV_REQUEST_ID))
        env->request_id = reqdata_request_id(req);
}

/* The request's target becomes target (a rewrite's, encoded), keeping the query unless
 * the replacement gave its own. */
static void
set_target(h2o_req_t *req, h2o_iovec_t target, int own_query)
{
    h2o_iovec_t lead = h2o_iovec_init(NULL, 0), query = h2o_iovec_init(NULL, 0);

    if (target.len == 0 || target.base[0] != '/')
        lead = h2o_iovec_init(H2O_STRLIT("/"));
    if (!own_query && req->query_at != SIZE_MAX)
        query = h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at);
    req->path = h2o_concat(&req->pool, lead, target, query);
    req->path_normalized = h2o_url_normalize_path(&req->pool, req->path.base, req->path.len,
                                                  &req->query_at, &req->norm_indexes);
}

/* A rewrite's redirect: the expansion, with the request's query unless it has its own. */
static void
set_redirect(h2o_req_t *req, const struct conf_rewrite *rw, h2o_iovec_t to)
{
    struct reqdata *rd = reqdata_get(req);
    h2o_iovec_t query = h2o_iovec_init(NULL, 0);

    if (!tmpl_gives_query(rw->repl) && req->query_at != SIZE_MAX)
        query.base = hnd_location_query(&req->pool, req->path.base + req->query_at,
                                        req->path.len - req->query_at, &query.len);
    rd->status = rw->flag == RW_PERMANENT ? 301 : 302;
    rd->location = h2o_concat(&req->pool, to, query);
}

enum rw_outcome { RW_SAME, RW_CHANGED, RW_REROUTE, RW_ANSWER };

static int
is_absolute(h2o_iovec_t s)
{
    return (s.len >= 7 && memcmp(s.base, "http://", 7) == 0) ||
           (s.len >= 8 && memcmp(s.base, "https://", 8) == 0);
}

/* Apply rewrites v[0..n) to req's path in order (env: the site's and route's variables,
 * whose captures each rule replaces with its own). */
static enum rw_outcome
rewrite(h2o_req_t *req, const struct conf_rewrite *v, size_t n, const struct tmpl_env *base)
{
    size_t ov[2 * (REGEX_MAX_CAPTURES + 1)];
    struct tmpl_env env = *base;
    int changed = 0;

    for (size_t i = 0; i < n; i++) {
        const struct conf_rewrite *rw = &v[i];
        h2o_iovec_t path = req->path_normalized, to;
        if (!regex_match(rw->re, path.base, path.len, ov, rw->re->ncaptures + 1))
            continue;
        env.subject = path.base;
        env.ov = ov;
        env.nov = rw->re->ncaptures + 1;
        if ((tmpl_uses(rw->repl) & (1u << TV_REQUEST_ID)) && env.request_id == NULL)
            env.request_id = reqdata_request_id(req);
        to = tmpl_expand(rw->repl, req, &env, TMPL_TARGET);
        if (rw->flag == RW_REDIRECT || rw->flag == RW_PERMANENT || is_absolute(to)) {
            set_redirect(req, rw, to);
            return RW_ANSWER;
        }
        set_target(req, to, tmpl_gives_query(rw->repl));
        /* Only a path that changed chooses the route again. */
        changed |= !h2o_memis(path.base, path.len, req->path_normalized.base,
                              req->path_normalized.len);
        if (rw->flag == RW_LAST)
            return RW_REROUTE;
        if (rw->flag == RW_BREAK)
            return RW_SAME;
    }
    return changed ? RW_CHANGED : RW_SAME;
}

/* The route for req's current path (recorded in rd, req's data), or NULL with the router's
 * answer recorded (405). */
static struct route_rt *
find_route(h2o_req_t *req, struct reqdata *rd, struct site_rt *site)
{
    struct rm_result res;
    struct rm_req rq = {req->path_normalized.base, req->path_normalized.len, req->method,
                        &req->headers, NULL, 0};
    struct route_rt *route;

    rd->route = NULL;
    if (req->query_at != SIZE_MAX) {
        rq.query = req->path.base + req->query_at + 1;
        rq.query_len = req->path.len - req->query_at - 1;
    }
    if (route_table_find(site->table, &rq, &res) < 0) {
        if (res.method_mismatch) {
            rd->status = 405;
            rd->allow = h2o_strdup(&req->pool, res.allow, SIZE_MAX);
        }
        return NULL;
    }
    route = &site->routes[res.route];
    rd->route = route;
    if (route->needs_env || route->conf->nrewrites > 0) {
        rd->subject = rq.path;
        rd->nov = res.nov;
        memcpy(rd->ov, res.ov, sizeof(rd->ov));
    }
    return route;
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct site_rt *site = pick_site(((struct router *)self)->addr, req);
    const struct conf_service *s = site->service->conf;
    h2o_pathconf_t *fallback = &site->host->fallback_path;
    struct route_rt *route;
    struct tmpl_env env;
    struct reqdata *rd = reqdata_get(req);

    rd->site = site;
    reqtrace_begin(req, rd, s);
    if (s->nrewrites > 0) {
        env_of_site(&env, site);
        if (rewrite(req, s->rewrites, s->nrewrites, &env) == RW_ANSWER)
            return run(req, site, fallback);
    }
    for (unsigned n = 0;; n++) {
        if ((route = find_route(req, rd, site)) == NULL)
            return run(req, site, fallback);
        if (route->conf->nrewrites == 0)
            break;
        router_tmpl_env(req, &env, 0);
        switch (rewrite(req, route->conf->rewrites, route->conf->nrewrites, &env)) {
        case RW_SAME: return run(req, site, route->pc);
        case RW_ANSWER: return run(req, site, fallback);
        case RW_CHANGED:
        case RW_REROUTE: break;
        }
        if (n + 1 >= ROUTER_MAX_REROUTES) {
            reqdata_get(req)->status = 500;
            return run(req, site, fallback);
        }
    }
    return run(req, site, route->pc);
}

/* Routing and the route's handler are timed as the request's first callback. */
static int
on_req_timed(h2o_handler_t *self, h2o_req_t *req)
{
    return looplag_on_req(self, req, on_req);
}

void
router_register(h2o_pathconf_t *pc, struct addr_rt *a)
{
    struct router *r = (void *)h2o_create_handler(pc, sizeof(*r));

    r->super.on_req = on_req_timed;
    r->addr = a;
}

/* ---- the router's own answers ---- */

static int
on_answer(h2o_handler_t *self, h2o_req_t *req)
{
    struct reqdata *rd = reqdata_find(req);
    int status = rd != NULL ? rd->status : 0;

    if (status == 301 || status == 302) {
        h2o_send_redirect(req, status, hnd_reason(status), rd->location.base,
                          rd->location.len);
    } else if (status == 405) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, rd->allow.base,
                       rd->allow.len);
        h2o_send_error_generic(req, 405, hnd_reason(405), "method not allowed\n",
                               H2O_SEND_ERROR_KEEP_HEADERS);
    } else if (status == 500) {
        h2o_req_log_error(req, "percore", "rewrites routed the request %d times; giving up",
                          ROUTER_MAX_REROUTES);
        h2o_send_error_generic(req, 500, hnd_reason(500), "rewrite loop\n", 0);
    } else {
        h2o_send_error_404(req, hnd_reason(404), "no route\n", 0);
    }
    return 0;
}

void
router_register_answer(h2o_pathconf_t *pc)
{
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_answer;
}

/* ---- headers ---- */

/* A header name as libh2o compares it: its token, or the lowercase name. */
struct hname {
    const h2o_token_t *tok;
    const char *name;
    size_t len;
};

static struct hname
hname_of(const char *lc)
{
    struct hname h = {h2o_lookup_token(lc, strlen(lc)), lc, strlen(lc)};

    return h;
}

static void
hdr_delete(h2o_headers_t *hs, const struct hname *h)
{
    ssize_t i;

    while ((i = h->tok != NULL ? h2o_find_header(hs, h->tok, -1)
                               : h2o_find_header_by_str(hs, h->name, h->len, -1)) != -1)
        h2o_delete_header(hs, i);
}

static void
hdr_add(h2o_req_t *req, h2o_headers_t *hs, const struct hname *h, h2o_iovec_t v)
{
    if (h->tok != NULL)
        h2o_add_header(&req->pool, hs, h->tok, NULL, v.base, v.len);
    else
        h2o_add_header_by_str(&req->pool, hs, h->name, h->len, 0, NULL, v.base, v.len);
}

/* A header's value; a value with variables that comes out empty leaves the header out
 * (base NULL), as a value that was never there. */
static h2o_iovec_t
value_of(h2o_req_t *req, const struct tmpl *t, const struct tmpl_env *env)
{
    h2o_iovec_t v;

    if (!tmpl_has_vars(t))
        return h2o_iovec_init(tmpl_literal(t), strlen(tmpl_literal(t)));
    v = tmpl_expand(t, req, env, TMPL_HEADER);
    return v.len > 0 ? v : h2o_iovec_init(NULL, 0);
}

struct reqheader_rt {
    struct hname name;
    const struct tmpl *value; /* NULL: removed */
};

struct reqheaders {
    h2o_handler_t super;
    struct reqheader_rt *v;
    size_t n;
    unsigned uses;
};

/* Every value is made from the request as the client sent it, then the headers change:
 * "[$http_x_foo]" for X-Foo sees the client's X-Foo, whatever the order of the lines. */
static int
on_reqheaders(h2o_handler_t *self, h2o_req_t *req)
{
    const struct reqheaders *rh = (struct reqheaders *)self;
    h2o_iovec_t *vals = h2o_mem_alloc_pool(&req->pool, rh->n * sizeof(*vals));
    struct tmpl_env env;

    router_tmpl_env(req, &env, rh->uses);
    for (size_t i = 0; i < rh->n; i++)
        vals[i] = rh->v[i].value != NULL ? value_of(req, rh->v[i].value, &env)
                                         : h2o_iovec_init(NULL, 0);
    for (size_t i = 0; i < rh->n; i++) {
        hdr_delete(&req->headers, &rh->v[i].name);
        if (vals[i].base != NULL)
            hdr_add(req, &req->headers, &rh->v[i].name, vals[i]);
    }
    reqdata_get(req)->set = rh;
    return -1;
}

int
router_sets_header(h2o_req_t *req, const h2o_iovec_t *name)
{
    const struct reqdata *rd = reqdata_find(req);
    const struct reqheaders *rh = rd != NULL ? rd->set : NULL;

    for (size_t i = 0; rh != NULL && i < rh->n; i++) {
        const struct hname *h = &rh->v[i].name;
        if (h->tok != NULL ? name == &h->tok->buf
                           : h2o_lcstris(name->base, name->len, h->name, h->len))
            return 1;
    }
    return 0;
}

static void
add_reqheaders(struct reqheaders *rh, const struct conf_reqheader *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rh->v[rh->n++] = (struct reqheader_rt){hname_of(v[i].name), v[i].value};
        if (v[i].value != NULL)
            rh->uses |= tmpl_uses(v[i].value);
    }
}

void
router_register_reqheaders(h2o_pathconf_t *pc, const struct conf_service *s,
                           const struct conf_route *r)
{
    struct reqheaders *rh;

    if (s->nreqheaders + r->nreqheaders == 0)
        return;
    rh = (void *)h2o_create_handler(pc, sizeof(*rh));
    rh->super.on_req = on_reqheaders;
    rh->v = xcalloc(s->nreqheaders + r->nreqheaders, sizeof(*rh->v));
    add_reqheaders(rh, s->reqheaders, s->nreqheaders);
    add_reqheaders(rh, r->reqheaders, r->nreqheaders);
}

struct resheaders {
    h2o_filter_t super;
    const struct conf_route *route;
    struct hname *names;
    unsigned uses;
};

static void
on_resheaders(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    const struct resheaders *rh = (struct resheaders *)self;
    const struct conf_route *r = rh->route;
    struct tmpl_env env;

    router_tmpl_env(req, &env, rh->uses);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct conf_header *h = &r->headers[i];
        if (h->cmd != HDR_ADD)
            hdr_delete(&req->res.headers, &rh->names[i]);
        if (h->cmd != HDR_UNSET) {
            h2o_iovec_t v = value_of(req, h->tvalue, &env);
            if (v.base != NULL)
                hdr_add(req, &req->res.headers, &rh->names[i], v);
        }
    }
    h2o_setup_next_ostream(req, slot);
}

int
router_register_headers(h2o_pathconf_t *pc, const struct conf_route *r)
{
    struct resheaders *rh;
    unsigned uses = 0;
    int vars = 0;

    for (size_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].tvalue != NULL && tmpl_has_vars(r->headers[i].tvalue)) {
            vars = 1;
            uses |= tmpl_uses(r->headers[i].tvalue);
        }
    if (!vars)
        return 0;
    rh = (void *)h2o_create_filter(pc, sizeof(*rh));
    rh->super.on_setup_ostream = on_resheaders;
    rh->route = r;
    rh->uses = uses;
    rh->names = xcalloc(r->nheaders, sizeof(*rh->names));
    for (size_t i = 0; i < r->nheaders; i++) {
        char *lc = xstrdup(r->headers[i].name);
        h2o_strtolower(lc, strlen(lc));
        rh->names[i] = hname_of(lc);
    }
    return 1;
}
