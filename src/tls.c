/* TLS contexts, made by the master and inherited by workers. */
#include "config.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "h2o_inc.h"
#include "tls.h"

/* The reason of the last OpenSSL error, after "what: ". */
static void
ssl_error(char *err, size_t errlen, const char *what)
{
    char reason[256] = "unknown error";
    unsigned long e, last = 0;

    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last != 0)
        ERR_error_string_n(last, reason, sizeof(reason));
    snprintf(err, errlen, "%s: %s", what, reason);
}

/* OpenSSL says "system lib" for a missing file: say what the system said. */
static int
readable(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

void *
tls_ctx_new(const char *service, const char *cert, const char *key, int http2, void *twin,
            char *err, size_t errlen)
{
    /* HTTP/2 only where asked: its reset guard is ours, see h2guard.c and percore.conf(5). */
    static const h2o_iovec_t alpn[] = {{(char *)"http/1.1", 8}, {NULL, 0}};
    unsigned char keys[80];
    SSL_CTX *ctx;

    if (!readable(cert, err, errlen) || !readable(key, err, errlen))
        return NULL;
    ctx = SSL_CTX_new(TLS_server_method());
    ERR_clear_error();
    if (ctx == NULL) {
        ssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    /* Idle TLS connections keep no read/write buffers: about a third less memory. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_error(err, errlen, cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, errlen, key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errlen, key);
        goto fail;
    }
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)service,
                                   (unsigned)(strlen(service) < SSL_MAX_SID_CTX_LENGTH
                                                  ? strlen(service)
                                                  : SSL_MAX_SID_CTX_LENGTH));
    h2o_ssl_register_alpn_protocols(ctx, http2 ? h2o_http2_alpn_protocols : alpn);
    if (twin != NULL) {
        if (SSL_CTX_get_tlsext_ticket_keys((SSL_CTX *)twin, keys, sizeof(keys)) != 1 ||
            SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys)) != 1) {
            ssl_error(err, errlen, "session ticket keys");
            goto fail;
        }
        OPENSSL_cleanse(keys, sizeof(keys));
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
