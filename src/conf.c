/* Config loading, run by the master: the directive table, defaults and validation that turn
 * a syntax tree into the immutable struct conf. Every problem is reported with its position
 * and loading goes on, so one run of `percore -t` shows them all. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "accesslog.h"
#include "hnd.h"
#include "tls.h"
#include "util.h"

enum ctx { CTX_MAIN = 1, CTX_SERVICE = 2, CTX_ROUTE = 4 };

struct loader {
    struct conf *conf;
    const struct conf_sockets *socks;
    struct conf_diag *diag;
};

struct directive;
typedef int dir_fn(struct loader *ld, const struct directive *d, const struct conf_node *n,
                   void *obj);

struct directive {
    const char *name;
    unsigned ctx;
    int min_args, max_args; /* max -1: unbounded */
    int block;              /* takes a { } block */
    int repeat;             /* may appear more than once in a block */
    dir_fn *fn;
    const char *usage;
};

static dir_fn dir_workers, dir_cpu_affinity, dir_time, dir_service, dir_listen, dir_route,
    dir_handler, dir_header, dir_log, dir_compress, dir_tls_file, dir_max_connections,
    dir_max_body_size, dir_http2, dir_http2_count, dir_server_name, dir_max_header_size,
    dir_access_log;

/* Sorted by name for bsearch. */
static const struct directive directives[] = {
    {"access_log", CTX_SERVICE, 1, 1, 0, 0, dir_access_log, "access_log /PATH|off"},
    {"compress", CTX_ROUTE, 1, 1, 0, 0, dir_compress, "compress on|off"},
    {"cpu_affinity", CTX_MAIN, 1, 1, 0, 0, dir_cpu_affinity, "cpu_affinity on|off"},
    {"fastcgi", CTX_ROUTE, 1, 3, 0, 0, dir_handler,
     "fastcgi unix:/PATH|HOST:PORT [timeout=TIME] [root=/PATH]"},
    {"files", CTX_ROUTE, 1, 3, 0, 0, dir_handler, "files /ROOT [listing] [symlinks]"},
    {"handshake_timeout", CTX_SERVICE, 1, 1, 0, 0, dir_time, "handshake_timeout TIME"},
    {"header", CTX_ROUTE, 2, 2, 0, 1, dir_header, "header NAME VALUE"},
    {"header_add", CTX_ROUTE, 2, 2, 0, 1, dir_header, "header_add NAME VALUE"},
    {"header_timeout", CTX_SERVICE, 1, 1, 0, 0, dir_time, "header_timeout TIME"},
    {"header_unset", CTX_ROUTE, 1, 1, 0, 1, dir_header, "header_unset NAME"},
    {"http2", CTX_SERVICE, 1, 1, 0, 0, dir_http2, "http2 on|off"},
    {"http2_max_concurrent_requests", CTX_MAIN, 1, 1, 0, 0, dir_http2_count,
     "http2_max_concurrent_requests NUMBER"},
    {"http2_max_resets", CTX_SERVICE, 1, 1, 0, 0, dir_http2_count, "http2_max_resets NUMBER"},
    {"idle_timeout", CTX_SERVICE, 1, 1, 0, 0, dir_time, "idle_timeout TIME"},
    {"listen", CTX_SERVICE, 1, 3, 0, 1, dir_listen, "listen ADDRESS:PORT [tls] [http2]"},
    {"log", CTX_MAIN, 1, 1, 0, 0, dir_log, "log journal|stderr|/PATH"},
    {"max_body_size", CTX_SERVICE, 1, 1, 0, 0, dir_max_body_size, "max_body_size SIZE"},
    {"max_connections", CTX_MAIN, 1, 1, 0, 0, dir_max_connections, "max_connections NUMBER"},
    {"max_header_size", CTX_SERVICE, 1, 1, 0, 0, dir_max_header_size, "max_header_size SIZE"},
    {"metrics", CTX_ROUTE, 0, 0, 0, 0, dir_handler, "metrics"},
    {"module", CTX_ROUTE, 1, 2, 0, 0, dir_handler, "module /PATH/TO/MODULE.so [ARGUMENT]"},
    {"proxy", CTX_ROUTE, 1, 64, 0, 0, dir_handler,
     "proxy URL... [round_robin|least_conn] [preserve_host] [timeout=TIME] "
     "[connect_timeout=TIME]"},
    {"redirect", CTX_ROUTE, 2, 3, 0, 0, dir_handler, "redirect STATUS URL [exact]"},
    {"respond", CTX_ROUTE, 1, 2, 0, 0, dir_handler, "respond STATUS [BODY]"},
    {"route", CTX_SERVICE, 1, 1, 1, 1, dir_route, "route PREFIX { ... }"},
    {"send_timeout", CTX_SERVICE, 1, 1, 0, 0, dir_time, "send_timeout TIME"},
    {"server_name", CTX_SERVICE, 1, 64, 0, 1, dir_server_name, "server_name NAME..."},
    {"service", CTX_MAIN, 1, 1, 1, 1, dir_service, "service NAME { ... }"},
    {"shutdown_delay", CTX_MAIN, 1, 1, 0, 0, dir_time, "shutdown_delay TIME"},
    {"shutdown_timeout", CTX_MAIN, 1, 1, 0, 0, dir_time, "shutdown_timeout TIME"},
    {"tls_certificate", CTX_SERVICE, 1, 1, 0, 0, dir_tls_file, "tls_certificate /PATH.pem"},
    {"tls_key", CTX_SERVICE, 1, 1, 0, 0, dir_tls_file, "tls_key /PATH.key"},
    {"tls_ticket_rotation", CTX_MAIN, 1, 1, 0, 0, dir_time, "tls_ticket_rotation TIME"},
    {"worker_watchdog", CTX_MAIN, 1, 1, 0, 0, dir_time, "worker_watchdog TIME"},
    {"workers", CTX_MAIN, 1, 1, 0, 0, dir_workers, "workers auto|NUMBER"},
};

static const char *
ctx_name(unsigned ctx)
{
    switch (ctx) {
    case CTX_MAIN: return "the main context";
    case CTX_SERVICE: return "a service block";
    default: return "a route block";
    }
}

static int
dir_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct directive *)elem)->name);
}

static const struct directive *
dir_find(const char *name)
{
    return bsearch(name, directives, NELEMS(directives), sizeof(directives[0]), dir_cmp);
}

/* The known name closest to an unknown one, if it is close enough to be a typo. */
static const char *
dir_suggest(const char *name)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1, limit = strlen(name) / 3 + 1, d;

    /* No name has more than 29 bytes, so a longer word is no typo of one (and the
     * distance costs time in proportion to its length). */
    if (strlen(name) > 32)
        return NULL;
    for (size_t i = 0; i < NELEMS(directives); i++) {
        d = util_edit_distance(name, directives[i].name);
        if (d < bestd) {
            bestd = d;
            best = directives[i].name;
        }
    }
    if (bestd <= limit && bestd <= 3)
        return best;
    /* "include" is handled by the parser and can only be unknown here as a typo. */
    if (util_edit_distance(name, "include") <= 2)
        return "include";
    return NULL;
}

static int
err_at(struct loader *ld, const struct conf_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
err_at(struct loader *ld, const struct conf_pos *pos, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_diag_add(ld->diag, pos, "%s", msg);
    return -1;
}

static int
check_shape(struct loader *ld, const struct directive *d, const struct conf_node *n)
{
    int nargs = (int)n->nargs;

    if (nargs < d->min_args || (d->max_args >= 0 && nargs > d->max_args)) {
        const struct conf_pos *at = nargs > d->max_args && d->max_args >= 0
                                        ? &n->args[d->max_args].pos
                                        : &n->pos;
        return err_at(ld, at, "wrong number of arguments for '%s'; usage: %s", d->name,
                      d->usage);
    }
    if (d->block && !n->has_block)
        return err_at(ld, &n->pos, "'%s' needs a block; usage: %s", d->name, d->usage);
    if (!d->block && n->has_block)
        return err_at(ld, &n->pos, "'%s' does not take a block; usage: %s;", d->name, d->usage);
    return 0;
}

static int
dir_max_header_size(struct loader *ld, const struct directive *d, const struct conf_node *n,
                    void *obj)
{
    const struct conf_arg *a = &n->args[0];
    uint64_t v;

    if (conf_parse_size(a->s, &v) == -1 || v < 1024 || v > CONF_MAX_HEADER_SIZE_MAX)
        return err_at(ld, &a->pos, "invalid size '%s' for 'max_header_size': expected 1k to "
                      "%dk", a->s, CONF_MAX_HEADER_SIZE_MAX / 1024);
    ((struct conf_service *)obj)->max_header_size = v;
    return 0;
}

/* Apply the directives of one block (ctx) to obj. */
static void
load_block(struct loader *ld, const struct conf_node *block, unsigned ctx, void *obj)
{
    const struct conf_node **seen = xcalloc(NELEMS(directives), sizeof(*seen));

    for (size_t i = 0; i < block->nchildren; i++) {
        const struct conf_node *n = &block->children[i];
        const struct directive *d = dir_find(n->name);
        const char *hint;
        size_t idx;

        if (d == NULL) {
            hint = dir_suggest(n->name);
            if (hint != NULL)
                err_at(ld, &n->pos, "unknown directive '%s'; did you mean '%s'?", n->name, hint);
            else
                err_at(ld, &n->pos, "unknown directive '%s'", n->name);
            continue;
        }
        if (!(d->ctx & ctx)) {
            unsigned want = d->ctx & CTX_MAIN ? CTX_MAIN : d->ctx & CTX_SERVICE ? CTX_SERVICE
                                                                                : CTX_ROUTE;
            err_at(ld, &n->pos, "'%s' is not allowed in %s; it belongs in %s", n->name,
                   ctx_name(ctx), ctx_name(want));
            continue;
        }
        idx = (size_t)(d - directives);
        if (!d->repeat && seen[idx] != NULL) {
            err_at(ld, &n->pos, "duplicate '%s' (first set at %s:%d:%d)", n->name,
                   seen[idx]->pos.file, seen[idx]->pos.line, seen[idx]->pos.col);
            continue;
        }
        seen[idx] = n;
        if (check_shape(ld, d, n) == -1)
            continue;
        d->fn(ld, d, n, obj);
    }
    free(seen);
}

/* ---- value parsers ---- */

static int
parse_scaled(const char *s, const char *const *units, const int64_t *scale, size_t nunits,
             int64_t dflt_scale, int64_t *out)
{
    char *end;
    long long v;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    if (*end == '\0') {
        if (v > INT64_MAX / dflt_scale)
            return -1;
        *out = v * dflt_scale;
        return 0;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcasecmp(end, units[i]) == 0) {
            if (v > INT64_MAX / scale[i])
                return -1;
            *out = v * scale[i];
            return 0;
        }
    }
    return -1;
}

int
conf_parse_time_ms(const char *s, int64_t *ms)
{
    static const char *const units[] = {"ms", "s", "m", "h"};
    static const int64_t scale[] = {1, 1000, 60000, 3600000};
    int64_t v;

    if (parse_scaled(s, units, scale, NELEMS(units), 1000, &v) == -1 || v > CONF_TIME_MAX_MS)
        return -1;
    *ms = v;
    return 0;
}

int
conf_parse_size(const char *s, uint64_t *bytes)
{
    static const char *const units[] = {"k", "m", "g"};
    static const int64_t scale[] = {1024, 1024 * 1024, 1024 * 1024 * 1024};
    int64_t v;

    if (parse_scaled(s, units, scale, NELEMS(units), 1, &v) == -1)
        return -1;
    *bytes = (uint64_t)v;
    return 0;
}

int
conf_parse_port(const char *s)
{
    int v = 0;

    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

/* ---- main context ---- */

/* A whole number from 1 to max for directive `name`, or an error at the argument. */
static int
parse_count(struct loader *ld, const struct conf_arg *a, const char *name, const char *alt,
            unsigned long max, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(a->s, &end, 10);
    if (!isdigit((unsigned char)a->s[0]) || *end != '\0' || errno != 0 || v < 1 || v > max)
        return err_at(ld, &a->pos, "invalid value '%s' for '%s': expected %sa number from 1 "
                      "to %lu", a->s, name, alt, max);
    *out = (unsigned)v;
    return 0;
}

static int
dir_workers(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    if (strcmp(n->args[0].s, "auto") == 0) {
        ld->conf->workers = 0;
        return 0;
    }
    return parse_count(ld, &n->args[0], "workers", "'auto' or ", CONF_WORKERS_MAX,
                       &ld->conf->workers);
}

static int
dir_max_connections(struct loader *ld, const struct directive *d, const struct conf_node *n,
                    void *obj)
{
    return parse_count(ld, &n->args[0], "max_connections", "", CONF_MAX_CONNECTIONS_MAX,
                       &ld->conf->max_connections);
}

static int
dir_max_body_size(struct loader *ld, const struct directive *d, const struct conf_node *n,
                  void *obj)
{
    const struct conf_arg *a = &n->args[0];
    uint64_t v;

    if (conf_parse_size(a->s, &v) == -1 || v > (uint64_t)1024 * 1024 * 1024)
        return err_at(ld, &a->pos, "invalid size '%s' for 'max_body_size': expected a number "
                      "with unit k, m or g, at most 1g", a->s);
    ((struct conf_service *)obj)->max_body = v;
    return 0;
}

static int
parse_flag(struct loader *ld, const struct conf_node *n, int *out)
{
    const struct conf_arg *a = &n->args[0];

    if (strcmp(a->s, "on") == 0)
        *out = 1;
    else if (strcmp(a->s, "off") == 0)
        *out = 0;
    else
        return err_at(ld, &a->pos, "invalid value '%s' for '%s': expected 'on' or 'off'", a->s,
                      n->name);
    return 0;
}

static int
dir_cpu_affinity(struct loader *ld, const struct directive *d, const struct conf_node *n,
                 void *obj)
{
    return parse_flag(ld, n, &ld->conf->cpu_affinity);
}

static int
dir_compress(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    return parse_flag(ld, n, &((struct conf_route *)obj)->compress);
}

/* Where each time directive goes (in the object of its block) and its least value. */
static const struct {
    const char *name;
    size_t off;
    int64_t min_ms;
    const char *min; /* as the error says it */
} times[] = {
    {"handshake_timeout", offsetof(struct conf_service, handshake_timeout_ms), 100, "100ms"},
    {"header_timeout", offsetof(struct conf_service, header_timeout_ms), 100, "100ms"},
    {"idle_timeout", offsetof(struct conf_service, idle_timeout_ms), 100, "100ms"},
    /* Connections are swept once a second: less could not be kept. */
    {"send_timeout", offsetof(struct conf_service, send_timeout_ms), 1000, "1s"},
    {"shutdown_delay", offsetof(struct conf, shutdown_delay_ms), 0, NULL},
    {"shutdown_timeout", offsetof(struct conf, shutdown_timeout_ms), 0, NULL},
    {"tls_ticket_rotation", offsetof(struct conf, tls_ticket_rotation_ms), 1000, "1s"},
    /* Heartbeats come every 500 ms; less than a second would kill busy workers. */
    {"worker_watchdog", offsetof(struct conf, worker_watchdog_ms), 1000, "1s"},
};

static int
dir_time(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct conf_arg *a = &n->args[0];
    int64_t ms;
    size_t i;

    if (conf_parse_time_ms(a->s, &ms) == -1)
        return err_at(ld, &a->pos, "invalid time '%s' for '%s': expected a number with unit "
                      "ms, s, m or h, at most " CONF_TIME_MAX, a->s, n->name);
    for (i = 0; strcmp(times[i].name, n->name) != 0; i++)
        ;
    if (ms < times[i].min_ms)
        return err_at(ld, &a->pos, "'%s' must be at least %s, got '%s'", n->name, times[i].min,
                      a->s);
    *(int64_t *)((char *)obj + times[i].off) = ms;
    return 0;
}

static int
dir_log(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct conf_arg *a = &n->args[0];
    const char *kind;

    if (strcmp(a->s, "journal") == 0) {
        ld->conf->log_target = LOG_TARGET_JOURNAL;
    } else if (strcmp(a->s, "stderr") == 0) {
        ld->conf->log_target = LOG_TARGET_STDERR;
    } else if (a->s[0] == '/') {
        /* The master opens it for writing: a FIFO would block it. */
        kind = conf_path_kind(a->s);
        if (kind != NULL && strcmp(kind, "a device") != 0)
            return err_at(ld, &a->pos, "log %s is %s, not a regular file", a->s, kind);
        ld->conf->log_target = LOG_TARGET_FILE;
        free(ld->conf->log_path);
        ld->conf->log_path = xstrdup(a->s);
    } else {
        return err_at(ld, &a->pos, "invalid value '%s' for 'log': expected 'journal', "
                      "'stderr' or an absolute file path", a->s);
    }
    return 0;
}

static int
socket_passed(const struct conf_sockets *socks, const char *name)
{
    for (size_t i = 0; socks != NULL && i < socks->n; i++)
        if (strcmp(socks->names[i], name) == 0)
            return 1;
    return 0;
}

static int
valid_service_name(const char *s)
{
    if (!isalpha((unsigned char)*s))
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

/* TLS needs both files and a `listen ... tls`; the contexts are made here, in the master:
 * one offering http/1.1 and, when a listen has HTTP/2, one offering h2 as well. */
static void
check_service_tls(struct loader *ld, struct conf_service *svc)
{
    int tls_listens = 0, h2_listens = 0, plain_listens = 0;
    char err[512];

    for (size_t i = 0; i < svc->nlistens; i++) {
        struct conf_listen *l = &svc->listens[i];
        l->http2 |= l->tls && svc->http2;
        tls_listens += l->tls;
        h2_listens += l->http2;
        plain_listens += l->tls && !l->http2;
    }
    if (svc->http2 && tls_listens == 0)
        err_at(ld, &svc->http2_pos, "'http2 on' in service '%s' needs a 'listen ... tls': "
               "percore serves HTTP/2 over TLS only", svc->name);
    if (tls_listens == 0 && svc->tls_cert == NULL && svc->tls_key == NULL)
        return;
    if (tls_listens == 0) {
        err_at(ld, &svc->tls_pos, "service '%s' has TLS files but no 'listen ... tls'",
               svc->name);
        return;
    }
    if (svc->tls_cert == NULL || svc->tls_key == NULL) {
        err_at(ld, &svc->pos, "service '%s' listens with tls but lacks '%s'", svc->name,
               svc->tls_cert == NULL ? "tls_certificate" : "tls_key");
        return;
    }
    if (plain_listens > 0)
        svc->ssl_ctx = tls_ctx_new(svc->name, svc->tls_cert, svc->tls_key, 0, err, sizeof(err));
    if ((plain_listens == 0 || svc->ssl_ctx != NULL) && h2_listens > 0)
        svc->ssl_ctx_h2 = tls_ctx_new(svc->name, svc->tls_cert, svc->tls_key, 1, err,
                                      sizeof(err));
    if ((plain_listens > 0 && svc->ssl_ctx == NULL) || (h2_listens > 0 && svc->ssl_ctx_h2 == NULL))
        err_at(ld, &svc->tls_pos, "service '%s': %s", svc->name, err);
}

static int
dir_access_log(struct loader *ld, const struct directive *d, const struct conf_node *n,
               void *obj)
{
    struct conf_service *svc = obj;
    const struct conf_arg *a = &n->args[0];
    const char *kind;
    char err[512];

    if (strcmp(a->s, "off") == 0)
        return 0;
    if (a->s[0] != '/')
        return err_at(ld, &a->pos, "'access_log' needs an absolute path or 'off'");
    /* A device such as /dev/stdout is fine; a FIFO would block the check's open. */
    kind = conf_path_kind(a->s);
    if (kind != NULL && strcmp(kind, "a device") != 0)
        return err_at(ld, &a->pos, "access log %s is %s, not a regular file", a->s, kind);
    if (accesslog_check(a->s, err, sizeof(err)) == -1)
        return err_at(ld, &a->pos, "access log %s", err);
    svc->access_log = xstrdup(a->s);
    return 0;
}

static int
dir_tls_file(struct loader *ld, const struct directive *d, const struct conf_node *n,
             void *obj)
{
    struct conf_service *svc = obj;
    char **slot = strcmp(n->name, "tls_certificate") == 0 ? &svc->tls_cert : &svc->tls_key;
    const char *kind = conf_path_kind(n->args[0].s);

    if (n->args[0].s[0] != '/')
        return err_at(ld, &n->args[0].pos, "'%s' needs an absolute path", n->name);
    if (kind != NULL)
        return err_at(ld, &n->args[0].pos, "'%s' %s is %s, not a regular file", n->name,
                      n->args[0].s, kind);
    *slot = xstrdup(n->args[0].s);
    if (svc->tls_pos.file == NULL)
        svc->tls_pos = n->pos;
    return 0;
}

static int
has_server_name(const struct conf_service *s, const char *name)
{
    for (size_t i = 0; i < s->nserver_names; i++)
        if (strcmp(s->server_names[i], name) == 0)
            return 1;
    return 0;
}

/* A service that shares an address with earlier ones needs names to be picked by (the
 * first on an address is its default), and no name may be claimed twice there. */
static void
check_shared(struct loader *ld, struct conf_service *svc)
{
    struct conf *c = ld->conf;

    for (size_t j = 0; j < svc->nlistens; j++) {
        const struct conf_listen *l = &svc->listens[j];
        for (size_t i = 0; i < c->nservices && &c->services[i] != svc; i++) {
            struct conf_service *o = &c->services[i];
            size_t k;
            for (k = 0; k < o->nlistens; k++)
                if (listener_addr_equal(&o->listens[k].addr, &l->addr))
                    break;
            if (k == o->nlistens)
                continue;
            svc->shared = o->shared = 1;
            if (svc->nserver_names == 0) {
                err_at(ld, &l->pos, "service '%s' shares %s with service '%s' but has no "
                       "'server_name' for TLS clients to pick it by", svc->name, l->addr.text,
                       o->name);
                return;
            }
            for (size_t n = 0; n < svc->nserver_names; n++)
                if (has_server_name(o, svc->server_names[n]))
                    err_at(ld, &svc->server_name_pos, "server_name '%s' of service '%s' is "
                           "also a server_name of service '%s' on %s", svc->server_names[n],
                           svc->name, o->name, l->addr.text);
        }
    }
}

static int
dir_service(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf *c = ld->conf;
    const struct conf_arg *a = &n->args[0];
    struct conf_service *svc;

    if (!valid_service_name(a->s))
        return err_at(ld, &a->pos, "invalid service name '%s': use a letter followed by "
                      "letters, digits, '_', '-' or '.'", a->s);
    for (size_t i = 0; i < c->nservices; i++)
        if (strcmp(c->services[i].name, a->s) == 0)
            return err_at(ld, &a->pos, "duplicate service '%s' (first defined at %s:%d:%d)",
                          a->s, c->services[i].pos.file, c->services[i].pos.line,
                          c->services[i].pos.col);
    c->services = xreallocarray(c->services, c->nservices + 1, sizeof(*c->services));
    svc = &c->services[c->nservices++];
    memset(svc, 0, sizeof(*svc));
    svc->name = xstrdup(a->s);
    svc->pos = n->pos;
    svc->max_body = CONF_DEFAULT_MAX_BODY;
    svc->http2_max_resets = CONF_DEFAULT_HTTP2_MAX_RESETS;
    svc->max_header_size = CONF_DEFAULT_MAX_HEADER_SIZE;
    svc->header_timeout_ms = svc->idle_timeout_ms = svc->handshake_timeout_ms =
        CONF_DEFAULT_CONN_TIMEOUT_MS;
    svc->send_timeout_ms = CONF_DEFAULT_SEND_TIMEOUT_MS;
    load_block(ld, n, CTX_SERVICE, svc);
    check_service_tls(ld, svc);
    check_shared(ld, svc);
    if (svc->nlistens == 0 && ld->socks != NULL && ld->socks->known &&
        !socket_passed(ld->socks, svc->name))
        err_at(ld, &n->pos, "service '%s' has no 'listen' and systemd passed no socket named "
               "'%s'", svc->name, svc->name);
    if (svc->nroutes == 0)
        err_at(ld, &n->pos, "service '%s' has no 'route'", svc->name);
    return 0;
}

/* ---- service context ---- */

/* An address already claimed by this or an earlier service, or NULL. */
static const struct conf_listen *
listen_conflict(struct loader *ld, const struct listen_addr *a, const char **owner)
{
    struct conf *c = ld->conf;

    for (size_t i = 0; i < c->nservices; i++) {
        for (size_t j = 0; j < c->services[i].nlistens; j++) {
            if (listener_addr_overlaps(&c->services[i].listens[j].addr, a)) {
                *owner = c->services[i].name;
                return &c->services[i].listens[j];
            }
        }
    }
    return NULL;
}

static int
dir_listen(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_service *svc = obj;
    const struct conf_arg *a = &n->args[0];
    const struct conf_listen *other;
    const char *owner;
    struct listen_addr *addrs;
    size_t naddrs;
    char err[256];

    int tls = 0, http2 = 0;

    for (size_t i = 1; i < n->nargs; i++) {
        const struct conf_arg *o = &n->args[i];
        int *flag = strcmp(o->s, "tls") == 0 ? &tls : strcmp(o->s, "http2") == 0 ? &http2 : NULL;

        if (flag == NULL)
            return err_at(ld, &o->pos, "unknown listen option '%s': expected 'tls' or 'http2'",
                          o->s);
        if (*flag)
            return err_at(ld, &o->pos, "listen option '%s' given twice", o->s);
        *flag = 1;
    }
    /* Cleartext h2c would bypass the reset guard, which sits where ALPN picks h2. */
    if (http2 && !tls)
        return err_at(ld, &n->args[n->nargs - 1].pos, "'http2' needs 'tls': percore serves "
                      "HTTP/2 over TLS only (ALPN h2), not as cleartext h2c");
    if (listener_parse_addr(a->s, &addrs, &naddrs, err, sizeof(err)) == -1)
        return err_at(ld, &a->pos, "%s", err);
    for (size_t i = 0; i < naddrs; i++) {
        other = listen_conflict(ld, &addrs[i], &owner);
        /* TLS services may share an address; clients pick one by SNI (see check_shared). */
        if (other != NULL && !(tls && other->tls && strcmp(owner, svc->name) != 0 &&
                               listener_addr_equal(&other->addr, &addrs[i]))) {
            err_at(ld, &a->pos, "%s is already used by service '%s' (listen %s at %s:%d:%d)%s",
                   addrs[i].text, owner, other->addr.text, other->pos.file, other->pos.line,
                   other->pos.col, strcmp(owner, svc->name) == 0 ? "" :
                   "; services can share an address only when each listens on exactly it "
                   "with 'tls' and has a 'server_name'");
            continue;
        }
        svc->listens = xreallocarray(svc->listens, svc->nlistens + 1, sizeof(*svc->listens));
        svc->listens[svc->nlistens++] = (struct conf_listen){addrs[i], a->pos, tls, http2};
    }
    free(addrs);
    return 0;
}

static int
dir_http2(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_service *svc = obj;

    svc->http2_pos = n->pos;
    return parse_flag(ld, n, &svc->http2);
}

static int
dir_http2_count(struct loader *ld, const struct directive *d, const struct conf_node *n,
                void *obj)
{
    if (strcmp(n->name, "http2_max_resets") == 0)
        return parse_count(ld, &n->args[0], n->name, "", 1000000,
                           &((struct conf_service *)obj)->http2_max_resets);
    /* libh2o advertises SETTINGS_MAX_CONCURRENT_STREAMS 100 whatever we set. */
    return parse_count(ld, &n->args[0], n->name, "", CONF_HTTP2_MAX_STREAMS,
                       &ld->conf->http2_max_requests);
}

/* A DNS name, or "*." and one: letters, digits, '-' and '.', no empty label. */
static int
valid_server_name(const char *s)
{
    const char *p = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    size_t label = 0;

    if (*p == '\0' || strlen(p) > 253)
        return 0;
    for (; *p != '\0'; p++) {
        if (*p == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '-') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0;
}

static int
dir_server_name(struct loader *ld, const struct directive *d, const struct conf_node *n,
                void *obj)
{
    struct conf_service *svc = obj;

    for (size_t i = 0; i < n->nargs; i++) {
        const struct conf_arg *a = &n->args[i];
        char *name;
        if (!valid_server_name(a->s)) {
            err_at(ld, &a->pos, "invalid server_name '%s': expected a host name such as "
                   "'example.com' or '*.example.com'", a->s);
            continue;
        }
        name = xstrdup(a->s);
        for (char *p = name; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
        svc->server_names = xreallocarray(svc->server_names, svc->nserver_names + 1,
                                          sizeof(*svc->server_names));
        svc->server_names[svc->nserver_names++] = name;
    }
    if (svc->server_name_pos.file == NULL)
        svc->server_name_pos = n->pos;
    return 0;
}

static int
dir_route(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_service *svc = obj;
    const struct conf_arg *a = &n->args[0];
    struct conf_route *r;

    if (a->s[0] != '/')
        return err_at(ld, &a->pos, "route prefix '%s' must start with '/'", a->s);
    if (strpbrk(a->s, "?#") != NULL)
        return err_at(ld, &a->pos, "route prefix '%s' must be a path, without '?' or '#'", a->s);
    for (size_t i = 0; i < svc->nroutes; i++)
        if (strcmp(svc->routes[i].prefix, a->s) == 0)
            return err_at(ld, &a->pos, "duplicate route '%s' in service '%s' (first at "
                          "%s:%d:%d)", a->s, svc->name, svc->routes[i].pos.file,
                          svc->routes[i].pos.line, svc->routes[i].pos.col);
    svc->routes = xreallocarray(svc->routes, svc->nroutes + 1, sizeof(*svc->routes));
    r = &svc->routes[svc->nroutes++];
    memset(r, 0, sizeof(*r));
    r->prefix = xstrdup(a->s);
    r->pos = n->pos;
    load_block(ld, n, CTX_ROUTE, r);
    if (r->hnd == NULL)
        err_at(ld, &n->pos, "route '%s' has no handler; add one of: %s", r->prefix, hnd_names());
    return 0;
}

/* ---- route context ---- */

static int
dir_handler(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_route *r = obj;
    const struct hnd_ops *ops = hnd_find(n->name);
    void *hconf = NULL;

    if (r->hnd != NULL)
        return err_at(ld, &n->pos, "route '%s' already has a handler ('%s' at %d:%d); a route "
                      "has exactly one", r->prefix, r->hnd->name, r->hnd_pos.line,
                      r->hnd_pos.col);
    if (ops->parse(n, &hconf, ld->diag) == -1)
        return -1;
    r->hnd = ops;
    r->hnd_conf = hconf;
    r->hnd_pos = n->pos;
    return 0;
}

static int
valid_header_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return 0;
    return 1;
}

static int
dir_header(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    static const char *const managed[] = {"content-length", "transfer-encoding", "connection",
                                          "date", "server"};
    struct conf_route *r = obj;
    const struct conf_arg *name = &n->args[0], *value = n->nargs > 1 ? &n->args[1] : NULL;
    enum conf_header_cmd cmd = strcmp(n->name, "header") == 0       ? HDR_SET
                               : strcmp(n->name, "header_add") == 0 ? HDR_ADD
                                                                    : HDR_UNSET;

    if (!valid_header_name(name->s))
        return err_at(ld, &name->pos, "invalid header name '%s'", name->s);
    for (size_t i = 0; i < NELEMS(managed); i++)
        if (strcasecmp(name->s, managed[i]) == 0)
            return err_at(ld, &name->pos, "header '%s' is set by percore and cannot be "
                          "configured", name->s);
    for (const char *p = value ? value->s : ""; *p != '\0'; p++)
        if (*p == '\r' || *p == '\n' || ((unsigned char)*p < 0x20 && *p != '\t') ||
            *p == 0x7f)
            return err_at(ld, &value->pos, "header value for '%s' contains a control "
                          "character", name->s);
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name->s) == 0 && r->headers[i].cmd != HDR_ADD &&
            cmd != HDR_ADD)
            return err_at(ld, &n->pos, "'%s' conflicts with an earlier line for header '%s'; "
                          "use header_add to send it more than once", n->name, name->s);
    r->headers = xreallocarray(r->headers, r->nheaders + 1, sizeof(*r->headers));
    r->headers[r->nheaders++] =
        (struct conf_header){cmd, xstrdup(name->s), value ? xstrdup(value->s) : NULL};
    return 0;
}

/* ---- load / free ---- */

/* Every socket systemd passed must belong to a service of its name. */
static void
check_sockets_claimed(struct loader *ld, const char *path)
{
    for (size_t i = 0; ld->socks != NULL && i < ld->socks->n; i++) {
        size_t j;
        for (j = 0; j < ld->conf->nservices; j++)
            if (strcmp(ld->conf->services[j].name, ld->socks->names[i]) == 0)
                break;
        if (j == ld->conf->nservices)
            conf_diag_add(ld->diag, NULL, "%s: systemd passed a socket named '%s' "
                          "(FileDescriptorName=) but no service has that name", path,
                          ld->socks->names[i]);
    }
}

static struct conf *
conf_from_doc(struct conf_doc *doc, int parsed, const char *path,
              const struct conf_sockets *socks, struct conf_diag *diag)
{
    struct conf *c = xcalloc(1, sizeof(*c));
    struct loader ld = {.conf = c, .socks = socks, .diag = diag};
    size_t before = diag->n;

    c->path = xstrdup(path);
    c->log_target = LOG_TARGET_AUTO;
    c->shutdown_timeout_ms = CONF_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    c->shutdown_delay_ms = CONF_DEFAULT_SHUTDOWN_DELAY_MS;
    c->tls_ticket_rotation_ms = CONF_DEFAULT_TICKET_ROTATION_MS;
    c->worker_watchdog_ms = CONF_DEFAULT_WORKER_WATCHDOG_MS;
    c->max_connections = CONF_DEFAULT_MAX_CONNECTIONS;
    c->http2_max_requests = CONF_DEFAULT_HTTP2_MAX_REQUESTS;
    c->files = conf_doc_steal_files(doc, &c->nfiles);
    if (parsed == 0) {
        load_block(&ld, &doc->root, CTX_MAIN, c);
        if (c->nservices == 0 && diag->n == before)
            conf_diag_add(diag, NULL, "%s: no 'service' defined: nothing to serve", path);
        check_sockets_claimed(&ld, path);
    }
    conf_doc_free(doc);
    if (parsed != 0 || diag->n != before) {
        conf_free(c);
        return NULL;
    }
    return c;
}

struct conf *
conf_load(const char *path, const struct conf_sockets *socks, struct conf_diag *diag)
{
    struct conf_doc doc;
    int rc = conf_parse_file(path, &doc, diag);

    return conf_from_doc(&doc, rc, path, socks, diag);
}

struct conf *
conf_load_string(const char *name, const char *text, const struct conf_sockets *socks,
                 struct conf_diag *diag)
{
    struct conf_doc doc;
    int rc = conf_parse_string(name, text, &doc, diag);

    return conf_from_doc(&doc, rc, name, socks, diag);
}

static void
route_clear(struct conf_route *r)
{
    if (r->hnd != NULL)
        r->hnd->free_conf(r->hnd_conf);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->prefix);
}

void
conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nservices; i++) {
        struct conf_service *s = &c->services[i];
        for (size_t j = 0; j < s->nroutes; j++)
            route_clear(&s->routes[j]);
        free(s->routes);
        free(s->listens);
        for (size_t j = 0; j < s->nserver_names; j++)
            free(s->server_names[j]);
        free(s->server_names);
        free(s->name);
        free(s->access_log);
        free(s->tls_cert);
        free(s->tls_key);
        if (s->ssl_ctx != NULL)
            tls_ctx_free(s->ssl_ctx);
        if (s->ssl_ctx_h2 != NULL)
            tls_ctx_free(s->ssl_ctx_h2);
    }
    free(c->services);
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    free(c->log_path);
    free(c->path);
    free(c);
}
