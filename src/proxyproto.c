/* The PROXY protocol, versions 1 and 2, as a receiver: the header's parser (pure), and the
 * reader a worker runs on each connection of a `proxy_protocol` listen before TLS or
 * HTTP. The version is told by the first byte: 'P' for the text line, CR for the binary
 * signature; anything else is no header, and the connection is closed. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxyproto.h"
#include "util.h"
#include "worker.h"

static const char v1_prefix[] = "PROXY ";
static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* ---- version 1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n" ---- */

/* addr and port of family fam into ss; its length, or 0 when either is malformed. */
static socklen_t
v1_sockaddr(int fam, const char *addr, const char *port, struct sockaddr_storage *ss)
{
    int p = util_port_text(port, strlen(port));

    memset(ss, 0, sizeof(*ss));
    if (p < 0)
        return 0;
    if (fam == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
            return 0;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
        return 0;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)p);
    return sizeof(*sin6);
}

/* The fields of the line (without CRLF, NUL-terminated, printable) as proxyproto_parse
 * says. */
static int
v1_fields(char *line, struct proxyproto_hdr *h, const char **why)
{
    char *f[6];
    size_t n = 0;
    int fam;

    /* Exactly one space between fields: an empty field is malformed. */
    for (char *p = line;; p++) {
        if (n == NELEMS(f)) {
            *why = "PROXY v1: too many fields";
            return -1;
        }
        f[n++] = p;
        p = strchr(p, ' ');
        if (p == NULL)
            break;
        *p = '\0';
        /* UNKNOWN: what follows is not looked at. */
        if (n == 2 && strcmp(f[1], "UNKNOWN") == 0)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        if (f[i][0] == '\0') {
            *why = "PROXY v1: empty field (one space between fields)";
            return -1;
        }
    }
    if (n >= 2 && strcmp(f[1], "UNKNOWN") == 0) {
        h->has_addr = 0;
        return 0;
    }
    if (n < 2 || (strcmp(f[1], "TCP4") != 0 && strcmp(f[1], "TCP6") != 0)) {
        *why = "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN";
        return -1;
    }
    if (n != 6) {
        *why = "PROXY v1: too few fields";
        return -1;
    }
    fam = f[1][3] == '4' ? AF_INET : AF_INET6;
    h->srclen = v1_sockaddr(fam, f[2], f[4], &h->src);
    h->dstlen = v1_sockaddr(fam, f[3], f[5], &h->dst);
    if (h->srclen == 0 || h->dstlen == 0) {
        *why = "PROXY v1: malformed address or port";
        return -1;
    }
    h->has_addr = 1;
    return 0;
}

static ssize_t
parse_v1(const uint8_t *b, size_t len, struct proxyproto_hdr *h, const char **why)
{
    char line[PROXYPROTO_V1_MAX];
    size_t i, lim = len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX;

    if (memcmp(b, v1_prefix, len < 6 ? len : 6) != 0) {
        *why = "no PROXY header";
        return -1;
    }
    /* The line, up to CR, in printable bytes. */
    for (i = 0; i < lim && b[i] != '\r'; i++) {
        if (b[i] < 0x20 || b[i] > 0x7e) {
            *why = "PROXY v1: control or non-ASCII byte in the line";
            return -1;
        }
    }
    if (i == lim)
        return len >= PROXYPROTO_V1_MAX ? (*why = "PROXY v1: line longer than 107 bytes", -1)
                                        : 0;
    if (i + 1 == len)
        return 0;
    if (b[i + 1] != '\n' || i + 2 > PROXYPROTO_V1_MAX) {
        *why = b[i + 1] != '\n' ? "PROXY v1: CR without LF" : "PROXY v1: line longer than "
                                                               "107 bytes";
        return -1;
    }
    if (i < 6) {
        *why = "no PROXY header";
        return -1;
    }
    memcpy(line, b, i);
    line[i] = '\0';
    h->version = 1;
    if (v1_fields(line, h, why) == -1)
        return -1;
    return (ssize_t)(i + 2);
}

/* ---- version 2: signature, version and command, family, length, addresses, TLVs ---- */

enum { V2_LOCAL = 0, V2_PROXY = 1 };
enum { V2_AF_UNSPEC = 0, V2_AF_INET = 1, V2_AF_INET6 = 2, V2_AF_UNIX = 3 };
enum { V2_UNSPEC = 0, V2_STREAM = 1, V2_DGRAM = 2 };

/* The addresses of a PROXY command (b at the address block, dlen its length with the
 * TLVs) into h; how many bytes they take, or -1 with *why. */
static ssize_t
v2_addrs(const uint8_t *b, size_t dlen, uint8_t fam, struct proxyproto_hdr *h,
         const char **why)
{
    static const size_t need[] = {[V2_AF_UNSPEC] = 0, [V2_AF_INET] = 12, [V2_AF_INET6] = 36,
                                  [V2_AF_UNIX] = 216};
    unsigned af = fam >> 4, proto = fam & 0xfu;

    if (af > V2_AF_UNIX || proto > V2_DGRAM) {
        *why = "PROXY v2: unknown address family or protocol";
        return -1;
    }
    if (proto == V2_DGRAM) {
        *why = "PROXY v2: a datagram connection on a stream socket";
        return -1;
    }
    if (dlen < need[af]) {
        *why = "PROXY v2: address block shorter than its family needs";
        return -1;
    }
    h->has_addr = af == V2_AF_INET || af == V2_AF_INET6;
    if (af == V2_AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src, *d = (struct sockaddr_in *)&h->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, b, 4);
        memcpy(&d->sin_addr, b + 4, 4);
        memcpy(&s->sin_port, b + 8, 2);
        memcpy(&d->sin_port, b + 10, 2);
        h->srclen = h->dstlen = sizeof(struct sockaddr_in);
    } else if (af == V2_AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src,
                            *d = (struct sockaddr_in6 *)&h->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, b, 16);
        memcpy(&d->sin6_addr, b + 16, 16);
        memcpy(&s->sin6_port, b + 32, 2);
        memcpy(&d->sin6_port, b + 34, 2);
        h->srclen = h->dstlen = sizeof(struct sockaddr_in6);
    }
    return (ssize_t)need[af];
}

/* TLVs fill b[0..len) exactly: type (1), length (2), value. */
static int
v2_tlvs_ok(const uint8_t *b, size_t len)
{
    size_t off = 0;

    while (off < len) {
        if (len - off < 3)
            return 0;
        size_t vlen = (size_t)b[off + 1] << 8 | b[off + 2];
        if (len - off - 3 < vlen)
            return 0;
        off += 3 + vlen;
    }
    return 1;
}

static ssize_t
parse_v2(const uint8_t *b, size_t len, struct proxyproto_hdr *h, const char **why)
{
    size_t dlen, total;
    ssize_t alen;

    if (memcmp(b, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0) {
        *why = "no PROXY header (bad v2 signature)";
        return -1;
    }
    if (len > 12 && (b[12] >> 4 != 2 || (b[12] & 0xfu) > V2_PROXY)) {
        *why = "PROXY v2: unknown version or command";
        return -1;
    }
    if (len < 16)
        return 0;
    dlen = (size_t)b[14] << 8 | b[15];
    total = 16 + dlen;
    if (total > PROXYPROTO_MAX) {
        *why = "PROXY v2: header longer than 4096 bytes";
        return -1;
    }
    if (len < total)
        return 0;
    h->version = 2;
    /* LOCAL (the balancer's own connection, a health check): the addresses are ignored. */
    if ((b[12] & 0xfu) == V2_LOCAL) {
        h->has_addr = 0;
        return (ssize_t)total;
    }
    alen = v2_addrs(b + 16, dlen, b[13], h, why);
    if (alen < 0)
        return -1;
    if (!v2_tlvs_ok(b + 16 + alen, dlen - (size_t)alen)) {
        *why = "PROXY v2: malformed TLV";
        return -1;
    }
    return (ssize_t)total;
}

ssize_t
proxyproto_parse(const void *buf, size_t len, struct proxyproto_hdr *h, const char **why)
{
    const uint8_t *b = buf;

    memset(h, 0, sizeof(*h));
    *why = NULL;
    if (len == 0)
        return 0;
    if (b[0] == 'P')
        return parse_v1(b, len, h, why);
    if (b[0] == v2_sig[0])
        return parse_v2(b, len, h, why);
    *why = "no PROXY header";
    return -1;
}

/* ---- the reader, in a worker ---- */

struct reader {
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout;
    proxyproto_done_fn *done;
    void *arg;
};

static void
reader_free(struct reader *r)
{
    h2o_timeout_unlink(&r->timeout);
    r->sock->data = NULL;
    free(r);
}

void
proxyproto_close(h2o_socket_t *sock, const char *why)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[NI_MAXHOST] = "?";
    int32_t port = 0;

    if (worker_error_line_allowed()) {
        len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
        if (len != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, len, host) != SIZE_MAX)
            port = h2o_socket_getport((struct sockaddr *)&ss);
        log_warnx("closing connection from %s:%d: %s", host, (int)port, why);
    }
    h2o_socket_close(sock);
}

static void
refuse(struct reader *r, const char *why)
{
    h2o_socket_t *sock = r->sock;

    reader_free(r);
    proxyproto_close(sock, why);
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
    struct reader *r = sock->data;
    struct proxyproto_hdr h;
    proxyproto_done_fn *done;
    const char *why;
    void *arg;
    ssize_t n;

    if (err != NULL) {
        /* A balancer's TCP health check connects and closes: not worth a line. */
        if (sock->input->size == 0) {
            reader_free(r);
            h2o_socket_close(sock);
        } else {
            refuse(r, "connection closed inside the PROXY header");
        }
        return;
    }
    n = proxyproto_parse(sock->input->bytes, sock->input->size, &h, &why);
    if (n == 0)
        return;
    if (n < 0) {
        refuse(r, why);
        return;
    }
    /* Whoever comes next starts its own reading. */
    h2o_socket_read_stop(sock);
    h2o_buffer_consume(&sock->input, (size_t)n);
    if (h.has_addr)
        h2o_socket_setpeername(sock, (struct sockaddr *)&h.src, h.srclen);
    done = r->done;
    arg = r->arg;
    reader_free(r);
    done(sock, arg);
}

static void
on_timeout(h2o_timeout_entry_t *entry)
{
    refuse(H2O_STRUCT_FROM_MEMBER(struct reader, timeout, entry),
           "no complete PROXY header within handshake_timeout");
}

void
proxyproto_read(h2o_socket_t *sock, h2o_context_t *ctx, proxyproto_done_fn *done, void *arg)
{
    struct reader *r = xcalloc(1, sizeof(*r));

    r->sock = sock;
    r->done = done;
    r->arg = arg;
    r->timeout.cb = on_timeout;
    sock->data = r;
    h2o_timeout_link(ctx->loop, &ctx->handshake_timeout, &r->timeout);
    h2o_socket_read_start(sock, on_read);
}
