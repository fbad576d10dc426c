/* Templates: compile errors (message and offset) and expansion against a hand-built request
 * with a fake connection, hostile values included. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <criterion/criterion.h>

#include "tmpl.h"

/* ---- a request without a server ---- */

static int fake_unix;

static socklen_t
fake_addr(struct sockaddr *sa, const char *ip, unsigned short port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;

    if (fake_unix) {
        struct sockaddr_un *sun = (struct sockaddr_un *)sa;

        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, "/run/x.sock");
        return sizeof(*sun);
    }
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    (void)inet_pton(AF_INET, ip, &sin->sin_addr);
    return sizeof(*sin);
}

static socklen_t
fake_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    return fake_addr(sa, "127.0.0.1", 5555);
}

static socklen_t
fake_sockname(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    return fake_addr(sa, "10.0.0.1", 80);
}

static const h2o_conn_callbacks_t fake_callbacks = {
    .get_sockname = fake_sockname,
    .get_peername = fake_peername,
};
static const h2o_conn_callbacks_t no_callbacks = {0};

static h2o_conn_t conn;
static h2o_req_t req;

/* subject "/v2/users/42": $1 "2", $2 "42", $3 unset */
static const size_t ov[] = {0, 12, 2, 3, 10, 12, SIZE_MAX, SIZE_MAX};
static struct tmpl_env env;

static void
set_target(const char *target)
{
    const char *q = strchr(target, '?');

    req.input.path = h2o_iovec_init(target, strlen(target));
    req.path = req.input.path;
    req.query_at = q != NULL ? (size_t)(q - target) : SIZE_MAX;
}

static void
add_hdr(const char *name, const char *value)
{
    h2o_add_header_by_str(&req.pool, &req.headers, name, strlen(name), 1, name, value,
                          strlen(value));
}

static void
setup(void)
{
    memset(&conn, 0, sizeof(conn));
    memset(&req, 0, sizeof(req));
    fake_unix = 0;
    conn.callbacks = &fake_callbacks;
    req.conn = &conn;
    h2o_mem_init_pool(&req.pool);
    req.input.scheme = &H2O_URL_SCHEME_HTTPS;
    req.input.authority = h2o_iovec_init(H2O_STRLIT("Example.COM.:8443"));
    set_target("/a%2Fb/c?x=1&name=v%20al&flag&name=2");
    req.path_normalized = h2o_iovec_init(H2O_STRLIT("/a/b/c"));
    add_hdr("user-agent", "curl/8");
    add_hdr("x-forwarded-for", "1.1.1.1");
    add_hdr("x-forwarded-for", "2.2.2.2");
    add_hdr("cookie", "a=1");
    add_hdr("cookie", "b=2");
    memset(&env, 0, sizeof(env));
    env.service = "www";
    env.server_name = "example.org";
    env.route = "/api/";
    env.subject = "/v2/users/42";
    env.ov = ov;
    env.nov = 4;
    env.request_id = "0123456789abcdef0123456789abcdef";
}

static void
teardown(void)
{
    h2o_mem_clear_pool(&req.pool);
}

TestSuite(tmpl, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static struct tmpl *
ok(const char *s, unsigned max_capture)
{
    char err[512] = "";
    size_t off = 0;
    struct tmpl *t = tmpl_compile(s, max_capture, err, sizeof(err), &off);

    cr_assert_not_null(t, "'%s': %s (at %zu)", s, err, off);
    return t;
}

static void
bad(const char *s, unsigned max_capture, size_t want_off, const char *want_msg)
{
    char err[512] = "";
    size_t off = 12345;
    struct tmpl *t = tmpl_compile(s, max_capture, err, sizeof(err), &off);

    cr_assert_null(t, "'%s' compiled", s);
    cr_expect_eq(off, want_off, "'%s': offset %zu, want %zu", s, off, want_off);
    cr_expect_not_null(strstr(err, want_msg), "'%s': message \"%s\" lacks \"%s\"", s, err,
                       want_msg);
}

/* The expansion of s (captures up to $3) as a C string in req.pool. */
static const char *
x(const char *s, enum tmpl_out out)
{
    struct tmpl *t = ok(s, 3);
    h2o_iovec_t v = tmpl_expand(t, &req, &env, out);

    cr_assert_eq(v.base[v.len], '\0');
    cr_assert_eq(strlen(v.base), v.len, "'%s': a NUL inside", s);
    tmpl_free(t);
    return v.base;
}

#define EXPECT_X(s, out, want)                                                                     \
    do {                                                                                           \
        const char *got_ = x(s, out);                                                              \
        cr_expect_str_eq(got_, want, "'%s' gave '%s', want '%s'", s, got_, want);                  \
    } while (0)
#define EXPECT_H(s, want) EXPECT_X(s, TMPL_HEADER, want)
#define EXPECT_T(s, want) EXPECT_X(s, TMPL_TARGET, want)

/* ---- compiling ---- */

Test(tmpl, literal_only)
{
    struct tmpl *t = ok("a$$b?c", 0);

    cr_expect_not(tmpl_has_vars(t));
    cr_expect_str_eq(tmpl_literal(t), "a$b?c");
    cr_expect_eq(tmpl_uses(t), 0u);
    cr_expect(tmpl_has_query(t));
    tmpl_free(t);
    t = ok("", 0);
    cr_expect_str_eq(tmpl_literal(t), "");
    cr_expect_not(tmpl_has_query(t));
    tmpl_free(t);
}

Test(tmpl, uses_and_query)
{
    struct tmpl *t = ok("https://$host$request_uri", 0);

    cr_expect(tmpl_has_vars(t));
    cr_expect_eq(tmpl_uses(t), (1u << TV_HOST) | (1u << TV_REQUEST_URI));
    cr_expect_not(tmpl_has_query(t));
    cr_expect_str_eq(tmpl_literal(t), "https://$host$request_uri");
    tmpl_free(t);
    t = ok("/x?$${a}&id=${request_id}&h=$http_x_y&$arg_q$1", 1);
    cr_expect(tmpl_has_query(t));
    cr_expect_eq(tmpl_uses(t),
                 (1u << TV_REQUEST_ID) | (1u << TV_HTTP) | (1u << TV_ARG) | (1u << TV_CAPTURE));
    tmpl_free(t);
    /* a '?' from "$$" or a name is no literal '?' */
    t = ok("/x$$$uri", 0);
    cr_expect_not(tmpl_has_query(t));
    tmpl_free(t);
}

Test(tmpl, unknown_variable)
{
    bad("/x/$foo/y", 0, 3, "unknown variable '$foo'");
    bad("/x/$foo/y", 0, 3, "(known: $host $scheme");
    bad("${nope}", 0, 0, "unknown variable '${nope}'");
    bad("a$hots", 0, 1, "did you mean '$host'?");
    /* the offset is that of the failing '$', not the first one */
    bad("$host$$/${uri}/$bad", 0, 15, "unknown variable '$bad'");
}

Test(tmpl, longest_name_wins)
{
    struct tmpl *t;

    bad("https://$hostname/", 0, 8, "unknown variable '$hostname'; did you mean '${host}name'?");
    bad("$uris", 0, 0, "did you mean '${uri}s'?");
    t = ok("https://${host}name/", 0);
    cr_expect_str_eq(tmpl_expand(t, &req, &env, TMPL_TARGET).base, "https://example.comname/");
    tmpl_free(t);
}

Test(tmpl, dollar_errors)
{
    bad("abc$", 0, 3, "'$' at the end: write '$$'");
    bad("a$-b", 0, 1, "'$' not followed by a variable name");
    bad("a$ b", 0, 1, "'$' not followed by a variable name");
    bad("x${unclosed", 0, 1, "'${' without a name and a closing '}'");
    bad("x${host", 0, 1, "closing '}'");
    bad("x${ho-st}", 0, 1, "closing '}'");
    bad("${}", 0, 0, "empty variable name '${}'");
    bad("/$arg_", 0, 1, "'$arg_' needs a name");
    bad("/$http_/", 0, 1, "'$http_' needs a name");
}

Test(tmpl, capture_errors)
{
    bad("/$0", 9, 1, "'$0': captures are $1 to $9");
    bad("/${0}", 9, 1, "captures are $1 to $9");
    bad("/a/${10}", 9, 3, "'$10': captures are $1 to $9");
    bad("/a/$2", 1, 3, "'$2' refers to group 2 but the regex has 1 group");
    bad("/a/$3", 2, 3, "the regex has 2 groups");
    bad("/a/$1", 0, 3, "'$1' refers to a regex group, but no regex with groups is in scope here");
    bad("/${1}/$9", 8, 6, "the regex has 8 groups");
}

Test(tmpl, capture_digits)
{
    /* "$10" is $1 then "0"; "${1}0" the same, written plainly */
    EXPECT_T("/$10", "/20");
    EXPECT_T("/${1}0", "/20");
    EXPECT_T("/$2$1", "/422");
    EXPECT_T("/[$3]", "/[]");
    env.nov = 2; /* $2 beyond what the match gave */
    EXPECT_T("/[$2]", "/[]");
    env.ov = NULL;
    EXPECT_T("/[$1]", "/[]");
}

/* ---- expanding: each variable ---- */

Test(tmpl, every_variable)
{
    EXPECT_H("$host", "example.com");
    EXPECT_H("$scheme", "https");
    EXPECT_H("$request_uri", "/a%2Fb/c?x=1&name=v%20al&flag&name=2");
    EXPECT_H("$uri", "/a/b/c");
    EXPECT_H("$args", "x=1&name=v%20al&flag&name=2");
    EXPECT_H("[$arg_name][$arg_flag][$arg_x][$arg_none][$arg_nam]", "[v%20al][][1][][]");
    EXPECT_H("$http_user_agent", "curl/8");
    EXPECT_H("$http_X_Forwarded_For", "1.1.1.1, 2.2.2.2");
    EXPECT_H("$http_cookie", "a=1; b=2");
    EXPECT_H("[$http_missing]", "[]");
    EXPECT_H("$remote_addr:$remote_port", "127.0.0.1:5555");
    EXPECT_H("$server_addr:$server_port", "10.0.0.1:80");
    EXPECT_H("$service $route $request_id", "www /api/ 0123456789abcdef0123456789abcdef");
    EXPECT_H("$1-$2", "2-42");
    EXPECT_H("$$$$", "$$");
}

Test(tmpl, absent_values)
{
    set_target("/p");
    env.service = NULL;
    env.route = NULL;
    env.request_id = NULL;
    req.input.scheme = NULL;
    req.scheme = &H2O_URL_SCHEME_HTTP;
    EXPECT_H("[$args][$arg_x][$service][$route][$request_id]", "[][][][][]");
    EXPECT_H("$scheme", "http");
    conn.callbacks = &no_callbacks;
    EXPECT_H("[$remote_addr][$remote_port][$server_addr][$server_port]", "[][][][]");
    req.conn = NULL;
    EXPECT_H("[$remote_addr]", "[]");
}

Test(tmpl, unix_socket)
{
    fake_unix = 1;
    EXPECT_H("[$remote_addr][$remote_port][$server_addr][$server_port]", "[unix:][][unix:][]");
}

Test(tmpl, host_forms)
{
    req.input.authority = h2o_iovec_init(H2O_STRLIT("[::1]:8080"));
    EXPECT_H("$host", "[::1]");
    EXPECT_T("https://$host/", "https://[::1]/");
    req.input.authority = h2o_iovec_init(H2O_STRLIT("WWW.Example.com"));
    EXPECT_H("$host", "www.example.com");
    /* none from the client (libh2o then puts a hostconf's name in req.authority): the
     * server_name, else "" */
    req.input.authority = h2o_iovec_init(NULL, 0);
    req.authority = h2o_iovec_init(H2O_STRLIT("percore-router"));
    EXPECT_H("$host", "example.org");
    req.input.authority = h2o_iovec_init(H2O_STRLIT(":80"));
    EXPECT_H("$host", "example.org");
    env.server_name = NULL;
    EXPECT_H("[$host]", "[]");
}

/* ---- expanding: hostile values ---- */

Test(tmpl, hostile_host_falls_back)
{
    static const char *const hosts[] = {
        "evil.com/x", "evil.com@x", "a b",       "[::1",   "[::1]x", "a[b]",
        "ex\r\nX: y", "evil.com?x", "evil.com#", "e\\vil", "%2e%2e", "\xc3\xa9.com",
    };
    size_t i;

    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        req.input.authority = h2o_iovec_init(hosts[i], strlen(hosts[i]));
        EXPECT_T("https://$host/", "https://example.org/");
        EXPECT_H("$host", "example.org");
    }
    env.server_name = NULL;
    req.input.authority = h2o_iovec_init(H2O_STRLIT("evil.com/x"));
    EXPECT_T("https://$host/p", "https:///p");
}

Test(tmpl, no_scheme_relative_target_from_a_variable)
{
    req.path_normalized = h2o_iovec_init(H2O_STRLIT("//evil.com"));
    EXPECT_T("$uri", "/evil.com");
    EXPECT_T("/$uri", "/evil.com");
    EXPECT_T("$uri/x", "/evil.com/x");
    set_target("//evil.com/%2F?a");
    EXPECT_T("$request_uri", "/evil.com/%2F?a");
    set_target("/\\evil.com");
    EXPECT_T("$request_uri", "/%5Cevil.com"); /* '\' is encoded in any case */
    /* the template's own "//" is the admin's choice */
    EXPECT_T("//$host/x", "//example.com/x");
    /* only the leading run matters */
    EXPECT_T("/a/$uri", "/a///evil.com");
    /* headers are not targets */
    EXPECT_H("$uri", "//evil.com");
}

Test(tmpl, no_scheme_from_a_variable)
{
    static const size_t jov[] = {0, 19, 0, 19};

    env.subject = "javascript:alert(1)";
    env.ov = jov;
    env.nov = 2;
    EXPECT_T("$1", "javascript%3Aalert(1)");
    EXPECT_T("/$1", "/javascript:alert(1)");
    EXPECT_T("$scheme://$host/", "https://example.com/");
    set_target("http://evil.com/");
    /* a target without its '/' gets one: after $host it cannot make another host */
    EXPECT_T("$request_uri", "/http://evil.com/");
    set_target("@evil.com/");
    EXPECT_T("https://$host$request_uri", "https://example.com/@evil.com/");
    EXPECT_H("$1", "javascript:alert(1)");
}

Test(tmpl, header_controls_encoded)
{
    add_hdr("x-evil", "a\r\nSet-Cookie: b\x7f\tc");
    EXPECT_H("v=$http_x_evil;", "v=a%0D%0ASet-Cookie: b%7F%09c;");
    set_target("/p?q=\x01");
    EXPECT_H("$args", "q=%01");
}

Test(tmpl, capture_in_path_and_query)
{
    static const size_t qov[] = {0, 12, 0, 12}, pov[] = {0, 3, 0, 3};

    env.subject = "?a=b&c #%/\xc3\xa9";
    env.ov = qov;
    env.nov = 2;
    EXPECT_T("/x/$1", "/x/%3Fa=b&c%20%23%25/%C3%A9");
    EXPECT_T("/x?v=$1&w=1", "/x?v=?a%3Db%26c%20%23%25/%C3%A9&w=1");
    EXPECT_T("/x?v=$1", "/x?v=?a%3Db%26c%20%23%25/%C3%A9");
    /* '+' would read as a space in a query, and stays in a path */
    env.subject = "a+b";
    env.ov = pov;
    EXPECT_T("/$1?q=$1", "/a+b?q=a%2Bb");
}

Test(tmpl, encoded_values_keep_escapes)
{
    EXPECT_T("/new$request_uri", "/new/a%2Fb/c?x=1&name=v%20al&flag&name=2");
    EXPECT_T("/n?$args", "/n?x=1&name=v%20al&flag&name=2");
    EXPECT_T("/n?v=$arg_name", "/n?v=v%20al");
    set_target("/p?a=%zz%4&b=\"<>\\^`{|}#~!$'()*+,;=:@/?%41");
    EXPECT_T("/n?$args", "/n?a=%25zz%254&b=%22%3C%3E%5C%5E%60%7B%7C%7D%23~!$'()*+,;=:@/?%41");
}

Test(tmpl, bytes_above_ascii)
{
    set_target("/caf\xc3\xa9?q=\xff");
    req.path_normalized = h2o_iovec_init(H2O_STRLIT("/caf\xc3\xa9"));
    EXPECT_T("$request_uri", "/caf%C3%A9?q=%FF");
    EXPECT_T("$uri", "/caf%C3%A9");
    /* a header value keeps them: only controls and DEL are encoded there */
    EXPECT_H("$uri", "/caf\xc3\xa9");
    add_hdr("x-u", "\xe2\x82\xac");
    EXPECT_T("/?e=$http_x_u", "/?e=%E2%82%AC");
}

Test(tmpl, decoded_values_in_target)
{
    /* addresses keep ':' once past the first '/' (IPv6) */
    EXPECT_T("/c/$remote_addr:$remote_port", "/c/127.0.0.1:5555");
    env.service = "my svc";
    env.route = "~ ^/v(\\d+)$";
    EXPECT_T("/$service/$route", "/my%20svc/~%20%5E/v(%5Cd+)$");
    EXPECT_T("/?r=$route", "/?r=~%20%5E/v(%5Cd%2B)$");
}

Test(tmpl, many_parts)
{
    /* one expansion measured and written alike, long values included */
    static char big[3000];
    const char *got;

    memset(big, 'z', sizeof(big) - 1);
    add_hdr("x-big", big);
    got = x("$http_x_big$http_x_big/$1$$${uri}?$args", TMPL_TARGET);

    cr_expect_eq(strlen(got), 2 * 2999 + strlen("/2$/a/b/c?x=1&name=v%20al&flag&name=2"));
}
