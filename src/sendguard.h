/* The send timeout: libh2o 2.2.5 has no write timeout, so percore closes connections whose
 * client takes no response bytes for the service's send_timeout (over HTTP/2: no data of
 * a stream that holds some). Worker only. */
#ifndef PERCORE_SENDGUARD_H
#define PERCORE_SENDGUARD_H

#include <stdint.h>

#include "h2o_inc.h"

#define SENDGUARD_SWEEP_MS 1000

/* Start the once-a-second sweep on the worker's loop. */
void sendguard_init(h2o_loop_t *loop);

struct conn;
struct stream_watch;

/* The guard's part of a connection's record (conn.h). */
struct sendguard_conn {
    h2o_linklist_t link; /* in the guard's list of open connections */
    uint64_t mark;       /* the progress counter as last seen */
    uint64_t since;      /* ms: a write pending with no progress since; 0 while none */
    struct stream_watch *first, *last; /* its HTTP/2 streams holding data, oldest first */
    uint64_t flowed;     /* ms: when one of those streams last sent some of its data */
    uint32_t timeout_ms;
    int cut; /* shut down; libh2o is closing it */
};

/* Watch an accepted connection, with the send timeout of the service it was accepted
 * for; from accept until sendguard_conn_closed, which its close hook calls. */
void sendguard_conn_open(struct conn *c, int64_t timeout_ms);
void sendguard_conn_closed(struct conn *c);

/* Add the guard's filter to a route of a service, BEFORE any other filter: libh2o 2.2.5
 * puts each new filter in front of the route's others, so the first registered is set up
 * last and its ostream sits next to the connection's. It is only
 * needed where the service offers HTTP/2 (to see what a stream holds back for its
 * window), or shares a TLS address with other services (the connection then gets the
 * timeout of the service SNI picked, at its first response); otherwise it is not added. */
void sendguard_register(h2o_pathconf_t *pc, int64_t timeout_ms, int http2, int shared);

#endif
