/* TLS contexts, made by the master and inherited by workers. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "h2o_inc.h"
#include "heritage.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* "what: reason" in err, the reason being OpenSSL's first error queued: the cause (the
 * later ones only say where it surfaced, such as "PEM lib"). Then the queue is cleared, so
 * that it is empty for the next call to check. */
void
tls_ssl_error(char *err, size_t errlen, const char *what)
{
    char reason[256] = "unknown error";
    unsigned long e = ERR_peek_error();

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, errlen, "%s: %s", what, reason);
}

/* OpenSSL says "system lib" for a missing file: say what the system said. */
int
tls_readable(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

/* ---- session ticket keys ----
 *
 * The master keeps TICKET_KEYS secrets in shared memory and replaces the oldest with a new
 * current one at every rotation; workers (of every generation, so reloads keep sessions)
 * derive each service's own keys from them. A ticket is issued with the current secret
 * and accepted with any of them, renewed when not current. */
#define TICKET_KEYS 3

struct ticket_secret {
    _Atomic uint64_t serial; /* 0: unused; odd while being written */
    uint8_t secret[32];
};

struct tls_tickets {
    _Atomic uint32_t current;
    struct ticket_secret keys[TICKET_KEYS];
};

/* This process's way to the secrets: the master's own mapping, made by tls_tickets_init; a
 * worker's, inherited by fork, is set again by tls_tickets_attach from its heritage. */
static struct tls_tickets *ring;
/* SSL_CTX ex_data: struct service_keys. Taken by the master when it makes the first
 * context; workers inherit it with the contexts. */
static int ctx_index = -1;

/* A service's keys derived from one secret; per process, refreshed when serial moves. */
struct derived {
    uint64_t serial;
    uint8_t name[16], aes[32], hmac[32];
};

struct service_keys {
    char *service;
    struct derived d[TICKET_KEYS];
};

static int
new_secret(struct ticket_secret *k, uint64_t serial)
{
    uint8_t fresh[32];

    if (RAND_bytes(fresh, sizeof(fresh)) != 1)
        return -1;
    atomic_store(&k->serial, serial | 1); /* readers see a write in progress */
    memcpy(k->secret, fresh, sizeof(fresh));
    atomic_store(&k->serial, serial);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return 0;
}

void
tls_tickets_init(void)
{
    ASSERT_MASTER();
    assert(ring == NULL); /* once: sessions outlive generations */
    ring = mmap(NULL, sizeof(*ring), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        fatal("mmap of the session ticket keys");
    memset(ring, 0, sizeof(*ring));
    if (new_secret(&ring->keys[0], 2) == -1)
        fatalx("no random bytes for session ticket keys");
}

struct tls_tickets *
tls_tickets(void)
{
    ASSERT_MASTER();
    return ring;
}

void
tls_tickets_attach(struct tls_tickets *t)
{
    ASSERT_WORKER();
    ring = t;
}

void
tls_tickets_rotate(void)
{
    uint32_t cur, next;

    ASSERT_MASTER(); /* the only writer of the secrets */
    assert(ring != NULL);
    cur = atomic_load(&ring->current);
    next = (cur + 1) % TICKET_KEYS;
    if (new_secret(&ring->keys[next], atomic_load(&ring->keys[cur].serial) + 2) == -1) {
        log_warnx("no random bytes: session ticket keys not rotated");
        return;
    }
    atomic_store(&ring->current, next);
}

static void
derive(uint8_t *out, size_t outlen, const uint8_t *secret, const char *label,
       const char *service)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char msg[300];
    int n = snprintf(msg, sizeof(msg), "percore ticket %s %s", label, service);

    HMAC(EVP_sha256(), secret, 32, (const uint8_t *)msg, (size_t)n, md, &mdlen);
    memcpy(out, md, outlen);
    OPENSSL_cleanse(md, sizeof(md));
}

/* The service's keys for ring slot i, or NULL if the slot is unused or being written. */
static const struct derived *
keys_for(struct service_keys *sk, size_t i)
{
    struct ticket_secret *k = &ring->keys[i];
    uint64_t serial = atomic_load(&k->serial);
    uint8_t secret[32];
    struct derived *d = &sk->d[i];

    if (serial == 0 || (serial & 1))
        return NULL;
    if (d->serial == serial)
        return d;
    memcpy(secret, k->secret, sizeof(secret));
    if (atomic_load(&k->serial) != serial)
        return NULL;
    derive(d->name, sizeof(d->name), secret, "name", sk->service);
    derive(d->aes, sizeof(d->aes), secret, "aes", sk->service);
    derive(d->hmac, sizeof(d->hmac), secret, "hmac", sk->service);
    OPENSSL_cleanse(secret, sizeof(secret));
    d->serial = serial;
    return d;
}

static int
on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
              EVP_MAC_CTX *hctx, int enc)
{
    /* The service SNI chose, whichever context the connection started with. */
    struct service_keys *sk = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
    uint32_t cur = atomic_load(&ring->current);
    const struct derived *d = NULL;
    size_t i = cur;
    OSSL_PARAM params[3];

    if (sk == NULL)
        return -1;
    if (enc) {
        if ((d = keys_for(sk, cur)) == NULL || RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, d->name, 16);
    } else {
        for (size_t k = 0; k < TICKET_KEYS && d == NULL; k++) {
            i = (cur + TICKET_KEYS - k) % TICKET_KEYS;
            d = keys_for(sk, i);
            if (d != NULL && memcmp(name, d->name, 16) != 0)
                d = NULL;
        }
        if (d == NULL)
            return 0; /* unknown or retired key: a full handshake */
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)d->hmac, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, d->aes, iv, enc) != 1 ||
        EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return enc || i == cur ? 1 : 2; /* 2: accepted, issue a fresh ticket */
}

static void
free_service_keys(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct service_keys *sk = ptr;

    if (sk == NULL)
        return;
    OPENSSL_cleanse(sk->d, sizeof(sk->d));
    free(sk->service);
    free(sk);
}

/* Tickets from the shared ring, with keys of this service's own. */
static int
use_ring(SSL_CTX *ctx, const char *service)
{
    struct service_keys *sk;

    if (ctx_index == -1)
        ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_service_keys);
    sk = xcalloc(1, sizeof(*sk));
    sk->service = xstrdup(service);
    if (ctx_index == -1 || SSL_CTX_set_ex_data(ctx, ctx_index, sk) != 1) {
        free_service_keys(NULL, sk, NULL, 0, 0, NULL);
        return -1;
    }
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
    return 0;
}

void *
tls_ctx_new(const char *service, const char *cert, const char *key, int http2, char *err,
            size_t errlen)
{
    /* HTTP/2 only where asked: its reset guard is ours, see h2guard.c and percore.conf(5). */
    static const h2o_iovec_t alpn[] = {{(char *)"http/1.1", 8}, {NULL, 0}};
    SSL_CTX *ctx;

    if (!tls_readable(cert, err, errlen) || !tls_readable(key, err, errlen))
        return NULL;
    ERR_clear_error(); /* errors queued before are not this context's */
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_ssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    /* Idle TLS connections keep no read/write buffers: about a third less memory. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_ssl_error(err, errlen, cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tls_ssl_error(err, errlen, key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_ssl_error(err, errlen, key);
        goto fail;
    }
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)service,
                                   (unsigned)(strlen(service) < SSL_MAX_SID_CTX_LENGTH
                                                  ? strlen(service)
                                                  : SSL_MAX_SID_CTX_LENGTH));
    h2o_ssl_register_alpn_protocols(ctx, http2 ? h2o_http2_alpn_protocols : alpn);
    if (ring != NULL && use_ring(ctx, service) == -1) {
        tls_ssl_error(err, errlen, "session ticket keys");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void
tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}
