/* A worker's connections to one upstream server: connecting, and keeping idle keep-alive
 * connections for the next request. An idle connection stays registered with the event
 * loop (reading, to learn at once that the server closed it), so taking one and giving it
 * back costs no system call.
 *
 * A connection may start with a preamble, bytes sent before any request (a PROXY header
 * naming the client it was opened for). Such a connection speaks for that client only: it
 * is taken again only for a request with the very same preamble. */
#ifndef PERCORE_UPPOOL_H
#define PERCORE_UPPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "h2o_inc.h"
#include "upresolve.h"

struct uppool;
struct upconn;

/* The longest preamble: a PROXY version 1 line (107 bytes) fits. */
#define UPPOOL_PREAMBLE_MAX 108

/* Called once a connection attempt ends: err NULL when connected (and its preamble sent).
 * The connection is the caller's either way (upconn_close it on error). */
typedef void (*upconn_cb)(struct upconn *c, const char *err, void *data);

struct upconn {
    h2o_socket_t *sock;
    struct uppool *pool;
    unsigned requests; /* sent over it so far */
    /* private */
    h2o_linklist_t link;
    h2o_timeout_entry_t timer;
    upconn_cb cb;
    void *data;
    h2o_linklist_t same; /* idle, in its pool's bucket of preambles of the same hash */
    uint64_t hash;       /* of the preamble */
    size_t preamble_len;
    char preamble[UPPOOL_PREAMBLE_MAX];
    union upresolve_addr peer; /* the address connected to (a followed pool's) */
};

/* A pool for the server at addr, keeping at most max_idle idle connections, each for at
 * most keepalive_ms; each connection's receive buffer is rcvbuf bytes (0: the system's,
 * which grows up to tcp_rmem's maximum). */
struct uppool *uppool_new(h2o_loop_t *loop, const struct sockaddr *addr, socklen_t len,
                          uint64_t keepalive_ms, size_t max_idle, int rcvbuf);
/* From now on, p connects to the addresses the master publishes in slot s for holder id
 * (upresolve.h), in turn, instead of its address from load; an idle connection to an
 * address no longer among them is closed rather than used. s NULL: nothing changes. */
void uppool_follow(struct uppool *p, const struct upresolve_slot *s, uint64_t id);
/* An idle connection opened without a preamble, most recently used first, or NULL. The
 * caller owns it. */
struct upconn *uppool_take(struct uppool *p);
/* The same for one opened with preamble (len 0: none): the most recently used whose
 * preamble is byte for byte the same, or NULL. Takes time in the number of idle ones of
 * the same hash, not of all. */
struct upconn *uppool_take_for(struct uppool *p, h2o_iovec_t preamble);
/* Opens a new connection; cb runs from the loop (never from within this call). NULL when
 * the connect failed at once (errno set). */
struct upconn *uppool_connect(struct uppool *p, upconn_cb cb, void *data);
/* The same, sending preamble (at most UPPOOL_PREAMBLE_MAX bytes, copied; len 0: none)
 * once connected, before cb runs. */
struct upconn *uppool_connect_for(struct uppool *p, h2o_iovec_t preamble, upconn_cb cb,
                                  void *data);
/* Gives back a connection whose last response was read whole and whose input is empty (it
 * is closed instead when its address is no longer the server's). */
void uppool_put(struct upconn *c);
/* Closes a connection the caller owns (also one still connecting: the attempt ends and
 * its callback does not run). */
void upconn_close(struct upconn *c);

#endif
