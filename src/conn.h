/* One accepted connection, as percore's own modules see it. Worker only.
 *
 * The worker allocates the record when it accepts a connection and frees it when the
 * socket closes: it owns the socket's on_close, its one close hook, which lets each
 * module drop its part first. A module that keeps state per connection (the request
 * guards, the send guard, TLS accept, the HTTP/2 reset guard; later rate limits or
 * tracing) adds its part here and a call at accept and at close in worker.c, instead of a
 * table by fd or a close hook of its own. */
#ifndef PERCORE_CONN_H
#define PERCORE_CONN_H

#include "h2o_inc.h"
#include "linger.h"
#include "reqcheck.h"
#include "sendguard.h"
#include "tlsaccept.h"

struct h2meter;

struct conn {
    h2o_socket_t *sock;
    int fd;                      /* gone from sock by the time it closes */
    struct reqcheck_conn check;  /* reqcheck.c: libh2o's own 400s */
    struct sendguard_conn send;  /* sendguard.c */
    struct tls_conn tls;         /* tlsaccept.c: the site SNI chose, if TLS */
    struct h2meter *h2;          /* h2guard.c: HTTP/2 over TLS, else NULL */
    struct linger_conn linger;   /* linger.c: a draining worker's close */
};

/* The record of sock, or NULL if sock is not an accepted connection or its close hook
 * has run. */
struct conn *worker_conn(h2o_socket_t *sock);
/* The record of req's connection, or NULL. */
struct conn *worker_conn_of_req(h2o_req_t *req);

#endif
