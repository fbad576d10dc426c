/* Route choice within a service, the rule of percore.conf(5) "ROUTING": an exact route
 * first, then regex routes in file order, then the longest prefix; in each, a route whose
 * conditions (methods, headers, query arguments) do not all hold is passed over. When some
 * route's path matched and only its methods did not, the answer is 405 with the methods
 * such routes allow. Built in each worker from the conf tree; no allocation per request. */
#ifndef PERCORE_ROUTE_MATCH_H
#define PERCORE_ROUTE_MATCH_H

#include <stddef.h>

#include "h2o_inc.h"
#include "regex.h"

struct conf_route;
struct route_table;

/* What a request offers to matching. */
struct rm_req {
    const char *path; /* decoded and normalised, no query */
    size_t path_len;
    h2o_iovec_t method;
    const h2o_headers_t *headers; /* names lowercase (libh2o's) */
    const char *query;            /* after '?', as received; NULL when none */
    size_t query_len;
};

struct rm_result {
    int route;       /* index in the routes given to route_table_build, or -1 */
    /* route == -1 and a route matched but for its methods: 1, and allow is the ", "-joined
     * list of the methods of every such route, in file order, each once ("GET, HEAD"). */
    int method_mismatch;
    char allow[256];
    /* The route's captures (regex routes): regex_match's offsets into path. */
    size_t ov[2 * (REGEX_MAX_CAPTURES + 1)];
    unsigned nov;
};

/* The table of routes[0..n) (their order in the file). Lives as long as the caller keeps
 * it; the routes must outlive it. */
struct route_table *route_table_build(const struct conf_route *routes, size_t n);
void route_table_free(struct route_table *t);

/* The route for rq into *res; returns res->route. */
int route_table_find(const struct route_table *t, const struct rm_req *rq,
                     struct rm_result *res);

#endif
