/* What percore keeps per request beside libh2o's h2o_req_t (which has no slot of ours):
 * made on demand, found by the request, gone with the request's pool. Worker only. */
#ifndef PERCORE_REQDATA_H
#define PERCORE_REQDATA_H

#include <stddef.h>
#include <stdint.h>

#include "h2o_inc.h"
#include "regex.h"
#include "reqtrace.h"

struct otel_attempt;
struct reqheaders;
struct route_rt;
struct site_rt;

enum {
    RD_UPSTREAM_RESPONSE = 1, /* the response came from an upstream, FastCGI or a module */
};

struct reqdata {
    h2o_req_t *req;
    unsigned flags;
    const struct site_rt *site;    /* chosen by Host (or SNI) */
    const struct route_rt *route;  /* NULL: no route took it */
    int status;                    /* the router's own answer: 405, 500, a rewrite's 30x */
    h2o_iovec_t allow;             /* 405: the Allow header */
    h2o_iovec_t location;          /* a rewrite's redirect */
    const struct reqheaders *set;  /* the request headers proxy_header set */
    const char *subject;           /* the path the route's captures index */
    size_t ov[2 * (REGEX_MAX_CAPTURES + 1)];
    unsigned nov;
    int64_t start_us;    /* monotonic, when the router took the request; 0: it did not */
    char request_id[REQTRACE_ID_MAX + 1]; /* "" until asked for */
    struct reqtrace trace;
    /* The last upstream attempt, for logs (addr NULL: none): its server, the status it
     * answered (0: none), when it began and ended (monotonic; end 0: the body did not
     * end), how long it took to connect (0: a kept connection) and to get the head after
     * sending (-1: it did not get so far). */
    struct {
        const char *addr;
        int status;
        unsigned attempts;
        int64_t start_us, end_us, connect_us, header_us;
    } up;
    /* Span export (otel.h): the answered upstream attempt whose span ends with the
     * request, or NULL. */
    struct otel_attempt *otel_open;
};

/* req's data, or NULL when none was made. */
struct reqdata *reqdata_find(h2o_req_t *req);
/* req's data, made zeroed (but for req) on first use. */
struct reqdata *reqdata_get(h2o_req_t *req);
/* Mark req's response as another's (an upstream's): error documents leave it. */
void reqdata_mark_upstream(h2o_req_t *req);
/* req's request ID, made on first use: 32 hex digits from a per-worker generator seeded
 * from getrandom, no system call per request. */
const char *reqdata_request_id(h2o_req_t *req);
/* 64 random bits from the same generator. */
uint64_t reqdata_random(void);

#endif
