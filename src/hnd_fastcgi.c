/* The fastcgi handler: forwards requests to a FastCGI application over a unix socket or
 * TCP, with libh2o's FastCGI client (keep-alive connections, io timeout). The address is
 * resolved when the config is read.
 *
 * libh2o turns every request header into an HTTP_* parameter, uppercased with '-' made
 * '_'. So a client's `Proxy:` becomes HTTP_PROXY, which CGI libraries read as the proxy for
 * their own outgoing requests (httpoxy), and `X_Remote_User` arrives as the same
 * HTTP_X_REMOTE_USER as `X-Remote-User`, which a trusted front may have set. A filter in
 * front of libh2o's handler drops both kinds from the request before the parameters are
 * built, as nginx does by default (underscores_in_headers off). */
#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "reqdata.h"
#include "util.h"

#define FASTCGI_KEEPALIVE_MS 3000

struct fastcgi_conf {
    struct sockaddr_storage ss;
    socklen_t sslen;
    int64_t timeout_ms;
    char *root; /* DOCUMENT_ROOT / SCRIPT_FILENAME base, or NULL */
};

static int
parse_target(const char *s, struct fastcgi_conf *fc, char *err, size_t errlen)
{
    const char *colon;
    char host[256];
    unsigned len;
    int rc;

    if (strncmp(s, "unix:", 5) == 0) {
        if (util_unix_sockaddr(s + 5, &fc->ss, &len) == -1) {
            snprintf(err, errlen, "invalid FastCGI address '%s': expected unix:/absolute/path",
                     s);
            return -1;
        }
        fc->sslen = len;
        return 0;
    }
    colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host) ||
        util_parse_port(colon + 1) == -1) {
        snprintf(err, errlen, "invalid FastCGI address '%s': expected unix:/PATH or HOST:PORT",
                 s);
        return -1;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
    rc = hnd_resolve(host, colon + 1, &fc->ss, &len);
    if (rc != 0) {
        snprintf(err, errlen, "FastCGI address '%s': cannot resolve '%s': %s", s, host,
                 gai_strerror(rc));
        return -1;
    }
    fc->sslen = len;
    return 0;
}

static void
fastcgi_free(void *p)
{
    struct fastcgi_conf *fc = p;

    if (fc == NULL)
        return;
    free(fc->root);
    free(fc);
}

static int
fastcgi_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    struct fastcgi_conf *fc = xcalloc(1, sizeof(*fc));
    char err[300];

    fc->timeout_ms = 30000;
    if (parse_target(n->args[0].s, fc, err, sizeof(err)) == -1) {
        conf_diag_add(diag, &n->args[0].pos, "%s", err);
        goto fail;
    }
    for (size_t i = 1; i < n->nargs; i++) {
        const struct conf_arg *a = &n->args[i];
        if (strncmp(a->s, "timeout=", 8) == 0) {
            if (conf_parse_time_ms(a->s + 8, 1, &fc->timeout_ms) != 0) {
                conf_diag_add(diag, &a->pos, "invalid FastCGI timeout '%s': expected a time "
                              "from 1ms to " CONF_TIME_MAX, a->s + 8);
                goto fail;
            }
        } else if (strncmp(a->s, "root=", 5) == 0 && a->s[5] == '/') {
            free(fc->root);
            fc->root = xstrdup(a->s + 5);
        } else {
            conf_diag_add(diag, &a->pos, "unknown fastcgi option '%s': expected timeout=TIME "
                          "or root=/PATH", a->s);
            goto fail;
        }
    }
    *out = fc;
    return 0;
fail:
    fastcgi_free(fc);
    return -1;
}

/* 1 when the header must not reach the application: `Proxy` in any case, or a name with
 * an underscore. */
static int
header_refused(const h2o_iovec_t *name)
{
    return h2o_lcstris(name->base, name->len, H2O_STRLIT("proxy")) ||
           memchr(name->base, '_', name->len) != NULL;
}

/* Runs before libh2o's FastCGI handler on the same route: drops refused headers in place
 * and lets the request go on. */
static int
on_filter(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_headers_t *hs = &req->headers;
    size_t dst = 0;

    (void)self;
    for (size_t src = 0; src < hs->size; src++) {
        if (header_refused(hs->entries[src].name))
            continue;
        if (dst != src)
            hs->entries[dst] = hs->entries[src];
        dst++;
    }
    hs->size = dst;
    return -1;
}

/* What the application answers is its own (error documents leave it): libh2o's FastCGI
 * generator sends it, while its own 502/503 when the application is gone are sent inline,
 * by a generator with no proceed. */
static void
on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (req->res.status >= 400 && req->_generator != NULL &&
        req->_generator->proceed != NULL)
        reqdata_mark_upstream(req); /* only errors are looked at again */
    h2o_setup_next_ostream(req, slot);
}

static void
fastcgi_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    const struct fastcgi_conf *fc = hconf;
    h2o_fastcgi_config_vars_t vars = {
        .io_timeout = (uint64_t)fc->timeout_ms,
        .keepalive_timeout = FASTCGI_KEEPALIVE_MS,
    };

    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_filter;
    h2o_create_filter(pc, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
    if (fc->root != NULL)
        vars.document_root = h2o_iovec_init(fc->root, strlen(fc->root));
    h2o_fastcgi_register_by_address(pc, (struct sockaddr *)&fc->ss, fc->sslen, &vars);
}

const struct hnd_ops hnd_fastcgi_ops = {
    .name = "fastcgi",
    .min_args = 1,
    .max_args = 3,
    .usage = "fastcgi unix:/PATH|HOST:PORT [timeout=TIME] [root=/PATH]",
    .parse = fastcgi_parse,
    .setup = fastcgi_setup,
    .free_conf = fastcgi_free,
};
