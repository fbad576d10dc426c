/* Services at run time: each listening address's libh2o configuration and context, with
 * every service on the address as a site (its routes, guards, headers and limits) that the
 * router picks by Host or SNI. Built from the conf tree in a worker at start; everything
 * built here lives as long as the worker. */
#ifndef PERCORE_SERVICE_RT_H
#define PERCORE_SERVICE_RT_H

#include <stddef.h>
#include <stdint.h>

#include "h2o_inc.h"
#include "tlsaccept.h"

struct access_log;
struct conf;
struct conf_route;
struct conf_service;
struct listener;
struct metrics_slot;
struct route_table;

/* What a `listen` asked for. */
enum lsn_kind { LSN_PLAIN, LSN_TLS, LSN_TLS_H2, LSN_KIND_MAX };

/* A service, whatever address it is reached on. */
struct service_rt {
    const struct conf_service *conf;
    struct access_log *access; /* or NULL */
    int svc;                   /* metrics index */
};

/* A route of a site: its pathconf (guards, handler, filters, logger) and what the router
 * must keep for it per request. */
struct route_rt {
    const struct conf_route *conf;
    char *label; /* $route: the pattern with its operator ("~ ^/v(\d+)/", "= /x", "/api/") */
    h2o_pathconf_t *pc;
    int needs_env; /* its templates use variables: the router records the request's */
    int midx;      /* its metrics index (metrics_route_index), or -1 */
};

/* r's label, as $route and the metrics name it (malloc'ed). */
char *service_rt_route_label(const struct conf_route *r);

/* A service as served on one address: a hostconf of the address's configuration that
 * libh2o never picks itself (the router binds its pathconfs). */
struct site_rt {
    struct service_rt *service;
    h2o_hostconf_t *host;
    struct route_rt *routes; /* the service's, in file order */
    struct route_table *table;
    h2o_accept_ctx_t actx;   /* TLS: the service's SSL_CTX on this address */
};

/* A listening address: its own libh2o configuration (connection timeouts are its default
 * service's; the body limit the largest, each service checking its own) and context. */
struct addr_rt {
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    h2o_hostconf_t *hosts[2]; /* the dispatch host, whose one handler is the router */
    h2o_accept_ctx_t actx;    /* plain */
    struct site_rt *sites;    /* the default first, then the others in file order */
    struct tls_site *names;   /* each site's server names, in the same order */
    size_t nsites;
    int tls;
};

/* What a listening socket's data points to. */
struct lsn_rt {
    struct service_rt *owner; /* the address's default service */
    struct addr_rt *addr;     /* its services, for the PROXY header's trust check */
    h2o_accept_ctx_t *actx;   /* plain */
    struct tls_site *sites;   /* TLS: the addresses' sites, the default first; else NULL */
    size_t nsites;            /* 0: plain */
    int64_t send_timeout_ms;  /* the owner's, until a request names its service */
    int proxy_protocol;       /* connections start with a PROXY header */
};

/* The services of c, by their index in c; requests are counted in metrics. Returns an
 * array of c->nservices the worker keeps for its life. */
struct service_rt *service_rt_setup(const struct conf *c, h2o_loop_t *loop,
                                    struct metrics_slot *metrics);

/* Whether c has a service that listens on l. */
int service_rt_serves(const struct conf *c, const struct listener *l);

/* How connections on l are served (services from service_rt_setup of c, on loop): the
 * address's configuration is built here, once per listener. NULL if no service of c
 * listens on l. The result lives as long as the worker. */
struct lsn_rt *service_rt_listener(const struct conf *c, struct service_rt *services,
                                   const struct listener *l, h2o_loop_t *loop,
                                   struct metrics_slot *metrics);

/* Whether sa, the peer of a connection accepted as lr says, is in the trusted_proxies of
 * every service on its address (any of them may serve its requests). */
int service_rt_peer_trusted(const struct lsn_rt *lr, const struct sockaddr *sa);

/* The service req is served by: the site the router bound it to, else (before routing)
 * its address's default. Only for requests on the contexts built here. */
const struct conf_service *service_rt_req_service(h2o_req_t *req);

/* Every address context built so far, for a drain. */
size_t service_rt_contexts(h2o_context_t ***ctxs);

#endif
