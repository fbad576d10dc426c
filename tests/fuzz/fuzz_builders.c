/* libFuzzer harness for what percore writes into response and upstream headers from what a
 * client sent, run by `make fuzz`: the Location encoders (src/hnd.c), the redirect
 * handler's Location (src/hnd_redirect.c) and the proxy's Forwarded, X-Forwarded-Host and
 * Via lines (src/hnd_proxy.c, in fuzz_builders_proxy.c). No control byte may reach a header but
 * the tab a field value may hold (in Forwarded only inside its quoted-string), and each
 * value must read back as what it encodes.
 *
 * Input: byte 0 picks the builder; the rest is its input (see each function). */
#include "../../src/hnd_redirect.c"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <netinet/in.h>

#include "fuzz_builders.h"

static int
is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static void
no_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        assert(!is_ctl((unsigned char)s[i]));
}

static int
path_keeps(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&()*+,;=:@/", c) != NULL);
}

/* RFC 3986 query characters but '\'' and '%' (kept only as a "%XX" escape). */
static int
query_keeps(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&()*+,;=:@/?", c) != NULL);
}

/* out must be in, byte for byte, each byte kept (keep) or written %XX; with one_slash, a
 * '/' after a '/' dropped; with keep_pct, a '%' before two hex digits kept. */
static void
encodes(const char *in, size_t len, const char *out, size_t outlen,
        int (*keep)(unsigned char), int one_slash, int keep_pct)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    assert(out[outlen] == '\0');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (one_slash && c == '/' && o > 0 && out[o - 1] == '/')
            continue;
        if (keep(c) || (keep_pct && c == '%' && i + 2 < len &&
                         isxdigit((unsigned char)in[i + 1]) &&
                         isxdigit((unsigned char)in[i + 2]))) {
            assert(o < outlen && out[o] == (char)c);
            o++;
        } else {
            assert(o + 3 <= outlen && out[o] == '%' && out[o + 1] == hex[c >> 4] &&
                   out[o + 2] == hex[c & 15]);
            o += 3;
        }
    }
    assert(o == outlen);
    no_ctl(out, outlen);
    for (size_t i = 0; i < outlen; i++)
        assert(out[i] != ' ');
}

/* The encoders, on data. */
static void
fuzz_encoders(h2o_mem_pool_t *pool, const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t len;
    char *out;

    out = hnd_location_path(pool, in, size, &len);
    encodes(in, size, out, len, path_keeps, 1, 0);
    assert(strstr(out, "//") == NULL);
    out = hnd_location_query(pool, in, size, &len);
    encodes(in, size, out, len, query_keeps, 0, 1);
}

/* A URL's authority: after a leading "//" or "SCHEME://", through the next '/', '?' or
 * '#'; 0 when it has none. */
static int
authority(const char *u, size_t len, const char **start, const char **end)
{
    size_t i = 0;

    while (i < len && ((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') ||
                       (u[i] >= '0' && u[i] <= '9') || u[i] == '+' || u[i] == '-' ||
                       u[i] == '.'))
        i++;
    if (i > 0 && i < len && u[i] == ':')
        i++;
    else if (i > 0)
        return 0;
    if (len - i < 2 || u[i] != '/' || u[i + 1] != '/')
        return 0;
    *start = u + i + 2;
    for (*end = *start; *end < u + len && **end != '/' && **end != '?' && **end != '#'; (*end)++)
        ;
    return 1;
}

/* Input: a flags byte (bit 0: exact), a byte choosing the route's prefix length, the
 * target up to a NUL, then the request's path. */
static void
fuzz_redirect(h2o_mem_pool_t *pool, const uint8_t *data, size_t size)
{
    struct conf_arg args[3] = {{.s = (char *)"301"}, {.s = NULL}, {.s = (char *)"exact"}};
    struct conf_node n = {.name = (char *)"redirect", .args = args};
    struct conf_diag diag = {0};
    const uint8_t *nul;
    struct redirect_conf *rc = NULL;
    h2o_iovec_t path, norm, dest;
    size_t query_at, *norm_indexes = NULL, tlen, plen;
    const char *ta, *te, *da, *de;

    if (size < 2)
        return;
    nul = memchr(data + 2, '\0', size - 2);
    if (nul == NULL)
        return;
    args[1].s = (char *)data + 2;
    n.nargs = (data[0] & 1) ? 3 : 2;
    if (redirect_parse(&n, (void **)&rc, &diag) == -1) {
        assert(diag.n == 1 && rc == NULL);
        conf_diag_clear(&diag);
        return;
    }
    path = h2o_iovec_init(nul + 1, size - (size_t)(nul + 1 - data));
    norm = h2o_url_normalize_path(pool, path.base, path.len, &query_at, &norm_indexes);
    plen = data[1] % (norm.len + 1);
    dest = location(pool, rc, plen, norm, path, query_at);

    tlen = strlen(rc->target);
    /* The target as configured, then nothing the client may choose could end a header
     * or a URL. */
    assert(dest.len >= tlen && memcmp(dest.base, rc->target, tlen) == 0);
    no_ctl(dest.base, dest.len);
    assert(memchr(dest.base, ' ', dest.len) == NULL);
    if (rc->exact)
        assert(dest.len == tlen);
    /* A path stays a path: never "//host" nor "/\\host" (the target may be either only
     * as the configuration wrote it, with exact). */
    if (rc->target[0] == '/' && rc->target[1] != '/' && rc->target[1] != '\\')
        assert(!(dest.len >= 2 && (dest.base[1] == '/' || dest.base[1] == '\\')));
    /* The host of a URL stays the target's own. */
    if (authority(rc->target, tlen, &ta, &te)) {
        assert(authority(dest.base, dest.len, &da, &de));
        assert(de - da == te - ta && memcmp(da, ta, (size_t)(te - ta)) == 0);
    }
    redirect_free(rc);
}

/* A quoted-string from s, up to its closing quote; what it holds, unescaped, into out.
 * Returns the byte after the closing quote. */
static const char *
unquote(const char *s, const char *end, char *out, size_t *outlen)
{
    size_t o = 0;

    assert(s < end && *s == '"');
    for (s++; s < end && *s != '"'; s++) {
        if (*s == '\\') {
            s++;
            assert(s < end);
        }
        assert(!is_ctl((unsigned char)*s) || *s == '\t');
        out[o++] = *s;
    }
    assert(s < end);
    *outlen = o;
    return s + 1;
}

static int
host_ok(h2o_iovec_t a)
{
    if (a.len == 0)
        return 0; /* no host named: none is forwarded */
    for (size_t i = 0; i < a.len; i++)
        if (is_ctl((unsigned char)a.base[i]) && a.base[i] != '\t')
            return 0;
    return 1;
}

/* The next line of [*p, end) if it starts with name: its value in *v, *p past its CRLF. */
static int
next_line(const char **p, const char *end, const char *name, h2o_iovec_t *v)
{
    size_t n = strlen(name);
    const char *crlf;

    if ((size_t)(end - *p) < n || memcmp(*p, name, n) != 0)
        return 0;
    crlf = memmem(*p + n, (size_t)(end - *p - (ptrdiff_t)n), "\r\n", 2);
    if (crlf == NULL)
        return 0;
    *v = h2o_iovec_init(*p + n, (size_t)(crlf - *p - (ptrdiff_t)n));
    *p = crlf + 2;
    return 1;
}

/* Input: a flags byte (bit 0: https; bits 1-2: HTTP/1.0, 1.1 or 2; bits 3-4: an IPv4 or
 * IPv6 peer, or none), 16 bytes of address, then the Host. */
static void
fuzz_forwarded_cmds(h2o_mem_pool_t *pool, const uint8_t *data, size_t size)
{
    static const int versions[] = {0x100, 0x101, 0x200, 0x101};
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    struct sockaddr_storage none = {.ss_family = AF_UNSPEC};
    const struct sockaddr *sa;
    socklen_t salen;
    h2o_iovec_t host, head, v;
    const char *p, *end, *lp, *lend;
    char buf[INET6_ADDRSTRLEN + 8], ip6[INET6_ADDRSTRLEN], *unq;
    size_t ulen;
    int https, version, kind;

    if (size < 17)
        return;
    https = data[0] & 1;
    version = versions[(data[0] >> 1) & 3];
    kind = (data[0] >> 3) & 3;
    memcpy(&s4.sin_addr, data + 1, 4);
    memcpy(&s6.sin6_addr, data + 1, 16);
    sa = kind == 0 ? (struct sockaddr *)&s4 : kind == 1 ? (struct sockaddr *)&s6
                                                        : (struct sockaddr *)&none;
    salen = kind == 0 ? sizeof(s4) : kind == 1 ? sizeof(s6) : 0;
    host = h2o_iovec_init(data + 17, size - 17);
    head = fuzz_forwarded(pool, host, https, version, sa, salen);
    p = head.base;
    end = head.base + head.len;

    /* Every line "name: value\r\n", no other CR or LF, no control but tab. */
    for (const char *q = p; q < end; q++)
        if (*q == '\r') {
            assert(q + 1 < end && q[1] == '\n');
            q++;
        } else {
            assert(!is_ctl((unsigned char)*q) || *q == '\t');
        }
    assert(head.len >= 2 && memcmp(end - 2, "\r\n", 2) == 0);

    /* Forwarded: for=NODE;proto=SCHEME[;host="..."] */
    assert(next_line(&p, end, "forwarded: ", &v));
    lp = v.base;
    lend = v.base + v.len;
    if (kind == 0)
        inet_ntop(AF_INET, &s4.sin_addr, buf, sizeof(buf));
    else if (kind == 1)
        snprintf(buf, sizeof(buf), "\"[%s]\"",
                 inet_ntop(AF_INET6, &s6.sin6_addr, ip6, sizeof(ip6)));
    else
        snprintf(buf, sizeof(buf), "unknown");
    assert((size_t)(lend - lp) > 4 + strlen(buf) && memcmp(lp, "for=", 4) == 0 &&
           memcmp(lp + 4, buf, strlen(buf)) == 0);
    lp += 4 + strlen(buf);
    snprintf(buf, sizeof(buf), ";proto=%s", https ? "https" : "http");
    assert((size_t)(lend - lp) >= strlen(buf) && memcmp(lp, buf, strlen(buf)) == 0);
    lp += strlen(buf);
    if (host_ok(host)) {
        assert(lend - lp >= 8 && memcmp(lp, ";host=", 6) == 0);
        unq = h2o_mem_alloc_pool(pool, host.len + 1);
        lp = unquote(lp + 6, lend, unq, &ulen);
        assert(ulen == host.len && memcmp(unq, host.base, ulen) == 0);
    }
    assert(lp == lend);
    assert(next_line(&p, end, "x-forwarded-for: ", &v));
    assert(next_line(&p, end, "x-forwarded-proto: ", &v));
    assert(h2o_memis(v.base, v.len, https ? "https" : "http", https ? 5 : 4));
    /* X-Forwarded-Host: the Host as sent, only when Forwarded could quote it. */
    if (host_ok(host)) {
        assert(next_line(&p, end, "x-forwarded-host: ", &v));
        assert(v.len == host.len && memcmp(v.base, host.base, v.len) == 0);
    }
    assert(next_line(&p, end, "via: ", &v));
    assert(p == end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_mem_pool_t pool;

    if (size < 1)
        return -1;
    h2o_mem_init_pool(&pool);
    switch (data[0] % 3) {
    case 0:
        fuzz_encoders(&pool, data + 1, size - 1);
        break;
    case 1:
        fuzz_redirect(&pool, data + 1, size - 1);
        break;
    case 2:
        fuzz_forwarded_cmds(&pool, data + 1, size - 1);
        break;
    }
    h2o_mem_clear_pool(&pool);
    return 0;
}
