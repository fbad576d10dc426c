/* WebSocket tunnels: once an upstream answered 101 to an HTTP/1.1 client's upgrade, the
 * client's socket is taken from libh2o and bytes are piped both ways between it and the
 * upstream connection, as they come, until either side closes or fails, or nothing moves
 * for the idle timeout; then both close. A side is not read while what it read last is
 * being written to the other, so each direction holds at most one read's worth (what the
 * kernel's receive buffer held). Worker only.
 *
 * The client's socket keeps its connection record (conn.h), so a tunnel counts as an open
 * connection: a draining worker waits for it until shutdown_timeout. */
#ifndef PERCORE_TUNNEL_H
#define PERCORE_TUNNEL_H

#include <stddef.h>

#include "h2o_inc.h"

/* Default of the proxy's websocket_timeout: nginx's proxy_read_timeout is 60s, h2o's
 * proxy.websocket.timeout 300s; a chat client that pings once a minute fits in either. */
#define TUNNEL_IDLE_DEFAULT_MS (300 * 1000)

struct upconn;

/* Tunnels req's client connection and c. req is an HTTP/1.1 request whose response is
 * the 101 to send (status, reason and headers set; libh2o adds Connection: upgrade); c is
 * the upstream connection that answered it, reading nothing, with what the server sent
 * after its 101 in its input. The tunnel owns c from here. The 101 is written, then
 * libh2o lets go of the client's socket and disposes of req; if the write fails, both
 * connections close. idle (the timeout with no byte either way) must outlive the
 * tunnel. */
void tunnel_open(h2o_req_t *req, struct upconn *c, h2o_timeout_t *idle);
/* Tunnels open in this worker, from tunnel_open until both sides are closed. */
size_t tunnel_count(void);

#endif
