/* libFuzzer harness for the PROXY protocol parser (src/proxyproto.c), run by `make fuzz`.
 * The input is what a peer sends first on a proxy_protocol listen. Checked for every input,
 * besides what ASan and UBSan catch:
 * - the result is -1 (with a reason), 0, or a length within the input, the bounds of its
 *   version (107 bytes for v1, PROXYPROTO_MAX for v2) and of the header it says it is;
 * - a header's length does not depend on what follows it;
 * - reading in pieces agrees with reading whole: a prefix of a complete header is "not
 *   complete yet", and a refusal of a prefix stands for the whole input (the reader closes
 *   the connection at the first refusal, so a later byte must not have rescued it);
 * - an address taken is an IPv4 or IPv6 one of the family's length; for v1, it is the
 *   line's own text;
 * - written back by the sender of its version (proxyproto_write_v1/v2) and read again, a
 *   header gives the same addresses (IPv4-mapped ones taken as IPv4, as the sender
 *   writes them), or again none.
 *
 * proxyproto.c and proxyproto_send.c are included for their statics; the worker's rate
 * limit is stubbed. */
#include "../../src/proxyproto.c"
#include "../../src/proxyproto_send.c"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
worker_error_line_allowed(void)
{
    return 0;
}

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz_proxyproto: %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* The v1 line's source address field (the third), as text. */
static void
check_v1_text(const uint8_t *data, ssize_t n, const struct proxyproto_hdr *h)
{
    char line[PROXYPROTO_V1_MAX + 1], a[INET6_ADDRSTRLEN];
    uint8_t x[16], y[16];
    char *f, *end;
    int fam = h->src.ss_family;

    memcpy(line, data, (size_t)n - 2);
    line[n - 2] = '\0';
    f = line + strlen("PROXY TCP4 ");
    end = strchr(f, ' ');
    CHECK(end != NULL);
    *end = '\0';
    /* inet_pton accepted the field: written back and read again it is the same address. */
    CHECK(inet_ntop(fam, fam == AF_INET ? (void *)&((struct sockaddr_in *)&h->src)->sin_addr
                                        : (void *)&((struct sockaddr_in6 *)&h->src)->sin6_addr,
                    a, sizeof(a)) != NULL);
    CHECK(inet_pton(fam, a, x) == 1 && inet_pton(fam, f, y) == 1);
    CHECK(memcmp(x, y, fam == AF_INET ? 4 : 16) == 0);
}

static void
check_result(const uint8_t *data, size_t size, ssize_t n, const struct proxyproto_hdr *h,
             const char *why)
{
    CHECK(n >= -1 && n <= (ssize_t)size);
    CHECK((n == -1) == (why != NULL));
    if (n <= 0)
        return;
    CHECK(h->version == 1 || h->version == 2);
    CHECK(h->version == 1 ? n <= PROXYPROTO_V1_MAX : n <= PROXYPROTO_MAX);
    if (h->version == 1) {
        CHECK(n >= 8 && data[n - 2] == '\r' && data[n - 1] == '\n');
    } else {
        CHECK(n >= 16 && (size_t)n == 16 + ((size_t)data[14] << 8 | data[15]));
    }
    if (!h->has_addr)
        return;
    CHECK(h->src.ss_family == h->dst.ss_family);
    CHECK(h->src.ss_family == AF_INET ? h->srclen == sizeof(struct sockaddr_in)
                                      : h->src.ss_family == AF_INET6 &&
                                            h->srclen == sizeof(struct sockaddr_in6));
    CHECK(h->dstlen == h->srclen);
    if (h->version == 1)
        check_v1_text(data, n, h);
}

/* h written by the sender of its version and read again: the same addresses, or none. */
static void
check_round_trip(const struct proxyproto_hdr *h)
{
    uint8_t out[PROXYPROTO_OUT_MAX];
    struct endpoint want[2], got[2];
    struct proxyproto_hdr r;
    const char *why;
    const struct sockaddr *src = h->has_addr ? (const struct sockaddr *)&h->src : NULL;
    const struct sockaddr *dst = h->has_addr ? (const struct sockaddr *)&h->dst : NULL;
    size_t n = h->version == 1 ? proxyproto_write_v1(src, dst, out)
                               : proxyproto_write_v2(src, dst, out);

    CHECK(n > 0 && n <= sizeof(out));
    CHECK(proxyproto_parse(out, n, &r, &why) == (ssize_t)n);
    CHECK(r.version == h->version && r.has_addr == h->has_addr);
    if (!h->has_addr)
        return;
    CHECK(endpoints(src, dst, &want[0], &want[1]) == 0);
    CHECK(endpoints((struct sockaddr *)&r.src, (struct sockaddr *)&r.dst, &got[0],
                    &got[1]) == 0);
    CHECK(memcmp(want, got, sizeof(want)) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxyproto_hdr h, hp;
    const char *why, *whyp;
    ssize_t n = proxyproto_parse(data, size, &h, &why);

    check_result(data, size, n, &h, why);
    if (n > 0) {
        /* Exactly the header: the same result. */
        CHECK(proxyproto_parse(data, (size_t)n, &hp, &whyp) == n);
        CHECK(hp.has_addr == h.has_addr && hp.srclen == h.srclen &&
              memcmp(&hp.src, &h.src, sizeof(h.src)) == 0);
        check_round_trip(&h);
    }
    /* Prefixes at 17 places, and just short of the header. */
    for (size_t k = 0; k <= 17; k++) {
        size_t cut = k == 17 ? (n > 0 ? (size_t)n - 1 : 0) : size * k / 17;
        ssize_t np = proxyproto_parse(data, cut, &hp, &whyp);
        check_result(data, cut, np, &hp, whyp);
        if (np == -1)
            CHECK(n == -1);
        if (n > 0 && cut < (size_t)n)
            CHECK(np == 0);
        if (np > 0)
            CHECK(np == n);
    }
    return 0;
}
