/* TLS accept (src/tlsaccept.c): a connection goes from its handshake (with a timeout) to
 * the site SNI picks, recorded in its connection record, and to HTTP/2 (guarded) or
 * HTTP/1.1 by that site's ALPN; or it is closed. Real handshakes over a socketpair, with
 * certificates made here. */
#include "../../src/tlsaccept.c"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKE_TIMEOUT_MS 200

/* ---- the worker's side, as tlsaccept.c sees it ---- */

/* The one connection's record; the worker's close hook, reduced to what tests look at. */
static struct conn rec;
static int rec_closed;
static const struct conn *req_conn; /* what worker_conn_of_req answers */

static void
on_test_close(void *data)
{
    h2guard_conn_closed(data);
    rec_closed = 1;
}

struct conn *
worker_conn(h2o_socket_t *sock)
{
    return sock != NULL && sock->on_close.cb == on_test_close ? sock->on_close.data : NULL;
}

struct conn *
worker_conn_of_req(h2o_req_t *req)
{
    (void)req;
    return (struct conn *)req_conn;
}

/* ---- a worker with two services on one TLS address ---- */

static h2o_evloop_t *loop;
static h2o_globalconf_t gconf;
static h2o_context_t hctx;
static h2o_hostconf_t *hosts[2];
static h2o_accept_ctx_t actx[2];
/* Names as the conf tree has them (char *: libh2o-style non-const strings). */
#define NAME(s) ((char *)(s))
static char *const a_names[] = {NAME("a.test")};
static char *const b_names[] = {NAME("b.test"), NAME("*.b.test")};
static struct tls_site sites[2];

/* A self-signed certificate for cn in a new server context; HTTP/2 offered if h2. */
static SSL_CTX *
server_ctx(const char *cn, int h2)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);

    cr_assert_not_null(key);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    cr_assert_neq(X509_sign(x, key, EVP_sha256()), 0);
    cr_assert_eq(SSL_CTX_use_certificate(ctx, x), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
    if (h2)
        h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    tlsaccept_prepare(ctx);
    return ctx;
}

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in a worker: the server writes to closed clients */
    loop = h2o_evloop_create();
    h2o_config_init(&gconf);
    gconf.handshake_timeout = HANDSHAKE_TIMEOUT_MS;
    hosts[0] = h2o_config_register_host(&gconf, h2o_iovec_init(H2O_STRLIT("test")), 65535);
    h2o_context_init(&hctx, loop, &gconf);
    /* a.test offers HTTP/2, b.test does not: ALPN is the chosen service's. */
    actx[0] = (h2o_accept_ctx_t){.ctx = &hctx, .hosts = hosts};
    actx[0].ssl_ctx = server_ctx("a.test", 1);
    actx[1] = (h2o_accept_ctx_t){.ctx = &hctx, .hosts = hosts};
    actx[1].ssl_ctx = server_ctx("b.test", 0);
    sites[0] = (struct tls_site){a_names, 1, &actx[0], 100, NULL};
    sites[1] = (struct tls_site){b_names, 2, &actx[1], 100, NULL};
}

/* The server's end of a new connection, accepted as the worker does; the client's end
 * in *client. */
static h2o_socket_t *
accept_one(int *client)
{
    int sv[2];
    h2o_socket_t *sock;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    sock = h2o_evloop_socket_create(loop, sv[0], 0);
    memset(&rec, 0, sizeof(rec));
    rec_closed = 0;
    rec.sock = sock;
    sock->on_close.cb = on_test_close;
    sock->on_close.data = &rec;
    tlsaccept(sock, sites, 2);
    *client = sv[1];
    return sock;
}

/* Runs the loop until the client's handshake is done (1) or failed (0). */
static int
client_handshake(SSL *ssl)
{
    for (int i = 0; i < 500; i++) {
        int r = SSL_connect(ssl);
        if (r == 1)
            return 1;
        r = SSL_get_error(ssl, r);
        if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
            return 0;
        h2o_evloop_run(loop, 10);
    }
    return 0;
}

static SSL *
client(int fd, const char *sni, int offer_h2)
{
    static SSL_CTX *ctx;
    SSL *ssl;

    if (ctx == NULL)
        ctx = SSL_CTX_new(TLS_client_method());
    ssl = SSL_new(ctx);
    cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    SSL_set_fd(ssl, fd);
    if (sni != NULL)
        SSL_set_tlsext_host_name(ssl, sni);
    if (offer_h2)
        SSL_set_alpn_protos(ssl, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    else
        SSL_set_alpn_protos(ssl, (const unsigned char *)"\x08http/1.1", 9);
    return ssl;
}

/* The CN of the certificate the server showed. */
static const char *
peer_cn(SSL *ssl, char *buf, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(ssl);

    cr_assert_not_null(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len);
    X509_free(x);
    return buf;
}

/* Close the client and let the server see it: the record's close hook runs. */
static void
hang_up(SSL *ssl, int fd)
{
    SSL_free(ssl);
    close(fd);
    for (int i = 0; i < 100 && !rec_closed; i++)
        h2o_evloop_run(loop, 10);
    cr_assert(rec_closed, "the server closed the connection");
}

/* One handshake with sni (or none); the site it was given, the CN seen, the protocol. */
static void
handshake(const char *sni, int offer_h2, const struct tls_site *want_site, const char *want_cn,
          int want_h2)
{
    int fd;
    char cn[64];
    SSL *ssl;

    accept_one(&fd);
    ssl = client(fd, sni, offer_h2);
    cr_assert(client_handshake(ssl), "handshake with %s", sni != NULL ? sni : "no SNI");
    /* The server's callback may run after the client's last flight. */
    for (int i = 0; i < 100 && rec.tls.site == NULL; i++)
        h2o_evloop_run(loop, 10);
    cr_assert_str_eq(peer_cn(ssl, cn, sizeof(cn)), want_cn);
    cr_assert_eq(rec.tls.site, want_site, "%s: the site is in the record", sni);
    cr_assert_eq(rec.tls.sites, sites);
    cr_assert_eq(rec.tls.nsites, 2);
    cr_assert_eq(rec.check.not_http1, want_h2, "%s: h2 noted for reqcheck", sni);
    cr_assert_eq(rec.h2 != NULL, want_h2, "%s: HTTP/2 is guarded", sni);
    hang_up(ssl, fd);
    cr_assert_null(rec.h2, "the guard's meter went with the connection");
}

TestSuite(tlsaccept, .init = setup);

Test(tlsaccept, sni_picks_the_site_of_the_name)
{
    handshake("b.test", 0, &sites[1], "b.test", 0);
    handshake("x.b.test", 0, &sites[1], "b.test", 0);
    handshake("A.TEST", 0, &sites[0], "a.test", 0);
}

Test(tlsaccept, an_unknown_name_or_none_gets_the_default_site)
{
    handshake("c.test", 0, &sites[0], "a.test", 0);
    handshake(NULL, 0, &sites[0], "a.test", 0);
}

Test(tlsaccept, alpn_is_the_chosen_site_s)
{
    handshake("a.test", 1, &sites[0], "a.test", 1);
    handshake("b.test", 1, &sites[1], "b.test", 0);
}

Test(tlsaccept, a_silent_client_is_closed_at_the_handshake_timeout)
{
    int fd;
    uint64_t start;

    h2o_evloop_run(loop, 0); /* the loop's clock is now */
    start = h2o_now(loop);
    accept_one(&fd);
    for (int i = 0; i < 200 && !rec_closed; i++)
        h2o_evloop_run(loop, 10);
    cr_assert(rec_closed);
    cr_assert_geq(h2o_now(loop) - start, HANDSHAKE_TIMEOUT_MS, "not before its time");
    cr_assert_null(rec.tls.site, "no site was given");
    close(fd);
}

Test(tlsaccept, a_client_that_speaks_no_tls_is_closed)
{
    int fd;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";

    accept_one(&fd);
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    for (int i = 0; i < 100 && !rec_closed; i++)
        h2o_evloop_run(loop, 10);
    cr_assert(rec_closed);
    cr_assert_null(rec.tls.site);
    close(fd);
}

Test(tlsaccept, find_site_exact_then_longest_wildcard)
{
    static char *const x[] = {NAME("*.test")};
    static char *const y[] = {NAME("*.y.test"), NAME("exact.y.test")};
    static char *const z[] = {NAME("*.z.y.test")};
    const struct tls_site s[] = {
        {x, 1, NULL, 0, NULL}, {y, 2, NULL, 0, NULL}, {z, 1, NULL, 0, NULL}};

    cr_assert_eq(tlsaccept_find_site(s, 3, "exact.y.test"), &s[1]);
    cr_assert_eq(tlsaccept_find_site(s, 3, "a.z.y.test"), &s[2], "the longest wildcard");
    cr_assert_eq(tlsaccept_find_site(s, 3, "a.y.test"), &s[1]);
    cr_assert_eq(tlsaccept_find_site(s, 3, "y.test"), &s[0]);
    cr_assert_eq(tlsaccept_find_site(s, 3, "test"), NULL, "*.test needs a label before it");
    cr_assert_eq(tlsaccept_find_site(s, 3, "EXACT.Y.TEST"), &s[1], "names are case-insensitive");
    cr_assert_eq(tlsaccept_find_site(s, 1, "other.example"), NULL);
}

/* A request for host over a connection of the site at index given. */
static int
misdirected(int given, const char *host, const h2o_url_scheme_t *scheme)
{
    h2o_req_t req = {0};

    rec.tls = (struct tls_conn){sites, &sites[given], 2};
    req_conn = &rec;
    req.scheme = scheme;
    req.authority = h2o_iovec_init(host, strlen(host));
    return tlsaccept_misdirected(&req);
}

Test(tlsaccept, a_request_for_another_site_s_name_is_misdirected)
{
    cr_assert_eq(misdirected(0, "b.test", &H2O_URL_SCHEME_HTTPS), 1);
    cr_assert_eq(misdirected(0, "x.b.test:443", &H2O_URL_SCHEME_HTTPS), 1);
    cr_assert_eq(misdirected(1, "b.test:8443", &H2O_URL_SCHEME_HTTPS), 0);
    cr_assert_eq(misdirected(0, "a.test", &H2O_URL_SCHEME_HTTPS), 0);
    cr_assert_eq(misdirected(0, "unknown.test", &H2O_URL_SCHEME_HTTPS), 0,
                 "unknown names are the default's");
    cr_assert_eq(misdirected(1, "unknown.test", &H2O_URL_SCHEME_HTTPS), 1);
    cr_assert_eq(misdirected(0, "", &H2O_URL_SCHEME_HTTPS), 0, "no usable Host");
    cr_assert_eq(misdirected(0, "b.test", &H2O_URL_SCHEME_HTTP), 0, "not TLS");
    rec.tls.nsites = 1;
    req_conn = &rec;
    cr_assert_eq(tlsaccept_misdirected(&(h2o_req_t){.scheme = &H2O_URL_SCHEME_HTTPS,
                                                    .authority = {(char *)"b.test", 6}}),
                 0, "a site alone on its address");
    req_conn = NULL;
    cr_assert_eq(tlsaccept_misdirected(&(h2o_req_t){.scheme = &H2O_URL_SCHEME_HTTPS,
                                                    .authority = {(char *)"b.test", 6}}),
                 0, "no record");
}
