/* Config loading, run by the master: the directive table, defaults and validation that turn
 * a syntax tree into the immutable struct conf. Every problem is reported with its position
 * and loading goes on, so one run of `percore -t` shows them all. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "accesslog.h"
#include "clientaddr.h"
#include "errordoc.h"
#include "hnd.h"
#include "regex.h"
#include "tls.h"
#include "tmpl.h"
#include "upstream.h"
#include "util.h"

enum ctx { CTX_MAIN = 1, CTX_SERVICE = 2, CTX_MAINSVC = 3, CTX_ROUTE = 4, CTX_SVCROUTE = 6,
           CTX_UPSTREAM = 8, CTX_TRACING = 16 };

/* The groups of the regex of the route block being loaded: what $1..$9 may refer to in its
 * templates (conf_captures_in_scope). */
static unsigned captures_in_scope;

struct loader {
    struct conf *conf;
    const struct conf_sockets *socks;
    struct conf_diag *diag;
    unsigned failed;           /* directives whose setter failed */
    struct util_hmap services; /* by name: index in conf->services */
    struct util_hmap listens;  /* by family and port: service index, listen index */
    struct util_hmap routes;   /* of the service being loaded, by pattern: route index */
    unsigned ctx;              /* of the block being loaded */
    int upstreams_loaded;      /* `upstream` blocks are loaded before anything else */
};

/* The tree being loaded, whose upstream groups proxy lines name (conf_find_upstream). */
static const struct conf *loading;

struct directive;
/* Apply directive n (its argument count and block already checked against d) to obj, the
 * object of the block it stands in (struct conf, conf_service or conf_route). 0, or -1
 * once the problem is in ld->diag. */
typedef int dir_fn(struct loader *ld, const struct directive *d, const struct conf_node *n,
                   void *obj);

enum {
    D_BLOCK = 1,   /* takes a { } block */
    D_REPEAT = 2,  /* may appear more than once in a block */
    D_HANDLER = 4, /* a route's handler: data is its struct hnd_ops, which gives the argument
                      count and usage (the handler's parse relies on them) */
};

/* The type of a field a generic setter writes (F_NONE: a custom setter's own business). */
enum ftype { F_NONE, F_INT, F_UNSIGNED, F_U64, F_I64 };

struct directive {
    const char *name;
    unsigned ctx;           /* the CTX_ where it may stand */
    size_t off;             /* of the field it sets in that context's object */
    enum ftype type;        /* of that field; not F_NONE: it gets dflt when the object is made */
    int64_t dflt;
    int min_args, max_args; /* max -1: unbounded */
    unsigned flags;
    dir_fn *set;
    int64_t min, max;       /* bounds for set_number, set_size and set_time */
    const void *data;       /* set_enum: its keywords; set_header: its command; D_HANDLER */
    const char *usage;
};

/* A keyword of an enum directive and the value it stores (an int). */
struct keyword {
    const char *name;
    int value;
};

static dir_fn set_enum, set_number, set_size, set_time, set_time_off, set_workers, set_http2, set_log,
    set_service, set_listen, set_server_name, set_access_log, set_tls_file, set_route,
    set_handler, set_header, set_user, set_group, set_methods, set_cond, set_rewrite,
    set_reqheader, set_errordoc, set_upstream, set_upserver, set_balance, set_retry_budget,
    set_retry_on, set_uptls, set_trusted, set_health_check, set_queue, set_request_id,
    set_tracing, set_otlp, set_sample, set_span_name;

static const struct keyword on_off[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const struct keyword trace_accept[] = {{"any", TRACE_ACCEPT_ANY},
                                              {"trusted", TRACE_ACCEPT_TRUSTED},
                                              {"none", TRACE_ACCEPT_NONE},
                                              {NULL, 0}};
static const struct keyword pp_versions[] = {{"v1", 1}, {"v2", 2}, {"off", 0}, {NULL, 0}};
static const enum conf_header_cmd hdr_set = HDR_SET, hdr_add = HDR_ADD, hdr_unset = HDR_UNSET;
static const enum conf_cond_kind cond_header = COND_HEADER, cond_arg = COND_ARG;

/* The offset of field f in the object of context ctx, which must have type t (or the build
 * fails): a generic setter writes it through that type. */
#define OBJ_MAIN struct conf
#define OBJ_SERVICE struct conf_service
#define OBJ_ROUTE struct conf_route
#define OBJ_SVCROUTE void
#define OBJ_UPSTREAM struct conf_upstream
#define OBJ_MAINSVC void
#define OBJ_TRACING struct conf_tracing
#define FIELD(ctx, f, t)                                                                      \
    (offsetof(OBJ_##ctx, f) + 0 * sizeof(char[_Generic(((OBJ_##ctx *)0)->f, t: 1, default: -1)]))

/* Generic rows: the field, its default, the bounds of its value. Flags are off unless set. */
#define FLAG(name, ctx, f)                                                                    \
    {name, CTX_##ctx, FIELD(ctx, f, int), F_INT, 0, 1, 1, 0, set_enum, 0, 0, on_off,          \
     name " on|off"}
#define NUMBER(name, ctx, f, dflt, min, max)                                                  \
    {name, CTX_##ctx, FIELD(ctx, f, unsigned), F_UNSIGNED, dflt, 1, 1, 0, set_number, min,    \
     max, NULL, name " NUMBER"}
#define SIZE(name, ctx, f, dflt, min, max)                                                    \
    {name, CTX_##ctx, FIELD(ctx, f, uint64_t), F_U64, dflt, 1, 1, 0, set_size, min, max, NULL, \
     name " SIZE"}
#define TIME(name, ctx, f, dflt, min)                                                         \
    {name, CTX_##ctx, FIELD(ctx, f, int64_t), F_I64, dflt, 1, 1, 0, set_time, min,            \
     CONF_TIME_MAX_MS, NULL, name " TIME"}
#define HANDLER(name, ops)                                                                    \
    {name, CTX_ROUTE, 0, F_NONE, 0, 0, 0, D_HANDLER, set_handler, 0, 0, &ops, NULL}
/* Custom rows: the setter finds its own place. */
#define CUSTOM(name, ctx, min_args, max_args, flags, set, data, usage)                        \
    {name, CTX_##ctx, 0, F_NONE, 0, min_args, max_args, flags, set, 0, 0, data, usage}

/* Every directive, one row each, sorted by name for bsearch: where it may stand, the field
 * it sets with its default and bounds, its arguments. Adding a directive is one row here (a
 * generic one when it fits: FLAG, NUMBER, SIZE, TIME), one row in tests/unit/test_conf.c
 * (dir_cases, or bad_inputs for a custom setter) and its entry in man/percore.conf.5, plus
 * the field itself in conf.h. A handler is a HANDLER row and its struct hnd_ops (hnd.c
 * lists it), which states its arguments. */
static const struct directive directives[] = {
    {"accept_parent", CTX_TRACING, FIELD(TRACING, accept, int), F_INT, TRACE_ACCEPT_ANY, 1, 1, 0,
     set_enum, 0, 0, trace_accept, "accept_parent any|trusted|none"},
    CUSTOM("access_log", SERVICE, 1, 3, 0, set_access_log, NULL,
           "access_log /PATH|journal|off [format=combined|json] [fields=NAME,...]"),
    CUSTOM("balance", UPSTREAM, 1, 2, 0, set_balance, NULL,
           "balance round_robin|least_conn|hash VALUE"),
    SIZE("buffer_size", UPSTREAM, buffer_size, UPSTREAM_DEFAULT_BUFFER_SIZE, UPSTREAM_BUFFER_MIN,
         UPSTREAM_BUFFER_MAX),
    FLAG("compress", ROUTE, compress),
    TIME("connect_timeout", UPSTREAM, connect_timeout_ms, UPSTREAM_DEFAULT_CONNECT_TIMEOUT_MS, 1),
    FLAG("cpu_affinity", MAIN, cpu_affinity),
    CUSTOM("error_format", SVCROUTE, 1, 1, 0, set_errordoc, NULL,
           "error_format text|problem+json"),
    CUSTOM("error_page", SVCROUTE, 3, -1, D_REPEAT, set_errordoc, NULL,
           "error_page CODE... file /PATH|respond TEXT"),
    TIME("export_interval", TRACING, export_interval_ms, CONF_DEFAULT_EXPORT_INTERVAL_MS, 10),
    TIME("export_timeout", TRACING, export_timeout_ms, CONF_DEFAULT_EXPORT_TIMEOUT_MS, 10),
    TIME("fail_timeout", UPSTREAM, fail_timeout_ms, UPSTREAM_DEFAULT_FAIL_TIMEOUT_MS, 1),
    HANDLER("fastcgi", hnd_fastcgi_ops),
    HANDLER("files", hnd_files_ops),
    CUSTOM("group", MAIN, 1, 1, 0, set_group, NULL, "group NAME|GID"),
    TIME("handshake_timeout", SERVICE, handshake_timeout_ms, CONF_DEFAULT_CONN_TIMEOUT_MS, 100),
    CUSTOM("header", ROUTE, 2, 2, D_REPEAT, set_header, &hdr_set, "header NAME VALUE"),
    CUSTOM("header_add", ROUTE, 2, 2, D_REPEAT, set_header, &hdr_add, "header_add NAME VALUE"),
    TIME("header_timeout", SERVICE, header_timeout_ms, CONF_DEFAULT_CONN_TIMEOUT_MS, 100),
    CUSTOM("header_unset", ROUTE, 1, 1, D_REPEAT, set_header, &hdr_unset, "header_unset NAME"),
    HANDLER("health", hnd_health_ops),
    CUSTOM("health_check", UPSTREAM, 1, 6, 0, set_health_check, NULL,
           "health_check /PATH [interval=TIME] [timeout=TIME] [fall=N] [rise=N] "
           "[status=LOW-HIGH]"),
    {"http2", CTX_SERVICE, FIELD(SERVICE, http2, int), F_INT, 0, 1, 1, 0, set_http2, 0, 0,
     on_off, "http2 on|off"},
    /* libh2o advertises SETTINGS_MAX_CONCURRENT_STREAMS 100 whatever we set. */
    NUMBER("http2_max_concurrent_requests", MAIN, http2_max_requests,
           CONF_DEFAULT_HTTP2_MAX_REQUESTS, 1, CONF_HTTP2_MAX_STREAMS),
    NUMBER("http2_max_resets", SERVICE, http2_max_resets, CONF_DEFAULT_HTTP2_MAX_RESETS, 1,
           1000000),
    TIME("idle_timeout", SERVICE, idle_timeout_ms, CONF_DEFAULT_CONN_TIMEOUT_MS, 100),
    TIME("keepalive", UPSTREAM, keepalive_ms, UPSTREAM_DEFAULT_KEEPALIVE_MS, 1),
    CUSTOM("listen", SERVICE, 1, 5, D_REPEAT, set_listen, NULL,
           "listen ADDRESS:PORT [tls] [http2] [default] [proxy_protocol]"),
    CUSTOM("log", MAIN, 1, 1, 0, set_log, NULL, "log journal|stderr|/PATH"),
    CUSTOM("match_arg", ROUTE, 1, 2, D_REPEAT, set_cond, &cond_arg,
           "match_arg NAME [VALUE|~REGEX]"),
    CUSTOM("match_header", ROUTE, 1, 2, D_REPEAT, set_cond, &cond_header,
           "match_header NAME [VALUE|~REGEX]"),
    SIZE("max_body_size", SERVICE, max_body, CONF_DEFAULT_MAX_BODY, 0, 1024 * 1024 * 1024),
    NUMBER("max_connections", MAIN, max_connections, CONF_DEFAULT_MAX_CONNECTIONS, 1,
           CONF_MAX_CONNECTIONS_MAX),
    NUMBER("max_fails", UPSTREAM, max_fails, UPSTREAM_DEFAULT_MAX_FAILS, 0, 1000),
    SIZE("max_header_size", SERVICE, max_header_size, CONF_DEFAULT_MAX_HEADER_SIZE, 1024,
         CONF_MAX_HEADER_SIZE_MAX),
    CUSTOM("methods", ROUTE, 1, 16, 0, set_methods, NULL, "methods METHOD..."),
    HANDLER("metrics", hnd_metrics_ops),
    HANDLER("module", hnd_module_ops),
    CUSTOM("otlp_endpoint", TRACING, 1, 1, 0, set_otlp, NULL, "otlp_endpoint http://HOST:PORT/PATH"),
    HANDLER("proxy", hnd_proxy_ops),
    CUSTOM("proxy_header", SVCROUTE, 2, 2, D_REPEAT, set_reqheader, NULL,
           "proxy_header NAME VALUE"),
    CUSTOM("proxy_header_unset", SVCROUTE, 1, 1, D_REPEAT, set_reqheader, NULL,
           "proxy_header_unset NAME"),
    {"proxy_protocol", CTX_UPSTREAM, FIELD(UPSTREAM, proxy_protocol, int), F_INT, 0, 1, 1, 0,
     set_enum, 0, 0, pp_versions, "proxy_protocol v1|v2|off"},
    CUSTOM("queue", UPSTREAM, 1, 2, 0, set_queue, NULL, "queue N [timeout=TIME]"),
    HANDLER("redirect", hnd_redirect_ops),
    CUSTOM("request_id", MAINSVC, 1, 2, 0, set_request_id, NULL,
           "request_id on|off [header=NAME]"),
    HANDLER("respond", hnd_respond_ops),
    NUMBER("retries", UPSTREAM, retries, 0, 0, UPSTREAM_RETRIES_MAX),
    CUSTOM("retry_budget", UPSTREAM, 1, 1, 0, set_retry_budget, NULL, "retry_budget PERCENT%"),
    CUSTOM("retry_on", UPSTREAM, 1, 7, 0, set_retry_on, NULL,
           "retry_on error|timeout|429|500|502|503|504 ..."),
    CUSTOM("rewrite", SVCROUTE, 2, 3, D_REPEAT, set_rewrite, NULL,
           "rewrite REGEX REPLACEMENT [last|break|redirect|permanent]"),
    CUSTOM("route", SERVICE, 1, 2, D_BLOCK | D_REPEAT, set_route, NULL,
           "route [=|~|~*] PATTERN { ... }"),
    CUSTOM("sample", TRACING, 1, 1, 0, set_sample, NULL, "sample RATIO|PERCENT%"),
    /* Connections are swept once a second: less could not be kept. */
    TIME("send_timeout", SERVICE, send_timeout_ms, CONF_DEFAULT_SEND_TIMEOUT_MS, 1000),
    CUSTOM("server", UPSTREAM, 1, 4, D_REPEAT, set_upserver, NULL,
           "server URL [weight=N] [max_inflight=N] [resolve=TIME|off]"),
    CUSTOM("server_name", SERVICE, 1, 64, D_REPEAT, set_server_name, NULL, "server_name NAME..."),
    CUSTOM("service", MAIN, 1, 1, D_BLOCK | D_REPEAT, set_service, NULL, "service NAME { ... }"),
    CUSTOM("service_name", TRACING, 1, 1, 0, set_span_name, NULL, "service_name NAME"),
    TIME("shutdown_delay", MAIN, shutdown_delay_ms, CONF_DEFAULT_SHUTDOWN_DELAY_MS, 0),
    TIME("shutdown_timeout", MAIN, shutdown_timeout_ms, CONF_DEFAULT_SHUTDOWN_TIMEOUT_MS, 0),
    /* A time, or off (0). */
    {"slow_turn", CTX_MAIN, FIELD(MAIN, slow_turn_ms, int64_t), F_I64, CONF_DEFAULT_SLOW_TURN_MS,
     1, 1, 0, set_time_off, 1, CONF_TIME_MAX_MS, NULL, "slow_turn TIME|off"},
    NUMBER("span_batch", TRACING, span_batch, CONF_DEFAULT_SPAN_BATCH, 1, 65536),
    NUMBER("span_queue", TRACING, span_queue, CONF_DEFAULT_SPAN_QUEUE, 1, 1048576),
    HANDLER("status", hnd_status_ops),
    TIME("timeout", UPSTREAM, timeout_ms, UPSTREAM_DEFAULT_TIMEOUT_MS, 1),
    CUSTOM("tls_ca", UPSTREAM, 1, 1, 0, set_uptls, NULL, "tls_ca /PATH.pem"),
    {"tls_certificate", CTX_SERVICE | CTX_UPSTREAM, FIELD(SERVICE, tls_cert, char *), F_NONE, 0,
     1, 1, 0, set_tls_file, 0, 0, NULL, "tls_certificate /PATH.pem"},
    {"tls_key", CTX_SERVICE | CTX_UPSTREAM, FIELD(SERVICE, tls_key, char *), F_NONE, 0, 1, 1, 0,
     set_tls_file, 0, 0, NULL, "tls_key /PATH.key"},
    CUSTOM("tls_name", UPSTREAM, 1, 1, 0, set_uptls, NULL, "tls_name NAME"),
    TIME("tls_ticket_rotation", MAIN, tls_ticket_rotation_ms, CONF_DEFAULT_TICKET_ROTATION_MS,
         1000),
    CUSTOM("tls_verify", UPSTREAM, 1, 1, 0, set_uptls, NULL, "tls_verify on|off"),
    /* A service's own replaces the main context's (resolve_trusted). */
    CUSTOM("tracing", MAIN, 0, 0, D_BLOCK, set_tracing, NULL, "tracing { ... }"),
    CUSTOM("trusted_proxies", MAINSVC, 1, -1, D_REPEAT, set_trusted, NULL,
           "trusted_proxies off|NETWORK..."),
    CUSTOM("upstream", MAIN, 1, 1, D_BLOCK | D_REPEAT, set_upstream, NULL,
           "upstream NAME { server URL; ... }"),
    CUSTOM("user", MAIN, 1, 1, 0, set_user, NULL, "user NAME|UID"),
    /* On unless turned off (a flag row with the default 1). */
    {"worker_sandbox", CTX_MAIN, FIELD(MAIN, worker_sandbox, int), F_INT, 1, 1, 1, 0, set_enum,
     0, 0, on_off, "worker_sandbox on|off"},
    /* Heartbeats come every 500 ms; less than a second would kill busy workers. */
    TIME("worker_watchdog", MAIN, worker_watchdog_ms, CONF_DEFAULT_WORKER_WATCHDOG_MS, 1000),
    /* 0: auto, one per CPU the process may use. */
    {"workers", CTX_MAIN, FIELD(MAIN, workers, unsigned), F_UNSIGNED, 0, 1, 1, 0, set_workers, 1,
     CONF_WORKERS_MAX, NULL, "workers auto|NUMBER"},
};

static const char *
ctx_name(unsigned ctx)
{
    switch (ctx) {
    case CTX_MAIN: return "the main context";
    case CTX_SERVICE: return "a service block";
    case CTX_UPSTREAM: return "an upstream block";
    case CTX_TRACING: return "the tracing block";
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

/* What bsearch and the rows' contract need: sorted names, and a handler row named as its
 * handler. */
static int
table_ok(void)
{
    for (size_t i = 0; i < NELEMS(directives); i++) {
        const struct directive *d = &directives[i];
        if (i > 0 && strcmp(directives[i - 1].name, d->name) >= 0)
            return 0;
        if ((d->flags & D_HANDLER) && strcmp(((const struct hnd_ops *)d->data)->name, d->name))
            return 0;
    }
    return 1;
}

/* Other servers' words for percore's directives. */
static const struct {
    const char *theirs, *ours;
} other_words[] = {
    {"add_header", "header"},       {"location", "route"},
    {"proxy_pass", "proxy"},        {"proxy_set_header", "proxy_header"},
    {"return", "redirect' or 'respond"}, {"root", "files"},
    {"server", "service"},          {"reverse_proxy", "proxy"},
};

/* The known name closest to an unknown one, if it is close enough to be a typo. */
static const char *
dir_suggest(const char *name)
{
    const char *best = NULL;

    for (size_t i = 0; i < NELEMS(other_words); i++)
        if (strcmp(name, other_words[i].theirs) == 0)
            return other_words[i].ours;
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

/* The field of obj that d sets. */
static void *
field(const struct directive *d, void *obj)
{
    return (char *)obj + d->off;
}

/* Store v, in range for the field's type (the row's bounds say so), in the field d sets. */
static void
store(const struct directive *d, void *obj, int64_t v)
{
    switch (d->type) {
    case F_INT: *(int *)field(d, obj) = (int)v; break;
    case F_UNSIGNED: *(unsigned *)field(d, obj) = (unsigned)v; break;
    case F_U64: *(uint64_t *)field(d, obj) = (uint64_t)v; break;
    case F_I64: *(int64_t *)field(d, obj) = v; break;
    default: assert(!"a custom row has no generic field"); /* NOTREACHED */
    }
}

/* Every field of a context's new object that has a row gets the row's default: the one
 * place each default is written. */
static void
set_defaults(unsigned ctx, void *obj)
{
    for (size_t i = 0; i < NELEMS(directives); i++)
        if (directives[i].ctx == ctx && directives[i].type != F_NONE)
            store(&directives[i], obj, directives[i].dflt);
}

static int
check_shape(struct loader *ld, const struct directive *d, const struct conf_node *n)
{
    const struct hnd_ops *h = d->flags & D_HANDLER ? d->data : NULL;
    int min = h != NULL ? h->min_args : d->min_args, max = h != NULL ? h->max_args : d->max_args;
    const char *usage = h != NULL ? h->usage : d->usage;
    int nargs = (int)n->nargs;

    if (nargs < min || (max >= 0 && nargs > max))
        return err_at(ld, max >= 0 && nargs > max ? &n->args[max].pos : &n->pos,
                      "wrong number of arguments for '%s'; usage: %s", d->name, usage);
    if ((d->flags & D_BLOCK) && !n->has_block)
        return err_at(ld, &n->pos, "'%s' needs a block; usage: %s", d->name, usage);
    if (!(d->flags & D_BLOCK) && n->has_block)
        return err_at(ld, &n->pos, "'%s' does not take a block; usage: %s;", d->name, usage);
    return 0;
}

/* The row for n if it may stand here (in ctx, and once unless it repeats; seen holds the
 * first use of each row in this block), or NULL once the problem is reported. */
static const struct directive *
dir_lookup(struct loader *ld, const struct conf_node *n, unsigned ctx,
           const struct conf_node **seen)
{
    const struct directive *d = dir_find(n->name);
    const char *hint;
    size_t idx;

    if (d == NULL) {
        hint = dir_suggest(n->name);
        if (hint != NULL)
            err_at(ld, &n->pos, "unknown directive '%s'; did you mean '%s'?", n->name, hint);
        else
            err_at(ld, &n->pos, "unknown directive '%s'", n->name);
        return NULL;
    }
    if (!(d->ctx & ctx)) {
        unsigned want = d->ctx & CTX_MAIN      ? CTX_MAIN
                        : d->ctx & CTX_SERVICE ? CTX_SERVICE
                        : d->ctx & CTX_ROUTE   ? CTX_ROUTE
                        : d->ctx & CTX_TRACING ? CTX_TRACING
                                               : CTX_UPSTREAM;
        err_at(ld, &n->pos, "'%s' is not allowed in %s; it belongs in %s", n->name,
               ctx_name(ctx), ctx_name(want));
        return NULL;
    }
    idx = (size_t)(d - directives);
    if (!(d->flags & D_REPEAT) && seen[idx] != NULL) {
        err_at(ld, &n->pos, "duplicate '%s' (first set at %s:%d:%d)", n->name,
               seen[idx]->pos.file, seen[idx]->pos.line, seen[idx]->pos.col);
        return NULL;
    }
    seen[idx] = n;
    return check_shape(ld, d, n) == 0 ? d : NULL;
}

/* Apply the directives of one block (ctx) to obj, counting those that fail in ld->failed. */
static void
load_block(struct loader *ld, const struct conf_node *block, unsigned ctx, void *obj)
{
    const struct conf_node **seen = xcalloc(NELEMS(directives), sizeof(*seen));
    unsigned outer = ld->ctx;

    assert(ctx == CTX_MAIN || ctx == CTX_SERVICE || ctx == CTX_ROUTE || ctx == CTX_UPSTREAM ||
           ctx == CTX_TRACING);
    ld->ctx = ctx;
    for (size_t i = 0; i < block->nchildren; i++) {
        const struct conf_node *n = &block->children[i];
        const struct directive *d = dir_lookup(ld, n, ctx, seen);
        size_t before = ld->diag->n;

        if (d == NULL) {
            ld->failed++;
            continue;
        }
        if (d->set(ld, d, n, obj) == -1) {
            /* A setter that fails has said why (unless the messages were cut). */
            assert(ld->diag->n > before || ld->diag->n > CONF_DIAG_MAX);
            ld->failed++;
        }
    }
    ld->ctx = outer;
    free(seen);
}

/* ---- value parsers ---- */

struct unit {
    const char *name;
    int64_t scale;
};

/* Largest first, for writing a value back with the largest unit that keeps it whole. */
static const struct unit time_units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
static const struct unit size_units[] = {
    {"g", 1024 * 1024 * 1024}, {"m", 1024 * 1024}, {"k", 1024}, {"", 1}};

/* A number in plain digits with one of units after it, or none (then times bare). */
static int
parse_scaled(const char *s, const struct unit *units, size_t nunits, int64_t bare,
             int64_t *out)
{
    char *end;
    long long v;
    int64_t scale = bare;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    if (*end != '\0') {
        size_t i;
        for (i = 0; i < nunits && (units[i].name[0] == '\0' || strcasecmp(end, units[i].name));
             i++)
            ;
        if (i == nunits)
            return -1;
        scale = units[i].scale;
    }
    if (v > INT64_MAX / scale)
        return -1;
    *out = v * scale;
    return 0;
}

/* v written with the largest of units that divides it ("100ms", "1s", "400k"). */
static const char *
fmt_scaled(int64_t v, const struct unit *units, size_t nunits, char *buf, size_t len)
{
    size_t i = 0;

    while (i + 1 < nunits && v % units[i].scale != 0)
        i++;
    snprintf(buf, len, "%lld%s", (long long)(v / units[i].scale), units[i].name);
    return buf;
}

int
conf_parse_time_ms(const char *s, int64_t min_ms, int64_t *ms)
{
    int64_t v;

    assert(min_ms >= 0 && min_ms <= CONF_TIME_MAX_MS);
    if (parse_scaled(s, time_units, NELEMS(time_units), 1000, &v) == -1 ||
        v > CONF_TIME_MAX_MS)
        return -1;
    *ms = v;
    return v < min_ms ? -2 : 0;
}

int
conf_parse_size(const char *s, uint64_t *bytes)
{
    int64_t v;

    if (parse_scaled(s, size_units, NELEMS(size_units), 1, &v) == -1)
        return -1;
    *bytes = (uint64_t)v;
    return 0;
}

/* ---- generic setters ---- */

/* One of the keywords in d->data, stored as its value (an int). */
static int
set_enum(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct keyword *k = d->data;
    const struct conf_arg *a = &n->args[0];
    char expect[200] = "";
    size_t i, len = 0;

    for (i = 0; k[i].name != NULL; i++) {
        if (strcmp(a->s, k[i].name) == 0) {
            store(d, obj, k[i].value);
            return 0;
        }
    }
    /* "'a', 'b' or 'c'" */
    for (size_t j = 0; j < i && len < sizeof(expect); j++)
        len += (size_t)snprintf(expect + len, sizeof(expect) - len, "%s'%s'",
                                j == 0 ? "" : j + 1 == i ? " or " : ", ", k[j].name);
    return err_at(ld, &a->pos, "invalid value '%s' for '%s': expected %s", a->s, d->name,
                  expect);
}

/* A whole number from d->min to d->max; alt names a keyword the directive also takes. */
static int
parse_number(struct loader *ld, const struct directive *d, const struct conf_arg *a,
             const char *alt, unsigned *out)
{
    char *end;
    unsigned long v;

    assert(d->min >= 0 && d->max <= UINT_MAX && d->min <= d->max);
    errno = 0;
    v = strtoul(a->s, &end, 10);
    if (!isdigit((unsigned char)a->s[0]) || *end != '\0' || errno != 0 ||
        v < (unsigned long)d->min || v > (unsigned long)d->max)
        return err_at(ld, &a->pos, "invalid value '%s' for '%s': expected %sa number from "
                      "%lld to %lld", a->s, d->name, alt, (long long)d->min, (long long)d->max);
    *out = (unsigned)v;
    return 0;
}

static int
set_number(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    unsigned v;

    if (parse_number(ld, d, &n->args[0], "", &v) == -1)
        return -1;
    store(d, obj, v);
    return 0;
}

/* A size from d->min to d->max; the message names the bounds the way a user writes them. */
static int
set_size(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct conf_arg *a = &n->args[0];
    char lo[32], hi[32];
    uint64_t v;

    if (conf_parse_size(a->s, &v) == 0 && v >= (uint64_t)d->min && v <= (uint64_t)d->max) {
        store(d, obj, (int64_t)v);
        return 0;
    }
    fmt_scaled(d->max, size_units, NELEMS(size_units), hi, sizeof(hi));
    if (d->min == 0)
        return err_at(ld, &a->pos, "invalid size '%s' for '%s': expected a number with unit "
                      "k, m or g, at most %s", a->s, d->name, hi);
    return err_at(ld, &a->pos, "invalid size '%s' for '%s': expected %s to %s", a->s, d->name,
                  fmt_scaled(d->min, size_units, NELEMS(size_units), lo, sizeof(lo)), hi);
}

/* A time from d->min to CONF_TIME_MAX_MS, stored as milliseconds. */
static int
set_time(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct conf_arg *a = &n->args[0];
    char lo[32];
    int64_t ms;

    assert(d->max == CONF_TIME_MAX_MS);
    switch (conf_parse_time_ms(a->s, d->min, &ms)) {
    case 0:
        store(d, obj, ms);
        return 0;
    case -2:
        return err_at(ld, &a->pos, "'%s' must be at least %s, got '%s'", d->name,
                      fmt_scaled(d->min, time_units, NELEMS(time_units), lo, sizeof(lo)), a->s);
    default:
        return err_at(ld, &a->pos, "invalid time '%s' for '%s': expected a number with unit "
                      "ms, s, m or h, at most " CONF_TIME_MAX, a->s, d->name);
    }
}

/* A time row that also takes "off", stored as 0 (its least time is above 0). */
static int
set_time_off(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    if (strcmp(n->args[0].s, "off") == 0) {
        store(d, obj, 0);
        return 0;
    }
    return set_time(ld, d, n, obj);
}

/* ---- main context ---- */

static int
set_workers(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    unsigned v = 0;

    if (strcmp(n->args[0].s, "auto") != 0 &&
        parse_number(ld, d, &n->args[0], "'auto' or ", &v) == -1)
        return -1;
    store(d, obj, v);
    return 0;
}

/* A name, else an id of digits only; -1 when neither. */
static int
parse_id(const char *s, unsigned *id)
{
    char *end;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v >= (unsigned long)UINT32_MAX)
        return -1;
    *id = (unsigned)v;
    return 0;
}

/* What getpwnam_r and the like return besides "not found" (0 or, per nss module, one of
 * these), else "". */
static const char *
lookup_error(int rc)
{
    if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
        return "";
    return strerror(rc);
}

/* The user workers run as: resolved now, so a typo is an error at its place, not a worker
 * failing later. A numeric id needs no passwd entry, but then `group` must say the gid. */
static int
set_user(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf *c = obj;
    const struct conf_arg *a = &n->args[0];
    struct passwd pw, *res = NULL;
    char buf[4096];
    unsigned id;
    int numeric = parse_id(a->s, &id) == 0, rc;

    (void)d;
    if (numeric)
        rc = getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res);
    else
        rc = getpwnam_r(a->s, &pw, buf, sizeof(buf), &res);
    if (res == NULL && !numeric)
        return err_at(ld, &a->pos, "unknown user '%s'%s%s", a->s,
                      *lookup_error(rc) != '\0' ? ": " : "", lookup_error(rc));
    c->uid = res != NULL ? res->pw_uid : (uid_t)id;
    if (res != NULL && !c->group_set) {
        c->gid = res->pw_gid;
        c->gid_set = 1;
    }
    free(c->user);
    c->user = xstrdup(a->s);
    c->user_pos = a->pos;
    return 0;
}

static int
set_group(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf *c = obj;
    const struct conf_arg *a = &n->args[0];
    struct group gr, *res = NULL;
    char buf[4096];
    unsigned id;
    int rc;

    (void)d;
    if (parse_id(a->s, &id) == 0) {
        c->gid = (gid_t)id;
    } else {
        rc = getgrnam_r(a->s, &gr, buf, sizeof(buf), &res);
        if (res == NULL)
            return err_at(ld, &a->pos, "unknown group '%s'%s%s", a->s,
                          *lookup_error(rc) != '\0' ? ": " : "", lookup_error(rc));
        c->gid = res->gr_gid;
    }
    c->gid_set = c->group_set = 1;
    c->group_pos = a->pos;
    return 0;
}

/* `group` only means something with `user`, and a numeric user unknown to passwd has no
 * primary group to fall back on. */
static void
check_user_group(struct loader *ld)
{
    struct conf *c = ld->conf;

    if (c->group_set && c->user == NULL)
        err_at(ld, &c->group_pos, "'group' needs 'user'");
    else if (c->user != NULL && !c->gid_set)
        err_at(ld, &c->user_pos, "user %s has no passwd entry: set 'group' too", c->user);
}

static int
set_log(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf *c = obj;
    const struct conf_arg *a = &n->args[0];
    const char *kind;

    if (strcmp(a->s, "journal") == 0) {
        c->log_target = LOG_TARGET_JOURNAL;
    } else if (strcmp(a->s, "stderr") == 0) {
        c->log_target = LOG_TARGET_STDERR;
    } else if (a->s[0] == '/') {
        /* The master opens it for writing: a FIFO would block it. */
        kind = conf_path_kind(a->s);
        if (kind != NULL && strcmp(kind, "a device") != 0)
            return err_at(ld, &a->pos, "log %s is %s, not a regular file", a->s, kind);
        c->log_target = LOG_TARGET_FILE;
        free(c->log_path);
        c->log_path = xstrdup(a->s);
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
    /* Every tls listen offers h2 or not: one of the two contexts at least is wanted. */
    assert(plain_listens + h2_listens == tls_listens);
    if (plain_listens > 0)
        svc->ssl_ctx = tls_ctx_new(svc->name, svc->tls_cert, svc->tls_key, 0, err, sizeof(err));
    if ((plain_listens == 0 || svc->ssl_ctx != NULL) && h2_listens > 0)
        svc->ssl_ctx_h2 = tls_ctx_new(svc->name, svc->tls_cert, svc->tls_key, 1, err,
                                      sizeof(err));
    if ((plain_listens > 0 && svc->ssl_ctx == NULL) || (h2_listens > 0 && svc->ssl_ctx_h2 == NULL))
        err_at(ld, &svc->tls_pos, "service '%s': %s", svc->name, err);
}

/* `access_log /PATH|journal|off [format=combined|json] [fields=NAME,...]`: fields= alone
 * with a path means JSON; the journal has no format but its own. */
static int
set_access_log(struct loader *ld, const struct directive *d, const struct conf_node *n,
               void *obj)
{
    struct accesslog_conf *c = &((struct conf_service *)obj)->access_log;
    const struct conf_arg *a = &n->args[0], *fmt = NULL, *fields = NULL;
    const char *kind;
    char err[640];
    size_t at;

    for (size_t i = 1; i < n->nargs; i++) {
        const struct conf_arg *o = &n->args[i];
        if (strncmp(o->s, "format=", 7) == 0 && fmt == NULL)
            fmt = o;
        else if (strncmp(o->s, "fields=", 7) == 0 && fields == NULL)
            fields = o;
        else
            return err_at(ld, &o->pos, "unknown or repeated access_log option '%s'; usage: %s",
                          o->s, d->usage);
    }
    if (strcmp(a->s, "off") == 0) {
        if (n->nargs > 1)
            return err_at(ld, &n->args[1].pos, "'access_log off' takes no options");
        return 0;
    }
    if (strcmp(a->s, "journal") == 0) {
        if (fmt != NULL)
            return err_at(ld, &fmt->pos, "'access_log journal' takes no format: its entries "
                          "have a field per value (fields= picks them)");
        c->format = ACCESSLOG_JOURNAL;
    } else if (a->s[0] != '/') {
        return err_at(ld, &a->pos, "'access_log' needs an absolute path, 'journal' or 'off'");
    } else if (fmt == NULL || strcmp(fmt->s + 7, "json") == 0) {
        c->format = fmt == NULL && fields == NULL ? ACCESSLOG_COMBINED : ACCESSLOG_JSON;
    } else if (strcmp(fmt->s + 7, "combined") == 0) {
        if (fields != NULL)
            return err_at(ld, &fields->pos, "the combined format's fields are fixed: fields= "
                          "needs format=json");
        c->format = ACCESSLOG_COMBINED;
    } else {
        return err_at(ld, &fmt->pos, "unknown access_log format '%s': expected combined or "
                      "json", fmt->s + 7);
    }
    if (fields != NULL && accesslog_parse_fields(c, fields->s + 7, err, sizeof(err), &at) == -1) {
        struct conf_pos pos = fields->pos;
        pos.col += 7 + (int)at + (fields->quoted ? 1 : 0);
        c->format = ACCESSLOG_OFF;
        return err_at(ld, &pos, "%s", err);
    }
    if (c->format == ACCESSLOG_JOURNAL)
        return 0;
    /* A device such as /dev/stdout is fine; a FIFO would block the check's open. */
    kind = conf_path_kind(a->s);
    if (kind != NULL && strcmp(kind, "a device") != 0)
        return err_at(ld, &a->pos, "access log %s is %s, not a regular file", a->s, kind);
    if (accesslog_check(a->s, err, sizeof(err)) == -1)
        return err_at(ld, &a->pos, "access log %s", err);
    c->path = xstrdup(a->s);
    return 0;
}

/* tls_certificate and tls_key: an absolute path to a regular file, in the field d names;
 * the first one's position stands for both in errors. In an upstream block, the client
 * certificate it shows its servers. */
static int
set_tls_file(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_service *svc = obj;
    const struct conf_arg *a = &n->args[0];
    const char *kind = conf_path_kind(a->s);

    if (ld->ctx == CTX_UPSTREAM)
        return set_uptls(ld, d, n, obj);
    if (a->s[0] != '/')
        return err_at(ld, &a->pos, "'%s' needs an absolute path", d->name);
    if (kind != NULL)
        return err_at(ld, &a->pos, "'%s' %s is %s, not a regular file", d->name, a->s, kind);
    *(char **)field(d, obj) = xstrdup(a->s);
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

/* Where addresses can clash in ld->listens: only within one family and port (see
 * listener_addr_overlaps). */
static uint64_t
addr_key(const struct listen_addr *a)
{
    in_port_t port = a->ss.ss_family == AF_INET6
                         ? ((const struct sockaddr_in6 *)&a->ss)->sin6_port
                         : ((const struct sockaddr_in *)&a->ss)->sin_port;

    assert(a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6);
    return (uint64_t)a->ss.ss_family << 16 | port;
}

/* No name may be claimed twice on an address services share (check_defaults then asks
 * that all but its default have names). */
static void
check_shared(struct loader *ld, struct conf_service *svc)
{
    struct conf *c = ld->conf;
    size_t self = (size_t)(svc - c->services);

    for (size_t j = 0; j < svc->nlistens; j++) {
        const struct conf_listen *l = &svc->listens[j];
        uint64_t key = addr_key(&l->addr);
        size_t last = SIZE_MAX;
        /* Earlier services in their order; each has at most one listen equal to l, as a
         * second would have clashed with its first. */
        for (size_t e = util_hmap_first(&ld->listens, key); e != SIZE_MAX;
             e = util_hmap_next(&ld->listens, e)) {
            struct conf_service *o = &c->services[ld->listens.ents[e].a];
            if (ld->listens.ents[e].a >= self ||
                !listener_addr_equal(&o->listens[ld->listens.ents[e].b].addr, &l->addr))
                continue;
            assert(ld->listens.ents[e].a != last);
            last = ld->listens.ents[e].a;
            svc->shared = o->shared = 1;
            for (size_t n = 0; n < svc->nserver_names; n++)
                if (has_server_name(o, svc->server_names[n]))
                    err_at(ld, &svc->server_name_pos, "server_name '%s' of service '%s' is "
                           "also a server_name of service '%s' on %s", svc->server_names[n],
                           svc->name, o->name, l->addr.text);
        }
    }
}

/* The service that answers on a's address what no other there names: the one whose listen
 * says `default`, else the first; *second_dflt gets a second `default` listen, or NULL. */
static const struct conf_service *
address_default(const struct conf *c, const struct listen_addr *a,
                const struct conf_listen **second_dflt)
{
    const struct conf_service *first = NULL, *dflt = NULL;

    *second_dflt = NULL;
    for (size_t i = 0; i < c->nservices; i++) {
        for (size_t j = 0; j < c->services[i].nlistens; j++) {
            const struct conf_listen *l = &c->services[i].listens[j];
            if (!listener_addr_equal(&l->addr, a))
                continue;
            if (first == NULL)
                first = &c->services[i];
            if (l->dflt && dflt != NULL && *second_dflt == NULL)
                *second_dflt = l;
            else if (l->dflt && dflt == NULL)
                dflt = &c->services[i];
        }
    }
    return dflt != NULL ? dflt : first;
}

/* On each address several services share, one `default` at most, and a server_name for
 * every other service there to be picked by. */
static void
check_defaults(struct loader *ld)
{
    const struct conf *c = ld->conf;

    for (size_t i = 0; i < c->nservices; i++) {
        const struct conf_service *s = &c->services[i];
        for (size_t j = 0; s->shared && j < s->nlistens; j++) {
            const struct conf_listen *l = &s->listens[j], *second;
            const struct conf_service *d = address_default(c, &l->addr, &second);
            if (second != NULL && l == second)
                err_at(ld, &l->pos, "a second 'default' for %s (service '%s' is its default)",
                       l->addr.text, d->name);
            if (d != s && s->nserver_names == 0 && !l->dflt)
                err_at(ld, &l->pos, "service '%s' shares %s with service '%s' but has no "
                       "'server_name' to be picked by; give it one, or make it the address's "
                       "'default'", s->name, l->addr.text, d->name);
        }
    }
}

/* The earlier service called name, or NULL. */
static const struct conf_service *
find_service(struct loader *ld, const char *name)
{
    uint64_t h = util_hash_str(name);

    for (size_t e = util_hmap_first(&ld->services, h); e != SIZE_MAX;
         e = util_hmap_next(&ld->services, e))
        if (strcmp(ld->conf->services[ld->services.ents[e].a].name, name) == 0)
            return &ld->conf->services[ld->services.ents[e].a];
    return NULL;
}

/* A new service in c with every default; the pointer lasts until the next one. */
static struct conf_service *
service_new(struct loader *ld, const char *name, const struct conf_pos *pos)
{
    struct conf *c = ld->conf;
    struct conf_service *svc;

    util_hmap_add(&ld->services, util_hash_str(name), c->nservices, 0);
    c->services = xreallocarray(c->services, c->nservices + 1, sizeof(*c->services));
    svc = &c->services[c->nservices++];
    memset(svc, 0, sizeof(*svc));
    svc->name = xstrdup(name);
    svc->pos = *pos;
    set_defaults(CTX_SERVICE, svc);
    return svc;
}

/* Each route's error documents: its own over the service's. */
static void
merge_errors(struct conf_service *svc)
{
    for (size_t i = 0; i < svc->nroutes; i++) {
        struct errordoc_set *own = svc->routes[i].errors;
        svc->routes[i].errors = errordoc_merge(own, svc->errors);
        errordoc_free(own);
    }
}

/* A service block: fails when anything in it did. */
static int
set_service(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct conf_arg *a = &n->args[0];
    const struct conf_service *dup = find_service(ld, a->s);
    struct conf_service *svc;
    size_t before = ld->diag->n;

    if (!valid_service_name(a->s))
        return err_at(ld, &a->pos, "invalid service name '%s': use a letter followed by "
                      "letters, digits, '_', '-' or '.'", a->s);
    if (dup != NULL)
        return err_at(ld, &a->pos, "duplicate service '%s' (first defined at %s:%d:%d)", a->s,
                      dup->pos.file, dup->pos.line, dup->pos.col);
    svc = service_new(ld, a->s, &n->pos);
    /* Route prefixes are unique within a service. */
    util_hmap_clear(&ld->routes);
    load_block(ld, n, CTX_SERVICE, svc);
    check_service_tls(ld, svc);
    check_shared(ld, svc);
    merge_errors(svc);
    if (svc->nlistens == 0 && ld->socks != NULL && ld->socks->known &&
        !socket_passed(ld->socks, svc->name))
        err_at(ld, &n->pos, "service '%s' has no 'listen' and systemd passed no socket named "
               "'%s'", svc->name, svc->name);
    if (svc->nroutes == 0 && ld->diag->n == before)
        err_at(ld, &n->pos, "service '%s' has no 'route'", svc->name);
    return ld->diag->n == before ? 0 : -1;
}

/* ---- upstream context ---- */

static struct conf_upstream *
find_upstream(const struct conf *c, const char *name)
{
    for (size_t i = 0; c != NULL && i < c->nupstreams; i++)
        if (strcmp(c->upstreams[i]->name, name) == 0)
            return c->upstreams[i];
    return NULL;
}

const struct conf_upstream *
conf_find_upstream(const char *name)
{
    return find_upstream(loading, name);
}

/* `upstream NAME { ... }`: loaded before anything else (so proxy lines may name a group
 * defined after them); the main block's pass over it does nothing. */
static int
set_upstream(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    const struct conf_arg *a = &n->args[0];
    const struct conf_upstream *dup;
    struct conf_upstream *g;
    struct conf *c = obj;
    size_t before = ld->diag->n;
    char err[600];

    (void)d;
    if (ld->upstreams_loaded)
        return 0;
    if (!valid_service_name(a->s))
        return err_at(ld, &a->pos, "invalid upstream name '%s': use a letter followed by "
                      "letters, digits, '_', '-' or '.'", a->s);
    if (strcmp(a->s, "proxy") == 0)
        return err_at(ld, &a->pos, "the upstream name 'proxy' is taken by the servers written "
                      "on proxy lines (in metrics and status): choose another");
    dup = find_upstream(c, a->s);
    if (dup != NULL)
        return err_at(ld, &a->pos, "duplicate upstream '%s' (first defined at %s:%d:%d)", a->s,
                      dup->pos.file, dup->pos.line, dup->pos.col);
    g = upstream_new(a->s, &n->pos, 0);
    set_defaults(CTX_UPSTREAM, g);
    c->upstreams = xreallocarray(c->upstreams, c->nupstreams + 1, sizeof(*c->upstreams));
    c->upstreams[c->nupstreams++] = g;
    load_block(ld, n, CTX_UPSTREAM, g);
    if (g->nservers == 0 && ld->diag->n == before)
        err_at(ld, &n->pos, "upstream '%s' has no 'server'", g->name);
    if (ld->diag->n == before && upstream_finish(g, err, sizeof(err)) == -1)
        err_at(ld, &n->pos, "%s", err);
    return ld->diag->n == before ? 0 : -1;
}

/* Every `upstream` block of the main context, first. A block of the wrong shape is left to
 * the main pass, which says so. */
static void
load_upstreams(struct loader *ld, const struct conf_node *root)
{
    const struct directive *d = dir_find("upstream");

    for (size_t i = 0; i < root->nchildren; i++) {
        const struct conf_node *n = &root->children[i];
        if (strcmp(n->name, "upstream") == 0 && n->nargs == 1 && n->has_block &&
            set_upstream(ld, d, n, ld->conf) == -1)
            ld->failed++;
    }
    ld->upstreams_loaded = 1;
}

/* `server URL [weight=N] [max_inflight=N] [resolve=TIME|off]`. */
static int
set_upserver(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_upstream *g = obj;
    char err[600];
    int rc;

    (void)d;
    if (upstream_add_server(g, n->args[0].s, &n->args[0].pos, 0, err, sizeof(err)) == -1)
        return err_at(ld, &n->args[0].pos, "%s", err);
    for (size_t i = 1; i < n->nargs; i++) {
        rc = upstream_server_option(g, n->args[i].s, err, sizeof(err));
        if (rc == 0)
            return err_at(ld, &n->args[i].pos, "unknown server option '%s'; usage: %s",
                          n->args[i].s, d->usage);
        if (rc == -1)
            return err_at(ld, &n->args[i].pos, "%s", err);
    }
    return 0;
}

/* `balance round_robin|least_conn|hash VALUE`: VALUE a template ($http_x_user, ...). */
static int
set_balance(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_upstream *g = obj;
    const char *w = n->args[0].s;
    char msg[400];
    size_t off = 0;

    if (strcmp(w, "hash") == 0) {
        if (n->nargs != 2)
            return err_at(ld, &n->pos, "'balance hash' needs the value to hash (as "
                          "$http_x_user); usage: %s", d->usage);
        g->hash_key = tmpl_compile(n->args[1].s, 0, msg, sizeof(msg), &off);
        if (g->hash_key == NULL)
            return err_at(ld, &n->args[1].pos, "%s (offset %zu)", msg, off);
        g->balance = BALANCE_HASH;
        return 0;
    }
    if (n->nargs != 1)
        return err_at(ld, &n->args[1].pos, "only 'balance hash' takes a value; usage: %s",
                      d->usage);
    if (strcmp(w, "round_robin") == 0)
        g->balance = BALANCE_ROUND_ROBIN;
    else if (strcmp(w, "least_conn") == 0)
        g->balance = BALANCE_LEAST_CONN;
    else
        return err_at(ld, &n->args[0].pos, "invalid balance '%s'; usage: %s", w, d->usage);
    return 0;
}

/* `retry_budget 20%`: retries allowed, in percent of the requests of the last 10 s. */
static int
set_retry_budget(struct loader *ld, const struct directive *d, const struct conf_node *n,
                 void *obj)
{
    struct conf_upstream *g = obj;
    const char *s = n->args[0].s;
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (s[0] < '0' || s[0] > '9' || (*end != '%' && *end != '\0') ||
        (*end == '%' && end[1] != '\0') || v > 100)
        return err_at(ld, &n->args[0].pos, "invalid retry_budget '%s': expected a percentage "
                      "from 0%% to 100%%; usage: %s", s, d->usage);
    g->retry_budget = (unsigned)v;
    return 0;
}

/* tls_ca, tls_certificate, tls_key, tls_name, tls_verify in an upstream block: toward its
 * https:// servers (uptls.h). */
static int
set_uptls(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    char err[600];

    if (upstream_set_tls(obj, d->name, n->args[0].s, err, sizeof(err)) != 0)
        return err_at(ld, &n->args[0].pos, "%s", err);
    return 0;
}

/* `retry_on WORD...`: what a sent request is retried on (see upstream.h). */
static int
set_retry_on(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_upstream *g = obj;
    unsigned bits = 0, bit;

    (void)d;
    for (size_t i = 0; i < n->nargs; i++) {
        bit = upstream_retry_word(n->args[i].s);
        if (bit == 0)
            return err_at(ld, &n->args[i].pos, "invalid retry_on '%s': expected some of "
                          UPSTREAM_RETRY_WORDS, n->args[i].s);
        bits |= bit;
    }
    g->retry_on = bits;
    return 0;
}

/* `health_check /PATH [interval=TIME] [timeout=TIME] [fall=N] [rise=N] [status=LO-HI]`. */
static int
set_health_check(struct loader *ld, const struct directive *d, const struct conf_node *n,
                 void *obj)
{
    struct conf_upstream *g = obj;
    char err[600];
    int rc;

    if (upstream_check_path(g, n->args[0].s, err, sizeof(err)) == -1)
        return err_at(ld, &n->args[0].pos, "%s", err);
    for (size_t i = 1; i < n->nargs; i++) {
        rc = upstream_check_option(g, n->args[i].s, err, sizeof(err));
        if (rc == 0)
            return err_at(ld, &n->args[i].pos, "unknown health_check option '%s'; usage: %s",
                          n->args[i].s, d->usage);
        if (rc == -1)
            return err_at(ld, &n->args[i].pos, "%s", err);
    }
    return 0;
}

/* `queue N [timeout=TIME]`: requests held per worker while every server is full. */
static int
set_queue(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    char err[300];
    int rc = upstream_set_queue(obj, n->args[0].s, n->nargs > 1 ? n->args[1].s : NULL, err,
                                sizeof(err));

    (void)d;
    if (rc < 0)
        return err_at(ld, &n->args[rc == -2 ? 1 : 0].pos, "%s", err);
    return 0;
}

/* ---- main context or service ---- */

/* `trusted_proxies off|NETWORK...` in the block being loaded (the main context's or a
 * service's); lines add up, and `off` stands alone. */
static int
set_trusted(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_trusted *t = ld->ctx == CTX_MAIN ? &((struct conf *)obj)->trusted
                                                 : &((struct conf_service *)obj)->trusted;
    int off = strcmp(n->args[0].s, "off") == 0;
    char err[256];

    (void)d;
    if (off && n->nargs > 1)
        return err_at(ld, &n->args[1].pos, "'trusted_proxies off' takes no networks");
    if (t->set && (off || t->n == 0))
        return err_at(ld, &n->pos, "'trusted_proxies off' stands alone in a block (first "
                      "trusted_proxies at %s:%d:%d)", t->pos.file, t->pos.line, t->pos.col);
    if (!t->set)
        t->pos = n->pos;
    t->set = 1;
    if (off)
        return 0;
    if (t->n + n->nargs > CLIENTADDR_MAX_NETS)
        return err_at(ld, &n->pos, "too many trusted_proxies networks in one block (at most "
                      "%d)", CLIENTADDR_MAX_NETS);
    t->nets = xreallocarray(t->nets, t->n + n->nargs, sizeof(*t->nets));
    for (size_t i = 0; i < n->nargs; i++) {
        if (clientaddr_parse_net(n->args[i].s, &t->nets[t->n], err, sizeof(err)) == -1)
            return err_at(ld, &n->args[i].pos, "trusted_proxies: %s", err);
        t->n++;
    }
    return 0;
}

static int valid_header_name(const char *s);

/* Whether name is a header the request ID cannot go in: the ID replaces the request's
 * lines of that name and is set on the response, so a name that frames either message,
 * names the host, or that percore writes itself (the trace context, the client's identity
 * passed upstream, Date, Server) would break one of them or be dropped on the way. */
static int
reqid_header_managed(const char *name)
{
    static const char *const managed[] = {
        "host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
        "keep-alive", "proxy-connection", "trailer", "expect", "date", "server", "cookie",
        "set-cookie", "traceparent", "tracestate", "forwarded", "via", "x-real-ip"};

    for (size_t i = 0; i < NELEMS(managed); i++)
        if (strcasecmp(name, managed[i]) == 0)
            return 1;
    return strncasecmp(name, "x-forwarded-", 12) == 0;
}

/* `request_id on|off [header=NAME]`, in the block being loaded. */
static int
set_request_id(struct loader *ld, const struct directive *d, const struct conf_node *n,
               void *obj)
{
    struct conf_reqid *r = ld->ctx == CTX_MAIN ? &((struct conf *)obj)->reqid
                                               : &((struct conf_service *)obj)->reqid;
    const char *v = n->args[0].s, *h = CONF_REQID_HEADER;

    if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
        return err_at(ld, &n->args[0].pos, "request_id takes on or off, not '%s'; usage: %s", v,
                      d->usage);
    if (n->nargs == 2) {
        const struct conf_arg *a = &n->args[1];
        if (strncmp(a->s, "header=", 7) != 0)
            return err_at(ld, &a->pos, "unknown request_id option '%s'; usage: %s", a->s,
                          d->usage);
        h = a->s + 7;
        if (!valid_header_name(h))
            return err_at(ld, &a->pos, "request_id header '%s' is no header name", h);
        if (reqid_header_managed(h))
            return err_at(ld, &a->pos, "request_id header '%s' is managed by percore and the "
                          "protocol; it cannot carry the request ID", h);
    }
    r->on = strcmp(v, "on") == 0;
    r->header = xstrdup(h);
    for (char *p = r->header; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    r->set = 1;
    return 0;
}

/* Each service without request_id of its own takes the main context's. */
static void
resolve_request_id(struct loader *ld)
{
    const struct conf_reqid *top = &ld->conf->reqid;

    for (size_t i = 0; i < ld->conf->nservices; i++) {
        struct conf_reqid *r = &ld->conf->services[i].reqid;
        if (r->set)
            continue;
        r->on = top->on;
        r->header = xstrdup(top->set ? top->header : CONF_REQID_HEADER);
    }
}

/* ---- tracing ---- */

static int
set_tracing(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_tracing *t = &((struct conf *)obj)->tracing;
    size_t before = ld->diag->n;

    (void)d;
    set_defaults(CTX_TRACING, t);
    t->on = 1;
    t->sample = 1.0;
    load_block(ld, n, CTX_TRACING, t);
    if (t->service_name == NULL)
        t->service_name = xstrdup("percore");
    if (t->span_batch > t->span_queue && ld->diag->n == before)
        err_at(ld, &n->pos, "span_batch %u is larger than span_queue %u", t->span_batch,
               t->span_queue);
    return ld->diag->n == before ? 0 : -1;
}

/* `otlp_endpoint http://HOST[:PORT][/PATH]`: OTLP over HTTP (JSON); the port defaults to
 * 80 as in any http:// URL, the path to the collector's usual /v1/traces. HOST is an
 * address ([...] for IPv6) or a name, resolved now: workers connect to its first address
 * and never look it up again (a reload looks it up anew). */
static int
set_otlp(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_tracing *t = obj;
    const char *u = n->args[0].s, *auth = u + strlen("http://"), *end, *hend, *colon;
    char host[256], port[8] = "80";
    unsigned len;
    int rc;

    if (strncmp(u, "http://", 7) != 0)
        return err_at(ld, &n->args[0].pos, "otlp_endpoint must be an http:// URL; usage: %s",
                      d->usage);
    if (strlen(u) > CONF_OTLP_ENDPOINT_MAX)
        return err_at(ld, &n->args[0].pos, "otlp_endpoint is longer than %d bytes",
                      CONF_OTLP_ENDPOINT_MAX);
    end = auth + strcspn(auth, "/?#");
    if (end == auth || strpbrk(auth, "?#") != NULL)
        return err_at(ld, &n->args[0].pos, "otlp_endpoint '%s' has no host or a query; usage: "
                      "%s", u, d->usage);
    for (const char *p = u; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return err_at(ld, &n->args[0].pos, "otlp_endpoint has a space or control byte");
    if (*auth == '[') {
        hend = memchr(auth, ']', (size_t)(end - auth));
        colon = hend != NULL && hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
        if (hend == NULL || (hend + 1 != end && colon == NULL))
            return err_at(ld, &n->args[0].pos, "otlp_endpoint '%s' has a bad IPv6 address; "
                          "usage: %s", u, d->usage);
        auth++;
    } else {
        colon = memchr(auth, ':', (size_t)(end - auth));
        hend = colon != NULL ? colon : end;
    }
    if (colon != NULL) {
        size_t plen = (size_t)(end - colon - 1);
        if (plen >= sizeof(port))
            plen = sizeof(port) - 1; /* too long: util_parse_port refuses what is left */
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
    }
    if (hend == auth || (size_t)(hend - auth) >= sizeof(host) || util_parse_port(port) == -1 ||
        (colon != NULL && (size_t)(end - colon - 1) >= sizeof(port)))
        return err_at(ld, &n->args[0].pos, "otlp_endpoint '%s' has a bad host or port; usage: "
                      "%s", u, d->usage);
    memcpy(host, auth, (size_t)(hend - auth));
    host[hend - auth] = '\0';
    rc = hnd_resolve(host, port, &t->otlp_ss, &len);
    if (rc != 0)
        return err_at(ld, &n->args[0].pos, "otlp_endpoint: cannot resolve '%s': %s", host,
                      gai_strerror(rc));
    t->otlp_sslen = len;
    free(t->otlp_endpoint);
    free(t->otlp_authority);
    free(t->otlp_path);
    t->otlp_endpoint = *end == '\0' ? xasprintf("%s/v1/traces", u) : xstrdup(u);
    t->otlp_authority = xstrndup(u + strlen("http://"), (size_t)(end - u - strlen("http://")));
    t->otlp_path = xstrdup(*end == '\0' ? "/v1/traces" : end);
    return 0;
}

/* `sample RATIO|PERCENT%`: 0.01 and 1% are the same. */
static int
set_sample(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_tracing *t = obj;
    const char *s = n->args[0].s;
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end != s && *end == '%' && end[1] == '\0') {
        v /= 100;
        end++;
    }
    if (end == s || *end != '\0' || errno != 0 || !(v >= 0 && v <= 1) || !isdigit((unsigned char)*s))
        return err_at(ld, &n->args[0].pos, "sample takes a ratio from 0 to 1 or a percentage, "
                      "not '%s'; usage: %s", s, d->usage);
    t->sample = v;
    return 0;
}

static int
set_span_name(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_tracing *t = obj;
    const char *s = n->args[0].s;

    (void)d;
    if (strlen(s) == 0 || strlen(s) > 128)
        return err_at(ld, &n->args[0].pos, "service_name must have 1 to 128 characters");
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return err_at(ld, &n->args[0].pos, "service_name has a control byte");
    free(t->service_name);
    t->service_name = xstrdup(s);
    return 0;
}

/* Each service without trusted_proxies of its own takes the main context's; a
 * proxy_protocol listen needs some, as only they may send the header. */
static void
resolve_trusted(struct loader *ld)
{
    const struct conf_trusted *top = &ld->conf->trusted;

    for (size_t i = 0; i < ld->conf->nservices; i++) {
        struct conf_service *s = &ld->conf->services[i];
        if (!s->trusted.set && top->n > 0) {
            s->trusted.nets = xreallocarray(NULL, top->n, sizeof(*top->nets));
            memcpy(s->trusted.nets, top->nets, top->n * sizeof(*top->nets));
            s->trusted.n = top->n;
        }
        for (size_t j = 0; j < s->nlistens; j++)
            if (s->listens[j].proxy_protocol && s->trusted.n == 0)
                err_at(ld, &s->listens[j].pos, "listen %s proxy_protocol in service '%s' "
                       "needs trusted_proxies (in the service or the main context): only "
                       "those peers may send a PROXY header", s->listens[j].addr.text,
                       s->name);
    }
}

/* ---- service context ---- */

/* An address already claimed by this or an earlier service (the first in their order), or
 * NULL. */
static const struct conf_listen *
listen_conflict(struct loader *ld, const struct listen_addr *a, const char **owner)
{
    struct conf *c = ld->conf;

    for (size_t e = util_hmap_first(&ld->listens, addr_key(a)); e != SIZE_MAX;
         e = util_hmap_next(&ld->listens, e)) {
        const struct conf_service *s = &c->services[ld->listens.ents[e].a];
        const struct conf_listen *l = &s->listens[ld->listens.ents[e].b];
        if (listener_addr_overlaps(&l->addr, a)) {
            *owner = s->name;
            return l;
        }
    }
    return NULL;
}

/* The options after a listen's address: `tls`, `http2`, `default`, `proxy_protocol`, each
 * at most once, into l. */
static int
listen_options(struct loader *ld, const struct conf_node *n, struct conf_listen *l)
{
    for (size_t i = 1; i < n->nargs; i++) {
        const struct conf_arg *o = &n->args[i];
        int *flag = strcmp(o->s, "tls") == 0           ? &l->tls
                    : strcmp(o->s, "http2") == 0         ? &l->http2
                    : strcmp(o->s, "default") == 0       ? &l->dflt
                    : strcmp(o->s, "proxy_protocol") == 0 ? &l->proxy_protocol
                                                          : NULL;

        if (flag == NULL)
            return err_at(ld, &o->pos, "unknown listen option '%s': expected 'tls', 'http2', "
                          "'default' or 'proxy_protocol'", o->s);
        if (*flag)
            return err_at(ld, &o->pos, "listen option '%s' given twice", o->s);
        *flag = 1;
    }
    /* Cleartext h2c would bypass the reset guard, which sits where ALPN picks h2. */
    if (l->http2 && !l->tls)
        return err_at(ld, &n->args[n->nargs - 1].pos, "'http2' needs 'tls': percore serves "
                      "HTTP/2 over TLS only (ALPN h2), not as cleartext h2c");
    return 0;
}

static int
set_listen(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_service *svc = obj;
    size_t self = (size_t)(svc - ld->conf->services);
    const struct conf_arg *a = &n->args[0];
    const struct conf_listen *other;
    const char *owner;
    struct listen_addr *addrs;
    size_t naddrs;
    struct conf_listen opts = {.pos = a->pos};
    char err[256];
    int rc = 0;

    assert(self < ld->conf->nservices);
    if (listen_options(ld, n, &opts) == -1)
        return -1;
    if (listener_parse_addr(a->s, &addrs, &naddrs, err, sizeof(err)) == -1)
        return err_at(ld, &a->pos, "%s", err);
    for (size_t i = 0; i < naddrs; i++) {
        other = listen_conflict(ld, &addrs[i], &owner);
        /* Services may share an address: Host (or SNI, over TLS) picks one (see
         * check_shared and check_defaults). */
        if (other != NULL &&
            !(opts.tls == other->tls && opts.proxy_protocol == other->proxy_protocol &&
              strcmp(owner, svc->name) != 0 && listener_addr_equal(&other->addr, &addrs[i]))) {
            rc = err_at(ld, &a->pos, "%s is already used by service '%s' (listen %s at "
                        "%s:%d:%d)%s", addrs[i].text, owner, other->addr.text,
                        other->pos.file, other->pos.line, other->pos.col,
                        strcmp(owner, svc->name) == 0 ? ""
                        : opts.tls != other->tls ? "; services sharing an address must all "
                                                   "use 'tls' or none"
                        : opts.proxy_protocol != other->proxy_protocol
                            ? "; services sharing an address must all use 'proxy_protocol' or "
                              "none"
                        : "; services can share an address only when each listens on "
                          "exactly it");
            continue;
        }
        util_hmap_add(&ld->listens, addr_key(&addrs[i]), self, svc->nlistens);
        svc->listens = xreallocarray(svc->listens, svc->nlistens + 1, sizeof(*svc->listens));
        opts.addr = addrs[i];
        svc->listens[svc->nlistens++] = opts;
    }
    free(addrs);
    return rc;
}

static int
set_http2(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    ((struct conf_service *)obj)->http2_pos = n->pos;
    return set_enum(ld, d, n, obj);
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
set_server_name(struct loader *ld, const struct directive *d, const struct conf_node *n,
                void *obj)
{
    struct conf_service *svc = obj;
    int rc = 0;

    for (size_t i = 0; i < n->nargs; i++) {
        const struct conf_arg *a = &n->args[i];
        char *name;
        if (!valid_server_name(a->s)) {
            rc = err_at(ld, &a->pos, "invalid server_name '%s': expected a host name such as "
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
    return rc;
}

static const char *const match_ops[] = {[MATCH_PREFIX] = "", [MATCH_EXACT] = "= ",
                                         [MATCH_REGEX] = "~ "};

/* The earlier route of the service being loaded that takes every request r would: the same
 * pattern, and no condition of its own. NULL when there is none. */
static const struct conf_route *
shadowing_route(struct loader *ld, const struct conf_service *svc, const struct conf_route *r)
{
    uint64_t h = util_hash_str(r->prefix);

    for (size_t e = util_hmap_first(&ld->routes, h); e != SIZE_MAX;
         e = util_hmap_next(&ld->routes, e)) {
        const struct conf_route *o = &svc->routes[ld->routes.ents[e].a];
        if (o != r && o->match == r->match && strcmp(o->prefix, r->prefix) == 0 &&
            (o->re == NULL || o->re->caseless == r->re->caseless) && o->nmethods == 0 &&
            o->nconds == 0)
            return o;
    }
    return NULL;
}

/* A regex argument compiled, or NULL once the problem is reported at it. */
static struct regex *
compile_regex(struct loader *ld, const struct conf_arg *a, int caseless)
{
    char err[256];
    size_t off = 0;
    struct regex *re = regex_compile(a->s, caseless, err, sizeof(err), &off);

    if (re == NULL)
        err_at(ld, &a->pos, "invalid regex '%s': %s (at offset %zu)", a->s, err, off);
    return re;
}

/* A template argument compiled (captures: the highest $N allowed), or NULL once the problem
 * is reported at it. */
static struct tmpl *
compile_tmpl(struct loader *ld, const struct conf_arg *a, unsigned captures)
{
    char err[400];
    size_t off = 0;
    struct tmpl *t = tmpl_compile(a->s, captures, err, sizeof(err), &off);

    if (t == NULL)
        err_at(ld, &a->pos, "%s (in '%s' at offset %zu)", err, a->s, off);
    return t;
}

/* A path pattern (prefix or exact): a path, without query or fragment. */
static int
check_path_pattern(struct loader *ld, const struct conf_arg *a, const char *what)
{
    if (a->s[0] == '~' || a->s[0] == '^' || a->s[0] == '=')
        return err_at(ld, &a->pos, "route %s '%s' must start with '/'; a regex route is "
                      "'route ~ REGEX' and an exact one 'route = /PATH', the operator apart",
                      what, a->s);
    if (a->s[0] != '/')
        return err_at(ld, &a->pos, "route %s '%s' must start with '/'", what, a->s);
    if (strpbrk(a->s, "?#") != NULL)
        return err_at(ld, &a->pos, "route %s '%s' must be a path, without '?' or '#'", what,
                      a->s);
    return 0;
}

/* `route PREFIX`, `route = PATH`, `route ~ REGEX`, `route ~* REGEX` into r. */
static int
route_pattern(struct loader *ld, const struct conf_node *n, struct conf_route *r)
{
    const struct conf_arg *op = &n->args[0], *a = &n->args[n->nargs - 1];

    if (n->nargs == 1) {
        if (strcmp(op->s, "=") == 0 || strcmp(op->s, "~") == 0 || strcmp(op->s, "~*") == 0)
            return err_at(ld, &op->pos, "route '%s' needs a pattern after it", op->s);
        r->match = MATCH_PREFIX;
        return check_path_pattern(ld, a, "prefix");
    }
    if (strcmp(op->s, "=") == 0) {
        r->match = MATCH_EXACT;
        return check_path_pattern(ld, a, "path");
    }
    if (strcmp(op->s, "~") != 0 && strcmp(op->s, "~*") != 0)
        return err_at(ld, &op->pos, "unknown route operator '%s': expected '=' (exact path), "
                      "'~' (regex) or '~*' (regex, any case) before the pattern", op->s);
    r->match = MATCH_REGEX;
    r->re = compile_regex(ld, a, op->s[1] == '*');
    return r->re == NULL ? -1 : 0;
}

/* A route block: fails when anything in it did. */
static int
set_route(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_service *svc = obj;
    const struct conf_arg *a = &n->args[n->nargs - 1];
    const struct conf_route *dup;
    struct conf_route r = {0}, *rp;
    size_t before = ld->diag->n;

    if (route_pattern(ld, n, &r) == -1) {
        regex_free(r.re);
        return -1;
    }
    svc->routes = xreallocarray(svc->routes, svc->nroutes + 1, sizeof(*svc->routes));
    rp = &svc->routes[svc->nroutes++];
    *rp = r;
    rp->prefix = xstrdup(a->s);
    rp->pos = n->pos;
    set_defaults(CTX_ROUTE, rp);
    captures_in_scope = rp->re != NULL ? rp->re->ncaptures : 0;
    load_block(ld, n, CTX_ROUTE, rp);
    captures_in_scope = 0;
    /* A handler whose line failed has said so. */
    if (rp->hnd == NULL && ld->diag->n == before)
        err_at(ld, &n->pos, "route '%s' has no handler; add one of: %s", rp->prefix,
               hnd_names());
    dup = shadowing_route(ld, svc, rp);
    if (dup != NULL)
        err_at(ld, &a->pos, "duplicate route '%s%s' in service '%s' (first at %s:%d:%d)%s",
               match_ops[rp->match], rp->prefix, svc->name, dup->pos.file, dup->pos.line,
               dup->pos.col, rp->nmethods + rp->nconds > 0 ? ", which has no condition and "
               "takes every request this one would" : "");
    util_hmap_add(&ld->routes, util_hash_str(rp->prefix), svc->nroutes - 1, 0);
    return ld->diag->n == before ? 0 : -1;
}

unsigned
conf_captures_in_scope(void)
{
    return captures_in_scope;
}

/* The lists of a directive that stands in a service or a route block, for the block being
 * loaded. */
static struct conf_route *
route_obj(struct loader *ld, void *obj)
{
    return ld->ctx == CTX_ROUTE ? obj : NULL;
}

/* A replacement is a path, a URL, or starts with a variable ("$1", "$scheme://..."). */
static int
replacement_ok(const char *s)
{
    return (s[0] == '/' || strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
            s[0] == '$') && strncmp(s, "$$", 2) != 0;
}

/* `rewrite REGEX REPLACEMENT [FLAG]`. */
static int
set_rewrite(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    static const struct keyword flags[] = {{"last", RW_LAST}, {"break", RW_BREAK},
                                           {"redirect", RW_REDIRECT},
                                           {"permanent", RW_PERMANENT}, {NULL, 0}};
    struct conf_route *r = route_obj(ld, obj);
    struct conf_service *svc = r == NULL ? obj : NULL;
    struct conf_rewrite rw = {.flag = RW_NEXT, .pos = n->pos};
    struct conf_rewrite **v = r != NULL ? &r->rewrites : &svc->rewrites;
    size_t *nv = r != NULL ? &r->nrewrites : &svc->nrewrites;

    if (n->nargs == 3) {
        size_t i;
        for (i = 0; flags[i].name != NULL && strcmp(flags[i].name, n->args[2].s) != 0; i++)
            ;
        if (flags[i].name == NULL)
            return err_at(ld, &n->args[2].pos, "unknown rewrite flag '%s': expected 'last', "
                          "'break', 'redirect' or 'permanent'", n->args[2].s);
        rw.flag = flags[i].value;
    }
    if (svc != NULL && rw.flag == RW_BREAK)
        return err_at(ld, &n->args[2].pos, "'break' keeps the route, and a service's rewrite "
                      "comes before one is chosen: use 'last' here");
    rw.re = compile_regex(ld, &n->args[0], 0);
    if (rw.re == NULL)
        return -1;
    rw.repl = compile_tmpl(ld, &n->args[1], rw.re->ncaptures);
    if (rw.repl == NULL) {
        regex_free(rw.re);
        return -1;
    }
    if (!replacement_ok(n->args[1].s)) {
        regex_free(rw.re);
        tmpl_free(rw.repl);
        return err_at(ld, &n->args[1].pos, "rewrite replacement '%s' must be a path "
                      "('/...'), a URL ('http://...', 'https://...') or start with a "
                      "variable", n->args[1].s);
    }
    *v = xreallocarray(*v, *nv + 1, sizeof(**v));
    (*v)[(*nv)++] = rw;
    return 0;
}

/* ---- route context ---- */

/* The route's one handler: its hnd_ops (d->data) parses the arguments into its config. */
static int
set_handler(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_route *r = obj;
    const struct hnd_ops *ops = d->data;
    void *hconf = NULL;

    assert(strcmp(ops->name, d->name) == 0);
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

/* Why a header line cannot be configured, reported; or 0. */
static int
header_problem(struct loader *ld, const struct conf_arg *name, const struct conf_arg *value)
{
    static const char *const managed[] = {"content-length", "transfer-encoding", "connection",
                                          "date", "server"};

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
    return 0;
}

/* header, header_add and header_unset: the command is the row's (d->data). */
static int
set_header(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_route *r = obj;
    const struct conf_arg *name = &n->args[0], *value = n->nargs > 1 ? &n->args[1] : NULL;
    enum conf_header_cmd cmd = *(const enum conf_header_cmd *)d->data;
    struct tmpl *tv = NULL;

    /* The rows' argument counts: a value for set and add, none for unset. */
    assert((cmd == HDR_UNSET) == (value == NULL));
    if (header_problem(ld, name, value) == -1)
        return -1;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name->s) == 0 && r->headers[i].cmd != HDR_ADD &&
            cmd != HDR_ADD)
            return err_at(ld, &n->pos, "'%s' conflicts with an earlier line for header '%s'; "
                          "use header_add to send it more than once", d->name, name->s);
    if (value != NULL && (tv = compile_tmpl(ld, value, captures_in_scope)) == NULL)
        return -1;
    r->headers = xreallocarray(r->headers, r->nheaders + 1, sizeof(*r->headers));
    r->headers[r->nheaders++] =
        (struct conf_header){cmd, xstrdup(name->s), value ? xstrdup(value->s) : NULL, tv};
    return 0;
}

/* `proxy_header NAME VALUE`, `proxy_header_unset NAME`: one line per name in a block. */
static int
set_reqheader(struct loader *ld, const struct directive *d, const struct conf_node *n,
              void *obj)
{
    static const char *const managed[] = {"host", "content-length", "transfer-encoding",
                                          "connection", "upgrade", "te", "keep-alive"};
    struct conf_route *r = route_obj(ld, obj);
    struct conf_service *svc = r == NULL ? obj : NULL;
    struct conf_reqheader **v = r != NULL ? &r->reqheaders : &svc->reqheaders;
    size_t *nv = r != NULL ? &r->nreqheaders : &svc->nreqheaders;
    const struct conf_arg *name = &n->args[0], *value = n->nargs > 1 ? &n->args[1] : NULL;
    struct tmpl *t = NULL;
    char *lc;

    if (header_problem(ld, name, value) == -1)
        return -1;
    for (size_t i = 0; i < NELEMS(managed); i++)
        if (strcasecmp(name->s, managed[i]) == 0)
            return err_at(ld, &name->pos, "request header '%s' is managed by percore and the "
                          "protocol; it cannot be configured", name->s);
    for (size_t i = 0; i < *nv; i++)
        if (strcasecmp((*v)[i].name, name->s) == 0)
            return err_at(ld, &n->pos, "request header '%s' is already set in this block "
                          "(at %s:%d:%d)", name->s, (*v)[i].pos.file, (*v)[i].pos.line,
                          (*v)[i].pos.col);
    if (value != NULL && (t = compile_tmpl(ld, value, captures_in_scope)) == NULL)
        return -1;
    lc = xstrdup(name->s);
    for (char *p = lc; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    *v = xreallocarray(*v, *nv + 1, sizeof(**v));
    (*v)[(*nv)++] = (struct conf_reqheader){lc, t, n->pos};
    return 0;
}

/* `methods METHOD...`: tokens, compared as written (methods are case-sensitive). */
static int
set_methods(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_route *r = obj;

    for (size_t i = 0; i < n->nargs; i++) {
        const struct conf_arg *a = &n->args[i];
        if (!valid_header_name(a->s) || strlen(a->s) > 32)
            return err_at(ld, &a->pos, "invalid method '%s': expected a token such as GET",
                          a->s);
        for (const char *p = a->s; *p != '\0'; p++)
            if (islower((unsigned char)*p))
                return err_at(ld, &a->pos, "method '%s' has lowercase letters; methods are "
                              "case-sensitive and the standard ones uppercase", a->s);
        for (size_t j = 0; j < r->nmethods; j++)
            if (strcmp(r->methods[j], a->s) == 0)
                return err_at(ld, &a->pos, "method '%s' listed twice", a->s);
        r->methods = xreallocarray(r->methods, r->nmethods + 1, sizeof(*r->methods));
        r->methods[r->nmethods++] = xstrdup(a->s);
    }
    return 0;
}

/* `match_header NAME [VALUE|~REGEX]`, `match_arg NAME [VALUE|~REGEX]`. */
static int
set_cond(struct loader *ld, const struct directive *d, const struct conf_node *n, void *obj)
{
    struct conf_route *r = obj;
    struct conf_cond c = {.kind = *(const enum conf_cond_kind *)d->data, .pos = n->pos};
    const struct conf_arg *name = &n->args[0], *value = n->nargs > 1 ? &n->args[1] : NULL;

    if (c.kind == COND_HEADER ? !valid_header_name(name->s)
                              : name->s[0] == '\0' || strpbrk(name->s, "&=#") != NULL)
        return err_at(ld, &name->pos, "invalid %s name '%s'",
                      c.kind == COND_HEADER ? "header" : "query argument", name->s);
    if (value != NULL && value->s[0] == '~' && !value->quoted) {
        struct conf_arg re = *value;
        re.s = value->s + 1;
        if ((c.re = compile_regex(ld, &re, 0)) == NULL)
            return -1;
    } else if (value != NULL) {
        c.value = xstrdup(value->s);
    }
    c.name = xstrdup(name->s);
    if (c.kind == COND_HEADER)
        for (char *p = c.name; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
    r->conds = xreallocarray(r->conds, r->nconds + 1, sizeof(*r->conds));
    r->conds[r->nconds++] = c;
    return 0;
}

/* `error_page` and `error_format`, for the service or the route. */
static int
set_errordoc(struct loader *ld, const struct directive *d, const struct conf_node *n,
             void *obj)
{
    struct conf_route *r = route_obj(ld, obj);
    struct errordoc_set **set = r != NULL ? &r->errors : &((struct conf_service *)obj)->errors;

    if (strcmp(d->name, "error_format") == 0)
        return errordoc_parse_format(n, set, ld->diag);
    return errordoc_parse_page(n, set, ld->diag);
}

/* ---- load / free ---- */

/* With the sandbox on, a handler that needs it off (a module that says so) is an error at
 * its place, rather than workers killed at its first request. */
static void
check_sandbox(struct loader *ld)
{
    const struct conf *c = ld->conf;
    const char *who;

    if (!c->worker_sandbox)
        return;
    for (size_t i = 0; i < c->nservices; i++) {
        for (size_t k = 0; k < c->services[i].nroutes; k++) {
            const struct conf_route *r = &c->services[i].routes[k];
            if (r->hnd == NULL || r->hnd->unsandboxed == NULL || r->hnd_conf == NULL)
                continue;
            who = r->hnd->unsandboxed(r->hnd_conf);
            if (who != NULL)
                err_at(ld, &r->hnd_pos, "%s needs system calls the worker sandbox forbids: "
                       "set 'worker_sandbox off;' to use it", who);
        }
    }
}

/* Every socket systemd passed must belong to a service of its name. */
static void
check_sockets_claimed(struct loader *ld, const char *path)
{
    for (size_t i = 0; ld->socks != NULL && i < ld->socks->n; i++)
        if (find_service(ld, ld->socks->names[i]) == NULL)
            conf_diag_add(ld->diag, NULL, "%s: systemd passed a socket named '%s' "
                          "(FileDescriptorName=) but no service has that name", path,
                          ld->socks->names[i]);
}

/* A tree with every default, before any directive. */
static struct conf *
conf_new(const char *path)
{
    struct conf *c = xcalloc(1, sizeof(*c));

    c->path = xstrdup(path);
    c->log_target = LOG_TARGET_AUTO;
    set_defaults(CTX_MAIN, c);
    return c;
}

static struct conf *
conf_from_doc(struct conf_doc *doc, int parsed, const char *path,
              const struct conf_sockets *socks, struct conf_diag *diag)
{
    struct conf *c = conf_new(path);
    struct loader ld = {.conf = c, .socks = socks, .diag = diag};
    size_t before = diag->n;

    assert(table_ok());
    c->files = conf_doc_steal_files(doc, &c->nfiles);
    if (parsed == 0) {
        loading = c;
        load_upstreams(&ld, &doc->root);
        load_block(&ld, &doc->root, CTX_MAIN, c);
        loading = NULL;
        if (c->nservices == 0 && diag->n == before)
            conf_diag_add(diag, NULL, "%s: no 'service' defined: nothing to serve", path);
        check_sockets_claimed(&ld, path);
        resolve_trusted(&ld);
        resolve_request_id(&ld);
        check_defaults(&ld);
        check_user_group(&ld);
        check_sandbox(&ld);
    }
    util_hmap_clear(&ld.services);
    util_hmap_clear(&ld.listens);
    util_hmap_clear(&ld.routes);
    conf_doc_free(doc);
    if (parsed != 0 || ld.failed > 0 || diag->n != before) {
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
rewrites_clear(struct conf_rewrite *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        regex_free(v[i].re);
        tmpl_free(v[i].repl);
    }
    free(v);
}

static void
reqheaders_clear(struct conf_reqheader *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        tmpl_free(v[i].value);
    }
    free(v);
}

static void
route_clear(struct conf_route *r)
{
    if (r->hnd != NULL)
        r->hnd->free_conf(r->hnd_conf);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
        tmpl_free(r->headers[i].tvalue);
    }
    free(r->headers);
    free(r->prefix);
    regex_free(r->re);
    for (size_t i = 0; i < r->nmethods; i++)
        free(r->methods[i]);
    free(r->methods);
    for (size_t i = 0; i < r->nconds; i++) {
        free(r->conds[i].name);
        free(r->conds[i].value);
        regex_free(r->conds[i].re);
    }
    free(r->conds);
    rewrites_clear(r->rewrites, r->nrewrites);
    reqheaders_clear(r->reqheaders, r->nreqheaders);
    errordoc_free(r->errors);
}

static void
service_clear(struct conf_service *s)
{
    for (size_t j = 0; j < s->nroutes; j++)
        route_clear(&s->routes[j]);
    free(s->routes);
    rewrites_clear(s->rewrites, s->nrewrites);
    reqheaders_clear(s->reqheaders, s->nreqheaders);
    errordoc_free(s->errors);
    free(s->trusted.nets);
    free(s->reqid.header);
    free(s->listens);
    for (size_t j = 0; j < s->nserver_names; j++)
        free(s->server_names[j]);
    free(s->server_names);
    free(s->name);
    free(s->access_log.path);
    free(s->tls_cert);
    free(s->tls_key);
    if (s->ssl_ctx != NULL)
        tls_ctx_free(s->ssl_ctx);
    if (s->ssl_ctx_h2 != NULL)
        tls_ctx_free(s->ssl_ctx_h2);
}

void
conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nservices; i++)
        service_clear(&c->services[i]);
    free(c->services);
    for (size_t i = 0; i < c->nupstreams; i++)
        upstream_free(c->upstreams[i]);
    free(c->upstreams);
    free(c->trusted.nets);
    free(c->reqid.header);
    free(c->tracing.otlp_endpoint);
    free(c->tracing.otlp_authority);
    free(c->tracing.otlp_path);
    free(c->tracing.service_name);
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    free(c->log_path);
    free(c->user);
    free(c->path);
    free(c);
}
