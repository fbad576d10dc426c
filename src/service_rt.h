/* A service at run time: its libh2o configuration, built from the conf tree, and how each
 * of the worker's listening sockets is served. Worker only, once at start; everything
 * built here lives as long as the worker. */
#ifndef PERCORE_SERVICE_RT_H
#define PERCORE_SERVICE_RT_H

#include <stddef.h>
#include <stdint.h>

#include "h2o_inc.h"
#include "tlsaccept.h"

struct access_log;
struct conf;
struct listener;
struct metrics_slot;

/* What a `listen` asked for: one accept context of each kind per service. */
enum lsn_kind { LSN_PLAIN, LSN_TLS, LSN_TLS_H2, LSN_KIND_MAX };

/* A service's own libh2o configuration and context (all on the worker's one loop), so
 * that its limits and timeouts are its own. Never moved once set up. */
struct service_rt {
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t actx[LSN_KIND_MAX]; /* each with its SSL_CTX */
    h2o_hostconf_t *hosts[2];
    unsigned http2_max_resets;
    struct access_log *access; /* or NULL */
    int svc;                   /* metrics index */
};

/* What a listening socket's data points to. */
struct lsn_rt {
    struct service_rt *owner;
    h2o_accept_ctx_t *actx; /* plain */
    struct tls_site *sites; /* TLS: the owner first, then services sharing it by SNI */
    size_t nsites;
    int64_t send_timeout_ms; /* the owner's, until a request names its service */
};

/* The services of c, by their index in c, with their contexts on loop; requests are
 * counted in metrics. Returns an array of c->nservices the worker keeps for its life. */
struct service_rt *service_rt_setup(const struct conf *c, h2o_loop_t *loop,
                                    struct metrics_slot *metrics);

/* Whether c has a service that listens on l. */
int service_rt_serves(const struct conf *c, const struct listener *l);

/* How connections on l are served by services (from service_rt_setup of c): by its owner,
 * or for TLS by the site SNI picks among the services listening on it (owner first: the
 * default). NULL if no service of c listens on l. The result lives as long as the worker. */
struct lsn_rt *service_rt_listener(const struct conf *c, struct service_rt *services,
                                   const struct listener *l);

#endif
