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

/* Watch an accepted connection, with the send timeout of the service it was accepted for.
 * Its on_close callback must call sendguard_forget with the socket's fd. */
void sendguard_watch(h2o_socket_t *sock, int64_t timeout_ms);
void sendguard_forget(int fd);

/* Add the guard's filter to a route of a service, BEFORE any other filter: libh2o 2.2.5
 * puts each new filter in front of the route's others, so the first registered is set up
 * last and its ostream sits next to the connection's. It is only
 * needed where the service offers HTTP/2 (to see what a stream holds back for its
 * window), or shares a TLS address with other services (the connection then gets the
 * timeout of the service SNI picked, at its first response); otherwise it is not added. */
void sendguard_register(h2o_pathconf_t *pc, int64_t timeout_ms, int http2, int shared);

#endif
