/* The proxy handler: forwards requests to one of several HTTP/1.1 upstreams (TCP or unix
 * socket), round robin or least connections, over keep-alive connections of percore's own
 * (uppool.c, upclient.c). A connection is taken from the chosen upstream's pool (or
 * opened) before any byte of the request is sent; if none can be had the upstream is
 * skipped for a while and the next one tried. The request head is built here: the
 * client's headers but hop-by-hop ones and those saying who the client is, which percore
 * says itself (Forwarded, X-Forwarded-*, Via). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clientaddr.h"
#include "conf.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "holdread.h"
#include "log.h"
#include "looplag.h"
#include "otel.h"
#include "phr.h"
#include "proxyproto.h"
#include "reqdata.h"
#include "router.h"
#include "tmpl.h"
#include "tunnel.h"
#include "upclient.h"
#include "uppool.h"
#include "upsel.h"
#include "upstream.h"
#include "uptls.h"
#include "util.h"

/* Proxy line options (timeout=, connect_timeout=, buffer_size=) override the group's. */
struct proxy_conf {
    const struct conf_upstream *group;
    struct conf_upstream *own; /* the servers written on the line: a group of its own */
    char *path;         /* a named group: the line's path, prefixed to the request's */
    struct tmpl *tpath; /* ... holding variables */
    int preserve_host;
    int64_t timeout_ms;         /* each read and write once connected */
    int64_t connect_timeout_ms; /* to get a connection, before any byte is sent */
    uint64_t buffer_size;       /* read ahead of a client that lags, per response */
    int64_t ws_timeout_ms;      /* a WebSocket tunnel idle this long is closed */
    int least_conn;             /* a flag on the line, for its own group */
    int proxy_protocol;         /* proxy_protocol=, for its own group; -1: not given */
    struct conf_pos proxy_protocol_pos;
};

/* The route's view of server i: http://authority/path, for targets and Location. */
struct upstream_rt {
    h2o_url_t url;
    const struct tmpl *tpath;
};

struct proxy_handler {
    h2o_handler_t super;
    const struct proxy_conf *conf;
    struct upstream_rt *rt;
    struct upsel *sel;
    h2o_timeout_t io_timeout;
    h2o_timeout_t connect_timeout;
    h2o_timeout_t websocket_timeout;
};

/* One request's way to an upstream; lives in the request's pool. */
struct attempt {
    h2o_req_t *req;
    struct proxy_handler *h;
    size_t idx;       /* the server of this attempt */
    uint8_t *tried;   /* a byte per server */
    unsigned retries; /* attempts that re-sent the request */
    int counted;      /* holds one of server idx's requests in flight */
    int reporting;    /* an attempt at server idx whose end its record has not learnt */
    int64_t start_us;                  /* monotonic: when this attempt began */
    int64_t connect_start_us, sent_us; /* monotonic; sent_us 0 before the exchange */
    uint64_t connect_us;               /* UPSTATE_NONE: none (a kept connection) */
    struct upconn *connecting;
    h2o_timeout_entry_t timer; /* while connecting */
    int reused;                /* the exchange runs on a kept connection */
    h2o_iovec_t head;          /* the request head built for server head_idx */
    size_t head_idx;
    h2o_iovec_t key;           /* balance hash's value */
    struct upsel_waiter wait;  /* queued: every server was at its max_inflight */
    int websocket;             /* an upgrade to WebSocket, sent on */
    h2o_socket_t *held;        /* the client's socket, kept polled (holdread.h) */
    uint8_t span_id[8];        /* tracing: this attempt's span, the upstream's parent */
    struct upclient client;
};

/* ---- config (master) ---- */

static void
proxy_free(void *p)
{
    struct proxy_conf *pc = p;

    if (pc == NULL)
        return;
    upstream_free(pc->own);
    free(pc->path);
    tmpl_free(pc->tpath);
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

/* proxy_protocol=v1|v2|off: 1 (set), or -1 (reported) for a bad value. */
static int
parse_proxy_protocol(struct proxy_conf *pc, const struct conf_arg *a, struct conf_diag *diag)
{
    static const char *const words[] = {"off", "v1", "v2"};
    const char *v = a->s + strlen("proxy_protocol=");

    for (int i = 0; i < (int)NELEMS(words); i++) {
        if (strcmp(v, words[i]) == 0) {
            pc->proxy_protocol = i;
            pc->proxy_protocol_pos = a->pos;
            return 1;
        }
    }
    conf_diag_add(diag, &a->pos, "invalid proxy proxy_protocol '%s': expected v1, v2 or off", v);
    return -1;
}

/* A NAME=VALUE word: timeout, connect_timeout, websocket_timeout, buffer_size or
 * proxy_protocol. 1 if a is one (now set), 0 if it is not, -1 (reported) for a bad value. */
static int
parse_setting(struct proxy_conf *pc, const struct conf_arg *a, struct conf_diag *diag)
{
    const struct {
        const char *name;
        int64_t *ms;
    } times[] = {{"timeout", &pc->timeout_ms},
                 {"connect_timeout", &pc->connect_timeout_ms},
                 {"websocket_timeout", &pc->ws_timeout_ms}};
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
    if (strncmp(s, "proxy_protocol=", 15) == 0)
        return parse_proxy_protocol(pc, a, diag);
    if (strncmp(s, "buffer_size=", 12) != 0)
        return 0;
    if (conf_parse_size(s + 12, &pc->buffer_size) == -1 ||
        pc->buffer_size < UPSTREAM_BUFFER_MIN || pc->buffer_size > UPSTREAM_BUFFER_MAX) {
        conf_diag_add(diag, &a->pos, "invalid proxy buffer_size '%s': expected 4k to 1g",
                      s + 12);
        return -1;
    }
    return 1;
}

/* "http://NAME[/PATH]" naming an upstream group: the group, with the path (or NULL). */
static const struct conf_upstream *
named_group(const char *s, const char **path)
{
    char name[128];
    const char *p, *end;
    size_t len;

    if (strncmp(s, "http://", 7) != 0)
        return NULL;
    p = s + 7;
    end = p + strcspn(p, "/");
    len = (size_t)(end - p);
    if (len == 0 || len >= sizeof(name))
        return NULL;
    memcpy(name, p, len);
    name[len] = '\0';
    *path = *end == '/' ? end : NULL;
    return conf_find_upstream(name);
}

/* The line's path for a named group, compiled when it has variables. */
static int
set_group_path(struct proxy_conf *pc, const char *path, const struct conf_arg *a,
               struct conf_diag *diag)
{
    char msg[400];
    size_t off = 0;
    struct tmpl *t;

    pc->path = xstrdup(path != NULL ? path : "/");
    if (strchr(pc->path, '$') == NULL)
        return 0;
    t = tmpl_compile(pc->path, conf_captures_in_scope(), msg, sizeof(msg), &off);
    if (t == NULL) {
        conf_diag_add(diag, &a->pos, "%s (in '%s', path offset %zu)", msg, a->s, off);
        return -1;
    }
    if (tmpl_has_vars(t)) {
        pc->tpath = t;
        return 0;
    }
    free(pc->path);
    pc->path = xstrdup(tmpl_literal(t));
    tmpl_free(t);
    return 0;
}

/* An upstream word: a group's name (alone on the line) or a server of the line's own. */
static int
add_upstream(struct proxy_conf *pc, const struct conf_arg *a, struct conf_diag *diag)
{
    char err[1024];
    const char *path = NULL;
    const struct conf_upstream *g = named_group(a->s, &path);

    if (g != NULL || pc->group != NULL) {
        if (pc->group != NULL || pc->own != NULL) {
            conf_diag_add(diag, &a->pos, "'%s': a proxy names one upstream group, or lists "
                          "servers, not both", a->s);
            return -1;
        }
        pc->group = g;
        return set_group_path(pc, path, a, diag);
    }
    if (pc->own == NULL)
        pc->own = upstream_new(a->s, &a->pos, 1);
    if (upstream_add_server(pc->own, a->s, &a->pos, 1, err, sizeof(err)) == -1) {
        conf_diag_add(diag, &a->pos, "%s", err);
        return -1;
    }
    return 0;
}

/* `proxy WORD...`: each word is a flag, a NAME=VALUE setting or else an upstream. */
static int
proxy_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    struct proxy_conf *pc = xcalloc(1, sizeof(*pc));
    const struct conf_arg *a;
    int rc;

    pc->timeout_ms = -1;
    pc->connect_timeout_ms = -1;
    pc->ws_timeout_ms = TUNNEL_IDLE_DEFAULT_MS;
    pc->proxy_protocol = -1;
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
    if (pc->own == NULL && pc->group == NULL) {
        conf_diag_add(diag, &n->pos, "'proxy' needs at least one upstream URL");
        goto fail;
    }
    /* A named group's connections are shared by every line that names it. */
    if (pc->proxy_protocol != -1 && pc->own == NULL) {
        conf_diag_add(diag, &pc->proxy_protocol_pos, "proxy_protocol= is for the servers "
                      "written on the line: set 'proxy_protocol' in upstream '%s'",
                      pc->group->name);
        goto fail;
    }
    if (pc->own != NULL) {
        char err[600];
        pc->own->balance = pc->least_conn ? BALANCE_LEAST_CONN : BALANCE_ROUND_ROBIN;
        pc->own->proxy_protocol = pc->proxy_protocol == -1 ? 0 : pc->proxy_protocol;
        pc->group = pc->own;
        if (upstream_finish(pc->own, err, sizeof(err)) == -1) {
            conf_diag_add(diag, &n->pos, "%s", err);
            goto fail;
        }
    }
    if (pc->timeout_ms == -1)
        pc->timeout_ms = pc->group->timeout_ms;
    if (pc->connect_timeout_ms == -1)
        pc->connect_timeout_ms = pc->group->connect_timeout_ms;
    if (pc->buffer_size == 0)
        pc->buffer_size = pc->group->buffer_size;
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

/* Hop-by-hop request headers, which no upstream gets. */
static int
is_hop_by_hop(const h2o_header_t *h)
{
    if (h2o_iovec_is_token(h->name)) {
        const h2o_token_t *t = (const h2o_token_t *)h->name;
        return t == H2O_TOKEN_CONNECTION || t == H2O_TOKEN_KEEP_ALIVE || t == H2O_TOKEN_TE ||
               t == H2O_TOKEN_TRANSFER_ENCODING || t == H2O_TOKEN_UPGRADE ||
               t == H2O_TOKEN_PROXY_AUTHORIZATION || t == H2O_TOKEN_HTTP2_SETTINGS;
    }
    return h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("proxy-connection")) ||
           h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("trailer"));
}

static int
is_forwarded(const h2o_iovec_t *name)
{
    return h2o_lcstris(name->base, name->len, H2O_STRLIT("forwarded"));
}

/* Headers that say who the client is or how it came: from a trusted proxy they are kept
 * (and extended with percore's hop), from anyone else dropped, so that no client chooses
 * what the upstream takes for percore's word. */
static int
is_identity(const h2o_header_t *h)
{
    if (h->name == &H2O_TOKEN_X_FORWARDED_FOR->buf)
        return 1;
    return (h->name->len > 12 && h2o_lcstris(h->name->base, 12, H2O_STRLIT("x-forwarded-"))) ||
           is_forwarded(h->name) ||
           h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-real-ip"));
}

/* Drops those headers and the ones Connection names, in place. */
static void
strip_headers(h2o_req_t *req)
{
    size_t nnames, kept = 0;
    h2o_iovec_t *names = connection_names(req, &nnames);
    int trusted = clientaddr_peer_trusted(req);

    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (is_hop_by_hop(h) ||
            (is_identity(h) && !trusted && !router_sets_header(req, h->name)) ||
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

/* The request target sent to server rt: its path template expanded (with the request's
 * query unless the template has its own), or its path with the request's suffix. */
static h2o_iovec_t
target_of(h2o_req_t *req, const struct upstream_rt *rt)
{
    struct tmpl_env env;
    h2o_iovec_t path, query = h2o_iovec_init(NULL, 0);

    if (rt->tpath == NULL)
        return upstream_path(req, rt->url.path);
    router_tmpl_env(req, &env, tmpl_uses(rt->tpath));
    path = tmpl_expand(rt->tpath, req, &env, TMPL_TARGET);
    if (!tmpl_gives_query(rt->tpath) && req->query_at != SIZE_MAX)
        query.base = hnd_location_query(&req->pool, req->path.base + req->query_at,
                                        req->path.len - req->query_at, &query.len);
    return h2o_concat(&req->pool, path, query);
}

/* ---- the request head sent upstream ---- */

/* A growing piece of the request's pool memory for the head. */
struct headbuf {
    char *p;
    size_t len, cap;
    h2o_mem_pool_t *pool;
};

static void
put(struct headbuf *b, const char *s, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = 2 * (b->len + len);
        char *p = h2o_mem_alloc_pool(b->pool, cap);
        if (b->len > 0)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, len);
    b->len += len;
}

static void
put_iov(struct headbuf *b, h2o_iovec_t v)
{
    put(b, v.base, v.len);
}

static void
put_str(struct headbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void
put_header_n(struct headbuf *b, const char *name, size_t nlen, h2o_iovec_t value)
{
    put(b, name, nlen);
    put(b, ": ", 2);
    put_iov(b, value);
    put(b, "\r\n", 2);
}

static void
put_header(struct headbuf *b, const char *name, h2o_iovec_t value)
{
    put_str(b, name);
    put(b, ": ", 2);
    put_iov(b, value);
    put(b, "\r\n", 2);
}

/* An IPv4 address in dotted decimal into ip (16 bytes at least): inet_ntop's text,
 * without the sprintf it makes per request. */
static const char *
ipv4_text(const struct in_addr *in, char *ip)
{
    const unsigned char *b = (const unsigned char *)&in->s_addr;
    char *p = ip;

    for (int i = 0; i < 4; i++) {
        if (b[i] >= 100)
            *p++ = (char)('0' + b[i] / 100);
        if (b[i] >= 10)
            *p++ = (char)('0' + b[i] / 10 % 10);
        *p++ = (char)('0' + b[i] % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
    return ip;
}

/* The client's address as text ("unknown" when it has none); ip holds
 * INET6_ADDRSTRLEN bytes. */
static const char *
peer_text(h2o_req_t *req, char *ip, size_t len, int *v6)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

    *v6 = 0;
    if (sl > 0 && ss.ss_family == AF_INET)
        return ipv4_text(&((struct sockaddr_in *)&ss)->sin_addr, ip);
    if (sl > 0 && ss.ss_family == AF_INET6) {
        *v6 = 1;
        return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
                         (socklen_t)len);
    }
    return "unknown";
}

/* The values of the request's header lines named name (as the header loop passes them
 * on), joined by ", ", then ", " before what percore adds; nothing when there are none. */
static void
put_earlier(struct headbuf *b, h2o_req_t *req, const h2o_iovec_t *name)
{
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name == name ||
            (!h2o_iovec_is_token(h->name) && h2o_lcstris(h->name->base, h->name->len,
                                                         name->base, name->len))) {
            put_iov(b, h->value);
            put(b, ", ", 2);
        }
    }
}

static int
has_header(h2o_req_t *req, const char *name, size_t len)
{
    for (size_t i = 0; i < req->headers.size; i++)
        if (h2o_lcstris(req->headers.entries[i].name->base, req->headers.entries[i].name->len,
                        name, len))
            return 1;
    return 0;
}

/* What percore says of the request to the upstream: Forwarded (RFC 7239) with the peer,
 * the scheme and the Host the client asked for (quoted), X-Forwarded-For, -Proto and
 * -Host, and a Via naming percore (not the client's Host). Forwarded and X-Forwarded-For
 * lines that are left (a trusted proxy's, or a proxy_header's) get percore's hop after
 * them; an X-Forwarded-Proto or -Host left is kept instead of percore's. */
static void
put_forwarded(struct headbuf *b, h2o_req_t *req)
{
    static const h2o_iovec_t fwd = {(char *)"forwarded", 9};
    char buf[INET6_ADDRSTRLEN];
    int v6;
    const char *ip = peer_text(req, buf, sizeof(buf), &v6);
    h2o_iovec_t client_host = hnd_client_authority(req);
    h2o_iovec_t host = client_host.len > 0 ? quoted(&req->pool, client_host)
                                           : h2o_iovec_init(NULL, 0);

    put_str(b, "forwarded: ");
    put_earlier(b, req, &fwd);
    put_str(b, v6 ? "for=\"[" : "for=");
    put_str(b, ip);
    put_str(b, v6 ? "]\";proto=" : ";proto=");
    put_iov(b, req->scheme->name);
    if (host.len > 0) {
        put_str(b, ";host=");
        put_iov(b, host);
    }
    put(b, "\r\n", 2);
    put_str(b, "x-forwarded-for: ");
    put_earlier(b, req, &H2O_TOKEN_X_FORWARDED_FOR->buf);
    put_str(b, ip);
    put(b, "\r\n", 2);
    if (!has_header(req, H2O_STRLIT("x-forwarded-proto")))
        put_header(b, "x-forwarded-proto", req->scheme->name);
    if (host.len > 0 && !has_header(req, H2O_STRLIT("x-forwarded-host")))
        put_header(b, "x-forwarded-host", client_host);
    put_str(b, req->version >= 0x200   ? "via: 2 percore\r\n"
               : req->version == 0x100 ? "via: 1.0 percore\r\n"
                                       : "via: 1.1 percore\r\n");
}

/* Whether a client header goes upstream as it is: Host is sent from the upstream's side,
 * the body's length is percore's own (the body is read whole), and Expect was answered
 * already. Cookie is joined (below), Forwarded and X-Forwarded-For extended
 * (put_forwarded). */
static int
is_resent(const h2o_header_t *h)
{
    const h2o_token_t *t = h2o_iovec_is_token(h->name) ? (const h2o_token_t *)h->name : NULL;

    return t != H2O_TOKEN_HOST && t != H2O_TOKEN_CONTENT_LENGTH && t != H2O_TOKEN_EXPECT &&
           t != H2O_TOKEN_COOKIE && t != H2O_TOKEN_X_FORWARDED_FOR &&
           (t != NULL || !is_forwarded(h->name));
}

/* Cookies as one line: an HTTP/2 client may split them over several (RFC 9113 8.2.3). */
static void
put_cookies(struct headbuf *b, h2o_req_t *req)
{
    int n = 0;

    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name != &H2O_TOKEN_COOKIE->buf)
            continue;
        put_str(b, n++ == 0 ? "cookie: " : "; ");
        put_iov(b, h->value);
    }
    if (n > 0)
        put(b, "\r\n", 2);
}

/* Room for what build_head writes, so that the head takes one allocation: the request
 * line, the client's lines (each at most once, with ": " and CRLF), its Host in Forwarded
 * (quoted: up to twice as long) and X-Forwarded-Host, percore's own lines. A bound that
 * is short only costs more (put grows the buffer). */
static size_t
head_room(h2o_req_t *req, h2o_iovec_t target, h2o_iovec_t authority)
{
    size_t n = req->method.len + target.len + authority.len + 4 * hnd_client_authority(req).len;

    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n + 384 + INET6_ADDRSTRLEN;
}

/* The whole request head for upstream idx. */
static h2o_iovec_t
build_head(struct attempt *a)
{
    h2o_req_t *req = a->req;
    const struct upstream_rt *rt = &a->h->rt[a->idx];
    struct headbuf b = {NULL, 0, 0, &req->pool};
    h2o_iovec_t authority = a->h->conf->preserve_host && hnd_client_authority(req).len > 0
                                ? hnd_client_authority(req)
                                : rt->url.authority;
    h2o_iovec_t target = target_of(req, rt);
    const struct reqdata *rd = reqdata_find(req);
    const struct reqtrace *t = rd != NULL && rd->trace.on ? &rd->trace : NULL;
    char len[32], tp[REQTRACE_TRACEPARENT_LEN + 1];

    b.cap = head_room(req, target, authority);
    b.p = h2o_mem_alloc_pool(&req->pool, b.cap);
    put_iov(&b, req->method);
    put(&b, " ", 1);
    put_iov(&b, target);
    put_str(&b, " HTTP/1.1\r\n");
    put_header(&b, "host", authority);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (t != NULL && h2o_memis(h->name->base, h->name->len, H2O_STRLIT("traceparent")))
            continue; /* the router's, naming percore's span: this attempt's goes instead */
        if (is_resent(h))
            put_header_n(&b, h->orig_name != NULL ? h->orig_name : h->name->base, h->name->len,
                         h->value);
    }
    if (t != NULL) {
        reqtrace_traceparent(t, a->span_id, tp);
        put_header(&b, "traceparent", h2o_iovec_init(tp, REQTRACE_TRACEPARENT_LEN));
    }
    put_cookies(&b, req);
    put_forwarded(&b, req);
    put_str(&b, a->websocket ? "upgrade: websocket\r\nconnection: upgrade\r\n"
                             : "connection: keep-alive\r\n");
    if (req->entity.base != NULL) {
        snprintf(len, sizeof(len), "%zu", req->entity.len);
        put_header(&b, "content-length", h2o_iovec_init(len, strlen(len)));
    }
    put(&b, "\r\n", 2);
    return h2o_iovec_init(b.p, b.len);
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

/* ---- the response head ---- */

/* Whether the upstream's Connection headers list name (RFC 9110 7.6.1: those headers
 * were meant for percore's hop only). */
static int
listed_in_connection(const struct upclient_head *uh, const char *name, size_t len)
{
    for (size_t i = 0; i < uh->nheaders; i++) {
        const struct phr_header *h = &uh->headers[i];
        const char *v = h->value, *end = h->value + h->value_len;
        if (h->name_len != 10 || strncasecmp(h->name, "connection", 10) != 0)
            continue;
        while (v < end) {
            const char *tok, *tend;
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            tok = v;
            while (v < end && *v != ',')
                v++;
            tend = v;
            while (tend > tok && (tend[-1] == ' ' || tend[-1] == '\t'))
                tend--;
            if ((size_t)(tend - tok) == len && strncasecmp(tok, name, len) == 0)
                return 1;
        }
    }
    return 0;
}

/* A Location naming the upstream itself (its scheme, authority and path) is rewritten to
 * name the route as the client reached it: its scheme and Host, the route's prefix. */
static h2o_iovec_t
rewrite_location(h2o_req_t *req, const struct upstream_rt *rt, h2o_iovec_t v)
{
    h2o_url_t loc;
    h2o_iovec_t prefix = req->pathconf->path, host = hnd_client_authority(req);

    if (h2o_url_parse(v.base, v.len, &loc) != 0 || loc.scheme != rt->url.scheme ||
        !h2o_lcstris(loc.authority.base, loc.authority.len, rt->url.authority.base,
                     rt->url.authority.len) ||
        loc.path.len < rt->url.path.len ||
        memcmp(loc.path.base, rt->url.path.base, rt->url.path.len) != 0)
        return v;
    loc.path.base += rt->url.path.len;
    loc.path.len -= rt->url.path.len;
    /* With no Host this is "http:///...", which fix_location makes a path. */
    return h2o_concat(&req->pool, req->scheme->name, h2o_iovec_init(H2O_STRLIT("://")), host,
                      prefix, loc.path);
}

/* libh2o's token for a header name in any case; NULL for a name it has none for. */
static const h2o_token_t *
token_of(const char *name, size_t len)
{
    char lc[64]; /* longer than any token */

    if (len > sizeof(lc))
        return NULL;
    memcpy(lc, name, len);
    h2o_strtolower(lc, len);
    return h2o_lookup_token(lc, len);
}

/* One upstream header into the response, unless it is hop-by-hop (libh2o's list,
 * Proxy-Connection, those Connection names), Content-Length (libh2o frames the
 * response itself from res.content_length) or Server (libh2o sends percore's; a second
 * one would name the software behind it, as nginx's proxy_hide_header default has it). The value is copied (the input buffer holding
 * it is read into again), and so is the name as sent (libh2o copies orig_name). */
static void
add_response_header(struct attempt *a, const struct upclient_head *uh,
                    const struct phr_header *ph)
{
    h2o_req_t *req = a->req;
    const h2o_token_t *t = token_of(ph->name, ph->name_len);
    h2o_iovec_t name, value;

    if ((t != NULL && (t->proxy_should_drop_for_res || t == H2O_TOKEN_CONTENT_LENGTH ||
                       t == H2O_TOKEN_SERVER)) ||
        h2o_lcstris(ph->name, ph->name_len, H2O_STRLIT("proxy-connection")) ||
        listed_in_connection(uh, ph->name, ph->name_len))
        return;
    value = h2o_strdup(&req->pool, ph->value, ph->value_len);
    if (t == H2O_TOKEN_LOCATION)
        value = rewrite_location(req, &a->h->rt[a->idx], value);
    if (t != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, t, ph->name, value.base, value.len);
        return;
    }
    name = h2o_strdup(&req->pool, ph->name, ph->name_len);
    h2o_strtolower(name.base, name.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 0, ph->name,
                          value.base, value.len);
}

static int
on_head(void *data, const struct upclient_head *uh)
{
    struct attempt *a = data;
    h2o_req_t *req = a->req;

    req->res.status = uh->status;
    req->res.reason = h2o_strdup(&req->pool, uh->reason.base, uh->reason.len).base;
    for (size_t i = 0; i < uh->nheaders; i++)
        add_response_header(a, uh, &uh->headers[i]);
    fix_location(req);
    /* Error documents pass the upstream's own errors on as they are. */
    if (uh->status >= 400)
        reqdata_mark_upstream(req);
    return 0;
}

/* ---- attempts ---- */

static const struct upclient_cbs client_cbs;
static void try_upstream(struct attempt *a);

static int
is_idempotent(h2o_iovec_t m)
{
    static const char *const names[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

    for (size_t i = 0; i < NELEMS(names); i++)
        if (h2o_memis(m.base, m.len, names[i], strlen(names[i])))
            return 1;
    return 0;
}

static const char *
url_of(const struct attempt *a)
{
    return upsel_group(a->h->sel)->servers[a->idx].url;
}

static void
release(struct attempt *a)
{
    if (!a->counted)
        return;
    upsel_release(a->h->sel, a->idx);
    a->counted = 0;
}

/* Span export: the client span of an attempt of a sampled request (rd's) that ended with r
 * (status: the response's, or 0). One that got a response it passes on ends with the
 * request (the response's body is still to come). Each attempt before it, failed or
 * retried, counts as a resend. */
static void
trace_attempt(struct attempt *a, struct reqdata *rd, enum upstate_result r, int status)
{
    struct otel_attempt oa = {
        .start_us = a->start_us,
        .server = &upsel_group(a->h->sel)->servers[a->idx],
        .resend = rd->up.attempts > 0 && r != UPSTATE_ABORTED ? rd->up.attempts - 1
                                                              : rd->up.attempts,
        .status = status,
        .error = r == UPSTATE_OK ? NULL : upstate_result_names[r],
    };
    memcpy(oa.span_id, a->span_id, sizeof(oa.span_id));
    if (r == UPSTATE_OK)
        otel_attempt_answered(a->req, rd, &oa);
    else
        otel_attempt_end(rd, &oa);
}

/* The attempt at server idx ended with r (status: the response's, or 0): its record
 * counts it and holds it for or against the server, once. */
static void
report(struct attempt *a, enum upstate_result r, int status)
{
    int64_t now = util_now_us();
    uint64_t response_us = a->sent_us != 0 && status != 0 ? (uint64_t)(now - a->sent_us)
                                                          : UPSTATE_NONE;

    struct reqdata *rd;

    if (!a->reporting)
        return;
    a->reporting = 0;
    upstate_report(upsel_state(a->h->sel, a->idx), &upsel_group(a->h->sel)->policy, r,
                   a->connect_us, response_us, status, now / 1000);
    if (r == UPSTATE_ABORTED) {
        /* The request's data may be gone already (NULL), as its pool is being cleared. */
        rd = otel_mask ? reqdata_find(a->req) : NULL;
        if (rd != NULL && otel_sampled(rd))
            trace_attempt(a, rd, r, status);
        return; /* the request is going: nothing logs it after this */
    }
    rd = reqdata_get(a->req);
    rd->up.addr = url_of(a);
    rd->up.status = status;
    rd->up.attempts++;
    rd->up.start_us = a->start_us;
    rd->up.connect_us = a->connect_us == UPSTATE_NONE ? (a->sent_us != 0 ? 0 : -1)
                                                      : (int64_t)a->connect_us;
    rd->up.header_us = response_us == UPSTATE_NONE ? -1 : (int64_t)response_us;
    rd->up.end_us = 0;
    if (otel_sampled(rd))
        trace_attempt(a, rd, r, status);
}

static void
start_exchange(struct attempt *a, struct upconn *c, int reused)
{
    h2o_req_t *req = a->req;

    a->reused = reused;
    if (!reused)
        a->connect_us = (uint64_t)(util_now_us() - a->connect_start_us);
    a->sent_us = util_now_us();
    if (a->head.base == NULL || a->head_idx != a->idx) {
        a->head = build_head(a);
        a->head_idx = a->idx;
    }
    upclient_start(&a->client, req, c, a->head, req->entity,
                   h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")),
                   &a->h->io_timeout, a->h->conf->buffer_size, &client_cbs, a);
}

/* The next server for this request, counted in flight there, or -1 when every one was
 * tried or is at its max_inflight. */
static int
next_server(struct attempt *a)
{
    int64_t now = util_now_ms();
    size_t i;

    release(a);
    for (;;) {
        i = upsel_pick(a->h->sel, now, a->tried, a->key);
        if (i == SIZE_MAX)
            return -1;
        a->tried[i] = 1;
        if (upsel_claim(a->h->sel, i) == 0)
            break;
    }
    a->idx = i;
    a->counted = 1;
    return 0;
}

/* No connection to server idx (the request never reached it, so another may always take
 * it): the next one is tried, else the client gets 502 (504 when the last one did not
 * answer in time). */
static void
connect_failed(struct attempt *a, enum upstate_result r, const char *err)
{
    report(a, r, 0);
    if (next_server(a) == -1) {
        h2o_req_log_error(a->req, "proxy", "%s (upstream %s)", err, url_of(a));
        if (r == UPSTATE_CONNECT_TIMEOUT)
            h2o_send_error_generic(a->req, 504, hnd_reason(504), "no upstream answered\n", 0);
        else
            h2o_send_error_502(a->req, hnd_reason(502), "no upstream answered\n", 0);
        return;
    }
    try_upstream(a);
}

/* The TLS handshake ended (its timer is the connect timer, still running). */
static void
on_handshake_run(h2o_socket_t *sock, const char *err)
{
    struct upconn *c = sock->data;
    struct attempt *a = c->data;

    a->connecting = NULL;
    h2o_timeout_unlink(&a->timer);
    if (err != NULL) {
        upconn_close(c);
        connect_failed(a, UPSTATE_TLS, err);
        return;
    }
    start_exchange(a, c, 0);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_handshake(h2o_socket_t *sock, const char *err)
{
    struct looplag_scope s;

    looplag_enter(&s, ((struct attempt *)((struct upconn *)sock->data)->data)->req);
    on_handshake_run(sock, err);
    looplag_leave(&s);
}

static void
on_connected_run(struct upconn *c, const char *err, void *data)
{
    struct attempt *a = data;
    const struct conf_upstream *g = upsel_group(a->h->sel);
    const struct conf_upserver *u = &g->servers[a->idx];

    if (err != NULL) {
        a->connecting = NULL;
        h2o_timeout_unlink(&a->timer);
        upconn_close(c);
        connect_failed(a, UPSTATE_CONNECT_FAILED,
                       err == h2o_socket_error_conn_fail ? "connection failed" : err);
        return;
    }
    if (u->tls) {
        uptls_handshake(c->sock, g->ssl_ctx,
                        g->tls != NULL && g->tls->name != NULL ? g->tls->name : u->host,
                        on_handshake);
        return;
    }
    a->connecting = NULL;
    h2o_timeout_unlink(&a->timer);
    start_exchange(a, c, 0);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_connected(struct upconn *c, const char *err, void *data)
{
    struct looplag_scope s;

    looplag_enter(&s, ((struct attempt *)data)->req);
    on_connected_run(c, err, data);
    looplag_leave(&s);
}

/* A server that neither accepts nor refuses (a full backlog, a dropped SYN) counts as a
 * failed connection: the next one is tried. */
static void
on_connect_timeout_run(h2o_timeout_entry_t *entry)
{
    struct attempt *a = H2O_STRUCT_FROM_MEMBER(struct attempt, timer, entry);

    upconn_close(a->connecting);
    a->connecting = NULL;
    connect_failed(a, UPSTATE_CONNECT_TIMEOUT, "connection timeout");
}

/* Timed as a callback of the request (looplag.c). */
static void
on_connect_timeout(h2o_timeout_entry_t *entry)
{
    struct looplag_scope s;

    looplag_enter(&s, H2O_STRUCT_FROM_MEMBER(struct attempt, timer, entry)->req);
    on_connect_timeout_run(entry);
    looplag_leave(&s);
}

/* The PROXY header a connection opened for this request starts with, in buf (of
 * PROXYPROTO_OUT_MAX bytes), or none when the group sends none: the client as percore
 * sees it (clientaddr.h: the peer, or whom trusted proxies name) and the address the
 * client came to. It is also the key a kept connection is taken by (uppool_take_for), so
 * that a connection whose header named one client never carries another's request. */
_Static_assert(PROXYPROTO_OUT_MAX <= UPPOOL_PREAMBLE_MAX, "a PROXY header is a preamble");

static h2o_iovec_t
proxy_header(struct attempt *a, char *buf)
{
    int version = upsel_group(a->h->sel)->proxy_protocol;
    struct sockaddr_storage src, dst;
    const struct sockaddr *s = NULL, *d = NULL;
    h2o_conn_t *conn = a->req->conn;

    if (version == 0)
        return h2o_iovec_init(NULL, 0);
    if (clientaddr_get(a->req, &src) != 0)
        s = (struct sockaddr *)&src;
    if (conn->callbacks->get_sockname != NULL &&
        conn->callbacks->get_sockname(conn, (struct sockaddr *)&dst) != 0)
        d = (struct sockaddr *)&dst;
    return h2o_iovec_init(buf, version == 1 ? proxyproto_write_v1(s, d, buf)
                                            : proxyproto_write_v2(s, d, buf));
}

static void
connect_new(struct attempt *a)
{
    char pp[PROXYPROTO_OUT_MAX];
    struct upconn *c;

    a->connect_start_us = util_now_us();
    c = uppool_connect_for(upsel_pool(a->h->sel, a->idx), proxy_header(a, pp), on_connected, a);
    if (c == NULL) {
        /* ENOENT: no socket at a unix path, as good as refused. */
        connect_failed(a, errno == ECONNREFUSED || errno == ENOENT ? UPSTATE_CONNECT_REFUSED
                                                                   : UPSTATE_CONNECT_FAILED,
                       strerror(errno));
        return;
    }
    a->connecting = c;
    a->timer.cb = on_connect_timeout;
    h2o_timeout_link(a->req->conn->ctx->loop, &a->h->connect_timeout, &a->timer);
}

/* Tracing: each attempt is a span of its own, which the upstream is told is its parent;
 * a head built with another's traceparent is built again. */
static void
new_span(struct attempt *a)
{
    const struct reqdata *rd = reqdata_find(a->req);

    if (rd == NULL || !rd->trace.on)
        return;
    reqtrace_new_span(a->span_id);
    if (a->head_idx == a->idx)
        a->head.base = NULL;
}

static void
try_upstream(struct attempt *a)
{
    char pp[PROXYPROTO_OUT_MAX];
    struct upconn *c;

    a->reporting = 1;
    a->start_us = util_now_us();
    a->connect_us = UPSTATE_NONE;
    a->sent_us = 0;
    new_span(a);
    c = uppool_take_for(upsel_pool(a->h->sel, a->idx), proxy_header(a, pp));
    if (c != NULL)
        start_exchange(a, c, 1);
    else
        connect_new(a);
}

/* Whether a request that reached server idx and failed (why, as a RETRY_ bit) goes to
 * another: the group retries on it, the request may be sent twice, retries are left, a
 * server is left, and the budget allows. The next server is then chosen. */
static int
may_retry(struct attempt *a, unsigned why)
{
    const struct conf_upstream *g = upsel_group(a->h->sel);

    size_t left = 0;

    for (size_t i = 0; i < g->nservers; i++)
        left += !a->tried[i];
    if (!(g->retry_on & why) || !is_idempotent(a->req->method) || a->retries >= g->retries ||
        left == 0 || !upsel_take_retry(a->h->sel, now_ms(a->req)) || next_server(a) == -1)
        return 0;
    a->retries++;
    upstate_count_retry(upsel_state(a->h->sel, a->idx));
    return 1;
}

/* The request went and no response came. A kept connection the server closed before
 * reading it (its keep-alive ran out first) is no fault of the server's: a request that may
 * be sent twice goes again on a new connection. Else a retry if the group allows one,
 * or 502 (504 for a timeout). */
static void
on_fail(void *data, enum upclient_fail why, const char *err)
{
    struct attempt *a = data;
    h2o_req_t *req = a->req;

    if (why == UPF_REFUSED) { /* a status to retry on: on_head chose the next server */
        try_upstream(a);
        return;
    }
    if (why == UPF_CLOSED && a->reused && !upclient_got_bytes(&a->client) &&
        is_idempotent(req->method)) {
        connect_new(a);
        return;
    }
    h2o_req_log_error(req, "proxy", "%s (upstream %s)", err, url_of(a));
    report(a, why == UPF_TIMEOUT ? UPSTATE_RESPONSE_TIMEOUT
              : why == UPF_INVALID ? UPSTATE_INVALID : UPSTATE_CLOSED, 0);
    if (may_retry(a, why == UPF_TIMEOUT ? RETRY_TIMEOUT : RETRY_ERROR)) {
        try_upstream(a);
        return;
    }
    if (why == UPF_TIMEOUT)
        h2o_send_error_generic(req, 504, hnd_reason(504), "upstream timed out\n", 0);
    else
        h2o_send_error_502(req, hnd_reason(502), why == UPF_INVALID
                               ? "invalid response from upstream\n"
                               : "upstream closed the connection\n", 0);
}

/* The RETRY_ bit of a status, 0 for one never retried. */
static unsigned
status_bit(int status)
{
    switch (status) {
    case 429: return RETRY_429;
    case 500: return RETRY_500;
    case 502: return RETRY_502;
    case 503: return RETRY_503;
    case 504: return RETRY_504;
    default: return 0;
    }
}

/* A head: retried elsewhere when its status is one the group retries on (its body is not
 * read; the connection goes), else passed on. */
static int
on_head_or_retry(void *data, const struct upclient_head *uh)
{
    struct attempt *a = data;
    unsigned bit = status_bit(uh->status);

    if (bit != 0 && (upsel_group(a->h->sel)->retry_on & bit)) {
        report(a, UPSTATE_STATUS, uh->status);
        if (may_retry(a, bit))
            return -1; /* on_fail (UPF_REFUSED) sends it on */
    } else {
        report(a, UPSTATE_OK, uh->status);
    }
    return on_head(data, uh);
}

/* Whether the server's Upgrade names websocket. */
static int
upgrades_to_websocket(const struct upclient_head *uh)
{
    for (size_t i = 0; i < uh->nheaders; i++) {
        const struct phr_header *h = &uh->headers[i];
        if (h->name_len == 7 && strncasecmp(h->name, "upgrade", 7) == 0)
            return h2o_lcstris(h->value, h->value_len, H2O_STRLIT("websocket"));
    }
    return 0;
}

/* A 101: if the request asked to upgrade to WebSocket and the server switches to it, the
 * 101 goes to the client with the server's headers but hop-by-hop ones (libh2o writes
 * Connection: upgrade), and the two connections become a tunnel. Else it is refused. */
static int
on_upgrade(void *data, const struct upclient_head *uh, struct upconn *c)
{
    struct attempt *a = data;
    h2o_req_t *req = a->req;

    if (!a->websocket || !upgrades_to_websocket(uh))
        return -1;
    report(a, UPSTATE_OK, 101);
    req->res.status = 101;
    req->res.reason = h2o_strdup(&req->pool, uh->reason.base, uh->reason.len).base;
    for (size_t i = 0; i < uh->nheaders; i++)
        add_response_header(a, uh, &uh->headers[i]);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL,
                   H2O_STRLIT("websocket"));
    tunnel_open(req, c, &a->h->websocket_timeout);
    return 0;
}

static const struct upclient_cbs client_cbs = {
    .on_fail = on_fail, .on_head = on_head_or_retry, .on_upgrade = on_upgrade};

static void
on_attempt_dispose(void *p)
{
    struct attempt *a = p;

    if (a->connecting != NULL)
        upconn_close(a->connecting);
    h2o_timeout_unlink(&a->timer);
    upsel_unwait(&a->wait);
    report(a, UPSTATE_ABORTED, 0);
    release(a);
    upclient_dispose(&a->client);
    holdread_end(a->held);
}

/* An HTTP/1.1 GET that asks to upgrade to WebSocket (libh2o sets req->upgrade only when
 * Connection lists upgrade). HTTP/2 has no upgrade (RFC 8441 is not in libh2o 2.2.5): such
 * a request goes as a plain one, as does any other upgrade. */
static int
is_websocket(h2o_req_t *req)
{
    /* A handshake has no body (RFC 6455 4.1): one with a body goes as a plain request, so
     * an upstream that refuses the upgrade cannot read that body as another request. */
    return req->version == 0x101 && req->upgrade.base != NULL &&
           h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket")) &&
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
           req->entity.base == NULL;
}

/* The value a hashing group hashes for this request. */
static h2o_iovec_t
hash_key(h2o_req_t *req, const struct conf_upstream *g)
{
    struct tmpl_env env;

    if (g->balance != BALANCE_HASH)
        return h2o_iovec_init(NULL, 0);
    router_tmpl_env(req, &env, tmpl_uses(g->hash_key));
    return tmpl_expand(g->hash_key, req, &env, TMPL_HEADER);
}

/* A queued request's turn: it goes when a server has room now. */
static int
on_queue_turn_run(struct upsel_waiter *w)
{
    struct attempt *a = H2O_STRUCT_FROM_MEMBER(struct attempt, wait, w);

    memset(a->tried, 0, upsel_group(a->h->sel)->nservers);
    if (next_server(a) == -1)
        return -1;
    upsel_unwait(w);
    try_upstream(a);
    return 0;
}

/* Timed as a callback of the request (looplag.c). */
static int
on_queue_turn(struct upsel_waiter *w)
{
    struct looplag_scope s;
    int rc;

    looplag_enter(&s, H2O_STRUCT_FROM_MEMBER(struct attempt, wait, w)->req);
    rc = on_queue_turn_run(w);
    looplag_leave(&s);
    return rc;
}

static void
on_queue_timeout_run(struct upsel_waiter *w)
{
    struct attempt *a = H2O_STRUCT_FROM_MEMBER(struct attempt, wait, w);

    h2o_send_error_503(a->req, hnd_reason(503), "upstream servers busy\n", 0);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_queue_timeout(struct upsel_waiter *w)
{
    struct looplag_scope s;

    looplag_enter(&s, H2O_STRUCT_FROM_MEMBER(struct attempt, wait, w)->req);
    on_queue_timeout_run(w);
    looplag_leave(&s);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct proxy_handler *h = (struct proxy_handler *)self;
    const struct conf_upstream *g = upsel_group(h->sel);
    struct attempt *a;

    if (has_dotdot(req->path_normalized)) {
        h2o_send_error_400(req, hnd_reason(400), "path with a parent segment\n", 0);
        return 0;
    }
    strip_headers(req);
    a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), on_attempt_dispose);
    memset(a, 0, sizeof(*a));
    a->req = req;
    a->websocket = is_websocket(req);
    a->h = h;
    a->held = holdread_start(req);
    a->tried = h2o_mem_alloc_pool(&req->pool, g->nservers);
    memset(a->tried, 0, g->nservers);
    a->key = hash_key(req, g);
    upsel_count_request(h->sel, now_ms(req));
    if (next_server(a) == -1) { /* every server at its max_inflight */
        a->wait.on_turn = on_queue_turn;
        a->wait.on_timeout = on_queue_timeout;
        if (upsel_wait(h->sel, &a->wait) == -1)
            h2o_send_error_503(req, hnd_reason(503), "upstream servers busy\n", 0);
        return 0;
    }
    try_upstream(a);
    return 0;
}

static void
on_context_init(h2o_handler_t *self, h2o_context_t *ctx)
{
    struct proxy_handler *h = (struct proxy_handler *)self;

    h2o_timeout_init(ctx->loop, &h->io_timeout, (uint64_t)h->conf->timeout_ms);
    h2o_timeout_init(ctx->loop, &h->connect_timeout, (uint64_t)h->conf->connect_timeout_ms);
    h2o_timeout_init(ctx->loop, &h->websocket_timeout, (uint64_t)h->conf->ws_timeout_ms);
    h->sel = upsel_get(h->conf->group, ctx->loop);
}

static int
proxy_uses_vars(const void *hconf)
{
    const struct proxy_conf *pc = hconf;

    if (pc->tpath != NULL || pc->group->balance == BALANCE_HASH)
        return 1;
    for (size_t i = 0; pc->own != NULL && i < pc->own->nservers; i++)
        if (pc->own->servers[i].tpath != NULL)
            return 1;
    return 0;
}

static void
proxy_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    const struct proxy_conf *conf = hconf;
    const struct conf_upstream *g = conf->group;
    struct proxy_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));

    h->super.on_req = on_req;
    h->super.on_context_init = on_context_init;
    h->conf = conf;
    h->rt = xcalloc(g->nservers, sizeof(*h->rt));
    for (size_t i = 0; i < g->nservers; i++) {
        const struct conf_upserver *u = &g->servers[i];
        const char *path = conf->own != NULL ? u->path : conf->path;
        h2o_url_init(&h->rt[i].url, u->tls ? &H2O_URL_SCHEME_HTTPS : &H2O_URL_SCHEME_HTTP,
                     h2o_iovec_init(u->authority, strlen(u->authority)),
                     h2o_iovec_init(path, strlen(path)));
        h->rt[i].tpath = conf->own != NULL ? u->tpath : conf->tpath;
    }
}

const struct hnd_ops hnd_proxy_ops = {
    .name = "proxy",
    .min_args = 1,
    .max_args = 64,
    .usage = "proxy URL...|http://GROUP[/PATH] [round_robin|least_conn] [preserve_host] "
             "[timeout=TIME] [connect_timeout=TIME] [websocket_timeout=TIME] [buffer_size=SIZE] "
             "[proxy_protocol=v1|v2]",
    .parse = proxy_parse,
    .setup = proxy_setup,
    .free_conf = proxy_free,
    .uses_vars = proxy_uses_vars,
};
