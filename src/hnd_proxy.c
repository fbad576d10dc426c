/* The proxy handler: forwards requests to one of several HTTP/1.1 upstreams (TCP or unix
 * socket), round robin or least connections, over keep-alive pools. libh2o's proxy has
 * no failover, so the upstream is chosen here: a connection is taken from the chosen
 * upstream's pool (or opened) before any byte of the request is sent; if that fails the
 * upstream is marked down for a while and the next one is tried; the connection is then
 * put back in the pool and libh2o's proxy sends the request over it. */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "log.h"
#include "util.h"

#define PROXY_POOL_CAPACITY 1024
#define PROXY_KEEPALIVE_MS 2000
#define PROXY_FAIL_MS 10000
#define PROXY_CONNECT_TIMEOUT_MS 5000

struct upstream_conf {
    char *url; /* as configured, for logs */
    struct sockaddr_storage ss;
    socklen_t sslen;
    char *authority; /* Host: sent upstream unless preserve_host */
    char *path;      /* prefix the request's path suffix is appended to */
};

struct proxy_conf {
    struct upstream_conf *ups;
    size_t nups;
    int least_conn;
    int preserve_host;
    int64_t timeout_ms;         /* each read and write once connected */
    int64_t connect_timeout_ms; /* to get a connection, before any byte is sent */
};

struct upstream_rt {
    h2o_socketpool_t pool;
    h2o_url_t url;
    int64_t down_until_ms;
    size_t active;
};

struct proxy_handler {
    h2o_handler_t super;
    const struct proxy_conf *conf;
    struct upstream_rt *rt;
    size_t next;
    h2o_timeout_t io_timeout;
    h2o_timeout_t connect_timeout;
    h2o_http1client_ctx_t client_ctx;
};

/* One request's way to an upstream; lives in the request's pool. */
struct attempt {
    h2o_req_t *req;
    struct proxy_handler *h;
    size_t idx, tried;
    int counted; /* holds one of rt[idx].active */
    h2o_socketpool_connect_request_t *creq;
    h2o_timeout_entry_t timer; /* while creq is pending */
};

/* ---- config (master) ---- */

static int
parse_upstream(const char *s, struct upstream_conf *u, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char host[256], port[8] = "80";
    const char *p, *slash, *colon;
    int rc;

    memset(u, 0, sizeof(*u));
    if (strncmp(s, "unix:", 5) == 0) {
        unsigned len;
        if (util_unix_sockaddr(s + 5, &u->ss, &len) == -1) {
            snprintf(err, errlen, "invalid upstream '%s': expected unix:/absolute/path", s);
            return -1;
        }
        u->sslen = len;
        u->authority = xstrdup("localhost");
        u->path = xstrdup("/");
        u->url = xstrdup(s);
        return 0;
    }
    if (strncmp(s, "http://", 7) != 0) {
        snprintf(err, errlen, "invalid upstream '%s': expected http://HOST:PORT[/PATH] or "
                 "unix:/PATH", s);
        return -1;
    }
    p = s + 7;
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    snprintf(host, sizeof(host), "%.*s", (int)((colon ? colon : slash) - p), p);
    /* A host or port too long for its buffer would be cut to another one: refuse it. */
    if ((size_t)((colon ? colon : slash) - p) >= sizeof(host) ||
        (colon != NULL && (size_t)(slash - colon - 1) >= sizeof(port)))
        host[0] = '\0';
    if (colon != NULL)
        snprintf(port, sizeof(port), "%.*s", (int)(slash - colon - 1), colon + 1);
    if (host[0] == '\0' || conf_parse_port(port) == -1) {
        snprintf(err, errlen, "invalid upstream '%s': expected http://HOST:PORT[/PATH]", s);
        return -1;
    }
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "upstream '%s': cannot resolve '%s': %s", s, host,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(&u->ss, res->ai_addr, res->ai_addrlen);
    u->sslen = res->ai_addrlen;
    freeaddrinfo(res);
    u->authority = xstrndup(p, (size_t)(slash - p));
    u->path = xstrdup(*slash ? slash : "/");
    u->url = xstrdup(s);
    return 0;
}

static void
proxy_free(void *p)
{
    struct proxy_conf *pc = p;

    if (pc == NULL)
        return;
    for (size_t i = 0; i < pc->nups; i++) {
        free(pc->ups[i].url);
        free(pc->ups[i].authority);
        free(pc->ups[i].path);
    }
    free(pc->ups);
    free(pc);
}

static int
proxy_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    struct proxy_conf *pc = xcalloc(1, sizeof(*pc));
    char err[300];

    pc->timeout_ms = 30000;
    pc->connect_timeout_ms = PROXY_CONNECT_TIMEOUT_MS;
    for (size_t i = 0; i < n->nargs; i++) {
        const struct conf_arg *a = &n->args[i];
        if (strcmp(a->s, "least_conn") == 0) {
            pc->least_conn = 1;
        } else if (strcmp(a->s, "round_robin") == 0) {
            pc->least_conn = 0;
        } else if (strcmp(a->s, "preserve_host") == 0) {
            pc->preserve_host = 1;
        } else if (strncmp(a->s, "timeout=", 8) == 0) {
            if (conf_parse_time_ms(a->s + 8, &pc->timeout_ms) == -1 || pc->timeout_ms < 1) {
                conf_diag_add(diag, &a->pos, "invalid proxy timeout '%s': expected a time "
                              "from 1ms to " CONF_TIME_MAX, a->s + 8);
                goto fail;
            }
        } else if (strncmp(a->s, "connect_timeout=", 16) == 0) {
            if (conf_parse_time_ms(a->s + 16, &pc->connect_timeout_ms) == -1 ||
                pc->connect_timeout_ms < 1) {
                conf_diag_add(diag, &a->pos, "invalid proxy connect_timeout '%s': expected a "
                              "time from 1ms to " CONF_TIME_MAX, a->s + 16);
                goto fail;
            }
        } else {
            pc->ups = xreallocarray(pc->ups, pc->nups + 1, sizeof(*pc->ups));
            if (parse_upstream(a->s, &pc->ups[pc->nups], err, sizeof(err)) == -1) {
                conf_diag_add(diag, &a->pos, "%s", err);
                goto fail;
            }
            pc->nups++;
        }
    }
    if (pc->nups == 0) {
        conf_diag_add(diag, &n->pos, "'proxy' needs at least one upstream URL");
        goto fail;
    }
    *out = pc;
    return 0;
fail:
    proxy_free(pc);
    return -1;
}

/* ---- requests (worker) ---- */

static int64_t
now_ms(h2o_req_t *req)
{
    return (int64_t)h2o_now(req->conn->ctx->loop);
}

/* The next upstream to try after `tried` failures: a live one if any. */
static size_t
pick(struct proxy_handler *h, int64_t now, size_t avoid, int have_avoid)
{
    size_t n = h->conf->nups, best = SIZE_MAX;

    for (size_t k = 0; k < n; k++) {
        size_t i = (h->next + k) % n;
        if ((have_avoid && i == avoid) || h->rt[i].down_until_ms > now)
            continue;
        if (!h->conf->least_conn) {
            best = i;
            break;
        }
        if (best == SIZE_MAX || h->rt[i].active < h->rt[best].active)
            best = i;
    }
    if (best == SIZE_MAX) /* all down: try anyway, in turn */
        best = (h->next + (have_avoid ? 1 : 0)) % n;
    h->next = (best + 1) % n;
    return best;
}

static void on_connect(h2o_socket_t *sock, const char *errstr, void *data);

/* An upstream that neither accepts nor refuses (a full backlog, a dropped SYN) counts as a
 * failed connection: the next upstream is tried. */
static void
on_connect_timeout(h2o_timeout_entry_t *entry)
{
    struct attempt *a = H2O_STRUCT_FROM_MEMBER(struct attempt, timer, entry);

    if (a->creq != NULL) {
        h2o_socketpool_cancel_connect(a->creq);
        a->creq = NULL;
    }
    on_connect(NULL, "connection timeout", a);
}

static void
try_upstream(struct attempt *a)
{
    h2o_context_t *ctx = a->req->conn->ctx;

    if (a->counted)
        a->h->rt[a->idx].active--;
    a->h->rt[a->idx].active++;
    a->counted = 1;
    a->timer.cb = on_connect_timeout;
    h2o_timeout_link(ctx->loop, &a->h->connect_timeout, &a->timer);
    h2o_socketpool_connect(&a->creq, &a->h->rt[a->idx].pool, ctx->loop,
                           &ctx->receivers.hostinfo_getaddr, on_connect, a);
}

static void
on_attempt_dispose(void *p)
{
    struct attempt *a = p;

    if (a->creq != NULL)
        h2o_socketpool_cancel_connect(a->creq);
    h2o_timeout_unlink(&a->timer);
    if (a->counted)
        a->h->rt[a->idx].active--;
}

/* RFC 7239: for=client;proto=http, alongside libh2o's X-Forwarded-For/-Proto. */
static h2o_headers_command_t *
forwarded_cmds(h2o_req_t *req)
{
    static char forwarded[] = "forwarded";
    static h2o_iovec_t name = {forwarded, sizeof(forwarded) - 1};
    h2o_headers_command_t *cmds = h2o_mem_alloc_pool(&req->pool, 2 * sizeof(*cmds));
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN] = "unknown";
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    int v6 = len > 0 && ss.ss_family == AF_INET6;

    if (len > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
    else if (v6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
    cmds[0].cmd = H2O_HEADERS_CMD_ADD;
    cmds[0].name = &name;
    cmds[0].value = h2o_concat(&req->pool, h2o_iovec_init(v6 ? "for=\"[" : "for=", v6 ? 6 : 4),
                               h2o_iovec_init(ip, strlen(ip)),
                               h2o_iovec_init(v6 ? "]\";proto=" : ";proto=", v6 ? 9 : 7),
                               req->scheme->name, h2o_iovec_init(H2O_STRLIT(";host=")),
                               req->authority);
    cmds[1].cmd = H2O_HEADERS_CMD_NULL;
    return cmds;
}

static void
forward(struct attempt *a)
{
    h2o_req_t *req = a->req;
    struct upstream_rt *rt = &a->h->rt[a->idx];
    h2o_req_overrides_t *ov = h2o_mem_alloc_pool(&req->pool, sizeof(*ov));
    h2o_iovec_t authority;

    memset(ov, 0, sizeof(*ov));
    ov->socketpool = &rt->pool;
    ov->client_ctx = &a->h->client_ctx;
    ov->location_rewrite.match = &rt->url;
    ov->location_rewrite.path_prefix = req->pathconf->path;
    ov->headers_cmds = forwarded_cmds(req);
    authority = a->h->conf->preserve_host ? req->authority : rt->url.authority;
    h2o_reprocess_request(req, req->method, rt->url.scheme, authority,
                          h2o_build_destination(req, rt->url.path.base, rt->url.path.len, 0),
                          ov, 0);
}

static int
is_timeout(const char *errstr)
{
    return errstr != NULL && strcmp(errstr, "connection timeout") == 0;
}

static void
on_connect(h2o_socket_t *sock, const char *errstr, void *data)
{
    struct attempt *a = data;
    struct upstream_rt *rt = &a->h->rt[a->idx];
    int64_t now = now_ms(a->req);

    a->creq = NULL;
    h2o_timeout_unlink(&a->timer);
    if (sock == NULL) {
        if (rt->down_until_ms <= now)
            log_warnx("upstream %s: %s; skipping it for %d s", a->h->conf->ups[a->idx].url,
                      errstr ? errstr : "connection failed", PROXY_FAIL_MS / 1000);
        rt->down_until_ms = now + PROXY_FAIL_MS;
        if (++a->tried >= a->h->conf->nups) {
            if (is_timeout(errstr))
                h2o_send_error_generic(a->req, 504, "Gateway Timeout", "no upstream answered\n",
                                       0);
            else
                h2o_send_error_502(a->req, "Bad Gateway", "no upstream answered\n", 0);
            return;
        }
        a->idx = pick(a->h, now, a->idx, 1);
        try_upstream(a);
        return;
    }
    rt->down_until_ms = 0;
    /* Back into the pool: libh2o's proxy takes it from there for this very request. */
    h2o_socketpool_return(&rt->pool, sock);
    forward(a);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct proxy_handler *h = (struct proxy_handler *)self;
    struct attempt *a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), on_attempt_dispose);

    memset(a, 0, sizeof(*a));
    a->req = req;
    a->h = h;
    a->idx = pick(h, now_ms(req), 0, 0);
    try_upstream(a);
    return 0;
}

static void
on_context_init(h2o_handler_t *self, h2o_context_t *ctx)
{
    struct proxy_handler *h = (struct proxy_handler *)self;

    h2o_timeout_init(ctx->loop, &h->io_timeout, (uint64_t)h->conf->timeout_ms);
    h2o_timeout_init(ctx->loop, &h->connect_timeout, (uint64_t)h->conf->connect_timeout_ms);
    h->client_ctx.loop = ctx->loop;
    h->client_ctx.getaddr_receiver = &ctx->receivers.hostinfo_getaddr;
    h->client_ctx.io_timeout = &h->io_timeout;
    for (size_t i = 0; i < h->conf->nups; i++)
        h2o_socketpool_set_timeout(&h->rt[i].pool, ctx->loop, PROXY_KEEPALIVE_MS);
}

/* libh2o answers 502 whatever went wrong; an upstream that did not answer in time is a
 * 504 (its error is the request's last). */
static void
on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    if (req->res.status == 502 && req->error_logs.size > 0) {
        const h2o_iovec_t *msg = &req->error_logs.entries[req->error_logs.size - 1].msg;
        if (h2o_memis(msg->base, msg->len, H2O_STRLIT("I/O timeout")) ||
            h2o_memis(msg->base, msg->len, H2O_STRLIT("connection timeout"))) {
            req->res.status = 504;
            req->res.reason = "Gateway Timeout";
        }
    }
    h2o_setup_next_ostream(req, slot);
}

static void
proxy_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    const struct proxy_conf *conf = hconf;
    struct proxy_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));

    h2o_create_filter(pc, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
    h->super.on_req = on_req;
    h->super.on_context_init = on_context_init;
    h->conf = conf;
    h->rt = xcalloc(conf->nups, sizeof(*h->rt));
    for (size_t i = 0; i < conf->nups; i++) {
        const struct upstream_conf *u = &conf->ups[i];
        h2o_socketpool_init_by_address(&h->rt[i].pool, (struct sockaddr *)&u->ss, u->sslen, 0,
                                       PROXY_POOL_CAPACITY);
        h2o_url_init(&h->rt[i].url, &H2O_URL_SCHEME_HTTP,
                     h2o_iovec_init(u->authority, strlen(u->authority)),
                     h2o_iovec_init(u->path, strlen(u->path)));
    }
}

const struct hnd_ops hnd_proxy_ops = {
    .name = "proxy",
    .min_args = 1,
    .max_args = 64,
    .parse = proxy_parse,
    .setup = proxy_setup,
    .free_conf = proxy_free,
};
