/* The client's address: trusted networks (parsed by the master at load), and per request in
 * workers the peer, or the X-Forwarded-For entry beyond the trusted proxies (the walk of
 * nginx's real_ip_recursive and Caddy's trusted_proxies). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientaddr.h"
#include "conf.h"
#include "util.h"

/* The bytes of an address, as networks hold them: an IPv4-mapped IPv6 address as IPv4.
 * 0 for a family that has no IP address. */
static sa_family_t
addr_bytes(const struct sockaddr *sa, unsigned char out[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const unsigned char *b;

    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (memcmp(b, mapped, sizeof(mapped)) == 0) {
        memcpy(out, b + 12, 4);
        return AF_INET;
    }
    memcpy(out, b, 16);
    return AF_INET6;
}

/* Whether a (of family fam) lies in net. */
static int
in_net(const struct ipnet *net, sa_family_t fam, const unsigned char *a)
{
    unsigned whole = net->bits / 8u, rest = net->bits % 8u;

    if (net->family != fam || memcmp(net->addr, a, whole) != 0)
        return 0;
    return rest == 0 || ((net->addr[whole] ^ a[whole]) & (0xff00u >> rest) & 0xff) == 0;
}

int
clientaddr_match(const struct ipnet *nets, size_t n, const struct sockaddr *sa)
{
    unsigned char a[16];
    sa_family_t fam = n > 0 ? addr_bytes(sa, a) : 0;

    if (fam == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (in_net(&nets[i], fam, a))
            return 1;
    return 0;
}

/* A prefix length: 1 to 3 digits, no sign or blank, at most max; -1 otherwise. */
static int
parse_bits(const char *s, int max)
{
    int v = 0;

    if (*s == '\0' || strlen(s) > 3 || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v <= max ? v : -1;
}

/* Zero the bits of net's address past its prefix. */
static void
clear_host_bits(struct ipnet *net)
{
    unsigned whole = net->bits / 8u, rest = net->bits % 8u;

    if (whole >= 16)
        return;
    net->addr[whole] &= (unsigned char)(0xff00u >> rest);
    memset(net->addr + whole + 1, 0, 16 - whole - 1);
}

const char *
clientaddr_net_text(const struct ipnet *net, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    if (inet_ntop(net->family, net->addr, a, sizeof(a)) == NULL)
        snprintf(a, sizeof(a), "?");
    snprintf(buf, len, "%s/%u", a, net->bits);
    return buf;
}

int
clientaddr_parse_net(const char *s, struct ipnet *net, char *err, size_t errlen)
{
    char addr[INET6_ADDRSTRLEN + 1], want[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    struct ipnet masked;
    int bits, max;

    memset(net, 0, sizeof(*net));
    if (alen == 0 || alen >= sizeof(addr))
        goto bad;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, net->addr) == 1) {
        net->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, net->addr) == 1) {
        net->family = AF_INET6;
        max = 128;
    } else {
        goto bad;
    }
    bits = slash != NULL ? parse_bits(slash + 1, max) : max;
    if (bits == -1) {
        snprintf(err, errlen, "invalid prefix length in '%s': expected /0 to /%d for an %s "
                 "address", s, max, max == 32 ? "IPv4" : "IPv6");
        return -1;
    }
    net->bits = (unsigned char)bits;
    /* A mapped IPv4 network is matched as the IPv4 one (addr_bytes maps peers alike). */
    memcpy(&sin6.sin6_addr, net->addr, 16);
    if (net->family == AF_INET6 && bits >= 96 &&
        addr_bytes((struct sockaddr *)&sin6, net->addr) == AF_INET) {
        net->family = AF_INET;
        net->bits = (unsigned char)(bits - 96);
        memset(net->addr + 4, 0, 12);
    }
    masked = *net;
    clear_host_bits(&masked);
    if (memcmp(masked.addr, net->addr, 16) != 0) {
        snprintf(err, errlen, "'%s' has bits set past its /%d prefix; did you mean %s?", s,
                 bits, clientaddr_net_text(&masked, want, sizeof(want)));
        return -1;
    }
    return 0;
bad:
    snprintf(err, errlen, "invalid address '%s': expected an IPv4 or IPv6 address, or a "
             "network such as 10.0.0.0/8 or fd00::/8", s);
    return -1;
}

socklen_t
clientaddr_parse_entry(const char *s, size_t len, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN];
    const char *port = NULL, *end;
    size_t alen, plen = 0;
    int p = 0, bracket = 0;

    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0)
        return 0;
    end = s + len;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL)
            return 0;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return 0;
            port = rb + 2;
            plen = (size_t)(end - port);
        }
        s++;
        alen = (size_t)(rb - s);
        bracket = 1;
    } else {
        const char *colon = memchr(s, ':', len);
        /* One colon: IPv4 and a port; more: a bare IPv6 address. */
        if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) == NULL) {
            port = colon + 1;
            plen = (size_t)(end - port);
            alen = (size_t)(colon - s);
        } else {
            alen = len;
        }
    }
    if (alen == 0 || alen >= sizeof(buf) || (port != NULL && (p = util_port_text(port, plen)) < 0))
        return 0;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (!bracket && inet_pton(AF_INET, buf, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ss->ss_family = AF_INET;
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)p);
        return sizeof(struct sockaddr_in);
    }
    if ((bracket || port == NULL) &&
        inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ss->ss_family = AF_INET6;
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)p);
        return sizeof(struct sockaddr_in6);
    }
    return 0;
}

/* A walk in progress: the networks, the address so far, what was looked at. */
struct walk {
    const struct ipnet *nets;
    size_t n;
    struct sockaddr_storage *ss;
    socklen_t *len;
    unsigned taken, seen;
};

/* One step of the walk: the entry s[0..len), the next from the right. 1 to go on, 0 to
 * stop. */
static int
walk_entry(struct walk *w, const char *s, size_t len)
{
    struct sockaddr_storage e;
    socklen_t elen;
    size_t i;

    for (i = 0; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
        ;
    if (i == len)
        return 1; /* an empty entry */
    if (++w->seen > CLIENTADDR_MAX_HOPS)
        return 0;
    elen = clientaddr_parse_entry(s, len, &e);
    if (elen == 0)
        return 0; /* not an address: the last trusted hop is all that is known */
    *w->ss = e;
    *w->len = elen;
    w->taken++;
    return clientaddr_match(w->nets, w->n, (struct sockaddr *)&e);
}

/* The entries of one header value, right to left. */
static int
walk_value(struct walk *w, h2o_iovec_t v)
{
    const char *end;

    if (v.len == 0)
        return 1;
    end = v.base + v.len;
    for (const char *p = end;; p--) {
        if (p == v.base || p[-1] == ',') {
            if (!walk_entry(w, p, (size_t)(end - p)))
                return 0;
            if (p == v.base)
                return 1;
            end = p - 1;
        }
    }
}

unsigned
clientaddr_walk(const struct ipnet *nets, size_t n, const h2o_headers_t *headers,
                struct sockaddr_storage *ss, socklen_t *len)
{
    struct walk w = {nets, n, ss, len, 0, 0};

    for (size_t i = headers->size; i-- > 0;) {
        const h2o_header_t *h = &headers->entries[i];
        if (h->name == &H2O_TOKEN_X_FORWARDED_FOR->buf && !walk_value(&w, h->value))
            break;
    }
    return w.taken;
}

/* ---- worker ---- */

static int enabled;
static clientaddr_service_fn *service_of_req;

void
clientaddr_init(const struct conf *c, clientaddr_service_fn *service_of)
{
    enabled = 0;
    for (size_t i = 0; i < c->nservices; i++)
        enabled |= c->services[i].trusted.n > 0;
    service_of_req = service_of;
}

static socklen_t
peer_of(h2o_req_t *req, struct sockaddr_storage *ss)
{
    if (req->conn == NULL || req->conn->callbacks->get_peername == NULL)
        return 0;
    return req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)ss);
}

socklen_t
clientaddr_get(h2o_req_t *req, struct sockaddr_storage *ss)
{
    socklen_t len = peer_of(req, ss);
    const struct conf_service *s;

    if (!enabled || len == 0)
        return len;
    s = service_of_req(req);
    if (clientaddr_match(s->trusted.nets, s->trusted.n, (struct sockaddr *)ss))
        clientaddr_walk(s->trusted.nets, s->trusted.n, &req->headers, ss, &len);
    return len;
}

int
clientaddr_peer_trusted(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    const struct conf_service *s;

    if (!enabled || peer_of(req, &ss) == 0)
        return 0;
    s = service_of_req(req);
    return clientaddr_match(s->trusted.nets, s->trusted.n, (struct sockaddr *)&ss);
}
