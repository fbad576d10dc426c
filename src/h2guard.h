/* The HTTP/2 reset guard: libh2o 2.2.5 has no defence against Rapid Reset (CVE-2023-44487)
 * or MadeYouReset, so percore meters stream resets per connection. */
#ifndef PERCORE_H2GUARD_H
#define PERCORE_H2GUARD_H

#include "h2o_inc.h"

#define H2GUARD_PERIOD_MS 10000

struct conn;

/* Hand a TLS socket whose ALPN chose h2 to libh2o's HTTP/2, guarded: a connection whose
 * streams are reset more than max_resets times per H2GUARD_PERIOD_MS (RST_STREAM from the
 * client, or streams libh2o refused or reset for a protocol error) is closed before the
 * frames over the budget run. */
void h2guard_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock, struct timeval connected_at,
                    unsigned max_resets);

/* Every request that reached a handler, when it ends (the access logger), with its
 * connection's record (or NULL). A request of a
 * guarded connection that ended before its response started counts against a second
 * budget, http2_max_resets plus the streams that run at once, whatever ended it: past it
 * the connection is closed at its next read. */
void h2guard_request_done(struct conn *c, h2o_req_t *req);

/* From c's close hook: its meter, if any, is freed. */
void h2guard_conn_closed(struct conn *c);

#endif
