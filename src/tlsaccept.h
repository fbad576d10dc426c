/* TLS accept: the handshake (with the context's handshake timeout), the choice of service
 * by SNI on an address several services share, and the hand-off to HTTP/2 (guarded) or
 * HTTP/1.1 by ALPN. */
#ifndef PERCORE_TLSACCEPT_H
#define PERCORE_TLSACCEPT_H

#include "h2o_inc.h"

struct site_rt;

/* One service reachable on an address (TLS, or plain with names). */
struct tls_site {
    char *const *names;    /* its server_name patterns, lowercase */
    size_t nnames;
    h2o_accept_ctx_t *actx; /* its SSL_CTX for this address, context and hosts */
    unsigned http2_max_resets;
    struct site_rt *site;   /* how the router serves it there */
};

/* The site a TLS connection was given at its handshake, in its record (conn.h); zero for
 * a connection that is not TLS. */
struct tls_conn {
    const struct tls_site *sites, *site;
    size_t nsites;
};

/* The site name (a host name without port or trailing dot) picks among sites: an exact
 * server_name, else the longest "*.suffix" that matches; NULL when none does. */
const struct tls_site *tlsaccept_find_site(const struct tls_site *sites, size_t nsites,
                                           const char *name);

/* Install the SNI callback on an SSL_CTX this worker accepts with; once per context. */
void tlsaccept_prepare(void *ssl_ctx);

/* Handshake sock for sites[0] (the default), switching to the site whose name the client
 * sent (SNI), then serve it. sites must outlive the connection. */
void tlsaccept(h2o_socket_t *sock, const struct tls_site *sites, size_t nsites);

/* Whether req came over a TLS connection whose SNI chose another service than its Host
 * names (an HTTP/2 client reusing a connection for a name the certificate also covers);
 * such a request gets 421 so that the client opens a connection of its own. */
int tlsaccept_misdirected(h2o_req_t *req);

#endif
