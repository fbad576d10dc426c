/* One HTTP/1.1 exchange with an upstream over a connection from its pool: the request is
 * written, the response head read and handed to the caller, then the body streams to the
 * client's request (content-length, chunked or until close), with no more than a set
 * amount read ahead of a client that lags. Afterwards the connection goes back to its
 * pool when the response was read whole and framed, else it is closed; after a 101 to a
 * request that asked to upgrade, it goes to the caller. */
#ifndef PERCORE_UPCLIENT_H
#define PERCORE_UPCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "h2o_inc.h"

struct upconn;

/* Why an exchange ended before a response head came. */
enum upclient_fail {
    UPF_CLOSED,  /* closed or reset: before any byte when upclient_got_bytes() is 0 */
    UPF_TIMEOUT, /* nothing came in time */
    UPF_INVALID, /* the head was not HTTP/1.x, or too large */
    UPF_REFUSED, /* on_head refused the head (its connection is now closed) */
};

struct upclient_head {
    int minor_version, status;
    h2o_iovec_t reason;
    const struct phr_header *headers; /* names as sent; obs-folds already dropped */
    size_t nheaders;
};

struct upclient_cbs {
    /* The exchange failed before a head: its connection is closed; the caller may try
     * again elsewhere or answer. */
    void (*on_fail)(void *data, enum upclient_fail why, const char *err);
    /* A final head (1xx skipped; a 101 goes to on_upgrade): the caller sets req->res from
     * it and returns 0, and the body then streams to the client; or it returns -1: the
     * connection is closed and on_fail gets UPF_REFUSED (where the caller may start the
     * exchange again). */
    int (*on_head)(void *data, const struct upclient_head *h);
    /* A 101: the caller returns -1 if its request asked for no upgrade (the exchange then
     * fails as UPF_INVALID), or takes c and returns 0. c is then reading nothing and has
     * no callback (the caller sets sock->data); once this returns, the head is dropped from
     * its input and what is left there is what the server sent after the head, so c must
     * not be closed before this returns. NULL: every 101 fails as UPF_INVALID. */
    int (*on_upgrade)(void *data, const struct upclient_head *h, struct upconn *c);
};

struct upclient {
    /* private */
    h2o_generator_t gen;
    h2o_req_t *req;
    struct upconn *conn;
    const struct upclient_cbs *cbs;
    void *data;
    h2o_loop_t *loop;
    h2o_timeout_t *io_timeout;
    h2o_timeout_entry_t timer;
    h2o_buffer_t *sending; /* handed to the client, until it asks for more */
    uint64_t limit;        /* read ahead of the client at most this much */
    uint64_t body_left;    /* content-length framing */
    size_t seen;           /* input bytes already framed */
    size_t skip;           /* the head, before the body in the input, until sent */
    struct phr_chunked_decoder *chunked;
    int framing;
    int is_head;
    int got_bytes, head_done, body_done, final_sent, in_flight, reading, failed, reusable;
};

/* Starts the exchange on c (which it now owns): writes head and body (both must live as
 * long as req), then waits for the response with io_timeout per read. u lives in req's
 * pool and is upclient_dispose()d with it. is_head: the response has no body. */
void upclient_start(struct upclient *u, h2o_req_t *req, struct upconn *c, h2o_iovec_t head,
                    h2o_iovec_t body, int is_head, h2o_timeout_t *io_timeout, uint64_t limit,
                    const struct upclient_cbs *cbs, void *data);
/* Whether any response byte came (a request that got none may be sent again). */
int upclient_got_bytes(const struct upclient *u);
/* Ends what is left of u (the request is going away). */
void upclient_dispose(struct upclient *u);

#endif
