/* Handler registry, read by the config loader (master) and the worker set-up, and what
 * handlers share. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "util.h"

/* In the order error messages list them; conf.c's table has a HANDLER row for each. */
static const struct hnd_ops *const hnd_all[] = {
    &hnd_respond_ops, &hnd_files_ops,   &hnd_redirect_ops, &hnd_proxy_ops,
    &hnd_fastcgi_ops, &hnd_metrics_ops, &hnd_health_ops,   &hnd_status_ops,
    &hnd_module_ops,
};

const char *
hnd_names(void)
{
    static char names[128];
    size_t len = 0;
    int n;

    if (names[0] != '\0')
        return names;
    for (size_t i = 0; i < NELEMS(hnd_all); i++) {
        n = snprintf(names + len, sizeof(names) - len, "%s%s", i > 0 ? ", " : "",
                     hnd_all[i]->name);
        /* The names are ours and fixed: they fit, or the buffer is too small. */
        assert(n > 0 && (size_t)n < sizeof(names) - len);
        len += (size_t)n;
    }
    return names;
}

int
hnd_resolve(const char *host, const char *port, struct sockaddr_storage *ss, unsigned *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rc;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Sorted by status, for bsearch. */
static const struct reason {
    int status;
    const char *phrase;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {421, "Misdirected Request"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static int
reason_cmp(const void *key, const void *elem)
{
    int status = *(const int *)key, other = ((const struct reason *)elem)->status;

    return (status > other) - (status < other);
}

const char *
hnd_reason(int status)
{
    const struct reason *r = bsearch(&status, reasons, NELEMS(reasons), sizeof(reasons[0]),
                                     reason_cmp);

    if (r != NULL)
        return r->phrase;
    return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error"
                                                                          : "Server Error";
}

h2o_iovec_t
hnd_client_authority(const h2o_req_t *req)
{
    h2o_iovec_t a = req->input.authority;
    h2o_hostconf_t *const *hosts = req->conn != NULL ? req->conn->hosts : NULL;

    if (a.len == 0 || (hosts != NULL && hosts[0] != NULL &&
                       a.base == hosts[0]->authority.hostport.base))
        return h2o_iovec_init(NULL, 0);
    return a;
}

size_t
hnd_prefix_len(const h2o_req_t *req)
{
    h2o_iovec_t p = req->pathconf->path, path = req->path_normalized;

    if (p.len <= path.len && memcmp(p.base, path.base, p.len) == 0)
        return p.len;
    return 0;
}

void
hnd_send_body(h2o_req_t *req, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = h2o_iovec_init(body, len);

    /* libh2o leaves HEAD to handlers: the headers keep the length, the body is left out. */
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

/* Bytes a path may keep as they are in a Location: RFC 3986 pchar and '/', less '\''. */
static int
path_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&()*+,;=:@/", c) != NULL);
}

/* Bytes a query may keep: RFC 3986 query characters (unreserved, sub-delims, ':', '@',
 * '/', '?'; '%' is left to encode()), less '\'' (libh2o also writes a Location into an
 * HTML link). */
static int
query_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&()*+,;=:@/?", c) != NULL);
}

/* Bytes a Location passed on may keep: all but controls, space and DEL. Browsers drop tab,
 * CR and LF from a URL before reading it, so a raw one can hide a "//host". */
static int
visible_char_ok(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

enum {
    ENC_ONE_SLASH = 1, /* runs of '/' made one */
    ENC_KEEP_PCT = 2,  /* a '%' and two hex digits kept as they are */
};

/* s[i] begins a percent-escape. */
static int
is_pct(const char *s, size_t len, size_t i)
{
    return s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
           isxdigit((unsigned char)s[i + 2]);
}

/* s percent-encoded where keep() says no, in pool, as flags say; *outlen is its length. */
static char *
encode(h2o_mem_pool_t *pool, const char *s, size_t len, int (*keep)(unsigned char),
       int flags, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = h2o_mem_alloc_pool(pool, len * 3 + 1), *p = out;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((flags & ENC_ONE_SLASH) && c == '/' && p > out && p[-1] == '/')
            continue;
        if (keep(c) || ((flags & ENC_KEEP_PCT) && is_pct(s, len, i))) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    *outlen = (size_t)(p - out);
    return out;
}

char *
hnd_location_path(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    return encode(pool, s, len, path_char_ok, ENC_ONE_SLASH, outlen);
}

char *
hnd_location_query(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    return encode(pool, s, len, query_char_ok, ENC_KEEP_PCT, outlen);
}

char *
hnd_location_visible(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    return encode(pool, s, len, visible_char_ok, 0, outlen);
}
