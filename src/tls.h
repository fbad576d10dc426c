/* TLS contexts: one per service, made by the master when the config is read, so that every
 * worker (and every respawned worker) shares its session ticket keys. */
#ifndef PERCORE_TLS_H
#define PERCORE_TLS_H

#include <stddef.h>

/* An SSL_CTX for a service: TLS 1.2 and 1.3, the certificate chain and key files, a
 * session ID context of the service's own (so no session resumes on another service),
 * ALPN http/1.1, or h2 and http/1.1 when http2 is set, and, after tls_tickets_init, the
 * service's ticket keys (shared by all its contexts). Returns NULL with "PATH: reason" in
 * err. Free with tls_ctx_free. */
void *tls_ctx_new(const char *service, const char *cert, const char *key, int http2,
                  char *err, size_t errlen);
void tls_ctx_free(void *ctx);

/* "what: reason" in err, the reason OpenSSL's first queued error; the queue is cleared. */
void tls_ssl_error(char *err, size_t errlen, const char *what);
/* Whether path can be opened for reading; if not, "path: the system's reason" in err
 * (OpenSSL would only say "system lib"). */
int tls_readable(const char *path, char *err, size_t errlen);

/* The session ticket secrets, in memory shared by the master and all workers. */
struct tls_tickets;

/* Master, before the first config is read: the shared session ticket keys. Contexts made
 * afterwards issue and accept tickets with them (each service its own keys derived from
 * them), in every worker and generation. Without it (percore -t), each context has its
 * own keys. Never unmapped. */
void tls_tickets_init(void);
/* Master: the keys tls_tickets_init made, for a worker's heritage; NULL if none. */
struct tls_tickets *tls_tickets(void);
/* Worker, at start: use the keys it inherited (the master's mapping, by fork). */
void tls_tickets_attach(struct tls_tickets *t);
/* Master: a new current key; tickets of the previous ones are still accepted (and renewed)
 * until they have been rotated out. */
void tls_tickets_rotate(void);

#endif
