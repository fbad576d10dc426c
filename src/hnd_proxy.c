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
#include <strings.h>

#include "conf.h"
#include "h2o_inc.h"
#include "h2o_private.h"
#include "hnd.h"
#include "log.h"
#include "reqdata.h"
#include "router.h"
#include "tmpl.h"
#include "util.h"

#define PROXY_POOL_CAPACITY 1024
#define PROXY_KEEPALIVE_MS 2000
#define PROXY_FAIL_MS 10000
#define PROXY_CONNECT_TIMEOUT_MS 5000
#define PROXY_BUFFER_SIZE (2 * 1024 * 1024)
#define PROXY_BUFFER_MIN 4096
#define PROXY_BUFFER_MAX (1024 * 1024 * 1024)
/* An upstream timeout that does not come (a year: libh2o subtracts it from the time). */
#define PROXY_PAUSED_MS ((uint64_t)365 * 24 * 3600 * 1000)

struct upstream_conf {
    char *url; /* as configured, for logs */
    struct sockaddr_storage ss;
    socklen_t sslen;
    char *authority; /* Host: sent upstream unless preserve_host */
    char *path;      /* prefix the request's path suffix is appended to */
    struct tmpl *tpath; /* the path has variables: expanded instead, no suffix added */
};

struct proxy_conf {
    struct upstream_conf *ups;
    size_t nups;
    int least_conn;
    int preserve_host;
    int64_t timeout_ms;         /* each read and write once connected */
    int64_t connect_timeout_ms; /* to get a connection, before any byte is sent */
    uint64_t buffer_size;       /* read ahead of a client that lags, per response */
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

/* One response's flow from the upstream to the client. libh2o 2.2.5's proxy reads the
 * upstream as fast as it sends, whatever the client takes: a client that does not read
 * would make it hold the whole response (in a temp file past 32 MiB). So percore stops
 * reading the upstream socket while more than buffer_size waits in it, and starts again
 * when the proxy hands that data to the client; the upstream's timeout does not run while
 * percore itself holds the reading (the client's send timeout does). Its ctx is what
 * libh2o's client of this request uses. */
struct flow {
    h2o_http1client_ctx_t ctx;
    h2o_timeout_t own;         /* ctx.io_timeout while the buffer is full; from own_init */
    int own_init;
    h2o_loop_t *loop;
    h2o_timeout_t *shared;     /* the handler's io timeout */
    uint64_t timeout_ms, limit;
    h2o_http1client_t *client; /* from libh2o's generator, checked; NULL: no bound */
    h2o_socket_t *sock;
    h2o_socket_cb reader;      /* libh2o's client's read callback, once wrapped */
    void *gen;
    int paused;
    uint64_t paused_at;
    int *gone; /* while the reader runs: set by the attempt's dispose, with f gone too */
};

/* One request's way to an upstream; lives in the request's pool, allocated before
 * libh2o's proxy generator (so disposed of after it, when its client is gone). */
struct attempt {
    h2o_req_t *req;
    struct proxy_handler *h;
    size_t idx, tried;
    int counted; /* holds one of rt[idx].active */
    h2o_socketpool_connect_request_t *creq;
    h2o_timeout_entry_t timer; /* while creq is pending */
    struct flow flow;
};

struct flow_ostream {
    h2o_ostream_t super;
    struct flow *flow;
};

/* ---- config (master) ---- */

/* An upstream "unix:/PATH": requests go with Host: localhost and their own path. */
static int
parse_unix_upstream(const char *s, struct upstream_conf *u, char *err, size_t errlen)
{
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

/* Split an http URL's authority, p up to end, into host and port text (port is left as it
 * is when the authority has none). -1 when the host is empty or the port invalid. */
static int
split_hostport(const char *p, const char *end, char *host, size_t hostlen, char *port,
               size_t portlen)
{
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *hend = colon != NULL ? colon : end;

    /* A host or port too long for its buffer would be cut to another one: refuse it. */
    if ((size_t)(hend - p) >= hostlen ||
        (colon != NULL && (size_t)(end - colon - 1) >= portlen))
        return -1;
    snprintf(host, hostlen, "%.*s", (int)(hend - p), p);
    if (colon != NULL)
        snprintf(port, portlen, "%.*s", (int)(end - colon - 1), colon + 1);
    if (host[0] == '\0' || util_parse_port(port) == -1)
        return -1;
    return 0;
}

/* Resolve host and port of upstream s into u's address, once, at load time: the first
 * address getaddrinfo() gives is the one used. */
static int
resolve_upstream(const char *s, const char *host, const char *port, struct upstream_conf *u,
                 char *err, size_t errlen)
{
    unsigned len;
    int rc;

    rc = hnd_resolve(host, port, &u->ss, &len);
    if (rc != 0) {
        snprintf(err, errlen, "upstream '%s': cannot resolve '%s': %s", s, host,
                 gai_strerror(rc));
        return -1;
    }
    u->sslen = len;
    return 0;
}

/* u's path as a template: "/api/v$1/user/$2". A path whose only '$' are "$$" is its
 * literal. -1 with a message in err for a bad variable. */
static int
compile_path(struct upstream_conf *u, char *err, size_t errlen)
{
    char msg[400];
    size_t off = 0;
    struct tmpl *t = tmpl_compile(u->path, conf_captures_in_scope(), msg, sizeof(msg), &off);

    if (t == NULL) {
        snprintf(err, errlen, "%s (in upstream '%s', path offset %zu)", msg, u->url, off);
        return -1;
    }
    if (!tmpl_has_vars(t)) {
        free(u->path);
        u->path = xstrdup(tmpl_literal(t));
        tmpl_free(t);
        return 0;
    }
    u->tpath = t;
    return 0;
}

/* Parse upstream URL s, http://HOST[:PORT][/PATH] or unix:/PATH, into *u (its strings
 * owned by u, freed by proxy_free()). On error returns -1 with a message in err. */
static int
parse_upstream(const char *s, struct upstream_conf *u, char *err, size_t errlen)
{
    char host[256], port[8] = "80";
    const char *p, *slash;

    memset(u, 0, sizeof(*u));
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix_upstream(s, u, err, errlen);
    if (strncmp(s, "http://", 7) != 0) {
        snprintf(err, errlen, "invalid upstream '%s': expected http://HOST:PORT[/PATH] or "
                 "unix:/PATH", s);
        return -1;
    }
    p = s + 7;
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = p + strlen(p);
    if (split_hostport(p, slash, host, sizeof(host), port, sizeof(port)) == -1) {
        snprintf(err, errlen, "invalid upstream '%s': expected http://HOST:PORT[/PATH]", s);
        return -1;
    }
    if (resolve_upstream(s, host, port, u, err, errlen) == -1)
        return -1;
    u->authority = xstrndup(p, (size_t)(slash - p));
    u->path = xstrdup(*slash ? slash : "/");
    u->url = xstrdup(s);
    if (strchr(u->path, '$') != NULL && compile_path(u, err, errlen) == -1) {
        free(u->url);
        free(u->authority);
        free(u->path);
        memset(u, 0, sizeof(*u));
        return -1;
    }
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
        tmpl_free(pc->ups[i].tpath);
    }
    free(pc->ups);
    free(pc);
}

/* A flag word: least_conn, round_robin or preserve_host. 1 if s is one (now set), else 0. */
static int
parse_flag(struct proxy_conf *pc, const char *s)
{
    if (strcmp(s, "least_conn") == 0)
        pc->least_conn = 1;
    else if (strcmp(s, "round_robin") == 0)
        pc->least_conn = 0;
    else if (strcmp(s, "preserve_host") == 0)
        pc->preserve_host = 1;
    else
        return 0;
    return 1;
}

/* A NAME=VALUE word: timeout, connect_timeout or buffer_size. 1 if a is one (now set), 0
 * if it is not, -1 (reported) for a bad value. */
static int
parse_setting(struct proxy_conf *pc, const struct conf_arg *a, struct conf_diag *diag)
{
    const struct {
        const char *name;
        int64_t *ms;
    } times[] = {{"timeout", &pc->timeout_ms}, {"connect_timeout", &pc->connect_timeout_ms}};
    const char *s = a->s;

    for (size_t i = 0; i < NELEMS(times); i++) {
        size_t n = strlen(times[i].name);
        if (strncmp(s, times[i].name, n) != 0 || s[n] != '=')
            continue;
        if (conf_parse_time_ms(s + n + 1, 1, times[i].ms) == 0)
            return 1;
        conf_diag_add(diag, &a->pos, "invalid proxy %s '%s': expected a time from 1ms to "
                      CONF_TIME_MAX, times[i].name, s + n + 1);
        return -1;
    }
    if (strncmp(s, "buffer_size=", 12) != 0)
        return 0;
    if (conf_parse_size(s + 12, &pc->buffer_size) == -1 ||
        pc->buffer_size < PROXY_BUFFER_MIN || pc->buffer_size > PROXY_BUFFER_MAX) {
        conf_diag_add(diag, &a->pos, "invalid proxy buffer_size '%s': expected 4k to 1g",
                      s + 12);
        return -1;
    }
    return 1;
}

/* Append upstream URL a to pc's list; -1 (reported) if it is not a valid one. */
static int
add_upstream(struct proxy_conf *pc, const struct conf_arg *a, struct conf_diag *diag)
{
    char err[1024];

    pc->ups = xreallocarray(pc->ups, pc->nups + 1, sizeof(*pc->ups));
    if (parse_upstream(a->s, &pc->ups[pc->nups], err, sizeof(err)) == -1) {
        conf_diag_add(diag, &a->pos, "%s", err);
        return -1;
    }
    pc->nups++;
    return 0;
}

/* `proxy WORD...`: each word is a flag, a NAME=VALUE setting or else an upstream URL. */
static int
proxy_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    struct proxy_conf *pc = xcalloc(1, sizeof(*pc));
    const struct conf_arg *a;
    int rc;

    pc->timeout_ms = 30000;
    pc->connect_timeout_ms = PROXY_CONNECT_TIMEOUT_MS;
    pc->buffer_size = PROXY_BUFFER_SIZE;
    for (size_t i = 0; i < n->nargs; i++) {
        a = &n->args[i];
        if (parse_flag(pc, a->s))
            continue;
        rc = parse_setting(pc, a, diag);
        if (rc == 0)
            rc = add_upstream(pc, a, diag);
        if (rc == -1)
            goto fail;
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
    /* libh2o's client, whose timeout may be linked in own, is gone: see struct attempt. */
    if (a->flow.own_init)
        h2o_timeout_dispose(a->flow.loop, &a->flow.own);
    if (a->flow.gone != NULL)
        *a->flow.gone = 1;
}

/* ---- what goes upstream ---- */

/* A segment that some server reads as "..": libh2o's normalisation removed every "/../",
 * encoded or not, but not "..\" nor "..;param", which Windows-style or servlet upstreams
 * resolve as a parent directory. */
static int
has_dotdot(h2o_iovec_t p)
{
    size_t i = 0;

    if (memmem(p.base, p.len, "..", 2) == NULL)
        return 0;
    while (i < p.len) {
        size_t start = i, end;
        while (i < p.len && p.base[i] != '/' && p.base[i] != '\\')
            i++;
        end = i;
        for (size_t k = start; k < i; k++) {
            if (p.base[k] == ';') {
                end = k;
                break;
            }
        }
        if (end - start == 2 && p.base[start] == '.' && p.base[start + 1] == '.')
            return 1;
        i++;
    }
    return 0;
}

/* RFC 3986 pchar and '/': what an upstream path may carry unescaped. */
static int
is_pchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

/* The path sent upstream: the upstream's path, then the request's normalised path (dot
 * segments resolved, percent-escapes decoded once) after the route's prefix, escaped
 * again, then the query as the client sent it but for bytes that are not RFC 3986 query
 * characters ('#', bytes >= 0x80, quotes, '<', '>', '{', '|', '\' ...), which libh2o's
 * parser lets through and are percent-encoded here; its "%XX" escapes are kept. What the client wrote as "%252e" stays "%252e"; nothing it
 * writes can climb above the upstream's path. */
static h2o_iovec_t
upstream_path(h2o_req_t *req, h2o_iovec_t prefix)
{
    static const char hex[] = "0123456789ABCDEF";
    h2o_iovec_t conf = req->pathconf->path, norm = req->path_normalized, out;
    size_t skip = hnd_prefix_len(req);
    const unsigned char *sfx = (const unsigned char *)norm.base + skip;
    size_t slen = norm.len - skip;
    size_t qlen = 0;
    const char *query = NULL;
    int conf_slash = skip > 0 && conf.base[skip - 1] == '/';

    if (req->query_at != SIZE_MAX)
        query = hnd_location_query(&req->pool, req->path.base + req->query_at,
                                   req->path.len - req->query_at, &qlen);
    out.base = h2o_mem_alloc_pool(&req->pool, prefix.len + 1 + 3 * slen + qlen);
    memcpy(out.base, prefix.base, prefix.len);
    out.len = prefix.len;
    /* Join on exactly one slash, as the route and the upstream were written. */
    if (conf_slash && out.base[out.len - 1] != '/')
        out.base[out.len++] = '/';
    else if (!conf_slash && out.base[out.len - 1] == '/' && slen > 0 && sfx[0] == '/')
        out.len--;
    for (size_t i = 0; i < slen; i++) {
        if (is_pchar(sfx[i])) {
            out.base[out.len++] = (char)sfx[i];
        } else {
            out.base[out.len++] = '%';
            out.base[out.len++] = hex[sfx[i] >> 4];
            out.base[out.len++] = hex[sfx[i] & 15];
        }
    }
    if (qlen > 0) {
        memcpy(out.base + out.len, query, qlen);
        out.len += qlen;
    }
    return out;
}

static int
iov_casecmp(const void *a, const void *b)
{
    const h2o_iovec_t *x = a, *y = b;
    int r = strncasecmp(x->base, y->base, x->len < y->len ? x->len : y->len);

    return r != 0 ? r : (x->len > y->len) - (x->len < y->len);
}

/* The names the client's Connection headers list (RFC 9110 7.6.1), sorted for bsearch;
 * *n = 0 when there are none. */
static h2o_iovec_t *
connection_names(h2o_req_t *req, size_t *n)
{
    h2o_iovec_t *names = NULL;
    size_t cap = 0;

    *n = 0;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name != &H2O_TOKEN_CONNECTION->buf)
            continue;
        for (size_t k = 0; k < h->value.len;) {
            size_t start, end;
            while (k < h->value.len && strchr(" \t,", h->value.base[k]) != NULL)
                k++;
            start = k;
            while (k < h->value.len && h->value.base[k] != ',')
                k++;
            end = k;
            while (end > start && (h->value.base[end - 1] == ' ' || h->value.base[end - 1] == '\t'))
                end--;
            if (end == start)
                continue;
            if (*n == cap) {
                h2o_iovec_t *grown;
                cap = cap == 0 ? 8 : 2 * cap;
                grown = h2o_mem_alloc_pool(&req->pool, cap * sizeof(*names));
                if (*n > 0)
                    memcpy(grown, names, *n * sizeof(*names));
                names = grown;
            }
            names[(*n)++] = h2o_iovec_init(h->value.base + start, end - start);
        }
    }
    if (*n > 1)
        qsort(names, *n, sizeof(*names), iov_casecmp);
    return names;
}

/* Request headers no upstream gets: hop-by-hop ones, and those that say who the client is
 * or how it came, which percore sets itself (a client must not choose what the upstream
 * takes for percore's word). */
static int
is_dropped(const h2o_header_t *h)
{
    static const struct {
        const char *name;
        size_t len;
    } names[] = {
        {H2O_STRLIT("proxy-connection")}, {H2O_STRLIT("trailer")},
        {H2O_STRLIT("forwarded")},        {H2O_STRLIT("x-real-ip")},
    };

    if (h2o_iovec_is_token(h->name)) {
        const h2o_token_t *t = (const h2o_token_t *)h->name;
        return t == H2O_TOKEN_CONNECTION || t == H2O_TOKEN_KEEP_ALIVE || t == H2O_TOKEN_TE ||
               t == H2O_TOKEN_TRANSFER_ENCODING || t == H2O_TOKEN_UPGRADE ||
               t == H2O_TOKEN_PROXY_AUTHORIZATION || t == H2O_TOKEN_HTTP2_SETTINGS ||
               t == H2O_TOKEN_X_FORWARDED_FOR;
    }
    if (h->name->len > 12 && h2o_lcstris(h->name->base, 12, H2O_STRLIT("x-forwarded-")))
        return 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (h2o_lcstris(h->name->base, h->name->len, names[i].name, names[i].len))
            return 1;
    return 0;
}

/* Drops those headers and the ones Connection names, in place. */
static void
strip_headers(h2o_req_t *req)
{
    size_t nnames, kept = 0;
    h2o_iovec_t *names = connection_names(req, &nnames);

    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if ((is_dropped(h) && !router_sets_header(req, h->name)) ||
            (nnames > 0 && bsearch(h->name, names, nnames, sizeof(*names), iov_casecmp)))
            continue;
        req->headers.entries[kept++] = *h;
    }
    req->headers.size = kept;
}

/* s as an RFC 7230 quoted-string, or a zero-length iovec if it holds a control byte. */
static h2o_iovec_t
quoted(h2o_mem_pool_t *pool, h2o_iovec_t s)
{
    h2o_iovec_t q = {h2o_mem_alloc_pool(pool, 2 * s.len + 2), 0};

    q.base[q.len++] = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return h2o_iovec_init(NULL, 0);
        if (c == '"' || c == '\\')
            q.base[q.len++] = '\\';
        q.base[q.len++] = (char)c;
    }
    q.base[q.len++] = '"';
    return q;
}

/* Forwarded (RFC 7239) with the peer, the scheme and the Host the client asked for, its
 * values quoted, X-Forwarded-Host, and a Via whose received-by is percore's pseudonym
 * (libh2o's own Via would paste the client's Host). libh2o adds X-Forwarded-For and
 * X-Forwarded-Proto, from the peer address and the scheme only since the client's are
 * stripped. */
static h2o_headers_command_t *
forwarded_cmds(h2o_req_t *req)
{
    static char forwarded[] = "forwarded", xfh[] = "x-forwarded-host";
    static h2o_iovec_t fwd_name = {forwarded, sizeof(forwarded) - 1},
                       xfh_name = {xfh, sizeof(xfh) - 1};
    h2o_headers_command_t *cmds = h2o_mem_alloc_pool(&req->pool, 4 * sizeof(*cmds));
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN] = "unknown";
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    int v6 = len > 0 && ss.ss_family == AF_INET6;
    /* The client's own Host only: with none, libh2o's default would name a hostconf. */
    h2o_iovec_t client_host = hnd_client_authority(req);
    h2o_iovec_t host = client_host.len > 0 ? quoted(&req->pool, client_host)
                                           : h2o_iovec_init(NULL, 0);
    size_t n = 0;

    if (len > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
    else if (v6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
    cmds[n].cmd = H2O_HEADERS_CMD_ADD;
    cmds[n].name = &fwd_name;
    cmds[n++].value = h2o_concat(
        &req->pool, h2o_iovec_init(v6 ? "for=\"[" : "for=", v6 ? 6 : 4),
        h2o_iovec_init(ip, strlen(ip)), h2o_iovec_init(v6 ? "]\";proto=" : ";proto=", v6 ? 9 : 7),
        req->scheme->name, h2o_iovec_init(";host=", host.len > 0 ? 6 : 0), host);
    if (host.len > 0) {
        cmds[n].cmd = H2O_HEADERS_CMD_ADD;
        cmds[n].name = &xfh_name;
        cmds[n++].value = client_host;
    }
    cmds[n].cmd = H2O_HEADERS_CMD_ADD;
    cmds[n].name = (h2o_iovec_t *)&H2O_TOKEN_VIA->buf;
    cmds[n++].value = req->version >= 0x200 ? h2o_iovec_init(H2O_STRLIT("2 percore"))
                      : req->version == 0x100 ? h2o_iovec_init(H2O_STRLIT("1.0 percore"))
                                              : h2o_iovec_init(H2O_STRLIT("1.1 percore"));
    cmds[n].cmd = H2O_HEADERS_CMD_NULL;
    return cmds;
}

/* ---- bounding what is read ahead of the client ---- */

static void
flow_init(struct flow *f, h2o_req_t *req, struct proxy_handler *h)
{
    f->ctx = h->client_ctx;
    f->loop = req->conn->ctx->loop;
    f->shared = &h->io_timeout;
    f->timeout_ms = (uint64_t)h->conf->timeout_ms;
    f->limit = h->conf->buffer_size;
}

/* Whether libh2o's client still reads this response (the proxy forgets it once the
 * upstream's response ended or failed, and then frees it). */
static int
flow_live(const struct flow *f)
{
    return f->client != NULL && ((const struct rp_generator_head *)f->gen)->client == f->client;
}

/* Wraps the client's read callback: stops reading once a full buffer waits. */
static void
on_upstream_read(h2o_socket_t *sock, const char *err)
{
    h2o_http1client_t *client = sock->data;
    struct flow *f = H2O_STRUCT_FROM_MEMBER(struct flow, ctx, client->ctx);
    int full = sock->input->size >= f->limit, gone = 0;

    /* The reader re-arms its timeout on ctx.io_timeout: a timeout of this request alone
     * when it may have to be stopped. */
    if (full && !f->own_init) {
        h2o_timeout_init(f->loop, &f->own, f->timeout_ms);
        f->own_init = 1;
    }
    if (f->own_init)
        f->own.timeout = f->timeout_ms;
    f->ctx.io_timeout = full ? &f->own : f->shared;
    f->gone = &gone;
    f->reader(sock, err);
    /* The reader may end the response and the request with it (the connection of an
     * HTTP/1.0 client closes at once when an upstream's close ends the body): f went with
     * the request's pool. */
    if (gone)
        return;
    f->gone = NULL;
    if (flow_live(f) && f->sock->input->size >= f->limit) {
        h2o_socket_read_stop(f->sock);
        f->paused = 1;
        f->paused_at = h2o_now(f->loop);
        f->own.timeout = PROXY_PAUSED_MS;
    }
}

/* Finds libh2o's client of this response if the generator is the proxy's: its head names
 * this request and a client that uses this flow's ctx. */
static void
flow_attach(struct flow *f, h2o_req_t *req)
{
#ifdef PERCORE_H2O_PRIVATE
    struct rp_generator_head *g = (void *)req->_generator;

    /* Error responses have libh2o's static generator, without callbacks. */
    if (g == NULL || g->super.proceed == NULL || g->src_req != req || g->client == NULL ||
        g->client->ctx != &f->ctx || g->client->data != g || g->client->sock == NULL ||
        g->client->sock->data != g->client)
        return;
    f->gen = g;
    f->client = g->client;
    f->sock = g->client->sock;
#else
    (void)f;
    (void)req;
#endif
}

/* Sees each piece the proxy hands to the client: the first time, the client's reader is
 * in place (libh2o sets it after the response's head) and gets wrapped; later, the
 * proxy has taken what waited, so reading goes on. */
static void
flow_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
             h2o_send_state_t state)
{
    struct flow *f = ((struct flow_ostream *)self)->flow;

    if (flow_live(f)) {
        if (f->reader == NULL) {
            if (f->sock->_cb.read != NULL && f->sock->_cb.read != on_upstream_read) {
                f->reader = f->sock->_cb.read;
                h2o_socket_read_start(f->sock, on_upstream_read);
            }
        } else if (f->paused && f->sock->input->size < f->limit) {
            /* The upstream's timeout counts from now again. */
            f->paused = 0;
            f->own.timeout = h2o_now(f->loop) - f->paused_at + f->timeout_ms;
            h2o_socket_read_start(f->sock, on_upstream_read);
        }
    }
    h2o_ostream_send_next(self, req, bufs, bufcnt, state);
}

static void
flow_setup_ostream(h2o_req_t *req, h2o_ostream_t ***slot)
{
    struct flow *f;
    struct flow_ostream *o;

    if (req->overrides == NULL || req->overrides->client_ctx == NULL)
        return;
    f = H2O_STRUCT_FROM_MEMBER(struct flow, ctx, req->overrides->client_ctx);
    flow_attach(f, req);
    if (f->client == NULL)
        return;
    o = (struct flow_ostream *)(void *)h2o_add_ostream(req, sizeof(*o), *slot);
    o->super.do_send = flow_do_send;
    o->flow = f;
    *slot = &o->super.next;
}

/* The request target sent to upstream u: its path template expanded (with the request's
 * query unless the template has its own), or its path with the request's suffix. */
static h2o_iovec_t
target_of(h2o_req_t *req, const struct upstream_conf *u, const struct upstream_rt *rt)
{
    struct tmpl_env env;
    h2o_iovec_t path, query = h2o_iovec_init(NULL, 0);

    if (u->tpath == NULL)
        return upstream_path(req, rt->url.path);
    router_tmpl_env(req, &env, tmpl_uses(u->tpath));
    path = tmpl_expand(u->tpath, req, &env, TMPL_TARGET);
    if (!tmpl_gives_query(u->tpath) && req->query_at != SIZE_MAX)
        query.base = hnd_location_query(&req->pool, req->path.base + req->query_at,
                                        req->path.len - req->query_at, &query.len);
    return h2o_concat(&req->pool, path, query);
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
    flow_init(&a->flow, req, a->h);
    ov->client_ctx = &a->flow.ctx;
    ov->location_rewrite.match = &rt->url;
    ov->location_rewrite.path_prefix = req->pathconf->path;
    ov->headers_cmds = forwarded_cmds(req);
    authority = a->h->conf->preserve_host && hnd_client_authority(req).len > 0
                    ? hnd_client_authority(req) : rt->url.authority;
    h2o_reprocess_request(req, req->method, rt->url.scheme, authority,
                          target_of(req, &a->h->conf->ups[a->idx], rt), ov, 0);
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
                h2o_send_error_generic(a->req, 504, hnd_reason(504),
                                       "no upstream answered\n", 0);
            else
                h2o_send_error_502(a->req, hnd_reason(502), "no upstream answered\n", 0);
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
    struct attempt *a;

    if (has_dotdot(req->path_normalized)) {
        h2o_send_error_400(req, hnd_reason(400), "path with a parent segment\n", 0);
        return 0;
    }
    strip_headers(req);
    a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), on_attempt_dispose);
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

/* Tab, CR and LF: browsers drop them from a URL before they read it. */
static int
url_ignores(char c)
{
    return c == '\t' || c == '\r' || c == '\n';
}

/* libh2o rewrites a Location naming the upstream into the client's scheme and Host; with
 * an empty Host that gives "http:///rest", which browsers read as "http://rest", a host
 * the upstream's path names. Such a Location goes as the path alone, from one '/': a run
 * of '/' or '\', with any tab, CR or LF in it, would make it scheme-relative. */
static void
strip_empty_host(h2o_req_t *req, h2o_iovec_t *v)
{
    size_t off;

    if (v->len >= 7 && h2o_lcstris(v->base, 7, H2O_STRLIT("http://")))
        off = 7;
    else if (v->len >= 8 && h2o_lcstris(v->base, 8, H2O_STRLIT("https://")))
        off = 8;
    else
        return;
    while (off < v->len && url_ignores(v->base[off]))
        off++;
    if (off == v->len || v->base[off] != '/')
        return; /* it names a host */
    while (off < v->len &&
           (v->base[off] == '/' || v->base[off] == '\\' || url_ignores(v->base[off])))
        off++;
    *v = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("/")),
                    h2o_iovec_init(v->base + off, v->len - off));
}

/* The upstream's Location, rewritten or not, goes with its controls percent-encoded, as
 * the Locations percore builds: a raw tab, say, would hide a "//host" from any check. */
static void
fix_location(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_LOCATION, -1);
    h2o_iovec_t *v;

    if (i == -1)
        return;
    v = &req->res.headers.entries[i].value;
    if (hnd_client_authority(req).len == 0)
        strip_empty_host(req, v);
    v->base = hnd_location_visible(&req->pool, v->base, v->len, &v->len);
}

/* An upstream's folded header line (obs-fold: one starting with a space or tab) comes out
 * of libh2o's parser as a header with no name, which it would pass on as ": value", a
 * line no client reads as part of the header before it. RFC 7230 (3.2.4) lets a proxy
 * join a fold with a space, but the header it continues may be one libh2o drops: the
 * fold goes instead. */
static void
drop_folds(h2o_req_t *req)
{
    h2o_headers_t *hs = &req->res.headers;
    size_t n = 0;

    for (size_t i = 0; i < hs->size; i++)
        if (hs->entries[i].name->len != 0)
            hs->entries[n++] = hs->entries[i];
    hs->size = n;
}

/* libh2o answers 502 whatever went wrong; an upstream that did not answer in time is a
 * 504 (its error is the request's last). Proxied responses get the flow's ostream. */
static void
on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    drop_folds(req);
    fix_location(req);
    if (req->res.status == 502 && req->error_logs.size > 0) {
        const h2o_iovec_t *msg = &req->error_logs.entries[req->error_logs.size - 1].msg;
        if (h2o_memis(msg->base, msg->len, H2O_STRLIT("I/O timeout")) ||
            h2o_memis(msg->base, msg->len, H2O_STRLIT("connection timeout"))) {
            req->res.status = 504;
            req->res.reason = hnd_reason(504);
        }
    }
    flow_setup_ostream(req, &slot);
    /* The upstream's own response runs libh2o's proxy generator; percore's errors (and
     * libh2o's "connection failed") are sent inline, whose generator has no proceed. */
    if (req->res.status >= 400 && req->_generator != NULL &&
        req->_generator->proceed != NULL)
        reqdata_mark_upstream(req); /* only errors are looked at again */
    h2o_setup_next_ostream(req, slot);
}

static int
proxy_uses_vars(const void *hconf)
{
    const struct proxy_conf *pc = hconf;

    for (size_t i = 0; i < pc->nups; i++)
        if (pc->ups[i].tpath != NULL)
            return 1;
    return 0;
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
    /* Via is set by forwarded_cmds, with percore's name rather than the client's Host. */
    pc->global->proxy.emit_via_header = 0;
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
    .usage = "proxy URL... [round_robin|least_conn] [preserve_host] [timeout=TIME] "
             "[connect_timeout=TIME]",
    .parse = proxy_parse,
    .setup = proxy_setup,
    .free_conf = proxy_free,
    .uses_vars = proxy_uses_vars,
};
