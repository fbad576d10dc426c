/* The PROXY protocol, versions 1 and 2, as a sender: the header a connection to an
 * upstream server of a `proxy_protocol` group starts with, naming the client it is opened
 * for. Pure (unit tests and the fuzzer drive it, the proxy handler calls it in workers);
 * kept apart from the reader, which needs a worker. */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxyproto.h"

/* Version 2: the signature, then version and command, family and protocol, length. */
static const uint8_t out_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
enum {
    OUT_LOCAL = 0x20,  /* version 2, LOCAL */
    OUT_PROXY = 0x21,  /* version 2, PROXY */
    OUT_UNSPEC = 0x00, /* no family, no protocol */
    OUT_TCP4 = 0x11,   /* AF_INET, STREAM */
    OUT_TCP6 = 0x21,   /* AF_INET6, STREAM */
};

/* An address as a header carries it: family, address bytes (4 or 16 used), port. */
struct endpoint {
    int family;
    uint8_t addr[16];
    uint16_t port; /* network order */
};

/* sa as an endpoint, an IPv4-mapped address as IPv4; -1 for NULL or another family. */
static int
endpoint_of(const struct sockaddr *sa, struct endpoint *e)
{
    memset(e, 0, sizeof(*e));
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        e->family = AF_INET;
        memcpy(e->addr, &sin->sin_addr, 4);
        e->port = sin->sin_port;
        return 0;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        int mapped = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
        e->family = mapped ? AF_INET : AF_INET6;
        memcpy(e->addr, sin6->sin6_addr.s6_addr + (mapped ? 12 : 0), mapped ? 4 : 16);
        e->port = sin6->sin6_port;
        return 0;
    }
    return -1;
}

/* e as IPv6: an IPv4 address becomes ::ffff:a.b.c.d. */
static void
endpoint_v6(struct endpoint *e)
{
    if (e->family != AF_INET)
        return;
    memmove(e->addr + 12, e->addr, 4);
    memset(e->addr, 0, 10);
    e->addr[10] = e->addr[11] = 0xff;
    e->family = AF_INET6;
}

/* src and dst as endpoints of one family; -1 when either is none. */
static int
endpoints(const struct sockaddr *src, const struct sockaddr *dst, struct endpoint *s,
          struct endpoint *d)
{
    if (endpoint_of(src, s) == -1 || endpoint_of(dst, d) == -1)
        return -1;
    if (s->family != d->family) {
        endpoint_v6(s);
        endpoint_v6(d);
    }
    return 0;
}

size_t
proxyproto_write_v1(const struct sockaddr *src, const struct sockaddr *dst, void *buf)
{
    static const char unknown[] = "PROXY UNKNOWN\r\n";
    char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    struct endpoint s, d;
    int n;

    if (endpoints(src, dst, &s, &d) == -1) {
        memcpy(buf, unknown, sizeof(unknown) - 1);
        return sizeof(unknown) - 1;
    }
    /* inet_ntop cannot fail here: each address is of the family named, each buffer of
     * INET6_ADDRSTRLEN. */
    (void)inet_ntop(s.family, s.addr, sa, sizeof(sa));
    (void)inet_ntop(d.family, d.addr, da, sizeof(da));
    /* At most 104 bytes and the NUL: "PROXY TCP6 ", two addresses of at most 39 (inet_ntop
     * writes a dotted quad only in the short mapped and compatible forms), two ports. */
    n = snprintf(buf, PROXYPROTO_OUT_MAX, "PROXY TCP%c %s %s %u %u\r\n",
                 s.family == AF_INET ? '4' : '6', sa, da, (unsigned)ntohs(s.port),
                 (unsigned)ntohs(d.port));
    assert(n > 0 && n < PROXYPROTO_OUT_MAX);
    return (size_t)n;
}

size_t
proxyproto_write_v2(const struct sockaddr *src, const struct sockaddr *dst, void *buf)
{
    uint8_t *b = buf;
    struct endpoint s, d;
    size_t alen;

    memcpy(b, out_sig, sizeof(out_sig));
    if (endpoints(src, dst, &s, &d) == -1) {
        b[12] = OUT_LOCAL;
        b[13] = OUT_UNSPEC;
        b[14] = b[15] = 0;
        return 16;
    }
    alen = s.family == AF_INET ? 4 : 16;
    b[12] = OUT_PROXY;
    b[13] = s.family == AF_INET ? OUT_TCP4 : OUT_TCP6;
    b[14] = 0;
    b[15] = (uint8_t)(2 * alen + 4);
    memcpy(b + 16, s.addr, alen);
    memcpy(b + 16 + alen, d.addr, alen);
    memcpy(b + 16 + 2 * alen, &s.port, 2);
    memcpy(b + 18 + 2 * alen, &d.port, 2);
    return 20 + 2 * alen;
}
