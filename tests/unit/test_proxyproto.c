/* The PROXY protocol (src/proxyproto.c): the parser on good, split and hostile headers of
 * both versions; the writers, byte for byte and through the parser again; and the reader
 * on a socketpair in an event loop: what follows the header stays for TLS or HTTP, the
 * peer becomes the header's source, and a bad, late or untrusted header closes the
 * connection. */
#include "../../src/proxyproto.c"
#include "../../src/proxyproto_send.c"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

/* The worker's rate limit on error lines: always room here (there is no worker). */
static int lines_logged;

int
worker_error_line_allowed(void)
{
    lines_logged++;
    return 1;
}

static ssize_t
parse(const void *b, size_t len, struct proxyproto_hdr *h)
{
    const char *why;
    ssize_t n = proxyproto_parse(b, len, h, &why);

    cr_assert((n == -1) == (why != NULL), "n %zd, why %s", n, why ? why : "(null)");
    return n;
}

static const char *
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port;

    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof(a));
        port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
        snprintf(buf, len, "%s:%u", a, port);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof(a));
        port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
        snprintf(buf, len, "[%s]:%u", a, port);
    }
    return buf;
}

/* Every proper prefix of a good header is "not complete yet". */
static void
prefixes_wait(const void *b, size_t hlen)
{
    struct proxyproto_hdr h;

    for (size_t i = 0; i < hlen; i++)
        cr_assert_eq(parse(b, i, &h), 0, "prefix of %zu of %zu bytes", i, hlen);
}

/* ---- version 1 ---- */

Test(v1, tcp4)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
    struct proxyproto_hdr h;
    char buf[64];
    size_t hlen = strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");

    cr_assert_eq(parse(hdr, sizeof(hdr) - 1, &h), (ssize_t)hlen);
    cr_assert_eq(h.version, 1);
    cr_assert(h.has_addr);
    cr_assert_eq(h.srclen, sizeof(struct sockaddr_in));
    cr_assert_str_eq(addr_text(&h.src, buf, sizeof(buf)), "192.0.2.1:56324");
    cr_assert_str_eq(addr_text(&h.dst, buf, sizeof(buf)), "198.51.100.2:443");
    prefixes_wait(hdr, hlen);
}

Test(v1, tcp6)
{
    static const char hdr[] = "PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 0 65535\r\n";
    struct proxyproto_hdr h;
    char buf[64];

    cr_assert_eq(parse(hdr, sizeof(hdr) - 1, &h), (ssize_t)sizeof(hdr) - 1);
    cr_assert_eq(h.srclen, sizeof(struct sockaddr_in6));
    cr_assert_str_eq(addr_text(&h.src, buf, sizeof(buf)), "[2001:db8::1]:0");
    cr_assert_str_eq(addr_text(&h.dst, buf, sizeof(buf)), "[::ffff:192.0.2.9]:65535");
}

Test(v1, unknown_keeps_the_peer)
{
    static const char *const ok[] = {
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    };
    struct proxyproto_hdr h;

    for (size_t i = 0; i < NELEMS(ok); i++) {
        cr_assert_eq(parse(ok[i], strlen(ok[i]), &h), (ssize_t)strlen(ok[i]), "%s", ok[i]);
        cr_assert_not(h.has_addr);
    }
}

/* The longest line the specification allows (107 bytes) is taken; one more is not. */
Test(v1, longest_line)
{
    char line[200];
    struct proxyproto_hdr h;

    snprintf(line, sizeof(line), "PROXY UNKNOWN %091d\r\n", 0);
    cr_assert_eq(strlen(line), 107);
    cr_assert_eq(parse(line, strlen(line), &h), 107);
    snprintf(line, sizeof(line), "PROXY UNKNOWN %092d\r\n", 0);
    cr_assert_eq(parse(line, strlen(line), &h), -1);
    /* Without CRLF in the first 107 bytes it is refused without waiting for more. */
    memset(line, 'A', sizeof(line));
    memcpy(line, "PROXY ", 6);
    cr_assert_eq(parse(line, 107, &h), -1);
    cr_assert_eq(parse(line, 106, &h), 0);
}

static const char *const v1_bad[] = {
    "GET / HTTP/1.1\r\n",
    "PROXY\r\n",
    "PROXY \r\n",
    "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
    "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
    "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
    "PROXY TCP6 [::1] ::1 1 2\r\n",
    "PROXY TCP6 ::1 ::1 1 2\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
    "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.\xc4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n",
};

ParameterizedTestParameters(v1, malformed)
{
    static size_t idx[NELEMS(v1_bad)];

    for (size_t i = 0; i < NELEMS(v1_bad); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NELEMS(v1_bad));
}

ParameterizedTest(size_t *i, v1, malformed)
{
    struct proxyproto_hdr h;

    cr_assert_eq(parse(v1_bad[*i], strlen(v1_bad[*i]), &h), -1, "accepted: %s", v1_bad[*i]);
}

/* A header that is no header is refused at its first wrong byte, whatever follows. */
Test(v1, refused_early)
{
    struct proxyproto_hdr h;

    cr_assert_eq(parse("G", 1, &h), -1);
    cr_assert_eq(parse("PROXX", 5, &h), -1);
    cr_assert_eq(parse("PROXY", 5, &h), 0);
    cr_assert_eq(parse("\x16\x03\x01", 3, &h), -1); /* a TLS ClientHello */
    cr_assert_eq(parse("PROXY TCP4 1.2.3.4\0005.6.7.8 1 2\r\n", 35, &h), -1);
}

/* ---- version 2 ---- */

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header in out: version/command byte vc, family byte fam, then body[0..blen);
 * its length. */
static size_t
v2(uint8_t *out, uint8_t vc, uint8_t fam, const void *body, size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = vc;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen > 0)
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

Test(v2, inet_with_tlvs)
{
    static const uint8_t body[] = {
        192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb, /* addresses, ports */
        0x01, 0x00, 0x02, 'h', '2',                             /* ALPN */
        0x02, 0x00, 0x05, 'a', '.', 'c', 'o', 'm',              /* authority */
        0x04, 0x00, 0x00,                                       /* NOOP, empty */
        0xe0, 0x00, 0x03, 1, 2, 3,                              /* a custom one */
    };
    uint8_t b[128];
    size_t n = v2(b, 0x21, 0x11, body, sizeof(body));
    struct proxyproto_hdr h;
    char buf[64];

    memcpy(b + n, "GET", 3);
    cr_assert_eq(parse(b, n + 3, &h), (ssize_t)n);
    cr_assert_eq(h.version, 2);
    cr_assert(h.has_addr);
    cr_assert_str_eq(addr_text(&h.src, buf, sizeof(buf)), "192.0.2.1:56324");
    cr_assert_str_eq(addr_text(&h.dst, buf, sizeof(buf)), "198.51.100.2:443");
    prefixes_wait(b, n);
}

Test(v2, inet6)
{
    uint8_t body[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1, [16] = 0x20, [17] = 0x01,
                        [18] = 0x0d, [19] = 0xb8, [31] = 2, [32] = 0x30, [33] = 0x39,
                        [34] = 0, [35] = 80};
    uint8_t b[128];
    size_t n = v2(b, 0x21, 0x21, body, sizeof(body));
    struct proxyproto_hdr h;
    char buf[64];

    cr_assert_eq(parse(b, n, &h), (ssize_t)n);
    cr_assert_eq(h.srclen, sizeof(struct sockaddr_in6));
    cr_assert_str_eq(addr_text(&h.src, buf, sizeof(buf)), "[2001:db8::1]:12345");
    cr_assert_str_eq(addr_text(&h.dst, buf, sizeof(buf)), "[2001:db8::2]:80");
}

/* LOCAL (a balancer's own health check) keeps the connection's addresses, whatever the
 * family and body say; so do an unspecified family and a unix socket's addresses. */
Test(v2, local_unspec_unix_keep_the_peer)
{
    uint8_t b[512], body[216] = {0};
    struct proxyproto_hdr h;
    size_t n;

    n = v2(b, 0x20, 0x00, NULL, 0);
    cr_assert_eq(parse(b, n, &h), 16);
    cr_assert_not(h.has_addr);
    n = v2(b, 0x20, 0x11, "\xff\xff\xff", 3); /* LOCAL: the body is not looked at */
    cr_assert_eq(parse(b, n, &h), (ssize_t)n);
    cr_assert_not(h.has_addr);
    n = v2(b, 0x21, 0x00, NULL, 0);
    cr_assert_eq(parse(b, n, &h), 16);
    cr_assert_not(h.has_addr);
    n = v2(b, 0x21, 0x31, body, sizeof(body));
    cr_assert_eq(parse(b, n, &h), (ssize_t)n);
    cr_assert_not(h.has_addr);
}

/* The largest header taken is 4096 bytes; a longer one is refused as soon as its length
 * is known, without waiting for it. */
Test(v2, length_is_bounded)
{
    static uint8_t b[16 + 65535];
    uint8_t body[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2};
    struct proxyproto_hdr h;
    size_t n = v2(b, 0x21, 0x11, body, sizeof(body));
    size_t pad = PROXYPROTO_MAX - n - 3;

    /* One TLV fills it to exactly the bound. */
    b[n] = 0x04;
    b[n + 1] = (uint8_t)(pad >> 8);
    b[n + 2] = (uint8_t)pad;
    b[14] = (uint8_t)((PROXYPROTO_MAX - 16) >> 8);
    b[15] = (uint8_t)(PROXYPROTO_MAX - 16);
    cr_assert_eq(parse(b, PROXYPROTO_MAX, &h), PROXYPROTO_MAX);
    cr_assert_eq(parse(b, PROXYPROTO_MAX - 1, &h), 0);
    b[15]++;
    cr_assert_eq(parse(b, 16, &h), -1);
    b[14] = b[15] = 0xff;
    cr_assert_eq(parse(b, 16, &h), -1);
}

Test(v2, malformed)
{
    uint8_t inet[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2};
    uint8_t b[256], body[64];
    struct proxyproto_hdr h;
    size_t n;

    /* version 1 in the binary form, version 3, command 2 */
    n = v2(b, 0x11, 0x11, inet, sizeof(inet));
    cr_assert_eq(parse(b, n, &h), -1);
    cr_assert_eq(parse(b, 13, &h), -1); /* known from the 13th byte on */
    n = v2(b, 0x31, 0x11, inet, sizeof(inet));
    cr_assert_eq(parse(b, n, &h), -1);
    n = v2(b, 0x22, 0x11, inet, sizeof(inet));
    cr_assert_eq(parse(b, n, &h), -1);
    /* each byte of the signature wrong in turn */
    for (size_t i = 0; i < 12; i++) {
        n = v2(b, 0x21, 0x11, inet, sizeof(inet));
        b[i] ^= 0x40;
        cr_assert_eq(parse(b, n, &h), -1, "signature byte %zu", i);
        cr_assert_eq(parse(b, i + 1, &h), -1, "signature byte %zu, early", i);
    }
    /* addresses shorter than the family needs */
    n = v2(b, 0x21, 0x11, inet, 11);
    cr_assert_eq(parse(b, n, &h), -1);
    memset(body, 0, sizeof(body));
    n = v2(b, 0x21, 0x21, body, 35);
    cr_assert_eq(parse(b, n, &h), -1);
    n = v2(b, 0x21, 0x31, body, 64);
    cr_assert_eq(parse(b, n, &h), -1);
    /* datagrams, unknown families and protocols */
    n = v2(b, 0x21, 0x12, inet, sizeof(inet));
    cr_assert_eq(parse(b, n, &h), -1);
    n = v2(b, 0x21, 0x41, inet, sizeof(inet));
    cr_assert_eq(parse(b, n, &h), -1);
    n = v2(b, 0x21, 0x13, inet, sizeof(inet));
    cr_assert_eq(parse(b, n, &h), -1);
    /* TLVs that do not fill the rest exactly */
    memcpy(body, inet, 12);
    memcpy(body + 12, "\x01\x00\x05h2", 5); /* says 5 bytes, has 2 */
    n = v2(b, 0x21, 0x11, body, 17);
    cr_assert_eq(parse(b, n, &h), -1);
    memcpy(body + 12, "\x01\x00", 2); /* a TLV head cut short */
    n = v2(b, 0x21, 0x11, body, 14);
    cr_assert_eq(parse(b, n, &h), -1);
    memcpy(body + 12, "\x04", 1);
    n = v2(b, 0x21, 0x11, body, 13);
    cr_assert_eq(parse(b, n, &h), -1);
}

/* Anything at all: never a length past the input, never a crash. */
Test(both, random_input)
{
    uint8_t b[600];
    struct proxyproto_hdr h;
    unsigned seed = 12345;

    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(b));
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)rand_r(&seed);
        /* Half start as a header would, so the parsers get past the first byte. */
        if (round % 4 == 1 && len >= 16)
            memcpy(b, sig, 12);
        if (round % 4 == 2 && len >= 6)
            memcpy(b, "PROXY ", 6);
        ssize_t n = parse(b, len, &h);
        cr_assert(n <= (ssize_t)len);
    }
}

/* ---- the writers ---- */

/* text ("192.0.2.1", "2001:db8::1") and port as a socket address in *ss. */
static const struct sockaddr *
sa(struct sockaddr_storage *ss, const char *text, unsigned port)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET, text, &sin->sin_addr), 1, "%s", text);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1, "%s", text);
    }
    return (const struct sockaddr *)ss;
}

/* Write with version v (into a buffer exactly PROXYPROTO_OUT_MAX long, so that ASan sees
 * any byte past it), read back: the parser takes exactly what was written, and gives the
 * header's addresses as "SRC DST" in out ("-" when it has none). */
static size_t
round_trip(int v, const struct sockaddr *src, const struct sockaddr *dst, uint8_t *b,
           char *out, size_t outlen)
{
    struct proxyproto_hdr h;
    char s[64], d[64];
    size_t n = v == 1 ? proxyproto_write_v1(src, dst, b) : proxyproto_write_v2(src, dst, b);

    cr_assert(n > 0 && n <= PROXYPROTO_OUT_MAX);
    cr_assert_eq(parse(b, n, &h), (ssize_t)n);
    cr_assert_eq(h.version, v);
    prefixes_wait(b, n);
    if (!h.has_addr) {
        snprintf(out, outlen, "-");
        return n;
    }
    cr_assert_eq(h.src.ss_family, h.dst.ss_family);
    snprintf(out, outlen, "%s %s", addr_text(&h.src, s, sizeof(s)),
             addr_text(&h.dst, d, sizeof(d)));
    return n;
}

Test(write, v1_tcp4)
{
    struct sockaddr_storage s, d;
    uint8_t *b = malloc(PROXYPROTO_OUT_MAX);
    char out[128];
    size_t n;

    n = round_trip(1, sa(&s, "192.0.2.1", 56324), sa(&d, "198.51.100.2", 443), b, out,
                   sizeof(out));
    cr_assert_eq(n, strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"));
    cr_assert_eq(memcmp(b, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", n), 0);
    cr_assert_str_eq(out, "192.0.2.1:56324 198.51.100.2:443");
    /* A port X-Forwarded-For did not give is 0. */
    round_trip(1, sa(&s, "203.0.113.7", 0), sa(&d, "10.0.0.1", 80), b, out, sizeof(out));
    cr_assert_str_eq(out, "203.0.113.7:0 10.0.0.1:80");
    free(b);
}

Test(write, v1_tcp6_and_the_longest_line)
{
    static const char ff[] = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
    struct sockaddr_storage s, d;
    uint8_t *b = malloc(PROXYPROTO_OUT_MAX);
    char out[200], want[200];
    size_t n;

    n = round_trip(1, sa(&s, "2001:db8::7", 4243), sa(&d, "2001:db8::1", 8080), b, out,
                   sizeof(out));
    cr_assert_eq(memcmp(b, "PROXY TCP6 2001:db8::7 2001:db8::1 4243 8080\r\n", n), 0);
    cr_assert_str_eq(out, "[2001:db8::7]:4243 [2001:db8::1]:8080");
    n = round_trip(1, sa(&s, ff, 65535), sa(&d, ff, 65535), b, out, sizeof(out));
    snprintf(want, sizeof(want), "PROXY TCP6 %s %s 65535 65535\r\n", ff, ff);
    cr_assert_eq(n, strlen(want));
    cr_assert_eq(n, 104);
    cr_assert_eq(memcmp(b, want, n), 0);
    free(b);
}

/* A dual-stack socket's IPv4 peers are IPv4 in the header; one IPv6 address makes both
 * IPv6, the IPv4 one mapped. */
Test(write, families_mixed_and_mapped)
{
    struct sockaddr_storage s, d;
    uint8_t b[PROXYPROTO_OUT_MAX];
    char out[200];

    for (int v = 1; v <= 2; v++) {
        round_trip(v, sa(&s, "::ffff:192.0.2.1", 1000), sa(&d, "::ffff:127.0.0.1", 8080), b,
                   out, sizeof(out));
        cr_assert_str_eq(out, "192.0.2.1:1000 127.0.0.1:8080", "v%d", v);
        round_trip(v, sa(&s, "192.0.2.1", 1000), sa(&d, "::ffff:127.0.0.1", 8080), b, out,
                   sizeof(out));
        cr_assert_str_eq(out, "192.0.2.1:1000 127.0.0.1:8080", "v%d", v);
        round_trip(v, sa(&s, "192.0.2.1", 1000), sa(&d, "2001:db8::1", 443), b, out,
                   sizeof(out));
        cr_assert_str_eq(out, "[::ffff:192.0.2.1]:1000 [2001:db8::1]:443", "v%d", v);
        round_trip(v, sa(&s, "2001:db8::9", 1000), sa(&d, "::ffff:10.1.2.3", 443), b, out,
                   sizeof(out));
        cr_assert_str_eq(out, "[2001:db8::9]:1000 [::ffff:10.1.2.3]:443", "v%d", v);
    }
}

Test(write, v2_inet_bytes)
{
    static const uint8_t want[] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21, 0x11, 0x00, 0x0c,                         /* v2 PROXY, TCP over IPv4, 12 */
        192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb,
    };
    struct sockaddr_storage s, d;
    uint8_t b[PROXYPROTO_OUT_MAX];
    char out[128];
    size_t n;

    n = round_trip(2, sa(&s, "192.0.2.1", 56324), sa(&d, "198.51.100.2", 443), b, out,
                   sizeof(out));
    cr_assert_eq(n, sizeof(want));
    cr_assert_eq(memcmp(b, want, n), 0);
    cr_assert_str_eq(out, "192.0.2.1:56324 198.51.100.2:443");
}

Test(write, v2_inet6)
{
    struct sockaddr_storage s, d;
    uint8_t b[PROXYPROTO_OUT_MAX];
    char out[128];
    size_t n;

    n = round_trip(2, sa(&s, "2001:db8::1", 12345), sa(&d, "2001:db8::2", 80), b, out,
                   sizeof(out));
    cr_assert_eq(n, 52);
    cr_assert_eq(b[12], 0x21);
    cr_assert_eq(b[13], 0x21); /* TCP over IPv6 */
    cr_assert_eq(b[15], 36);
    cr_assert_str_eq(out, "[2001:db8::1]:12345 [2001:db8::2]:80");
}

/* No address, or a unix socket's: v1 UNKNOWN, v2 LOCAL with no address; the receiver
 * keeps the connection's own. */
Test(write, unknown_and_local)
{
    static const uint8_t local[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                                    0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00};
    struct sockaddr_storage s, d, un = {.ss_family = AF_UNIX};
    const struct sockaddr *srcs[] = {NULL, (struct sockaddr *)&un, sa(&s, "192.0.2.1", 1)};
    const struct sockaddr *dsts[] = {sa(&d, "127.0.0.1", 80), sa(&d, "127.0.0.1", 80), NULL};
    uint8_t b[PROXYPROTO_OUT_MAX];
    char out[128];

    for (size_t i = 0; i < NELEMS(srcs); i++) {
        cr_assert_eq(round_trip(1, srcs[i], dsts[i], b, out, sizeof(out)), 15);
        cr_assert_eq(memcmp(b, "PROXY UNKNOWN\r\n", 15), 0);
        cr_assert_str_eq(out, "-");
        cr_assert_eq(round_trip(2, srcs[i], dsts[i], b, out, sizeof(out)), sizeof(local));
        cr_assert_eq(memcmp(b, local, sizeof(local)), 0);
        cr_assert_str_eq(out, "-");
    }
}

/* Any addresses at all: what is read back is what was written (after the family rules). */
Test(write, random_round_trips)
{
    unsigned seed = 4242;
    uint8_t b[PROXYPROTO_OUT_MAX];

    for (int round = 0; round < 5000; round++) {
        struct sockaddr_storage ss[2];
        struct endpoint want[2], got[2];
        struct proxyproto_hdr h;
        for (int k = 0; k < 2; k++) {
            memset(&ss[k], 0, sizeof(ss[k]));
            if (rand_r(&seed) % 2) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss[k];
                sin->sin_family = AF_INET;
                sin->sin_addr.s_addr = (uint32_t)rand_r(&seed);
                sin->sin_port = (uint16_t)rand_r(&seed);
            } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss[k];
                sin6->sin6_family = AF_INET6;
                for (size_t i = 0; i < 16; i++)
                    sin6->sin6_addr.s6_addr[i] = (uint8_t)rand_r(&seed);
                if (rand_r(&seed) % 4 == 0) /* now and then a mapped one */
                    memcpy(sin6->sin6_addr.s6_addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
                sin6->sin6_port = (uint16_t)rand_r(&seed);
            }
        }
        int v = 1 + round % 2;
        size_t n = v == 1 ? proxyproto_write_v1((struct sockaddr *)&ss[0],
                                                (struct sockaddr *)&ss[1], b)
                          : proxyproto_write_v2((struct sockaddr *)&ss[0],
                                                (struct sockaddr *)&ss[1], b);
        cr_assert_eq(parse(b, n, &h), (ssize_t)n, "round %d", round);
        cr_assert(h.has_addr);
        cr_assert_eq(endpoints((struct sockaddr *)&ss[0], (struct sockaddr *)&ss[1], &want[0],
                               &want[1]), 0);
        cr_assert_eq(endpoints((struct sockaddr *)&h.src, (struct sockaddr *)&h.dst, &got[0],
                               &got[1]), 0);
        cr_assert_eq(memcmp(want, got, sizeof(want)), 0, "round %d: %.*s", round,
                     v == 1 ? (int)n : 0, (const char *)b);
    }
}

/* ---- the reader ---- */

static h2o_evloop_t *loop;
static h2o_globalconf_t gconf;
static h2o_context_t hctx;
static int client = -1;
static h2o_socket_t *server;
static int done_called, closed;
static char rest[256];
static size_t rest_len;
static struct sockaddr_storage peer;
static socklen_t peer_len;

static void
on_test_close(void *data)
{
    (void)data;
    closed = 1;
}

static void
on_done(h2o_socket_t *sock, void *arg)
{
    cr_assert_eq(arg, &hctx);
    cr_assert_null(sock->data);
    done_called = 1;
    rest_len = sock->input->size < sizeof(rest) ? sock->input->size : sizeof(rest);
    if (rest_len > 0)
        memcpy(rest, sock->input->bytes, rest_len);
    peer_len = h2o_socket_getpeername(sock, (struct sockaddr *)&peer);
    h2o_socket_close(sock);
}

static void
setup(void)
{
    int sv[2];

    loop = h2o_evloop_create();
    h2o_config_init(&gconf);
    h2o_config_register_host(&gconf, h2o_iovec_init(H2O_STRLIT("t")), 65535);
    gconf.handshake_timeout = 200;
    h2o_context_init(&hctx, loop, &gconf);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client = sv[1];
    server = h2o_evloop_socket_create(loop, sv[0], 0);
    server->on_close.cb = on_test_close;
    done_called = closed = 0;
    lines_logged = 0;
    proxyproto_read(server, &hctx, on_done, &hctx);
}

static void
teardown(void)
{
    if (client != -1)
        close(client);
    client = -1;
}

/* Turn the loop until the reader has handed the socket on or it was closed. */
static void
run_until_settled(void)
{
    for (int i = 0; i < 100 && !done_called && !closed; i++)
        h2o_evloop_run(loop, 50);
}

static void
send_all(const void *b, size_t len)
{
    cr_assert_eq(write(client, b, len), (ssize_t)len);
}

Test(reader, header_in_pieces_then_http, .init = setup, .fini = teardown)
{
    static const char hdr[] = "PROXY TCP4 203.0.113.7 192.0.2.1 4242 80\r\nGET / HTTP/1.1\r\n";
    char buf[64];

    /* One byte at a time, the loop turning in between: the reader waits for the rest. */
    for (size_t i = 0; i < 20; i++) {
        send_all(hdr + i, 1);
        h2o_evloop_run(loop, 10);
        cr_assert_not(done_called);
        cr_assert_not(closed);
    }
    send_all(hdr + 20, sizeof(hdr) - 1 - 20);
    run_until_settled();
    cr_assert(done_called);
    cr_assert_eq(rest_len, strlen("GET / HTTP/1.1\r\n"));
    cr_assert_eq(memcmp(rest, "GET / HTTP/1.1\r\n", rest_len), 0);
    cr_assert_eq(peer_len, sizeof(struct sockaddr_in));
    cr_assert_str_eq(addr_text(&peer, buf, sizeof(buf)), "203.0.113.7:4242");
}

Test(reader, local_keeps_the_peer, .init = setup, .fini = teardown)
{
    uint8_t b[64];
    size_t n = v2(b, 0x20, 0x00, NULL, 0);

    send_all(b, n);
    run_until_settled();
    cr_assert(done_called);
    cr_assert_eq(rest_len, 0);
    cr_assert_eq(peer.ss_family, AF_UNIX);
}

Test(reader, malformed_is_closed_with_a_line, .init = setup, .fini = teardown)
{
    send_all("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", 36);
    run_until_settled();
    cr_assert(closed);
    cr_assert_not(done_called);
    cr_assert_eq(lines_logged, 1);
}

Test(reader, no_header_is_closed, .init = setup, .fini = teardown)
{
    send_all("GET / HTTP/1.1\r\n\r\n", 18);
    run_until_settled();
    cr_assert(closed);
    cr_assert_not(done_called);
}

Test(reader, silence_times_out, .init = setup, .fini = teardown)
{
    int64_t t0 = util_now_ms();

    send_all("PROXY TCP4", 10);
    run_until_settled();
    cr_assert(closed);
    cr_assert_not(done_called);
    cr_assert_geq(util_now_ms() - t0, 150);
    cr_assert_eq(lines_logged, 1);
}

/* A connection closed before it sent a byte (a TCP health check) goes without a line. */
Test(reader, quiet_close, .init = setup, .fini = teardown)
{
    close(client);
    client = -1;
    run_until_settled();
    cr_assert(closed);
    cr_assert_eq(lines_logged, 0);
}
