/* Route choice (src/route_match.c) and the regexes under it (src/regex.c): precedence of
 * exact, regex and prefix routes, conditions, 405 with Allow, captures, and the literal
 * start of a pattern that lets most regex routes be skipped with a memcmp. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "regex.h"
#include "route_match.h"
#include "util.h"

/* A route as a test writes it: methods space-separated; conditions ';'-separated, each
 * "h:name", "a:name" (present), "h:name=value" (equal) or "a:name~regex" (matching). */
struct rdef {
    enum conf_match match;
    const char *pat;
    int caseless;
    const char *methods;
    const char *conds;
};

static struct regex *
compile_ok(const char *src, int caseless)
{
    char err[256] = "";
    size_t off;
    struct regex *re = regex_compile(src, caseless, err, sizeof(err), &off);

    cr_assert_not_null(re, "'%s': %s at %zu", src, err, off);
    return re;
}

static void
parse_cond(struct conf_cond *c, const char *s)
{
    const char *name = s + 2, *op = name + strcspn(name, "=~");

    cr_assert(s[0] == 'h' || s[0] == 'a');
    cr_assert_eq(s[1], ':');
    memset(c, 0, sizeof(*c));
    c->kind = s[0] == 'h' ? COND_HEADER : COND_ARG;
    c->name = xstrndup(name, (size_t)(op - name));
    if (*op == '=')
        c->value = xstrdup(op + 1);
    else if (*op == '~')
        c->re = compile_ok(op + 1, 0);
}

static char **
split(const char *s, const char *sep, size_t *n)
{
    char *copy = xstrdup(s), *save = NULL, **v = NULL;

    *n = 0;
    for (char *tok = strtok_r(copy, sep, &save); tok != NULL; tok = strtok_r(NULL, sep, &save)) {
        v = xreallocarray(v, *n + 1, sizeof(*v));
        v[(*n)++] = xstrdup(tok);
    }
    free(copy);
    return v;
}

static struct conf_route *
make_routes(const struct rdef *d, size_t n)
{
    struct conf_route *rs = xcalloc(n, sizeof(*rs));

    for (size_t i = 0; i < n; i++) {
        struct conf_route *r = &rs[i];

        r->prefix = xstrdup(d[i].pat);
        r->match = d[i].match;
        if (r->match == MATCH_REGEX)
            r->re = compile_ok(d[i].pat, d[i].caseless);
        if (d[i].methods != NULL)
            r->methods = split(d[i].methods, " ", &r->nmethods);
        if (d[i].conds != NULL) {
            size_t nc;
            char **cs = split(d[i].conds, ";", &nc);
            r->conds = xcalloc(nc, sizeof(*r->conds));
            r->nconds = nc;
            for (size_t j = 0; j < nc; j++) {
                parse_cond(&r->conds[j], cs[j]);
                free(cs[j]);
            }
            free(cs);
        }
    }
    return rs;
}

static void
free_routes(struct conf_route *rs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rs[i].prefix);
        regex_free(rs[i].re);
        for (size_t j = 0; j < rs[i].nmethods; j++)
            free(rs[i].methods[j]);
        free(rs[i].methods);
        for (size_t j = 0; j < rs[i].nconds; j++) {
            free(rs[i].conds[j].name);
            free(rs[i].conds[j].value);
            regex_free(rs[i].conds[j].re);
        }
        free(rs[i].conds);
    }
    free(rs);
}

/* A request as a test writes it: headers "name: value" separated by '\n'. */
struct rq {
    const char *method;
    const char *path;
    const char *query; /* NULL: none */
    const char *headers;
    int want;          /* route index, or -1 */
    const char *allow; /* with want == -1: the 405's Allow; NULL: 404 */
};

static int
find(const struct route_table *t, const struct rq *q, struct rm_result *res)
{
    h2o_mem_pool_t pool;
    h2o_headers_t hs = {NULL, 0, 0};
    struct rm_req rq = {0};
    int r;

    h2o_mem_init_pool(&pool);
    if (q->headers != NULL) {
        size_t n;
        char **lines = split(q->headers, "\n", &n);
        for (size_t i = 0; i < n; i++) {
            char *colon = strchr(lines[i], ':'), *name, *v;
            cr_assert_not_null(colon);
            /* Names and values live in the pool: the header vector points at them. */
            v = h2o_strdup(&pool, colon + 2, strlen(colon + 2)).base;
            *colon = '\0';
            name = h2o_strdup(&pool, lines[i], strlen(lines[i])).base;
            h2o_add_header_by_str(&pool, &hs, name, strlen(name), 1, NULL, v, strlen(v));
            free(lines[i]);
        }
        free(lines);
    }
    rq.path = q->path;
    rq.path_len = strlen(q->path);
    rq.method = h2o_iovec_init(q->method, strlen(q->method));
    rq.headers = &hs;
    rq.query = q->query;
    rq.query_len = q->query != NULL ? strlen(q->query) : 0;
    r = route_table_find(t, &rq, res);
    h2o_mem_clear_pool(&pool);
    return r;
}

/* The routes of the precedence test, in file order; the comments name them by index. */
static const struct rdef prec_routes[] = {
    /* 0 */ {MATCH_EXACT, "/healthz", 0, NULL, NULL},
    /* 1 */ {MATCH_EXACT, "/exact", 0, NULL, "h:x-canary=1"},
    /* 2 */ {MATCH_EXACT, "/exact", 0, "POST", NULL},
    /* 3 */ {MATCH_REGEX, "^/v(\\d+)/users/(\\d+)$", 0, "GET", NULL},
    /* 4 */ {MATCH_REGEX, "^/v1/", 0, NULL, "a:debug"},
    /* 5 */ {MATCH_REGEX, "^/case/x", 1, NULL, NULL},
    /* 6 */ {MATCH_PREFIX, "/", 0, NULL, "a:all"},
    /* 7 */ {MATCH_PREFIX, "/api/", 0, "GET POST", NULL},
    /* 8 */ {MATCH_PREFIX, "/api/v1/", 0, NULL, "a:key=abc"},
    /* 9 */ {MATCH_PREFIX, "/api/v1/", 0, NULL, "h:user-agent~^curl/"},
    /* 10 */ {MATCH_PREFIX, "/api", 0, "DELETE", NULL},
    /* 11 */ {MATCH_REGEX, "^/mm/(a)?(b)", 0, "PATCH", NULL},
    /* 12 */ {MATCH_PREFIX, "/mm/", 0, "GET", NULL},
    /* 13 */ {MATCH_PREFIX, "/mm", 0, "POST HEAD GET", NULL},
};

static const struct rq prec_reqs[] = {
    /* Exact routes come first, and several with one path are tried in file order. */
    {"GET", "/healthz", NULL, NULL, 0, NULL},
    {"HEAD", "/healthz", NULL, NULL, 0, NULL},
    {"GET", "/healthz", "all", NULL, 0, NULL},
    {"GET", "/healthz/", NULL, NULL, -1, NULL},
    {"GET", "/exact", NULL, "x-canary: 1", 1, NULL},
    {"GET", "/exact", NULL, "x-canary: 0\nx-canary: 1", 1, NULL},
    {"POST", "/exact", NULL, "x-canary: 1", 1, NULL},
    {"GET", "/exact", NULL, "x-canary: 2", -1, "POST"},
    {"POST", "/exact", NULL, NULL, 2, NULL},
    {"GET", "/exact", "all", NULL, 6, NULL},
    /* Regex routes in file order, before any prefix. */
    {"GET", "/v2/users/42", NULL, NULL, 3, NULL},
    {"HEAD", "/v2/users/42", NULL, NULL, 3, NULL},
    {"POST", "/v2/users/42", NULL, NULL, -1, "GET, HEAD"},
    {"POST", "/v2/users/42", "all", NULL, 6, NULL},
    {"GET", "/v1/users/7", "debug", NULL, 3, NULL},
    {"POST", "/v1/users/7", "debug", NULL, 4, NULL},
    {"GET", "/v1/other", "debug=", NULL, 4, NULL},
    {"GET", "/v1/other", "x=1&debug&y", NULL, 4, NULL},
    {"GET", "/v1/other", "all&debug", NULL, 4, NULL},
    {"GET", "/v1/other", "debugx", NULL, -1, NULL},
    {"GET", "/v1/other", "x=debug", NULL, -1, NULL},
    {"GET", "/v1/other", "", NULL, -1, NULL},
    {"GET", "/CASE/X", NULL, NULL, 5, NULL},
    {"GET", "/case/xyz", NULL, NULL, 5, NULL},
    {"GET", "/Case/Y", NULL, NULL, -1, NULL},
    /* Prefix routes longest first, conditions passing one over to the next. */
    {"GET", "/api/", NULL, NULL, 7, NULL},
    {"GET", "/api/v1/x", "key=abc", NULL, 8, NULL},
    {"GET", "/api/v1/x", "key=a%62c", NULL, 7, NULL},
    {"GET", "/api/v1/x", "key=zzz&key=abc", NULL, 8, NULL},
    {"GET", "/api/v1/x", NULL, "user-agent: curl/8.0", 9, NULL},
    {"GET", "/api/v1/x", NULL, "user-agent: Mozilla/5.0", 7, NULL},
    {"PUT", "/api/v1/x", NULL, NULL, -1, "GET, HEAD, POST, DELETE"},
    {"DELETE", "/api/foo", NULL, NULL, 10, NULL},
    {"GET", "/api", NULL, NULL, -1, "DELETE"},
    /* libh2o's rule for a prefix without a final '/': whole segments only. */
    {"DELETE", "/apix", NULL, NULL, -1, NULL},
    {"GET", "/apix", "all", NULL, 6, NULL},
    /* Allow: file order, each method once, HEAD after GET. */
    {"PUT", "/mm/b", NULL, NULL, -1, "PATCH, GET, HEAD, POST"},
    {"PATCH", "/mm/ab", NULL, NULL, 11, NULL},
    {"GET", "/mm/zz", NULL, NULL, 12, NULL},
    {"POST", "/mm", NULL, NULL, 13, NULL},
    {"GET", "/mm", "all", NULL, 13, NULL},
    {"HEAD", "/nothing", NULL, NULL, -1, NULL},
    {"GET", "", NULL, NULL, -1, NULL},
    {"get", "/mm/zz", NULL, NULL, -1, "GET, HEAD, POST"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

Test(route_match, precedence)
{
    struct conf_route *rs = make_routes(prec_routes, NELEM(prec_routes));
    struct route_table *t = route_table_build(rs, NELEM(prec_routes));

    for (size_t i = 0; i < NELEM(prec_reqs); i++) {
        const struct rq *q = &prec_reqs[i];
        struct rm_result res;
        int got = find(t, q, &res);

        cr_expect_eq(got, q->want, "%s %s?%s: route %d, want %d", q->method, q->path,
                     q->query ? q->query : "", got, q->want);
        cr_expect_eq(res.route, got);
        cr_expect_eq(res.method_mismatch, q->allow != NULL, "%s %s: method_mismatch %d", q->method,
                     q->path, res.method_mismatch);
        cr_expect_str_eq(res.allow, q->allow != NULL ? q->allow : "", "%s %s: Allow '%s'",
                         q->method, q->path, res.allow);
        if (got == -1 || rs[got].match != MATCH_REGEX)
            cr_expect_eq(res.nov, 0);
    }
    route_table_free(t);
    free_routes(rs, NELEM(prec_routes));
}

Test(route_match, captures)
{
    struct conf_route *rs = make_routes(prec_routes, NELEM(prec_routes));
    struct route_table *t = route_table_build(rs, NELEM(prec_routes));
    struct rq q = {"GET", "/v12/users/345", NULL, NULL, 3, NULL};
    struct rq q2 = {"PATCH", "/mm/bc", NULL, NULL, 11, NULL};
    struct rm_result res;

    cr_assert_eq(find(t, &q, &res), 3);
    cr_assert_eq(res.nov, 3);
    cr_expect_eq(res.ov[0], 0);
    cr_expect_eq(res.ov[1], 14);
    cr_expect_eq(res.ov[2], 2);
    cr_expect_eq(res.ov[3], 4);
    cr_expect_eq(res.ov[4], 11);
    cr_expect_eq(res.ov[5], 14);
    /* A group that took no part: both offsets SIZE_MAX. */
    cr_assert_eq(find(t, &q2, &res), 11);
    cr_assert_eq(res.nov, 3);
    cr_expect_eq(res.ov[0], 0);
    cr_expect_eq(res.ov[1], 5);
    cr_expect_eq(res.ov[2], SIZE_MAX);
    cr_expect_eq(res.ov[3], SIZE_MAX);
    cr_expect_eq(res.ov[4], 4);
    cr_expect_eq(res.ov[5], 5);
    route_table_free(t);
    free_routes(rs, NELEM(prec_routes));
}

Test(route_match, conditions)
{
    static const struct rdef d[] = {
        {MATCH_PREFIX, "/", 0, NULL, "a:v~^[0-9]+$;h:x-env=prod"},
        {MATCH_PREFIX, "/", 0, NULL, "h:accept"},
        {MATCH_PREFIX, "/", 0, NULL, "a:empty="},
    };
    static const struct rq reqs[] = {
        {"GET", "/a", "v=12", "x-env: prod", 0, NULL},
        {"GET", "/a", "v=12&v=x", "x-env: test\nx-env: prod", 0, NULL},
        {"GET", "/a", "v=x", "x-env: prod", -1, NULL},
        {"GET", "/a", "v=12", "x-env: Prod", -1, NULL},
        {"GET", "/a", "v=12", "accept: */*", 1, NULL},
        {"GET", "/a", "empty", NULL, 2, NULL},
        {"GET", "/a", "empty=", NULL, 2, NULL},
        {"GET", "/a", "empty=1", NULL, -1, NULL},
        {"GET", "/a", "&&empty&", NULL, 2, NULL},
    };
    struct conf_route *rs = make_routes(d, NELEM(d));
    struct route_table *t = route_table_build(rs, NELEM(d));

    for (size_t i = 0; i < NELEM(reqs); i++) {
        struct rm_result res;
        cr_expect_eq(find(t, &reqs[i], &res), reqs[i].want, "request %zu", i);
    }
    route_table_free(t);
    free_routes(rs, NELEM(d));
}

/* Paths are bytes: no UTF-8 check, and a NUL is one more byte. */
Test(route_match, binary_path)
{
    static const struct rdef d[] = {
        {MATCH_REGEX, "^/b\\xff\\x00z$", 0, NULL, NULL},
        {MATCH_REGEX, "^/\x80\x81(.)", 0, NULL, NULL},
        {MATCH_EXACT, "/b", 0, NULL, NULL},
    };
    struct conf_route *rs = make_routes(d, NELEM(d));
    struct route_table *t = route_table_build(rs, NELEM(d));
    struct rm_req rq = {.method = h2o_iovec_init(H2O_STRLIT("GET"))};
    struct rm_result res;

    cr_expect_str_eq(rs[1].re->literal, "/\x80\x81");
    rq.path = "/b\xff\0z";
    rq.path_len = 5;
    cr_expect_eq(route_table_find(t, &rq, &res), 0);
    rq.path = "/b\0";
    rq.path_len = 3;
    cr_expect_eq(route_table_find(t, &rq, &res), -1);
    rq.path_len = 2;
    cr_expect_eq(route_table_find(t, &rq, &res), 2);
    rq.path = "/\x80\x81\xfe";
    rq.path_len = 4;
    cr_expect_eq(route_table_find(t, &rq, &res), 1);
    cr_expect_eq(res.ov[2], 3);
    cr_expect_eq(res.ov[3], 4);
    route_table_free(t);
    free_routes(rs, NELEM(d));
}

/* Many regex routes: each still found, in file order, and a path none of them matches. */
Test(route_match, many_regexes)
{
    enum { N = 100 };
    struct rdef d[N];
    char pats[N][32];
    struct conf_route *rs;
    struct route_table *t;
    struct rm_req rq = {.method = h2o_iovec_init(H2O_STRLIT("GET"))};
    struct rm_result res;
    char path[32];

    for (int i = 0; i < N; i++) {
        (void)snprintf(pats[i], sizeof(pats[i]), "^/r%d/(\\w+)$", i);
        d[i] = (struct rdef){MATCH_REGEX, pats[i], 0, NULL, NULL};
    }
    rs = make_routes(d, N);
    t = route_table_build(rs, N);
    for (int i = 0; i < N; i++) {
        (void)snprintf(path, sizeof(path), "/r%d/x", i);
        rq.path = path;
        rq.path_len = strlen(path);
        cr_expect_eq(route_table_find(t, &rq, &res), i);
    }
    rq.path = "/elsewhere";
    rq.path_len = strlen(rq.path);
    cr_expect_eq(route_table_find(t, &rq, &res), -1);
    cr_expect_eq(res.method_mismatch, 0);
    route_table_free(t);
    free_routes(rs, N);
}

Test(route_match, empty_table)
{
    struct route_table *t = route_table_build(NULL, 0);
    struct rm_req rq = {.path = "/", .path_len = 1, .method = h2o_iovec_init(H2O_STRLIT("GET"))};
    struct rm_result res;

    cr_expect_eq(route_table_find(t, &rq, &res), -1);
    route_table_free(t);
    route_table_free(NULL);
}

Test(regex, literal_prefix)
{
    static const struct {
        const char *src;
        int caseless;
        const char *lit;
    } cases[] = {
        {"^/v(\\d+)/", 0, "/v"},
        {"^/api\\.v2/x?", 0, "/api.v2/"},
        {"^/a*", 0, "/"},
        {"^/a+", 0, "/a"},
        {"^/a{2}", 0, "/"},
        {"^/ab\\d", 0, "/ab"},
        {"^/a\\|b", 0, "/a|b"},
        {"^/a[|]b", 0, "/a"},
        {"^/x/(a|b)", 0, "/x/"},
        {"^/x(?#()|y", 0, ""},
        {"^/x/(?#c|(|)y", 0, "/x/"},
        {"^/ab|/cd", 0, ""},
        {"^/a(b)|c", 0, ""},
        {"^/a[]|]|c", 0, ""},
        {"^/a.b", 0, "/a"},
        {"^/a$", 0, "/a"},
        {"^", 0, ""},
        {"^\\Qa.b\\E", 0, ""},
        {"foo", 0, ""},
        {"/foo^", 0, ""},
        {"^/abc", 1, ""},
    };

    for (size_t i = 0; i < NELEM(cases); i++) {
        struct regex *re = compile_ok(cases[i].src, cases[i].caseless);
        cr_expect_str_eq(re->literal, cases[i].lit, "'%s': literal '%s', want '%s'", cases[i].src,
                         re->literal, cases[i].lit);
        cr_expect_eq(re->literal_len, strlen(cases[i].lit));
        cr_expect_str_eq(re->src, cases[i].src);
        cr_expect_eq(re->caseless, cases[i].caseless);
        regex_free(re);
    }
}

Test(regex, rejects)
{
    char err[256] = "";
    size_t off = 99;
    struct regex *re;

    re = regex_compile("^/(unclosed", 0, err, sizeof(err), &off);
    cr_expect_null(re);
    cr_expect_neq(err[0], '\0');
    cr_expect_eq(off, 11, "offset %zu: %s", off, err);
    err[0] = '\0';
    re = regex_compile("^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)", 0, err, sizeof(err), &off);
    cr_expect_null(re);
    cr_expect(strstr(err, "10 capture groups") != NULL, "message '%s'", err);
    /* Nine groups are fine, and so are groups that capture nothing. */
    re = compile_ok("^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(?:j)", 0);
    cr_expect_eq(re->ncaptures, 9);
    regex_free(re);
    /* A message that does not fit is cut, not overflowed. */
    re = regex_compile("(", 0, err, 8, NULL);
    cr_expect_null(re);
    cr_expect_lt(strlen(err), 8);
    regex_free(NULL);
}

Test(regex, match_offsets)
{
    struct regex *re = compile_ok("(a)|(b)", 0);
    size_t ov[2 * (REGEX_MAX_CAPTURES + 1)];

    regex_worker_init();
    cr_assert(regex_match(re, "xxb", 3, ov, 3));
    cr_expect_eq(ov[0], 2);
    cr_expect_eq(ov[1], 3);
    cr_expect_eq(ov[2], SIZE_MAX);
    cr_expect_eq(ov[3], SIZE_MAX);
    cr_expect_eq(ov[4], 2);
    cr_expect_eq(ov[5], 3);
    /* Groups the pattern does not have are unset too. */
    cr_assert(regex_match(re, "a", 1, ov, REGEX_MAX_CAPTURES + 1));
    cr_expect_eq(ov[2], 0);
    cr_expect_eq(ov[3], 1);
    cr_expect_eq(ov[4], SIZE_MAX);
    cr_expect_eq(ov[2 * REGEX_MAX_CAPTURES + 1], SIZE_MAX);
    cr_expect_not(regex_match(re, "xyz", 3, ov, 1));
    cr_expect(regex_match(re, "a", 1, NULL, 0));
    regex_free(re);
    re = compile_ok("^/X$", 1);
    cr_expect(regex_match(re, "/x", 2, NULL, 0));
    cr_expect_not(regex_match(re, "/x/", 3, NULL, 0));
    regex_free(re);
}
