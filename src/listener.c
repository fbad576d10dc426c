/* Listening sockets, run by the master: address parsing, the "already running" probe, and
 * reuseport groups with one socket per worker slot. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "util.h"

#define LISTEN_BACKLOG 4096

static void
format_addr(struct listen_addr *a)
{
    char host[INET6_ADDRSTRLEN];

    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(a->text, sizeof(a->text), "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(a->text, sizeof(a->text), "%s:%u", host, ntohs(s4->sin_port));
    }
}

static void
push_addr(struct listen_addr **out, size_t *n, const struct sockaddr *sa, socklen_t len)
{
    struct listen_addr *a;

    for (size_t i = 0; i < *n; i++)
        if ((*out)[i].len == len && memcmp(&(*out)[i].ss, sa, len) == 0)
            return;
    *out = xreallocarray(*out, *n + 1, sizeof(**out));
    a = &(*out)[(*n)++];
    memset(a, 0, sizeof(*a));
    memcpy(&a->ss, sa, len);
    a->len = len;
    format_addr(a);
}

static void
push_any(struct listen_addr **out, size_t *n, unsigned port)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};

    s4.sin_addr.s_addr = htonl(INADDR_ANY);
    s6.sin6_addr = in6addr_any;
    push_addr(out, n, (struct sockaddr *)&s4, sizeof(s4));
    push_addr(out, n, (struct sockaddr *)&s6, sizeof(s6));
}

static int
resolve(const char *host, unsigned port, struct listen_addr **out, size_t *n, char *err,
        size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res, *ai;
    char svc[16];
    int rc;

    snprintf(svc, sizeof(svc), "%u", port);
    rc = getaddrinfo(host, svc, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            push_addr(out, n, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    if (*n == 0) {
        snprintf(err, errlen, "'%s' has no IPv4 or IPv6 address", host);
        return -1;
    }
    return 0;
}

/* Split SPEC into its host text and the ':' before the port (NULL for a bare port). An IPv6
 * host must be bracketed: its own colons would otherwise hide where the port begins. */
static int
split_host(const char *spec, char *host, size_t hostlen, const char **colon, char *err,
           size_t errlen)
{
    const char *close;

    if (spec[0] != '[') {
        *colon = strrchr(spec, ':');
        if (*colon != NULL && strchr(spec, ':') != *colon) {
            snprintf(err, errlen, "invalid address '%s': write IPv6 addresses as '[%s]:PORT'",
                     spec, spec);
            return -1;
        }
        snprintf(host, hostlen, "%.*s", *colon ? (int)(*colon - spec) : 0, spec);
        return 0;
    }
    close = strchr(spec, ']');
    if (close == NULL || close[1] != ':') {
        snprintf(err, errlen, "invalid address '%s': expected '[IPv6]:PORT'", spec);
        return -1;
    }
    *colon = close + 1;
    snprintf(host, hostlen, "%.*s", (int)(close - spec - 1), spec + 1);
    return 0;
}

/* Add HOST if it is a numeric IPv4 or IPv6 address. Returns -1 if it is neither, so the
 * caller can hand it to the resolver. */
static int
push_numeric(const char *host, unsigned port, struct listen_addr **out, size_t *n)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};

    if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
        s4.sin_port = htons(port);
        push_addr(out, n, (struct sockaddr *)&s4, sizeof(s4));
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
        s6.sin6_port = htons(port);
        push_addr(out, n, (struct sockaddr *)&s6, sizeof(s6));
        return 0;
    }
    return -1;
}

int
listener_parse_addr(const char *spec, struct listen_addr **out, size_t *n, char *err,
                    size_t errlen)
{
    const char *colon, *portstr;
    char host[256];
    unsigned port;
    int p;

    *out = NULL;
    *n = 0;
    if (split_host(spec, host, sizeof(host), &colon, err, errlen) == -1)
        return -1;
    portstr = colon ? colon + 1 : spec;
    p = util_parse_port(portstr);
    if (p == -1) {
        snprintf(err, errlen, "invalid port '%s' in '%s': expected 1 to 65535", portstr, spec);
        return -1;
    }
    port = (unsigned)p;
    if (host[0] == '\0' && colon != NULL) {
        snprintf(err, errlen, "invalid address '%s': empty host (use '*:%u' for all)", spec,
                 port);
        return -1;
    }
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        push_any(out, n, port);
        return 0;
    }
    if (push_numeric(host, port, out, n) == 0)
        return 0;
    /* A bracketed host that is not an IPv6 literal is a typo, not a name to look up. */
    if (spec[0] == '[') {
        snprintf(err, errlen, "invalid IPv6 address '%s'", host);
        return -1;
    }
    return resolve(host, port, out, n, err, errlen);
}

static int
addr_is_any(const struct listen_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static unsigned
addr_port(const struct listen_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

int
listener_addr_equal(const struct listen_addr *a, const struct listen_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int
listener_addr_overlaps(const struct listen_addr *a, const struct listen_addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family || addr_port(a) != addr_port(b))
        return 0;
    return listener_addr_equal(a, b) || addr_is_any(a) || addr_is_any(b);
}

static int
open_socket(const struct listen_addr *a, int reuseport, char *err, size_t errlen)
{
    int fd, one = 1;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(err, errlen, "%s: socket: %s", a->text, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    /* [::] must not take IPv4 too, so that 0.0.0.0 and [::] can both be listed. */
    if (a->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
        goto fail;
    return fd;
fail:
    if (errno == EADDRINUSE)
        snprintf(err, errlen, "%s: address already in use (is another percore or server "
                 "running on it?)", a->text);
    else
        snprintf(err, errlen, "%s: %s", a->text, strerror(errno));
    close(fd);
    return -1;
}

int
listener_probe(const struct listen_addr *addr, char *err, size_t errlen)
{
    /* A bind without SO_REUSEPORT fails while any socket listens on the address, whoever
     * owns it; SO_REUSEADDR keeps TIME_WAIT leftovers from failing it. */
    int fd = open_socket(addr, 0, err, errlen);

    if (fd == -1)
        return -1;
    close(fd);
    return 0;
}

int
listener_resize(struct listener *l, size_t nslots, listener_take_fn *take, void *arg,
                char *err, size_t errlen)
{
    int fd;

    if (nslots > l->nfds)
        l->fds = xreallocarray(l->fds, nslots, sizeof(*l->fds));
    while (l->nfds < nslots) {
        fd = take != NULL ? take(arg, &l->addr, l->nfds) : -1;
        if (fd != -1) {
            l->fds[l->nfds++] = fd;
            continue;
        }
        fd = open_socket(&l->addr, 1, err, errlen);
        if (fd == -1)
            return -1;
        if (listen(fd, LISTEN_BACKLOG) == -1) {
            snprintf(err, errlen, "%s: listen: %s", l->addr.text, strerror(errno));
            close(fd);
            return -1;
        }
        l->fds[l->nfds++] = fd;
    }
    while (l->nfds > nslots)
        close(l->fds[--l->nfds]);
    return 0;
}

void
listener_close(struct listener *l)
{
    while (l->nfds > 0)
        close(l->fds[--l->nfds]);
    free(l->fds);
    l->fds = NULL;
    free(l->owner);
    l->owner = NULL;
}

int
listener_addr_of_fd(int fd, struct listen_addr *a)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 || type != SOCK_STREAM)
        return -1;
    len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1 || !listening)
        return -1;
    memset(a, 0, sizeof(*a));
    a->len = sizeof(a->ss);
    if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) == -1)
        return -1;
    if (a->ss.ss_family != AF_INET && a->ss.ss_family != AF_INET6)
        return -1;
    format_addr(a);
    return 0;
}

void
listener_store_name(const struct listen_addr *a, size_t slot, char *buf, size_t len)
{
    char *p;

    snprintf(buf, len, "L.%s.%zu", a->text, slot);
    for (p = buf; *p != '\0'; p++)
        if (*p == ':')
            *p = '_';
}

int
listener_parse_store_name(const char *name, char *addrtext, size_t len, size_t *slot)
{
    const char *dot;
    char *end, *p;
    unsigned long v;

    if (strncmp(name, "L.", 2) != 0)
        return -1;
    dot = strrchr(name, '.');
    if (dot == name + 1 || dot[1] == '\0')
        return -1;
    v = strtoul(dot + 1, &end, 10);
    if (*end != '\0' || (size_t)(dot - name - 2) >= len)
        return -1;
    snprintf(addrtext, len, "%.*s", (int)(dot - name - 2), name + 2);
    for (p = addrtext; *p != '\0'; p++)
        if (*p == '_')
            *p = ':';
    *slot = v;
    return 0;
}
