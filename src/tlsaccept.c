/* TLS accept: handshake, SNI, ALPN.
 *
 * Several services may listen on one TLS address; the client's SNI picks the service
 * (exact names first, then the longest "*." suffix), the first one is the default. The
 * chosen service's SSL_CTX gives the certificate, the session ID context (so sessions
 * never resume across services) and the ALPN list (so HTTP/2 is per service). */
#include "config.h"

#include <assert.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "h2guard.h"
#include "reqcheck.h"
#include "tlsaccept.h"
#include "util.h"

struct handshake {
    const struct tls_site *sites, *site;
    size_t nsites;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout;
    struct timeval connected_at;
};


static int
name_matches(const char *pattern, const char *name, size_t nlen)
{
    size_t plen;

    if (strncmp(pattern, "*.", 2) != 0)
        return strcasecmp(pattern, name) == 0;
    plen = strlen(pattern + 1); /* ".example.com" */
    return nlen > plen && strcasecmp(name + nlen - plen, pattern + 1) == 0;
}

const struct tls_site *
tlsaccept_find_site(const struct tls_site *sites, size_t nsites, const char *name)
{
    const struct tls_site *best = NULL;
    size_t bestlen = 0, nlen = strlen(name);

    for (size_t i = 0; i < nsites; i++) {
        for (size_t j = 0; j < sites[i].nnames; j++) {
            const char *p = sites[i].names[j];
            if (!name_matches(p, name, nlen))
                continue;
            if (p[0] != '*')
                return &sites[i];
            if (strlen(p) > bestlen) {
                best = &sites[i];
                bestlen = strlen(p);
            }
        }
    }
    return best;
}

/* The host name of the ClientHello's server_name extension, in buf; NULL if none. */
static const char *
client_hello_sni(SSL *ssl, char *buf, size_t buflen)
{
    const unsigned char *p;
    size_t len, n;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 5)
        return NULL;
    /* list length (2), name type (1) = host_name (0), name length (2), name */
    n = (size_t)p[3] << 8 | p[4];
    if (p[2] != TLSEXT_NAMETYPE_host_name || n == 0 || n >= buflen || n + 5 > len ||
        memchr(p + 5, '\0', n) != NULL)
        return NULL;
    memcpy(buf, p + 5, n);
    buf[n] = '\0';
    return buf;
}

/* Runs first on a ClientHello, before OpenSSL looks at sessions: switching the context
 * here means a session is only resumed if it belongs to the chosen service (its session
 * ID context), which a servername callback, called later, could not promise. */
static int
on_client_hello(SSL *ssl, int *alert, void *arg)
{
    /* libh2o's BIO carries the socket, whose data is ours until the handshake ends. */
    h2o_socket_t *sock = BIO_get_data(SSL_get_rbio(ssl));
    struct handshake *h = sock != NULL ? sock->data : NULL;
    char buf[256];
    const char *name;
    const struct tls_site *site;

    if (h == NULL || h->nsites < 2 || (name = client_hello_sni(ssl, buf, sizeof(buf))) == NULL)
        return SSL_CLIENT_HELLO_SUCCESS;
    site = tlsaccept_find_site(h->sites, h->nsites, name);
    if (site == NULL || site == h->site)
        return SSL_CLIENT_HELLO_SUCCESS; /* the default site answers unknown names */
    h->site = site;
    SSL_set_SSL_CTX(ssl, site->actx->ssl_ctx);
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void
on_handshake(h2o_socket_t *sock, const char *err)
{
    struct handshake *h = sock->data;
    const struct tls_site *site;
    struct conn *c;
    h2o_iovec_t proto;

    assert(h != NULL && h->sock == sock); /* the socket's data is ours until now */
    site = h->site;
    sock->data = NULL;
    h2o_timeout_unlink(&h->timeout);
    if (err != NULL) {
        h2o_socket_close(sock);
        goto done;
    }
    c = worker_conn(sock);
    if (c != NULL)
        c->tls = (struct tls_conn){h->sites, h->site, h->nsites};
    proto = h2o_socket_ssl_get_selected_protocol(sock);
    if (proto.len == 2 && memcmp(proto.base, "h2", 2) == 0) {
        if (c != NULL)
            reqcheck_conn_not_http1(c);
        h2guard_accept(site->actx, sock, h->connected_at, site->http2_max_resets);
    } else {
        h2o_http1_accept(site->actx, sock, h->connected_at);
    }
done:
    free(h);
}

static void
on_handshake_timeout(h2o_timeout_entry_t *entry)
{
    struct handshake *h = H2O_STRUCT_FROM_MEMBER(struct handshake, timeout, entry);
    h2o_socket_t *sock = h->sock;

    free(h);
    sock->data = NULL;
    h2o_socket_close(sock);
}

void
tlsaccept_prepare(void *ssl_ctx)
{
    SSL_CTX_set_client_hello_cb((SSL_CTX *)ssl_ctx, on_client_hello, NULL);
}

void
tlsaccept(h2o_socket_t *sock, const struct tls_site *sites, size_t nsites)
{
    struct handshake *h;
    h2o_context_t *ctx;

    assert(nsites >= 1); /* sites[0] is the default */
    h = xcalloc(1, sizeof(*h));
    ctx = sites[0].actx->ctx;

    h->sites = sites;
    h->nsites = nsites;
    h->site = &sites[0];
    h->sock = sock;
    h->connected_at = *h2o_get_timestamp(ctx, NULL, NULL);
    h->timeout.cb = on_handshake_timeout;
    h2o_timeout_link(ctx->loop, &ctx->handshake_timeout, &h->timeout);
    sock->data = h;
    h2o_socket_ssl_handshake(sock, sites[0].actx->ssl_ctx, NULL, on_handshake);
}

int
tlsaccept_misdirected(h2o_req_t *req)
{
    const struct conn *c;
    const struct tls_conn *cs;
    const struct tls_site *want;
    h2o_iovec_t host;
    uint16_t port;
    char name[256];

    if (req->scheme != &H2O_URL_SCHEME_HTTPS || (c = worker_conn_of_req(req)) == NULL)
        return 0;
    cs = &c->tls;
    if (cs->nsites < 2)
        return 0;
    if (h2o_url_parse_hostport(req->authority.base, req->authority.len, &host, &port) == NULL ||
        host.len == 0 || host.len >= sizeof(name))
        return 0; /* no usable Host: the connection's service answers */
    while (host.len > 1 && host.base[host.len - 1] == '.')
        host.len--; /* "b.test." is b.test, as the router reads it */
    memcpy(name, host.base, host.len);
    name[host.len] = '\0';
    want = tlsaccept_find_site(cs->sites, cs->nsites, name);
    if (want == NULL)
        want = &cs->sites[0];
    return want != cs->site;
}
