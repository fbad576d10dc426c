/* Error documents: parsing `error_page` / `error_format`, merging a route's set over its
 * service's, and the problem document built from hostile input. The filter itself is
 * exercised by the integration tests. */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The set's layout is private: the tests look into it. */
#include "../../src/errordoc.c"

static char tmpdir[64];
static struct conf_doc doc;
static struct conf_diag diag;

static void
setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/percore-errordoc.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    memset(&doc, 0, sizeof(doc));
    memset(&diag, 0, sizeof(diag));
}

static void
teardown(void)
{
    char cmd[128];

    conf_doc_free(&doc);
    conf_diag_clear(&diag);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(errordoc, .init = setup, .fini = teardown);

/* Writes len bytes of c (or s when given) to tmpdir/name; returns the path (static). */
static const char *
make_file(const char *name, const char *s, size_t len)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; s == NULL && i < len; i++)
        cr_assert_neq(fputc('x', f), EOF);
    if (s != NULL)
        cr_assert_eq(fwrite(s, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* Parses text (one directive per line) and returns its directives. */
static const struct conf_node *
parse(const char *text)
{
    conf_doc_free(&doc);
    memset(&doc, 0, sizeof(doc));
    cr_assert_eq(conf_parse_string("t.conf", text, &doc, &diag), 0, "%s",
                 diag.n > 0 ? diag.msgs[0] : "");
    return doc.root.children;
}

/* Feeds each directive of text to the errordoc parser into *set; the last one's result. */
static int
feed(const char *text, struct errordoc_set **set)
{
    const struct conf_node *n = parse(text);
    int rc = 0;

    for (size_t i = 0; i < doc.root.nchildren; i++) {
        if (strcmp(n[i].name, "error_format") == 0)
            rc = errordoc_parse_format(&n[i], set, &diag);
        else
            rc = errordoc_parse_page(&n[i], set, &diag);
    }
    return rc;
}

static void
expect_error(const char *text, const char *msg)
{
    struct errordoc_set *set = NULL;

    cr_assert_eq(feed(text, &set), -1, "accepted: %s", text);
    cr_assert_eq(diag.n, 1, "%zu messages for: %s", diag.n, text);
    cr_assert_str_eq(diag.msgs[0], msg);
    errordoc_free(set);
    conf_diag_clear(&diag);
}

static const struct doc *
page(const struct errordoc_set *set, int status)
{
    return set->pages[status - STATUS_MIN].doc;
}

Test(errordoc, respond_page)
{
    struct errordoc_set *set = NULL;

    cr_assert_eq(feed("error_page 404 410 respond \"gone\\n\";", &set), 0);
    cr_assert_not_null(set);
    cr_assert_str_eq(page(set, 404)->body, "gone\n");
    cr_assert_eq(page(set, 404)->len, 5);
    cr_assert_str_eq(page(set, 404)->type, "text/plain; charset=utf-8");
    cr_assert_eq(page(set, 404), page(set, 410), "one document for both statuses");
    cr_assert_eq(page(set, 404)->refs, 2);
    cr_assert_null(page(set, 500));
    cr_assert_eq(set->format, FORMAT_UNSET);
    errordoc_free(set);
}

Test(errordoc, file_pages_and_types)
{
    struct errordoc_set *set = NULL;
    char text[1024];
    char html[128], htm[128], json[128], txt[128], none[128], upper[128];

    snprintf(html, sizeof(html), "%s", make_file("e.html", "<p>x</p>", 8));
    snprintf(htm, sizeof(htm), "%s", make_file("e.htm", "", 0));
    snprintf(json, sizeof(json), "%s", make_file("e.json", "{}", 2));
    snprintf(txt, sizeof(txt), "%s", make_file("e.txt", "t", 1));
    snprintf(none, sizeof(none), "%s", make_file("noext", "n", 1));
    snprintf(upper, sizeof(upper), "%s", make_file("E.HTML", NULL, PAGE_FILE_MAX));
    snprintf(text, sizeof(text),
             "error_page 404 file %s;\nerror_page 500 file %s;\nerror_page 502 file %s;\n"
             "error_page 503 file %s;\nerror_page 504 file %s;\nerror_page 400 file %s;\n",
             html, htm, json, txt, none, upper);
    cr_assert_eq(feed(text, &set), 0, "%s", diag.n > 0 ? diag.msgs[0] : "");
    cr_assert_eq(page(set, 404)->len, 8);
    cr_assert_eq(memcmp(page(set, 404)->body, "<p>x</p>", 8), 0);
    cr_assert_str_eq(page(set, 404)->type, "text/html; charset=utf-8");
    cr_assert_eq(page(set, 500)->len, 0);
    cr_assert_str_eq(page(set, 500)->type, "text/html; charset=utf-8");
    cr_assert_str_eq(page(set, 502)->type, "application/json");
    cr_assert_str_eq(page(set, 503)->type, "text/plain; charset=utf-8");
    cr_assert_str_eq(page(set, 504)->type, "text/plain; charset=utf-8");
    cr_assert_eq(page(set, 400)->len, PAGE_FILE_MAX, "exactly 64 KiB is allowed");
    cr_assert_str_eq(page(set, 400)->type, "text/html; charset=utf-8");
    errordoc_free(set);
}

Test(errordoc, dot_in_directory_is_no_extension)
{
    struct errordoc_set *set = NULL;
    char dir[128], text[256];

    snprintf(dir, sizeof(dir), "%s/d.html", tmpdir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    make_file("d.html/page", "p", 1);
    snprintf(text, sizeof(text), "error_page 404 file %s/page;", dir);
    cr_assert_eq(feed(text, &set), 0);
    cr_assert_str_eq(page(set, 404)->type, "text/plain; charset=utf-8");
    errordoc_free(set);
}

Test(errordoc, bad_statuses)
{
    expect_error("error_page 399 respond x;",
                 "t.conf:1:12: invalid status '399' for 'error_page': expected 400 to 599");
    expect_error("error_page 404 600 respond x;",
                 "t.conf:1:16: invalid status '600' for 'error_page': expected 400 to 599");
    expect_error("error_page abc respond x;",
                 "t.conf:1:12: invalid status 'abc' for 'error_page': expected 400 to 599");
    expect_error("error_page 0404 respond x;",
                 "t.conf:1:12: invalid status '0404' for 'error_page': expected 400 to 599");
    expect_error("error_page respond x;",
                 "t.conf:1:12: 'error_page' needs a status (400 to 599) before 'respond'");
}

Test(errordoc, missing_keyword_or_argument)
{
    expect_error("error_page 404;",
                 "t.conf:1:12: 'error_page' needs 'file PATH' or 'respond TEXT' after its "
                 "statuses");
    expect_error("error_page 404 /x.html;",
                 "t.conf:1:16: expected 'file' or 'respond' after the statuses of "
                 "'error_page', not '/x.html'");
    expect_error("error_page 404 700;",
                 "t.conf:1:16: invalid status '700' for 'error_page': expected 400 to 599");
    expect_error("error_page 404 respond;",
                 "t.conf:1:16: 'respond' in 'error_page' takes exactly one argument");
    expect_error("error_page 404 respond a b;",
                 "t.conf:1:26: 'respond' in 'error_page' takes exactly one argument");
    expect_error("error_page 404 file;",
                 "t.conf:1:16: 'file' in 'error_page' takes exactly one argument");
}

Test(errordoc, bad_files)
{
    char text[512], msg[512];
    const char *big = make_file("big.html", NULL, PAGE_FILE_MAX + 1);

    expect_error("error_page 404 file e.html;",
                 "t.conf:1:21: error page 'e.html' needs an absolute path");
    snprintf(text, sizeof(text), "error_page 404 file %s/missing.html;", tmpdir);
    snprintf(msg, sizeof(msg), "t.conf:1:21: error page %s/missing.html: %s", tmpdir,
             strerror(ENOENT));
    expect_error(text, msg);
    snprintf(text, sizeof(text), "error_page 404 file %s;", big);
    snprintf(msg, sizeof(msg), "t.conf:1:21: error page %s is larger than 64 KiB", big);
    expect_error(text, msg);
    snprintf(text, sizeof(text), "error_page 404 file %s;", tmpdir);
    snprintf(msg, sizeof(msg), "t.conf:1:21: error page %s is a directory, not a regular file",
             tmpdir);
    expect_error(text, msg);
}

Test(errordoc, fifo_does_not_block)
{
    char path[128], text[256], msg[512];

    snprintf(path, sizeof(path), "%s/fifo.html", tmpdir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    snprintf(text, sizeof(text), "error_page 404 file %s;", path);
    snprintf(msg, sizeof(msg), "t.conf:1:21: error page %s is a FIFO, not a regular file",
             path);
    expect_error(text, msg);
}

Test(errordoc, duplicate_status)
{
    struct errordoc_set *set = NULL;

    expect_error("error_page 404 500 404 respond x;",
                 "t.conf:1:20: duplicate error page for status 404 (first at t.conf:1:12)");
    cr_assert_eq(feed("error_page 502 503 respond a;\nerror_page 504 503 respond b;", &set),
                 -1);
    cr_assert_eq(diag.n, 1);
    cr_assert_str_eq(diag.msgs[0],
                     "t.conf:2:16: duplicate error page for status 503 (first at t.conf:1:16)");
    /* The failed directive left the set as it was. */
    cr_assert_null(page(set, 504));
    cr_assert_str_eq(page(set, 503)->body, "a");
    errordoc_free(set);
}

Test(errordoc, format)
{
    struct errordoc_set *set = NULL;

    cr_assert_eq(feed("error_format problem+json;", &set), 0);
    cr_assert_eq(set->format, FORMAT_PROBLEM);
    errordoc_free(set);
    set = NULL;
    cr_assert_eq(feed("error_format text;", &set), 0);
    cr_assert_eq(set->format, FORMAT_TEXT);
    errordoc_free(set);
    expect_error("error_format json;", "t.conf:1:14: invalid value 'json' for "
                                       "'error_format': expected 'text' or 'problem+json'");
    expect_error("error_format text problem+json;",
                 "t.conf:1:19: 'error_format' takes one argument: 'text' or 'problem+json'");
    expect_error("error_format;",
                 "t.conf:1:1: 'error_format' takes one argument: 'text' or 'problem+json'");
    expect_error("error_format text;\nerror_format problem+json;",
                 "t.conf:2:1: duplicate 'error_format' (first set at t.conf:1:1)");
}

Test(errordoc, merge_precedence)
{
    struct errordoc_set *svc = NULL, *route = NULL, *m;

    cr_assert_eq(feed("error_format problem+json;\nerror_page 404 502 respond svc;", &svc), 0);
    cr_assert_eq(feed("error_page 404 503 respond route;", &route), 0);
    m = errordoc_merge(route, svc);
    cr_assert_not_null(m);
    cr_assert_str_eq(page(m, 404)->body, "route", "the route's page wins");
    cr_assert_str_eq(page(m, 502)->body, "svc", "the service's where the route has none");
    cr_assert_str_eq(page(m, 503)->body, "route");
    cr_assert_null(page(m, 500));
    cr_assert_eq(m->format, FORMAT_PROBLEM, "the service's format when the route sets none");
    cr_assert_eq(page(m, 502)->refs, 3); /* svc's 404 and 502, and m's 502 */
    errordoc_free(m);

    cr_assert_eq(feed("error_format text;", &route), 0);
    m = errordoc_merge(route, svc);
    cr_assert_eq(m->format, FORMAT_TEXT, "the route's format when it sets one");
    errordoc_free(m);

    /* Each result owns its references: freeing the sources first leaves it whole. */
    m = errordoc_merge(NULL, svc);
    errordoc_free(svc);
    errordoc_free(route);
    cr_assert_str_eq(page(m, 502)->body, "svc");
    cr_assert_eq(page(m, 502)->refs, 2); /* m's 404 and 502 */
    cr_assert_eq(m->format, FORMAT_PROBLEM);
    errordoc_free(m);

    cr_assert_null(errordoc_merge(NULL, NULL));
}

Test(errordoc, merge_route_only)
{
    struct errordoc_set *route = NULL, *m;

    cr_assert_eq(feed("error_page 429 respond slow;", &route), 0);
    m = errordoc_merge(route, NULL);
    cr_assert_str_eq(page(m, 429)->body, "slow");
    cr_assert_eq(m->format, FORMAT_UNSET);
    errordoc_free(route);
    errordoc_free(m);
}

/* The problem document of a status, detail and path, as a string. */
static char *
problem(int status, const char *detail, const char *path, size_t plen)
{
    size_t len = errordoc_problem_json(NULL, 0, status, detail, strlen(detail), path, plen);
    char *buf = malloc(len + 1);

    cr_assert_eq(errordoc_problem_json(buf, len, status, detail, strlen(detail), path, plen),
                 len);
    buf[len] = '\0';
    return buf;
}

Test(errordoc, problem_json_plain)
{
    char *s = problem(404, "no route", "/a/b", 4);

    cr_assert_str_eq(s, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
                        "\"detail\":\"no route\",\"instance\":\"/a/b\"}");
    free(s);
}

Test(errordoc, problem_json_hostile)
{
    static const char path[] = "/q\"b\\c\r\n\x01\x7f\xff\xc3\xa9/";
    char *s = problem(502, "say \"no\"\\\t", path, sizeof(path) - 1);

    cr_assert_str_eq(s, "{\"type\":\"about:blank\",\"title\":\"Bad Gateway\",\"status\":502,"
                        "\"detail\":\"say \\\"no\\\"\\\\\\u0009\","
                        "\"instance\":\"/q\\\"b\\\\c\\u000d\\u000a\\u0001\\u007f\\u00ff"
                        "\\u00c3\\u00a9/\"}");
    /* Nothing but printable ASCII: valid UTF-8 whatever the client sent. */
    for (const char *p = s; *p != '\0'; p++)
        cr_assert(*p >= 0x20 && *p < 0x7f, "byte 0x%02x at %td", (unsigned char)*p, p - s);
    free(s);
}

Test(errordoc, problem_json_nul_and_cap)
{
    static const char path[] = {'/', 'a', '\0', 'b'};
    char small[16];
    size_t len = errordoc_problem_json(NULL, 0, 431, "", 0, path, sizeof(path));
    char *s = problem(431, "", path, sizeof(path));

    cr_assert(strstr(s, "\"instance\":\"/a\\u0000b\"}") != NULL, "%s", s);
    cr_assert_eq(strlen(s), len);
    /* A short buffer gets a prefix, never more than cap bytes. */
    memset(small, '#', sizeof(small));
    cr_assert_eq(errordoc_problem_json(small, 10, 431, "", 0, path, sizeof(path)), len);
    cr_assert_eq(memcmp(small, s, 10), 0);
    cr_assert_eq(small[10], '#');
    free(s);
}
