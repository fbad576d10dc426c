/* TLS toward upstreams: an upstream block's tls_* directives, the client SSL_CTX the master
 * makes of them at load, and the worker's handshake on a connected socket, verified
 * (chain, and host name or IP address) and resumed from a per-worker session cache.
 *
 * libh2o 2.2.5's client handshake checks the host name only on some handshakes (not with
 * TLS 1.3, not on a TLS 1.2 resumption), matches no IP address and cannot be told not
 * to check; uptls_handshake has OpenSSL verify instead and makes the outcome its own. */
#ifndef PERCORE_UPTLS_H
#define PERCORE_UPTLS_H

#include <stddef.h>

#include "h2o_inc.h"

enum uptls_verify {
    UPTLS_VERIFY_UNSET, /* no tls_verify: on */
    UPTLS_VERIFY_ON,
    UPTLS_VERIFY_OFF,
};

/* An upstream's TLS settings, as its block gives them. Zero-initialised is the default
 * (the system's CAs, no client certificate, the URL's host name, verification on).
 * Strings are the struct's own; uptls_conf_free frees them. */
struct uptls_conf {
    char *ca_file;   /* tls_ca: PEM file of the CAs to trust; NULL: the system's */
    char *cert_file; /* tls_certificate: PEM client certificate (chain), with key_file */
    char *key_file;  /* tls_key: its PEM private key */
    char *name;      /* tls_name: the name sent and verified; NULL: the server's host */
    int verify;      /* tls_verify: enum uptls_verify */
};

/* Master, parsing an upstream block: directive (tls_ca, tls_certificate, tls_key,
 * tls_name, tls_verify) with its one value. Returns 0 when set; -1 with a message in err
 * for a bad value or a directive given twice; 1 (err untouched) for a directive that is
 * not one of these. Paths are kept as given: uptls_ctx_new reads them. */
int uptls_conf_set(struct uptls_conf *c, const char *directive, const char *value, char *err,
                   size_t errlen);

/* Frees c's strings and zeroes it; c itself is the caller's. */
void uptls_conf_free(struct uptls_conf *c);

/* Master, at load, before the workers are forked: a client SSL_CTX for c: TLS 1.2 and
 * 1.3, ALPN http/1.1, the client certificate and key if given (checked to match), and,
 * unless verification is off, the CAs of c->ca_file or else of the system's CA file
 * (SSL_CERT_FILE, or OpenSSL's default: on Debian /usr/lib/ssl/cert.pem, that is
 * ca-certificates). Every file is read here, the workers never open one. Returns NULL
 * with "PATH: reason" (or what is missing) in err. The context holds each worker's
 * session cache (filled after the fork, so per worker). Free with uptls_ctx_free (the
 * master at unload; a worker need not). */
SSL_CTX *uptls_ctx_new(const struct uptls_conf *c, char *err, size_t errlen);
void uptls_ctx_free(SSL_CTX *ctx);

/* Worker: the TLS handshake on sock, a connected socket that has read nothing yet, toward
 * server_name (tls_name, else the URL's host: a DNS name, a final dot allowed, or an IPv4
 * or IPv6 address, brackets allowed). It sends server_name as SNI unless it is an
 * address; offers the session ctx's cache holds for server_name and sock's peer address;
 * unless verification is off, verifies the chain and that the certificate is for
 * server_name (a DNS name, a wildcard only as the whole left-most label; or the address
 * in an IP SAN).
 *
 * cb gets err NULL on success, else a message to log and answer 502 with, such as
 * "certificate verify failed: unable to get local issuer certificate", "certificate is
 * for upstream.test, 127.0.0.1, not 'other.test'" or "TLS handshake failed: sslv3 alert
 * handshake failure"; err stays valid until the next handshake ends. cb may run before
 * uptls_handshake returns. Until cb runs, sock->data is uptls's: it is restored before.
 * There is no timeout here: the caller closes sock when its own expires, which frees all
 * the handshake holds. After a failure the caller closes sock.
 *
 * A server that demands a client certificate none was configured for may accept the
 * handshake under TLS 1.3 and refuse at once after it: the first read then fails. */
void uptls_handshake(h2o_socket_t *sock, SSL_CTX *ctx, const char *server_name, h2o_socket_cb cb);

#endif
