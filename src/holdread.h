/* Keeping an HTTP/1 client's socket in the event loop's read set while a handler answers
 * its request a loop turn or more later (worker). libh2o 2.2.5's HTTP/1 server stops
 * reading before it runs a handler and starts again once the response is sent: with an
 * answer that comes from another socket, each is an epoll_ctl, two per request. Held, the
 * socket stays polled but nothing is read from it: should the client send anything (a
 * pipelined request, its close) before the answer, reading stops then, as libh2o would
 * have had it. So no byte is read ahead and the kernel's buffer still pushes back. */
#ifndef PERCORE_HOLDREAD_H
#define PERCORE_HOLDREAD_H

#include "h2o_inc.h"

/* Holds the socket of req, an HTTP/1 request libh2o is no longer reading for, and
 * returns it; NULL (nothing done) for any other request. Called from the handler, in the
 * turn libh2o stopped reading. */
h2o_socket_t *holdread_start(h2o_req_t *req);
/* Lets the socket read again: called when req is disposed of (before libh2o reads for
 * the next request, or closes the connection). Accepts NULL. */
void holdread_end(h2o_socket_t *sock);

#endif
