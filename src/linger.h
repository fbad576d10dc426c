/* Lingering close for the HTTP/2 connections a draining worker ends. Worker only.
 *
 * libh2o 2.2.5 closes a connection's fd as soon as it is done with it. If the client sent
 * bytes the server never read (frames that crossed the final GOAWAY), the kernel answers
 * the close with a reset, which can also throw away the last responses and the GOAWAY
 * still on their way. When the worker starts draining, every open TLS connection's fd is
 * duplicated (whether one still in its handshake will speak HTTP/2 is not known yet;
 * cleartext HTTP/2 is never served); when libh2o closes an HTTP/2 one, the duplicate keeps the socket open,
 * sends the FIN after what was written, and reads and drops what the client still sends
 * until it closes its side or LINGER_MS pass. HTTP/1 connections close as before: a
 * client's next request on a closing keep-alive connection is better met by a reset,
 * which makes it retry, than dropped. Nothing of this runs before a drain. */
#ifndef PERCORE_LINGER_H
#define PERCORE_LINGER_H

#include <stddef.h>

#include "h2o_inc.h"

#define LINGER_MS 2000

struct conn;

/* The lingering part of a connection's record (conn.h). */
struct linger_conn {
    h2o_linklist_t link; /* in the list of open connections */
    int fd;              /* the duplicate once armed, else -1 */
    int tls;             /* accepted on a TLS listen: may speak HTTP/2 */
};

void linger_init(h2o_loop_t *loop);
void linger_conn_open(struct conn *c, int tls);
/* From the connection's close hook: the fd is closed; linger on the duplicate, if any. */
void linger_conn_closed(struct conn *c);
/* At the start of a drain: duplicate the fd of every open connection. */
void linger_arm_all(void);
/* Sockets still lingering: the drain waits for them too. */
size_t linger_count(void);

#endif
