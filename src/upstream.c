/* Upstream groups as configured (see upstream.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hnd.h"
#include "conf.h"
#include "tmpl.h"
#include "upresolve.h"
#include "upstream.h"
#include "uptls.h"
#include "util.h"

struct conf_upstream *
upstream_new(const char *name, const struct conf_pos *pos, int anonymous)
{
    struct conf_upstream *g = xcalloc(1, sizeof(*g));

    g->name = xstrdup(name);
    if (pos != NULL)
        g->pos = *pos;
    g->anonymous = anonymous;
    g->connect_timeout_ms = UPSTREAM_DEFAULT_CONNECT_TIMEOUT_MS;
    g->timeout_ms = UPSTREAM_DEFAULT_TIMEOUT_MS;
    g->keepalive_ms = UPSTREAM_DEFAULT_KEEPALIVE_MS;
    g->buffer_size = UPSTREAM_DEFAULT_BUFFER_SIZE;
    g->max_fails = UPSTREAM_DEFAULT_MAX_FAILS;
    g->fail_timeout_ms = UPSTREAM_DEFAULT_FAIL_TIMEOUT_MS;
    g->retry_budget = UPSTREAM_DEFAULT_RETRY_BUDGET;
    g->retry_on = RETRY_ERROR | RETRY_TIMEOUT;
    g->queue = UPSTREAM_DEFAULT_QUEUE;
    g->queue_timeout_ms = UPSTREAM_DEFAULT_QUEUE_TIMEOUT_MS;
    upstate_policy_init(&g->policy);
    return g;
}

static void
server_clear(struct conf_upserver *s)
{
    upresolve_release(s->rslot, s->rid, s->resolve_ms);
    free(s->url);
    free(s->host);
    free(s->authority);
    free(s->path);
    tmpl_free(s->tpath);
}

void
upstream_free(struct conf_upstream *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->nservers; i++)
        server_clear(&g->servers[i]);
    free(g->servers);
    tmpl_free(g->hash_key);
    if (g->tls != NULL)
        uptls_conf_free(g->tls);
    free(g->tls);
    uptls_ctx_free(g->ssl_ctx);
    free((char *)g->policy.check.path);
    free(g->name);
    free(g);
}

/* A server "unix:/PATH": requests go with Host: localhost and their own path. */
static int
parse_unix(const char *s, struct conf_upserver *u, char *err, size_t errlen)
{
    unsigned len;

    if (util_unix_sockaddr(s + 5, &u->ss, &len) == -1) {
        snprintf(err, errlen, "invalid upstream '%s': expected unix:/absolute/path", s);
        return -1;
    }
    u->sslen = len;
    u->authority = xstrdup("localhost");
    u->path = xstrdup("/");
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

/* u's path as a template: "/api/v$1/user/$2". A path whose only '$' are "$$" is its
 * literal. -1 with a message in err for a bad variable. */
static int
compile_path(struct conf_upserver *u, const char *url, char *err, size_t errlen)
{
    char msg[400];
    size_t off = 0;
    struct tmpl *t = tmpl_compile(u->path, conf_captures_in_scope(), msg, sizeof(msg), &off);

    if (t == NULL) {
        snprintf(err, errlen, "%s (in upstream '%s', path offset %zu)", msg, url, off);
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

/* Whether host is an IPv4 or IPv6 address rather than a name. */
static int
is_address(const char *host)
{
    struct in6_addr a;

    return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

/* An http:// or https:// server: its host resolved now (the first address getaddrinfo
 * gives; upstream_finish has a name followed from then on). */
static int
parse_http(const char *s, struct conf_upserver *u, int with_path, char *err, size_t errlen)
{
    char host[256], port[8];
    const char *p = s + (u->tls ? 8 : 7), *slash = strchr(p, '/');
    unsigned len;
    int rc;

    snprintf(port, sizeof(port), "%s", u->tls ? "443" : "80");
    if (slash == NULL)
        slash = p + strlen(p);
    if (split_hostport(p, slash, host, sizeof(host), port, sizeof(port)) == -1) {
        snprintf(err, errlen, "invalid upstream '%s': expected %s://HOST:PORT%s", s,
                 u->tls ? "https" : "http", with_path ? "[/PATH]" : "");
        return -1;
    }
    if (!with_path && *slash != '\0' && strcmp(slash, "/") != 0) {
        snprintf(err, errlen, "upstream server '%s' has a path: in an upstream block, the "
                 "path goes on the proxy line (proxy http://NAME/PATH)", s);
        return -1;
    }
    rc = hnd_resolve(host, port, &u->ss, &len);
    if (rc != 0) {
        snprintf(err, errlen, "upstream '%s': cannot resolve '%s': %s", s, host,
                 gai_strerror(rc));
        return -1;
    }
    u->sslen = len;
    u->host = xstrdup(host);
    u->resolve_ms = is_address(host) ? 0 : UPRESOLVE_DEFAULT_MS;
    u->authority = xstrndup(p, (size_t)(slash - p));
    u->path = xstrdup(*slash ? slash : "/");
    if (strchr(u->path, '$') != NULL && compile_path(u, s, err, errlen) == -1)
        return -1;
    return 0;
}

int
upstream_add_server(struct conf_upstream *g, const char *url, const struct conf_pos *pos,
                    int with_path, char *err, size_t errlen)
{
    struct conf_upserver u = {.weight = 1};
    int rc;

    /* Twice, it would be one server with two shares of everything (one record). */
    for (size_t i = 0; i < g->nservers; i++) {
        if (strcmp(g->servers[i].url, url) == 0) {
            snprintf(err, errlen, "server '%s' is in upstream '%s' already (line %d); give it "
                     "a weight instead", url, g->name, g->servers[i].pos.line);
            return -1;
        }
    }
    if (strncmp(url, "unix:", 5) == 0) {
        rc = parse_unix(url, &u, err, errlen);
    } else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
        u.tls = url[4] == 's';
        rc = parse_http(url, &u, with_path, err, errlen);
    } else {
        snprintf(err, errlen, "invalid upstream '%s': expected http(s)://HOST:PORT%s or "
                 "unix:/PATH", url, with_path ? "[/PATH]" : "");
        rc = -1;
    }
    if (rc == -1) {
        server_clear(&u);
        return -1;
    }
    u.url = xstrdup(url);
    if (pos != NULL)
        u.pos = *pos;
    g->servers = xreallocarray(g->servers, g->nservers + 1, sizeof(*g->servers));
    g->servers[g->nservers++] = u;
    return 0;
}

/* NAME=N with N from 1 to max into *out: 1, 0 when word is not NAME=..., -1 when bad. */
static int
number_option(const char *word, const char *name, unsigned max, unsigned *out, char *err,
              size_t errlen)
{
    size_t n = strlen(name);
    char *end;
    unsigned long v;

    if (strncmp(word, name, n) != 0 || word[n] != '=')
        return 0;
    v = strtoul(word + n + 1, &end, 10);
    if (word[n + 1] < '1' || word[n + 1] > '9' || *end != '\0' || v > max) {
        snprintf(err, errlen, "invalid %s '%s': expected a number from 1 to %u", name,
                 word + n + 1, max);
        return -1;
    }
    *out = (unsigned)v;
    return 1;
}

/* resolve=TIME|off: 1, 0 when word is not resolve=..., -1 when bad or s has no name. */
static int
resolve_option(struct conf_upserver *s, const char *word, char *err, size_t errlen)
{
    const char *v = word + 8;
    int64_t ms;
    int rc;

    if (strncmp(word, "resolve=", 8) != 0)
        return 0;
    if (s->host == NULL || is_address(s->host)) {
        snprintf(err, errlen, "server '%s' has an address, not a host name: resolve= does "
                 "not apply", s->url != NULL ? s->url : "?");
        return -1;
    }
    if (strcmp(v, "off") == 0) {
        s->resolve_ms = 0;
        return 1;
    }
    rc = conf_parse_time_ms(v, UPRESOLVE_MIN_MS, &ms);
    if (rc != 0) {
        snprintf(err, errlen, "invalid resolve '%s': expected a time from 1s to %s, or off",
                 v, CONF_TIME_MAX);
        return -1;
    }
    s->resolve_ms = ms;
    return 1;
}

int
upstream_server_option(struct conf_upstream *g, const char *word, char *err, size_t errlen)
{
    struct conf_upserver *s = &g->servers[g->nservers - 1];
    int rc = number_option(word, "weight", UPSTREAM_WEIGHT_MAX, &s->weight, err, errlen);

    if (rc == 0)
        rc = number_option(word, "max_inflight", 1000000, &s->max_inflight, err, errlen);
    if (rc == 0)
        rc = resolve_option(s, word, err, errlen);
    return rc;
}

unsigned
upstream_retry_word(const char *word)
{
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {
        {"error", RETRY_ERROR}, {"timeout", RETRY_TIMEOUT}, {"429", RETRY_429},
        {"500", RETRY_500},     {"502", RETRY_502},         {"503", RETRY_503},
        {"504", RETRY_504},
    };

    for (size_t i = 0; i < NELEMS(words); i++)
        if (strcmp(word, words[i].word) == 0)
            return words[i].bit;
    return 0;
}

int
upstream_set_tls(struct conf_upstream *g, const char *directive, const char *value, char *err,
                 size_t errlen)
{
    if (g->tls == NULL)
        g->tls = xcalloc(1, sizeof(*g->tls));
    return uptls_conf_set(g->tls, directive, value, err, errlen);
}

/* Each server named by a host (resolve= not off) is followed from now on. */
static void
follow_names(struct conf_upstream *g)
{
    for (size_t i = 0; i < g->nservers; i++) {
        struct conf_upserver *s = &g->servers[i];
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&s->ss;
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&s->ss;
        char port[8];

        if (s->resolve_ms == 0 || s->rslot != NULL)
            continue;
        snprintf(port, sizeof(port), "%u",
                 ntohs(s->ss.ss_family == AF_INET6 ? sin6->sin6_port : sin->sin_port));
        s->rslot = upresolve_acquire(s->host, port, (const struct sockaddr *)&s->ss,
                                     s->resolve_ms, &s->rid);
    }
}

int
upstream_check_path(struct conf_upstream *g, const char *path, char *err, size_t errlen)
{
    size_t len = strlen(path);

    if (path[0] != '/' || len > UPSTREAM_CHECK_PATH_MAX) {
        snprintf(err, errlen, "invalid health_check path '%s': expected /PATH of at most %d "
                 "bytes", path, UPSTREAM_CHECK_PATH_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= ' ' || c >= 0x7f) {
            snprintf(err, errlen, "invalid health_check path '%s': a space, a control or a "
                     "non-ASCII byte (escape it as %%XX)", path);
            return -1;
        }
    }
    free((char *)g->policy.check.path);
    g->policy.check.path = xstrdup(path);
    return 0;
}

/* "name=VALUE" when word starts with name and '=': VALUE, else NULL. */
static const char *
option_value(const char *word, const char *name)
{
    size_t n = strlen(name);

    return strncmp(word, name, n) == 0 && word[n] == '=' ? word + n + 1 : NULL;
}

/* status=LO-HI or status=CODE, codes from 100 to 599. */
static int
parse_status_range(const char *v, int *lo, int *hi)
{
    char *end;
    long a = strtol(v, &end, 10), b = a;

    if (end == v || a < 100 || a > 599)
        return -1;
    if (*end == '-') {
        v = end + 1;
        b = strtol(v, &end, 10);
        if (end == v || b < a || b > 599)
            return -1;
    }
    if (*end != '\0')
        return -1;
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

int
upstream_check_option(struct conf_upstream *g, const char *word, char *err, size_t errlen)
{
    struct upstate_policy *p = &g->policy;
    const char *v;
    unsigned n;
    int rc;

    if ((v = option_value(word, "interval")) != NULL ||
        (v = option_value(word, "timeout")) != NULL) {
        int64_t *ms = word[0] == 'i' ? &p->check.interval_ms : &p->check.timeout_ms;
        if (conf_parse_time_ms(v, 1, ms) != 0) {
            snprintf(err, errlen, "invalid health_check %s: expected a time such as 500ms, "
                     "2s or 1m", word);
            return -1;
        }
        return 1;
    }
    if ((v = option_value(word, "status")) != NULL) {
        if (parse_status_range(v, &p->check.status_min, &p->check.status_max) == -1) {
            snprintf(err, errlen, "invalid health_check %s: expected status=CODE or "
                     "status=LOW-HIGH, from 100 to 599", word);
            return -1;
        }
        return 1;
    }
    rc = number_option(word, "fall", 100, &n, err, errlen);
    if (rc == 1)
        p->check.fall = n;
    if (rc == 0) {
        rc = number_option(word, "rise", 100, &n, err, errlen);
        if (rc == 1)
            p->check.rise = n;
    }
    return rc;
}

int
upstream_set_queue(struct conf_upstream *g, const char *n, const char *option, char *err,
                   size_t errlen)
{
    const char *v = option != NULL ? option_value(option, "timeout") : NULL;
    char *end;
    unsigned long q = strtoul(n, &end, 10);

    if (n[0] < '0' || n[0] > '9' || *end != '\0' || q > UPSTREAM_QUEUE_MAX) {
        snprintf(err, errlen, "invalid queue '%s': expected a number from 0 to %d", n,
                 UPSTREAM_QUEUE_MAX);
        return -1;
    }
    if (option != NULL && (v == NULL || conf_parse_time_ms(v, 1, &g->queue_timeout_ms) != 0)) {
        snprintf(err, errlen, "invalid queue option '%s': expected timeout=TIME (500ms, 2s)",
                 option);
        return -2;
    }
    g->queue = (unsigned)q;
    return 0;
}

/* The key of server s's shared record: "GROUP URL"; a proxy line's servers are the group
 * "proxy", by scheme and authority (their paths are the routes', not the server's). */
static int
server_key(const struct conf_upstream *g, const struct conf_upserver *s, char *key,
           size_t len)
{
    int n;

    if (!g->anonymous)
        n = snprintf(key, len, "%s %s", g->name, s->url);
    else if (strncmp(s->url, "unix:", 5) == 0)
        n = snprintf(key, len, "proxy %s", s->url);
    else
        n = snprintf(key, len, "proxy %s://%s", s->tls ? "https" : "http", s->authority);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Each server's record in the shared region, made or found by its key. */
static int
register_servers(struct conf_upstream *g, char *err, size_t errlen)
{
    char key[UPSTATE_KEY_MAX];

    for (size_t i = 0; i < g->nservers; i++) {
        struct conf_upserver *s = &g->servers[i];
        if (server_key(g, s, key, sizeof(key)) == -1) {
            snprintf(err, errlen, "upstream '%s' server '%s': the name and URL are too long "
                     "for its shared record (%d bytes at most)", g->name, s->url,
                     UPSTATE_KEY_MAX - 1);
            return -1;
        }
        s->state = upstate_register(key, g->policy.check.path != NULL);
        if (s->state == -1 && errno == E2BIG) {
            snprintf(err, errlen, "upstream '%s' server '%s': more than %d upstream servers in "
                     "the configuration", g->name, s->url, UPSTATE_CONF_MAX);
            return -1;
        }
        if (s->state == -1) {
            snprintf(err, errlen, "upstream '%s' server '%s': no free record for its state: "
                     "workers of an earlier configuration still drain (after "
                     "shutdown_timeout they are gone)", g->name, s->url);
            return -1;
        }
    }
    return 0;
}

int
upstream_finish(struct conf_upstream *g, char *err, size_t errlen)
{
    static const struct uptls_conf defaults;
    int any = 0;

    follow_names(g);
    for (size_t i = 0; i < g->nservers; i++)
        any |= g->servers[i].tls;
    g->policy.max_fails = g->max_fails;
    g->policy.fail_timeout_ms = g->fail_timeout_ms;
    if (!any && g->tls != NULL) {
        snprintf(err, errlen, "upstream '%s' has tls_* settings but no https:// server",
                 g->name);
        return -1;
    }
    if (register_servers(g, err, errlen) == -1)
        return -1;
    if (!any)
        return 0;
    g->ssl_ctx = uptls_ctx_new(g->tls != NULL ? g->tls : &defaults, err, errlen);
    return g->ssl_ctx != NULL ? 0 : -1;
}
