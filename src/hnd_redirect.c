/* The redirect handler: a fixed status and target, keeping the path suffix after the
 * route's prefix (and the query) unless `exact` is given; a target with variables
 * ("https://$host$request_uri") is expanded instead, and used as it comes out. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "router.h"
#include "tmpl.h"
#include "util.h"

struct redirect_conf {
    int status;
    char *target;
    int exact;
    struct tmpl *tmpl; /* the target has variables; NULL: it has none */
};

struct redirect_handler {
    h2o_handler_t super;
    const struct redirect_conf *conf;
};

static int
has_space_or_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* 1 if target is an absolute or scheme-relative URL with no path ("https://a.example",
 * "//a.example:8080"): the suffix would then extend its host ("a.example@evil" or
 * "a.example.evil"), so such a target gets its root path "/". */
static int
lacks_path(const char *target)
{
    const char *p = target;

    if (p[0] == '/' && p[1] == '/') {
        p += 2;
    } else {
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '+' || *p == '-' || *p == '.')
            p++;
        if (p == target || strncmp(p, "://", 3) != 0)
            return 0;
        p += 3;
    }
    return strpbrk(p, "/?#") == NULL;
}

/* Why target cannot take a request's path after it, or NULL: it must be /PATH,
 * //HOST[/PATH] or SCHEME://HOST[/PATH] ("https:example.com" or "mailto:a@b" would let
 * the path extend a host, "\\" is a '/' to browsers), with no query or fragment (the
 * path would land in them). */
static const char *
target_problem(const char *t)
{
    const char *p = t;

    if (strchr(t, '\\') != NULL)
        return "has a '\\'";
    if (strpbrk(t, "?#") != NULL)
        return "has a query or fragment (add 'exact', or drop them)";
    if (p[0] == '/')
        return NULL;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (p == t || strncmp(p, "://", 3) != 0)
        return "is not /PATH, //HOST/PATH or SCHEME://HOST/PATH (add 'exact' for others)";
    return NULL;
}

/* Target t (url's text, or what its template makes of "$$") without variables. */
static int
parse_fixed(const struct conf_node *n, const char *t, const struct conf_arg *url, int status,
            void **out, struct conf_diag *diag)
{
    struct redirect_conf *rc;
    const char *why;

    if (n->nargs == 2 && (why = target_problem(t)) != NULL) {
        conf_diag_add(diag, &url->pos, "redirect target '%s' %s", url->s, why);
        return -1;
    }
    rc = xcalloc(1, sizeof(*rc));
    rc->status = status;
    rc->target = lacks_path(t) ? xasprintf("%s/", t) : xstrdup(t);
    rc->exact = n->nargs > 2;
    *out = rc;
    return 0;
}

/* A target with '$': a template, used whole as it expands ("https://$host$request_uri");
 * one whose only '$' are "$$" is a fixed target. */
static int
parse_template(const struct conf_node *n, const struct conf_arg *url, int status, void **out,
               struct conf_diag *diag)
{
    struct redirect_conf *rc;
    char err[400];
    size_t off = 0;
    struct tmpl *t = tmpl_compile(url->s, conf_captures_in_scope(), err, sizeof(err), &off);
    int rv;

    if (t == NULL) {
        conf_diag_add(diag, &url->pos, "%s (in '%s' at offset %zu)", err, url->s, off);
        return -1;
    }
    if (!tmpl_has_vars(t)) {
        rv = parse_fixed(n, tmpl_literal(t), url, status, out, diag);
        tmpl_free(t);
        return rv;
    }
    rc = xcalloc(1, sizeof(*rc));
    rc->status = status;
    rc->target = xstrdup(url->s);
    rc->exact = 1;
    rc->tmpl = t;
    *out = rc;
    return 0;
}

static int
redirect_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    const struct conf_arg *st = &n->args[0], *url = &n->args[1];
    static const char *const statuses[] = {"301", "302", "303", "307", "308"};
    int status = 0;

    for (size_t i = 0; i < NELEMS(statuses); i++)
        if (strcmp(st->s, statuses[i]) == 0)
            status = (int)strtol(st->s, NULL, 10);
    if (status == 0) {
        conf_diag_add(diag, &st->pos, "invalid status '%s' for 'redirect': expected 301, 302, "
                      "303, 307 or 308", st->s);
        return -1;
    }
    if (url->s[0] == '\0' || has_space_or_ctl(url->s)) {
        conf_diag_add(diag, &url->pos, "invalid redirect target '%s'", url->s);
        return -1;
    }
    if (n->nargs > 2 && strcmp(n->args[2].s, "exact") != 0) {
        conf_diag_add(diag, &n->args[2].pos, "unknown redirect option '%s': expected 'exact'",
                      n->args[2].s);
        return -1;
    }
    if (strchr(url->s, '$') != NULL)
        return parse_template(n, url, status, out, diag);
    return parse_fixed(n, url->s, url, status, out, diag);
}

static void
redirect_free(void *p)
{
    struct redirect_conf *rc = p;

    if (rc == NULL)
        return;
    free(rc->target);
    tmpl_free(rc->tmpl);
    free(rc);
}

/* The Location for a request to a route of plen bytes: the target and, unless exact, the
 * decoded path past the prefix encoded again, then the query; allocated from pool. */
static h2o_iovec_t
location(h2o_mem_pool_t *pool, const struct redirect_conf *rc, size_t plen,
         h2o_iovec_t path_normalized, h2o_iovec_t path, size_t query_at)
{
    size_t tlen = strlen(rc->target);
    h2o_iovec_t suffix = {NULL, 0}, query = {NULL, 0};

    if (!rc->exact) {
        /* The decoded suffix is encoded again, with runs of '/' made one: "/old//x" must
         * not give "//x", which browsers read as a link to host x. */
        if (path_normalized.len > plen)
            suffix.base = hnd_location_path(pool, path_normalized.base + plen,
                                            path_normalized.len - plen, &suffix.len);
        if (query_at != SIZE_MAX)
            query.base = hnd_location_query(pool, path.base + query_at, path.len - query_at,
                                            &query.len);
        /* "/old" + "/x" onto ".../new/" must not give "new//x". */
        if (suffix.len > 0 && tlen > 0 && rc->target[tlen - 1] == '/' && suffix.base[0] == '/') {
            suffix.base++;
            suffix.len--;
        }
    }
    return h2o_concat(pool, h2o_iovec_init(rc->target, tlen), suffix, query);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    const struct redirect_conf *rc = ((struct redirect_handler *)self)->conf;
    h2o_iovec_t dest;
    struct tmpl_env env;

    if (rc->tmpl != NULL) {
        router_tmpl_env(req, &env, tmpl_uses(rc->tmpl));
        dest = tmpl_expand(rc->tmpl, req, &env, TMPL_TARGET);
    } else {
        dest = location(&req->pool, rc, hnd_prefix_len(req), req->path_normalized,
                        req->path, req->query_at);
    }

    h2o_send_redirect(req, rc->status, hnd_reason(rc->status), dest.base, dest.len);
    return 0;
}

static int
redirect_uses_vars(const void *hconf)
{
    return ((const struct redirect_conf *)hconf)->tmpl != NULL;
}

static void
redirect_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    struct redirect_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));

    h->super.on_req = on_req;
    h->conf = hconf;
}

const struct hnd_ops hnd_redirect_ops = {
    .name = "redirect",
    .min_args = 2,
    .max_args = 3,
    .usage = "redirect STATUS URL [exact]",
    .parse = redirect_parse,
    .setup = redirect_setup,
    .free_conf = redirect_free,
    .uses_vars = redirect_uses_vars,
};
