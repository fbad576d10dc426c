/* The router: each request on an address goes to a site (a service there, by Host or SNI)
 * and within it to a route (route_match.c), after the service's and route's rewrites; the
 * route's pathconf is then bound and its handlers run. Also what routes add around their
 * handler: request headers for upstreams, response headers with variables, and the
 * router's own answers (404, 405 with Allow, a rewrite's redirect, 500 for a loop). */
#ifndef PERCORE_ROUTER_H
#define PERCORE_ROUTER_H

#include "h2o_inc.h"

struct addr_rt;
struct conf_route;
struct conf_service;
struct tmpl_env;

/* How many times a request may be routed again after rewrites. */
#define ROUTER_MAX_REROUTES 10

/* The router as the one handler of a's dispatch pathconf. */
void router_register(h2o_pathconf_t *pc, struct addr_rt *a);
/* The last handler of a site's fallback pathconf: the router's own answers (404 unless
 * the router decided otherwise). */
void router_register_answer(h2o_pathconf_t *pc);
/* Before route r's handler: the request headers `proxy_header` and `proxy_header_unset`
 * of s, then of r, ask for. Nothing is registered when there are none. */
void router_register_reqheaders(h2o_pathconf_t *pc, const struct conf_service *s,
                                const struct conf_route *r);
/* Route r's response headers, when one of them has variables (libh2o's headers filter
 * takes constant ones): 1 if registered here. */
int router_register_headers(h2o_pathconf_t *pc, const struct conf_route *r);

/* Whether proxy_header set req's header name (which the proxy then keeps, though it
 * drops such a header from clients). */
int router_sets_header(h2o_req_t *req, const h2o_iovec_t *name);

/* What req's templates draw on (service, route, captures; the request ID when uses, a
 * tmpl_uses mask, has it). */
void router_tmpl_env(h2o_req_t *req, struct tmpl_env *env, unsigned uses);

#endif
