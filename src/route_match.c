/* Route choice within a service (percore.conf(5) "ROUTING"), run by workers for every
 * request: exact routes by a hash of the path, regex routes in file order behind a memcmp
 * of their literal start, prefix routes longest first. The table is built once per worker;
 * a lookup works on the caller's storage only. */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "route_match.h"
#include "util.h"

/* Positions in a list (regex or prefix routes, in their order) sorted into buckets by the
 * first two bytes of the text every match must start with (a regex's literal, a prefix),
 * so a path is tried against the entries that can match it and those whose text is too
 * short to sort, merged back into the list's order. */
#define NBUCKETS 64

struct buckets {
    size_t *at[NBUCKETS];
    size_t n[NBUCKETS];
    size_t *any; /* text shorter than two bytes: tried for every path */
    size_t nany;
};

static unsigned
bucket_of(const char *s)
{
    return ((unsigned char)s[0] * 31u + (unsigned char)s[1]) & (NBUCKETS - 1);
}

static void
bucket_add(struct buckets *b, size_t k, const char *text, size_t len)
{
    size_t **v = len >= 2 ? &b->at[bucket_of(text)] : &b->any;
    size_t *n = len >= 2 ? &b->n[bucket_of(text)] : &b->nany;

    *v = xreallocarray(*v, *n + 1, sizeof(**v));
    (*v)[(*n)++] = k;
}

static void
buckets_free(struct buckets *b)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        free(b->at[i]);
    free(b->any);
}

/* Walks the positions a path may match, in list order. */
struct bucket_walk {
    const size_t *a, *b;
    size_t na, nb, i, j;
};

static struct bucket_walk
bucket_walk(const struct buckets *bk, const char *path, size_t len)
{
    struct bucket_walk w = {bk->any, NULL, bk->nany, 0, 0, 0};

    if (len >= 2) {
        w.b = bk->at[bucket_of(path)];
        w.nb = bk->n[bucket_of(path)];
    }
    return w;
}

/* The next position, or SIZE_MAX. */
static size_t
bucket_next(struct bucket_walk *w)
{
    if (w->i < w->na && (w->j >= w->nb || w->a[w->i] < w->b[w->j]))
        return w->a[w->i++];
    if (w->j < w->nb)
        return w->b[w->j++];
    return SIZE_MAX;
}

struct route_table {
    const struct conf_route *routes;
    size_t n;
    struct util_hmap exact; /* hash of the path -> (route index, 0), file order */
    size_t *regex;          /* regex routes' indices, file order */
    size_t nregex;
    size_t *prefix; /* prefix routes' indices, longest first, then file order */
    size_t nprefix;
    size_t *plen; /* strlen of each route's pattern, by route index */
    struct buckets regex_b, prefix_b; /* positions in regex and prefix */
    /* The header token of each condition (NULL: not a token, or an argument), looked up
     * once here: tokens[tok_at[i] + j] for condition j of route i. */
    const h2o_token_t **tokens;
    size_t *tok_at;
};

/* FNV-1a of the bytes, the same for the patterns at build and the paths at lookup (a path
 * may hold a NUL, so not util_hash_str). */
static uint64_t
hash_bytes(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A prefix route for sorting: longest first; the same length, file order, so equal
 * prefixes with different conditions are tried as written. */
struct prefix_key {
    size_t len, idx;
};

static int
prefix_cmp(const void *a, const void *b)
{
    const struct prefix_key *ka = a, *kb = b;

    if (ka->len != kb->len)
        return ka->len < kb->len ? 1 : -1;
    return ka->idx < kb->idx ? -1 : ka->idx > kb->idx;
}

static void
sort_prefixes(struct route_table *t)
{
    struct prefix_key *keys = xcalloc(t->nprefix + 1, sizeof(*keys));

    for (size_t k = 0; k < t->nprefix; k++)
        keys[k] = (struct prefix_key){t->plen[t->prefix[k]], t->prefix[k]};
    qsort(keys, t->nprefix, sizeof(*keys), prefix_cmp);
    for (size_t k = 0; k < t->nprefix; k++)
        t->prefix[k] = keys[k].idx;
    free(keys);
}

struct route_table *
route_table_build(const struct conf_route *routes, size_t n)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    size_t ntok = 0;

    t->routes = routes;
    t->n = n;
    t->regex = xcalloc(n + 1, sizeof(*t->regex));
    t->prefix = xcalloc(n + 1, sizeof(*t->prefix));
    t->plen = xcalloc(n + 1, sizeof(*t->plen));
    t->tok_at = xcalloc(n + 1, sizeof(*t->tok_at));
    for (size_t i = 0; i < n; i++) {
        const struct conf_route *r = &routes[i];

        t->plen[i] = strlen(r->prefix);
        t->tok_at[i] = ntok;
        ntok += r->nconds;
        switch (r->match) {
        case MATCH_EXACT:
            util_hmap_add(&t->exact, hash_bytes(r->prefix, t->plen[i]), i, 0);
            break;
        case MATCH_REGEX:
            assert(r->re != NULL);
            t->regex[t->nregex++] = i;
            break;
        case MATCH_PREFIX:
            t->prefix[t->nprefix++] = i;
            break;
        }
    }
    sort_prefixes(t);
    for (size_t k = 0; k < t->nregex; k++) {
        const struct regex *re = routes[t->regex[k]].re;
        bucket_add(&t->regex_b, k, re->literal, re->literal_len);
    }
    for (size_t k = 0; k < t->nprefix; k++)
        bucket_add(&t->prefix_b, k, routes[t->prefix[k]].prefix, t->plen[t->prefix[k]]);
    t->tokens = xcalloc(ntok + 1, sizeof(*t->tokens));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < routes[i].nconds; j++) {
            const struct conf_cond *c = &routes[i].conds[j];
            if (c->kind == COND_HEADER)
                t->tokens[t->tok_at[i] + j] = h2o_lookup_token(c->name, strlen(c->name));
        }
    return t;
}

void
route_table_free(struct route_table *t)
{
    if (t == NULL)
        return;
    util_hmap_clear(&t->exact);
    buckets_free(&t->regex_b);
    buckets_free(&t->prefix_b);
    free(t->regex);
    free(t->prefix);
    free(t->plen);
    free(t->tokens);
    free(t->tok_at);
    free(t);
}

/* Whether a value satisfies c: any value when c names none, else equal byte for byte, or
 * matching c's regex. */
static int
value_ok(const struct conf_cond *c, const char *v, size_t len)
{
    if (c->re != NULL)
        return regex_match(c->re, v, len, NULL, 0);
    if (c->value != NULL)
        return strlen(c->value) == len && memcmp(c->value, v, len) == 0;
    return 1;
}

static int
header_ok(const struct conf_cond *c, const h2o_token_t *tok, const h2o_headers_t *hs)
{
    ssize_t i = -1;

    if (hs == NULL)
        return 0;
    for (;;) {
        if (tok != NULL)
            i = h2o_find_header(hs, tok, i);
        else
            i = h2o_find_header_by_str(hs, c->name, strlen(c->name), i);
        if (i == -1)
            return 0;
        if (value_ok(c, hs->entries[i].value.base, hs->entries[i].value.len))
            return 1;
    }
}

/* The raw query split on '&': "name" and "name=" are present with the value "". Names and
 * values are compared as received, still percent-encoded. */
static int
arg_ok(const struct conf_cond *c, const char *q, size_t qlen)
{
    size_t nlen = strlen(c->name);
    const char *end;

    if (q == NULL)
        return 0;
    end = q + qlen;
    while (q <= end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ne = eq != NULL ? eq : pe;

        if ((size_t)(ne - q) == nlen && memcmp(q, c->name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : pe;
            if (value_ok(c, v, (size_t)(pe - v)))
                return 1;
        }
        if (amp == NULL)
            break;
        q = amp + 1;
    }
    return 0;
}

static int
conds_ok(const struct route_table *t, size_t ri, const struct rm_req *rq)
{
    const struct conf_route *r = &t->routes[ri];

    for (size_t j = 0; j < r->nconds; j++) {
        const struct conf_cond *c = &r->conds[j];
        int ok = c->kind == COND_HEADER ? header_ok(c, t->tokens[t->tok_at[ri] + j], rq->headers)
                                        : arg_ok(c, rq->query, rq->query_len);
        if (!ok)
            return 0;
    }
    return 1;
}

static int
method_is(h2o_iovec_t m, const char *name)
{
    size_t len = strlen(name);

    return m.len == len && memcmp(m.base, name, len) == 0;
}

/* Whether r allows method: any when it lists none; GET also allows HEAD. */
static int
methods_ok(const struct conf_route *r, h2o_iovec_t method)
{
    if (r->nmethods == 0)
        return 1;
    for (size_t i = 0; i < r->nmethods; i++)
        if (method_is(method, r->methods[i]) ||
            (strcmp(r->methods[i], "GET") == 0 && method_is(method, "HEAD")))
            return 1;
    return 0;
}

/* Today's rule of libh2o's prefix routes (h2o_config_register_path), which percore's
 * prefix routes keep: the path starts with the prefix, and the prefix ends with '/' or the
 * path ends there or goes on with '/': "/api" takes "/api" and "/api/x", not "/apix". */
static int
prefix_matches(const char *p, size_t plen, const char *path, size_t len)
{
    if (len < plen || memcmp(path, p, plen) != 0)
        return 0;
    return plen == 0 || p[plen - 1] == '/' || len == plen || path[plen] == '/';
}

/* Whether route ri's pattern takes rq's path; a regex route's offsets go to ov when it is
 * not NULL. */
static int
path_matches(const struct route_table *t, size_t ri, const struct rm_req *rq, size_t *ov)
{
    const struct conf_route *r = &t->routes[ri];
    const struct regex *re = r->re;

    switch (r->match) {
    case MATCH_EXACT:
        return t->plen[ri] == rq->path_len && memcmp(r->prefix, rq->path, rq->path_len) == 0;
    case MATCH_PREFIX:
        return prefix_matches(r->prefix, t->plen[ri], rq->path, rq->path_len);
    case MATCH_REGEX:
        /* The cheap test first: with many regex routes most paths fail here. */
        if (re->literal_len > rq->path_len || memcmp(re->literal, rq->path, re->literal_len) != 0)
            return 0;
        return regex_match(re, rq->path, rq->path_len, ov, ov != NULL ? re->ncaptures + 1 : 0);
    }
    return 0;
}

/* Route ri, whose path matched: whether it takes rq. One whose conditions hold but not its
 * methods sets *mismatch. */
static int
takes(const struct route_table *t, size_t ri, const struct rm_req *rq, int *mismatch)
{
    if (!conds_ok(t, ri, rq))
        return 0;
    if (methods_ok(&t->routes[ri], rq->method))
        return 1;
    *mismatch = 1;
    return 0;
}

/* Append m to the ", "-joined list in allow unless it is there; a method that does not fit
 * is left out (256 bytes hold any sensible list). */
static void
allow_add(char *allow, size_t size, const char *m)
{
    size_t len = strlen(allow), mlen = strlen(m);

    for (const char *p = allow; *p != '\0';) {
        const char *e = strstr(p, ", ");
        size_t tl = e != NULL ? (size_t)(e - p) : strlen(p);
        if (tl == mlen && memcmp(p, m, mlen) == 0)
            return;
        p += tl;
        if (*p != '\0')
            p += 2;
    }
    if (len + (len ? 2 : 0) + mlen + 1 > size)
        return;
    if (len > 0) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, m, mlen + 1);
}

static int
lists_method(const struct conf_route *r, const char *m)
{
    for (size_t i = 0; i < r->nmethods; i++)
        if (strcmp(r->methods[i], m) == 0)
            return 1;
    return 0;
}

/* The Allow list of a request no route took, some only for their methods: the methods of
 * every route whose path and conditions hold, in file order. The second pass over the
 * routes costs a little on this rare answer and saves any per-request storage. */
static void
build_allow(const struct route_table *t, const struct rm_req *rq, struct rm_result *res)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct conf_route *r = &t->routes[i];

        if (r->nmethods == 0 || !path_matches(t, i, rq, NULL) || !conds_ok(t, i, rq))
            continue;
        for (size_t k = 0; k < r->nmethods; k++) {
            allow_add(res->allow, sizeof(res->allow), r->methods[k]);
            if (strcmp(r->methods[k], "GET") == 0 && !lists_method(r, "HEAD"))
                allow_add(res->allow, sizeof(res->allow), "HEAD");
        }
    }
}

static int
find(const struct route_table *t, const struct rm_req *rq, struct rm_result *res, int *mismatch)
{
    uint64_t h = hash_bytes(rq->path, rq->path_len);
    struct bucket_walk w;
    size_t k;

    for (size_t e = util_hmap_first(&t->exact, h); e != SIZE_MAX;
         e = util_hmap_next(&t->exact, e)) {
        size_t ri = t->exact.ents[e].a;
        if (path_matches(t, ri, rq, NULL) && takes(t, ri, rq, mismatch))
            return (int)ri;
    }
    w = bucket_walk(&t->regex_b, rq->path, rq->path_len);
    while ((k = bucket_next(&w)) != SIZE_MAX) {
        size_t ri = t->regex[k];
        if (path_matches(t, ri, rq, res->ov) && takes(t, ri, rq, mismatch)) {
            res->nov = t->routes[ri].re->ncaptures + 1;
            return (int)ri;
        }
    }
    w = bucket_walk(&t->prefix_b, rq->path, rq->path_len);
    while ((k = bucket_next(&w)) != SIZE_MAX) {
        size_t ri = t->prefix[k];
        if (path_matches(t, ri, rq, NULL) && takes(t, ri, rq, mismatch))
            return (int)ri;
    }
    return -1;
}

int
route_table_find(const struct route_table *t, const struct rm_req *rq, struct rm_result *res)
{
    int mismatch = 0;

    res->route = -1;
    res->method_mismatch = 0;
    res->allow[0] = '\0';
    res->nov = 0;
    res->route = find(t, rq, res, &mismatch);
    if (res->route == -1 && mismatch) {
        res->method_mismatch = 1;
        build_allow(t, rq, res);
    }
    return res->route;
}
