/* TLS toward upstreams: the tls_* directives and the client context, made by the master at
 * load; the verified, resumed handshake, run by the workers.
 *
 * libh2o owns the SSL of a socket and calls SSL_connect as soon as it made it, so what
 * must be set before the ClientHello (the session to resume, no SNI for an address, the
 * name or address to verify) is set from the context's info callback at the handshake's
 * start. The per-connection state then hangs on the SSL and dies with it. */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "heritage.h"
#include "log.h"
#include "tls.h"
#include "uptls.h"
#include "util.h"

/* Sessions a context keeps per worker: one per server name and address, the least
 * recently used one replaced. An upstream block has a few servers. */
#define SESSIONS 32

struct cached_session {
    char *key; /* "NAME ADDRESS:PORT", see cache_key */
    SSL_SESSION *sess;
    uint64_t used;
};

/* SSL_CTX ex_data: what the context's handshakes share. Made empty by the master, filled
 * by each worker in its own copy. */
struct ctx_data {
    int verify;
    uint64_t clock;
    struct cached_session cache[SESSIONS];
};

/* SSL ex_data: one handshake's, from its start until libh2o frees the SSL with the
 * socket (TLS 1.3 tickets arrive after the handshake and still need the key). */
struct conn_state {
    struct ctx_data *cd;
    SSL *ssl;
    h2o_socket_cb cb;
    void *data; /* the caller's sock->data, given back before cb */
    char *name; /* server_name without brackets */
    char *key;  /* session cache key; NULL: the peer's address is unknown, no cache */
    int is_ip;
    int armed; /* the name or address to verify is set */
};

static int ctx_idx = -1, ssl_idx = -1;
/* The handshake libh2o is starting now: set around h2o_socket_ssl_handshake, which calls
 * SSL_connect before it returns; on_info takes it at the handshake's start. */
static struct conn_state *starting;
/* The message a failed handshake gives its callback. */
static char errbuf[512];

/* ---- tls_* directives ---- */

/* name as sent and verified: without the brackets of an IPv6 literal or the final dot of
 * a DNS name (neither goes in SNI or matches a certificate). The caller frees it. */
static char *
bare_name(const char *name)
{
    size_t n = strlen(name);

    if (n >= 2 && name[0] == '[' && name[n - 1] == ']')
        return xstrndup(name + 1, n - 2);
    if (n >= 2 && name[n - 1] == '.')
        return xstrndup(name, n - 1);
    return xstrdup(name);
}

static int
is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* A DNS name: labels of letters, digits, '-' and '_' (some internal names have one),
 * one trailing dot allowed. */
static int
is_dns_name(const char *s)
{
    size_t label = 0, n = strlen(s);

    if (n == 0 || n > 253)
        return 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

static int
set_path(char **dst, const char *directive, const char *value, char *err, size_t errlen)
{
    if (*dst != NULL) {
        snprintf(err, errlen, "'%s' given twice", directive);
        return -1;
    }
    if (value[0] == '\0') {
        snprintf(err, errlen, "'%s' needs a file", directive);
        return -1;
    }
    *dst = xstrdup(value);
    return 0;
}

int
uptls_conf_set(struct uptls_conf *c, const char *directive, const char *value, char *err,
               size_t errlen)
{
    char *bare;
    int ok;

    if (strcmp(directive, "tls_ca") == 0)
        return set_path(&c->ca_file, directive, value, err, errlen);
    if (strcmp(directive, "tls_certificate") == 0)
        return set_path(&c->cert_file, directive, value, err, errlen);
    if (strcmp(directive, "tls_key") == 0)
        return set_path(&c->key_file, directive, value, err, errlen);
    if (strcmp(directive, "tls_name") == 0) {
        if (c->name != NULL) {
            snprintf(err, errlen, "'tls_name' given twice");
            return -1;
        }
        /* Brackets only around an IPv6 address, as in a URL. */
        bare = bare_name(value);
        ok = value[0] == '[' ? strchr(bare, ':') != NULL && is_ip(bare)
                             : is_ip(bare) || is_dns_name(bare);
        free(bare);
        if (!ok) {
            snprintf(err, errlen, "tls_name '%s': not a host name or IP address", value);
            return -1;
        }
        c->name = xstrdup(value);
        return 0;
    }
    if (strcmp(directive, "tls_verify") == 0) {
        if (c->verify != UPTLS_VERIFY_UNSET) {
            snprintf(err, errlen, "'tls_verify' given twice");
            return -1;
        }
        if (strcmp(value, "on") == 0)
            c->verify = UPTLS_VERIFY_ON;
        else if (strcmp(value, "off") == 0)
            c->verify = UPTLS_VERIFY_OFF;
        else {
            snprintf(err, errlen, "tls_verify '%s': expected on or off", value);
            return -1;
        }
        return 0;
    }
    return 1;
}

void
uptls_conf_free(struct uptls_conf *c)
{
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->name);
    memset(c, 0, sizeof(*c));
}

/* ---- the per-worker session cache ---- */

static SSL_SESSION *
cache_get(struct ctx_data *cd, const char *key)
{
    for (size_t i = 0; i < SESSIONS; i++) {
        struct cached_session *e = &cd->cache[i];
        if (e->key != NULL && strcmp(e->key, key) == 0) {
            e->used = ++cd->clock;
            return e->sess;
        }
    }
    return NULL;
}

/* Keeps sess (the caller's reference) as key's, in place of its last one or of the least
 * recently used entry. */
static void
cache_put(struct ctx_data *cd, const char *key, SSL_SESSION *sess)
{
    struct cached_session *e = NULL, *lru = &cd->cache[0];

    for (size_t i = 0; i < SESSIONS && e == NULL; i++) {
        if (cd->cache[i].key != NULL && strcmp(cd->cache[i].key, key) == 0)
            e = &cd->cache[i];
        else if (cd->cache[i].used < lru->used)
            lru = &cd->cache[i];
    }
    if (e == NULL) {
        e = lru;
        free(e->key);
        e->key = xstrdup(key);
    }
    SSL_SESSION_free(e->sess);
    e->sess = sess;
    e->used = ++cd->clock;
}

static void
cache_drop(struct ctx_data *cd, const char *key)
{
    for (size_t i = 0; i < SESSIONS; i++) {
        struct cached_session *e = &cd->cache[i];
        if (e->key != NULL && strcmp(e->key, key) == 0) {
            free(e->key);
            SSL_SESSION_free(e->sess);
            memset(e, 0, sizeof(*e));
        }
    }
}

/* A session resumes only toward the name it was verified for and the address it was
 * made with; NULL if the peer's address is unknown. */
static char *
cache_key(h2o_socket_t *sock, const char *name)
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    char host[NI_MAXHOST];

    if (len == 0)
        return NULL;
    if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        if (un->sun_path[0] == '\0')
            return NULL;
        return xasprintf("%s unix:%.*s", name, (int)sizeof(un->sun_path), un->sun_path);
    }
    if (h2o_socket_getnumerichost((struct sockaddr *)&ss, len, host) == SIZE_MAX)
        return NULL;
    return xasprintf("%s %s:%d", name, host, (int)h2o_socket_getport((struct sockaddr *)&ss));
}

/* ---- ex_data ---- */

static void
free_ctx_data(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct ctx_data *cd = ptr;

    if (cd == NULL)
        return;
    for (size_t i = 0; i < SESSIONS; i++) {
        free(cd->cache[i].key);
        SSL_SESSION_free(cd->cache[i].sess);
    }
    free(cd);
}

static void
free_conn_state(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct conn_state *st = ptr;

    if (st == NULL)
        return;
    free(st->name);
    free(st->key);
    free(st);
}

/* The indices, taken by the master with its first context, so that workers share them. */
static int
ex_indices(void)
{
    if (ctx_idx == -1)
        ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ctx_data);
    if (ssl_idx == -1)
        ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_conn_state);
    return ctx_idx == -1 || ssl_idx == -1 ? -1 : 0;
}

/* ---- the context (master) ---- */

/* tls_readable, with why after the reason when the file cannot be read. */
static int
readable(const char *path, const char *why, char *err, size_t errlen)
{
    size_t n;

    if (tls_readable(path, err, errlen))
        return 1;
    n = strlen(err);
    snprintf(err + n, errlen - n, "%s", why);
    return 0;
}

/* The system's CA file, as OpenSSL finds it (SSL_CERT_FILE, else its built-in path). Its
 * hashed directory is not used: it would be read at each verification, in the worker. */
static const char *
system_ca_file(void)
{
    const char *f = getenv(X509_get_default_cert_file_env());

    return f != NULL && f[0] != '\0' ? f : X509_get_default_cert_file();
}

static int on_verify(int ok, X509_STORE_CTX *x);
static int on_new_session(SSL *ssl, SSL_SESSION *sess);
static void on_info(const SSL *ssl, int where, int ret);

static int
load_files(SSL_CTX *ctx, const struct uptls_conf *c, const char *ca, char *err, size_t errlen)
{
    if (ca != NULL && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        tls_ssl_error(err, errlen, ca);
        return -1;
    }
    if (c->cert_file == NULL)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
        tls_ssl_error(err, errlen, c->cert_file);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        tls_ssl_error(err, errlen, c->key_file);
        return -1;
    }
    return 0;
}

SSL_CTX *
uptls_ctx_new(const struct uptls_conf *c, char *err, size_t errlen)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    int verify = c->verify != UPTLS_VERIFY_OFF;
    const char *ca = c->ca_file;
    SSL_CTX *ctx;
    struct ctx_data *cd;

    ASSERT_MASTER();
    if ((c->cert_file == NULL) != (c->key_file == NULL)) {
        snprintf(err, errlen, "%s",
                 c->cert_file != NULL ? "tls_certificate needs tls_key"
                                      : "tls_key needs tls_certificate");
        return NULL;
    }
    if (ca == NULL && verify) {
        ca = system_ca_file();
        if (!readable(ca, " (the system's CAs, as no tls_ca is given)", err, errlen))
            return NULL;
    }
    if ((ca != NULL && !tls_readable(ca, err, errlen)) ||
        (c->cert_file != NULL && !tls_readable(c->cert_file, err, errlen)) ||
        (c->key_file != NULL && !tls_readable(c->key_file, err, errlen)))
        return NULL;
    if (ex_indices() == -1) {
        tls_ssl_error(err, errlen, "ex_data index");
        return NULL;
    }
    ERR_clear_error(); /* errors queued before are not this context's */
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        tls_ssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Pooled idle connections keep no read/write buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (load_files(ctx, c, ca, err, errlen) == -1)
        goto fail;
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        tls_ssl_error(err, errlen, "ALPN");
        goto fail;
    }
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, verify ? on_verify : NULL);
    /* Sessions go to our cache only, which keys them by name and address. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    SSL_CTX_set_info_callback(ctx, on_info);
    cd = xcalloc(1, sizeof(*cd));
    cd->verify = verify;
    if (SSL_CTX_set_ex_data(ctx, ctx_idx, cd) != 1) {
        free(cd);
        tls_ssl_error(err, errlen, "SSL_CTX_set_ex_data");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void
uptls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* ---- the handshake (workers) ---- */

/* At the start of a handshake uptls_handshake is starting: claim its state, then set
 * what the ClientHello and the verification need. OpenSSL hands its own, mutable SSL as
 * const to info callbacks. */
static void
on_info(const SSL *cssl, int where, int ret)
{
    SSL *ssl = (SSL *)cssl;
    struct conn_state *st = starting;
    SSL_SESSION *sess;

    if (!(where & SSL_CB_HANDSHAKE_START) || st == NULL)
        return;
    starting = NULL;
    if (SSL_set_ex_data(ssl, ssl_idx, st) != 1)
        fatalx("out of memory for a TLS handshake");
    st->ssl = ssl;
    if (st->is_ip) {
        /* RFC 6066: SNI carries no address; libh2o set one. */
        (void)SSL_set_tlsext_host_name(ssl, NULL);
        if (st->cd->verify)
            st->armed = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), st->name) == 1;
    } else if (st->cd->verify) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        st->armed = SSL_set1_host(ssl, st->name) == 1;
    }
    if (st->key != NULL && (sess = cache_get(st->cd, st->key)) != NULL)
        (void)SSL_set_session(ssl, sess);
}

/* Fails the verification of a handshake whose name or address to verify is not set:
 * never a chain checked without its name. */
static int
on_verify(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct conn_state *st = ssl != NULL ? SSL_get_ex_data(ssl, ssl_idx) : NULL;

    if (st == NULL || !st->armed) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return ok;
}

/* A session (TLS 1.2: at the handshake's end; TLS 1.3: each ticket, after it) of a
 * verified handshake: the cache takes the reference. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct conn_state *st = SSL_get_ex_data(ssl, ssl_idx);

    if (st == NULL || st->key == NULL ||
        (st->cd->verify && SSL_get_verify_result(ssl) != X509_V_OK))
        return 0;
    cache_put(st->cd, st->key, sess);
    return 1;
}

/* Appends sep, then s with bytes that are not printable ASCII as '?' (names come from the
 * peer and go to a log), to buf of size n holding len bytes; returns the new length. */
static size_t
append(char *buf, size_t n, size_t len, const char *sep, const char *s, size_t slen)
{
    for (; *sep != '\0' && len + 1 < n; sep++)
        buf[len++] = *sep;
    for (size_t i = 0; i < slen && len + 1 < n; i++)
        buf[len++] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[len] = '\0';
    return len;
}

/* The names the certificate is for: its DNS and IP SANs, else its CN. */
static void
cert_names(X509 *leaf, char *buf, size_t n)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    X509_NAME *subject = X509_get_subject_name(leaf);
    size_t len = 0;
    char ip[INET6_ADDRSTRLEN];
    int cn_at;

    buf[0] = '\0';
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const char *s = NULL;
        int slen = 0;
        if (g->type == GEN_DNS) {
            s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
            slen = ASN1_STRING_length(g->d.dNSName);
        } else if (g->type == GEN_IPADD) {
            slen = ASN1_STRING_length(g->d.iPAddress);
            s = slen == 4 || slen == 16
                    ? inet_ntop(slen == 4 ? AF_INET : AF_INET6,
                                ASN1_STRING_get0_data(g->d.iPAddress), ip, sizeof(ip))
                    : NULL;
            slen = s != NULL ? (int)strlen(s) : 0;
        }
        if (slen > 0)
            len = append(buf, n, len, len != 0 ? ", " : "", s, (size_t)slen);
    }
    GENERAL_NAMES_free(gens);
    cn_at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (len == 0 && cn_at >= 0) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn_at));
        append(buf, n, 0, "", (const char *)ASN1_STRING_get0_data(cn),
               (size_t)ASN1_STRING_length(cn));
    }
}

static const char *
verify_error(struct conn_state *st, long vr)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(st->ssl);
    char names[300] = "";

    if (vr != X509_V_ERR_HOSTNAME_MISMATCH && vr != X509_V_ERR_IP_ADDRESS_MISMATCH) {
        snprintf(errbuf, sizeof(errbuf), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        return errbuf;
    }
    /* On the client's side, the peer's chain starts with its own certificate. */
    if (chain != NULL && sk_X509_num(chain) > 0)
        cert_names(sk_X509_value(chain, 0), names, sizeof(names));
    if (names[0] == '\0')
        snprintf(errbuf, sizeof(errbuf), "certificate is not for '%s'", st->name);
    else
        snprintf(errbuf, sizeof(errbuf), "certificate is for %s, not '%s'", names, st->name);
    return errbuf;
}

/* NULL if the handshake succeeded, else why not. */
static const char *
outcome(struct conn_state *st, const char *err)
{
    unsigned long e;
    const char *reason;

    /* libh2o's own name check, after a handshake that completed: it misses TLS 1.3 and
     * matches no address. OpenSSL verified the name already, or was told not to. */
    if (err == h2o_socket_error_ssl_cert_name_mismatch ||
        err == h2o_socket_error_ssl_cert_invalid || err == h2o_socket_error_ssl_no_cert)
        err = NULL;
    if (st->ssl == NULL)
        return err;
    if (st->cd->verify && SSL_get_verify_result(st->ssl) != X509_V_OK)
        return verify_error(st, SSL_get_verify_result(st->ssl));
    if (err == NULL)
        return NULL;
    /* libh2o says no more than this when SSL_connect fails: OpenSSL's queue says why. */
    e = ERR_peek_error();
    reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (strcmp(err, "ssl handshake failure") == 0 && reason != NULL)
        err = reason;
    snprintf(errbuf, sizeof(errbuf), "TLS handshake failed: %s", err);
    return errbuf;
}

static void
on_handshake(h2o_socket_t *sock, const char *err)
{
    struct conn_state *st = sock->data;
    const char *msg;

    sock->data = st->data;
    msg = outcome(st, err);
    if (msg != NULL && st->key != NULL)
        cache_drop(st->cd, st->key);
    ERR_clear_error(); /* the worker's queue: the next TLS call starts empty */
    st->cb(sock, msg);
}

void
uptls_handshake(h2o_socket_t *sock, SSL_CTX *ctx, const char *server_name, h2o_socket_cb cb)
{
    struct ctx_data *cd = SSL_CTX_get_ex_data(ctx, ctx_idx);
    struct conn_state *st;

    ASSERT_WORKER();
    assert(cd != NULL); /* a context of uptls_ctx_new */
    assert(starting == NULL);
    st = xcalloc(1, sizeof(*st));
    st->cd = cd;
    st->cb = cb;
    st->name = bare_name(server_name);
    st->is_ip = is_ip(st->name);
    st->key = cache_key(sock, st->name);
    st->data = sock->data;
    sock->data = st;
    starting = st;
    h2o_socket_ssl_handshake(sock, ctx, st->name, on_handshake);
    /* libh2o 2.2.5 starts the handshake at once, where on_info gave st to the SSL; st may
     * even be gone already, with the socket, if the handshake failed at once. Another
     * library that did not would leave on_verify failing every handshake. */
    assert(starting == NULL);
}
