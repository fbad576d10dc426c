/* The send timeout.
 *
 * libh2o 2.2.5 has no write timeout: a client that stops reading keeps its connection, and
 * the response waiting for it, for ever (HTTP/1 with its socket full; HTTP/2 with a stream
 * or connection window it never opens), so max_connections such clients take a worker
 * out. The guard keeps a list of the worker's connections (its part of each connection's
 * record) and sweeps it once a second. A connection is shut down when, for its service's
 * send_timeout:
 * - a write is pending on its socket and the client's TCP stack acknowledged none of it
 *   (TCP_INFO: below TLS, and through sendfile), nor did libh2o start another; or
 * - an HTTP/2 stream held data for it (from the moment the response handed libh2o data
 *   until libh2o asked for more, or the stream ended) and sent none of it. Neither frames
 *   other than DATA (PING, SETTINGS acknowledgements) nor the data of its other streams
 *   are progress here, so a client cannot keep one stream's window shut behind them.
 * A request waiting on its upstream has nothing waiting for the client, and is left alone.
 *
 * A connection's holding streams are linked in the order they began to hold, so the first
 * is the one that has waited longest and the sweep looks at it alone; one that sent some
 * of its data by its deadline starts again at the end (so a stream is cut between one and
 * two send_timeouts after its last DATA frame).
 *
 * Cost: a link and unlink per connection; per HTTP/2 request, one watch from the request's
 * pool and a link and unlink per piece of the response; per sweep, a look at each
 * connection and a getsockopt for those with a pending write. HTTP/1 requests do
 * nothing. */
#include "config.h"

#include <assert.h>
#include <linux/tcp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "h2o_private.h"
#include "log.h"
#include "sendguard.h"
#include "util.h"
#include "worker.h"

/* This worker's open connections, in the order they were accepted. */
static h2o_linklist_t conns = {&conns, &conns};
static h2o_loop_t *sweep_loop;
static h2o_timeout_t sweep_timeout;
static h2o_timeout_entry_t sweep_entry;

/* An HTTP/2 response's window on its data, in the request's pool. It stands in for the
 * response's generator (once every other filter has seen the original), so it sees
 * libh2o ask for more. */
struct stream_watch {
    h2o_ostream_t super;
    h2o_generator_t gen;
    h2o_generator_t *orig;
    struct stream_watch *prev, *next; /* in its connection's list while held */
    uint64_t since; /* ms: holding since, or since it last sent some */
    size_t left;    /* what it held to send, then */
    size_t seen;    /* what it held to send at the last sweep */
    ssize_t win;    /* its stream window when linked */
    int held; /* data handed to libh2o, not yet asked for again: linked in its connection's
               * list (a close unlinks and clears it) */
};

struct route_filter {
    h2o_filter_t super;
    uint32_t timeout_ms;
    int shared;
};

/* Bytes of this connection the client's TCP stack acknowledged; 0 if unknown. */
static uint64_t
acked(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
        return 0;
    return ti.tcpi_bytes_acked;
}

/* The connection whose part c is. */
static struct conn *
record_of(struct sendguard_conn *c)
{
    return H2O_STRUCT_FROM_MEMBER(struct conn, send, c);
}

static void
log_cut(struct sendguard_conn *c, const char *why)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[NI_MAXHOST] = "?";
    int32_t port = 0;

    if (!worker_error_line_allowed())
        return;
    len = h2o_socket_getpeername(record_of(c)->sock, (struct sockaddr *)&ss);
    if (len != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, len, host) != SIZE_MAX)
        port = h2o_socket_getport((struct sockaddr *)&ss);
    log_warnx("closing connection from %s:%d: %s for %u ms (send_timeout)", host, (int)port,
              why, (unsigned)c->timeout_ms);
}

/* libh2o owns the socket and the connection on it: a shutdown makes its pending write fail
 * or its read see the end, and it closes the connection itself. */
static void
cut(struct sendguard_conn *c, int fd, const char *why)
{
    /* A reset, not a FIN behind bytes the client will never read: those would keep the
     * socket and its buffers in the kernel for minutes after the close. */
    static const struct linger reset = {1, 0};

    log_cut(c, why);
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    (void)shutdown(fd, SHUT_RDWR);
    c->cut = 1;
}

/* Whether the pending write on c's socket has made no progress for the timeout. */
static int
socket_stuck(struct sendguard_conn *c, int fd, uint64_t now)
{
    h2o_socket_t *sock = record_of(c)->sock;
    uint64_t progress;

    if (!h2o_socket_is_writing(sock)) {
        c->since = 0;
        return 0;
    }
    progress = sock->bytes_written + acked(fd);
    if (c->since == 0 || progress != c->mark) {
        c->mark = progress;
        c->since = now;
        return 0;
    }
    return now - c->since >= c->timeout_ms;
}

static void unlink_watch(struct sendguard_conn *c, struct stream_watch *sw);
static void link_watch(struct sendguard_conn *c, struct stream_watch *sw, uint64_t now);

/* The bytes libh2o still holds to send for sw's stream (it advances the stream's buffers
 * as DATA frames go out), or SIZE_MAX if unknown. */
static size_t
left_to_send(const struct stream_watch *sw)
{
#ifdef PERCORE_H2O_PRIVATE
    const struct h2_stream_head *st =
        H2O_STRUCT_FROM_MEMBER(struct h2_stream_head, ostr_final, sw->super.next);
    size_t n = 0;

    if (st->data.size > st->data.capacity)
        return SIZE_MAX; /* not the layout this was written for */
    for (size_t i = 0; i < st->data.size; i++)
        n += st->data.entries[i].len;
    return n;
#else
    (void)sw;
    return SIZE_MAX;
#endif
}

/* sw's own stream window as the client left it (0 if unknown). */
static ssize_t
window_of(const struct stream_watch *sw)
{
#ifdef PERCORE_H2O_PRIVATE
    const struct h2_stream_head *st =
        H2O_STRUCT_FROM_MEMBER(struct h2_stream_head, ostr_final, sw->super.next);

    return st->output_window;
#else
    (void)sw;
    return 0;
#endif
}

/* Whether sw, which sent none of its data since it was last linked, is stuck: the client
 * has not opened its window meanwhile, and either it is shut or no stream of the
 * connection sent anything either (the connection's window is shut). An open window
 * that waits its turn while others send is not stuck. */
static int
watch_stuck(const struct sendguard_conn *c, const struct stream_watch *sw, uint64_t now)
{
    ssize_t win = window_of(sw);

    if (win > sw->win)
        return 0;
    return win <= 0 || now - c->flowed >= c->timeout_ms;
}

/* Notes in c->flowed whether any of c's held streams sent some of its data since the last
 * sweep: libh2o takes streams in turns, so with many of them one can wait its turn for
 * longer than the timeout while the connection's data flows. */
static void
note_flow(struct sendguard_conn *c, uint64_t now)
{
    for (struct stream_watch *sw = c->first; sw != NULL; sw = sw->next) {
        size_t left = left_to_send(sw);
        if (sw->seen != SIZE_MAX && left < sw->seen) /* SIZE_MAX: not seen yet */
            c->flowed = now;
        sw->seen = left;
    }
}

/* Whether one of c's streams has sent none of its data for the timeout, with its own
 * window shut, or with no stream of the connection sending either (its window shut). The
 * list is in the order of since: only its head can be due. A stream that sent some since
 * (or all, and waits for the socket, which socket_stuck watches), or that waits its turn
 * while others send, starts again, at the end. */
static int
stream_stuck(struct sendguard_conn *c, uint64_t now)
{
    struct stream_watch *sw;
    size_t left;

    note_flow(c, now);
    while ((sw = c->first) != NULL && now > sw->since && now - sw->since >= c->timeout_ms) {
        left = left_to_send(sw);
        if (left != 0 && left >= sw->left && watch_stuck(c, sw, now))
            return 1; /* SIZE_MAX included: held for the timeout is enough */
        sw->left = left;
        unlink_watch(c, sw);
        link_watch(c, sw, now);
    }
    return 0;
}

static void
sweep_one(struct sendguard_conn *c, int fd, uint64_t now)
{
    if (socket_stuck(c, fd, now))
        cut(c, fd, "it took no response bytes");
    else if (stream_stuck(c, now))
        cut(c, fd, "an HTTP/2 stream's window stayed shut, its data waiting,");
}

static void
on_sweep(h2o_timeout_entry_t *entry)
{
    uint64_t now = h2o_now(sweep_loop);

    for (h2o_linklist_t *l = conns.next; l != &conns; l = l->next) {
        struct sendguard_conn *c = H2O_STRUCT_FROM_MEMBER(struct sendguard_conn, link, l);
        if (!c->cut)
            sweep_one(c, record_of(c)->fd, now);
    }
    h2o_timeout_link(sweep_loop, &sweep_timeout, &sweep_entry);
}

void
sendguard_init(h2o_loop_t *loop)
{
    sweep_loop = loop;
    h2o_timeout_init(loop, &sweep_timeout, SENDGUARD_SWEEP_MS);
    sweep_entry.cb = on_sweep;
    h2o_timeout_link(loop, &sweep_timeout, &sweep_entry);
}

/* The streams of c's connection are no longer its to watch (it closed): they may outlive
 * it, unlinked. */
static void
drop_watches(struct sendguard_conn *c)
{
    struct stream_watch *sw, *next;

    for (sw = c->first; sw != NULL; sw = next) {
        next = sw->next;
        sw->prev = sw->next = NULL;
        sw->held = 0;
    }
    c->first = c->last = NULL;
}

void
sendguard_conn_open(struct conn *rec, int64_t timeout_ms)
{
    struct sendguard_conn *c = &rec->send;

    *c = (struct sendguard_conn){.timeout_ms = (uint32_t)timeout_ms};
    h2o_linklist_insert(&conns, &c->link);
}

void
sendguard_conn_closed(struct conn *rec)
{
    struct sendguard_conn *c = &rec->send;

    drop_watches(c);
    h2o_linklist_unlink(&c->link);
}

/* The guard's part of req's connection, or NULL once it has closed. */
static struct sendguard_conn *
conn_of(h2o_req_t *req)
{
    struct conn *rec = worker_conn_of_req(req);

    return rec != NULL ? &rec->send : NULL;
}

/* Links sw last in c's list: timestamps never decrease along it. */
static void
link_watch(struct sendguard_conn *c, struct stream_watch *sw, uint64_t now)
{
    sw->since = now;
    sw->win = window_of(sw);
    sw->prev = c->last;
    sw->next = NULL;
    if (c->last != NULL)
        c->last->next = sw;
    else
        c->first = sw;
    c->last = sw;
}

static void
unlink_watch(struct sendguard_conn *c, struct stream_watch *sw)
{
    assert(sw->prev != NULL || c->first == sw); /* linked in c's list */
    if (sw->prev != NULL)
        sw->prev->next = sw->next;
    else
        c->first = sw->next;
    if (sw->next != NULL)
        sw->next->prev = sw->prev;
    else
        c->last = sw->prev;
    sw->prev = sw->next = NULL;
}

/* sw's stream (of req) was handed len bytes: libh2o has sent none of them yet. */
static void
hold_start(struct stream_watch *sw, h2o_req_t *req, size_t len)
{
    struct sendguard_conn *c;

    if (sw->held || (c = conn_of(req)) == NULL)
        return;
    sw->held = 1;
    sw->left = len;
    sw->seen = SIZE_MAX;
    link_watch(c, sw, h2o_now(sweep_loop));
}

static void
hold_end(struct stream_watch *sw, h2o_req_t *req)
{
    struct sendguard_conn *c;

    if (!sw->held || (c = conn_of(req)) == NULL)
        return; /* never held, or dropped with its connection */
    sw->held = 0;
    unlink_watch(c, sw);
    c->flowed = h2o_now(sweep_loop); /* all of its data went */
}

/* Straight to libh2o's HTTP/2 stream, the watch staying in the chain even after the final
 * data, so that libh2o calls on_watch_stop when it disposes of the request. */
static void
on_watch_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
              h2o_send_state_t state)
{
    size_t len = 0;

    for (size_t i = 0; i < bufcnt; i++)
        len += bufs[i].len;
    hold_start((struct stream_watch *)self, req, len);
    self->next->do_send(self->next, req, bufs, bufcnt, state);
}

/* The stream is over: whatever it held is no longer waiting. */
static void
on_watch_stop(h2o_ostream_t *self, h2o_req_t *req)
{
    hold_end((struct stream_watch *)self, req);
}

static void
on_watch_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    struct stream_watch *sw = H2O_STRUCT_FROM_MEMBER(struct stream_watch, gen, gen);

    hold_end(sw, req);
    if (sw->orig->proceed != NULL)
        sw->orig->proceed(sw->orig, req);
}

static void
on_gen_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    struct stream_watch *sw = H2O_STRUCT_FROM_MEMBER(struct stream_watch, gen, gen);

    if (sw->orig->stop != NULL)
        sw->orig->stop(sw->orig, req);
}

/* Put a watch into the response's ostream chain at slot (the last filter's: next to
 * libh2o's stream, so it sees what the stream gets), and in front of its generator: every
 * other filter (the proxy's looks for its own generator) has been set up. Returns the
 * watch's own slot. */
static h2o_ostream_t **
add_watch(h2o_req_t *req, h2o_ostream_t **slot)
{
    struct stream_watch *sw = h2o_mem_alloc_pool(&req->pool, sizeof(*sw));

    *sw = (struct stream_watch){.super = {.next = *slot, .do_send = on_watch_send,
                                          .stop = on_watch_stop},
                                .gen = {on_watch_proceed, on_gen_stop},
                                .orig = req->_generator};
    *slot = &sw->super;
    req->_generator = &sw->gen;
    return &sw->super.next;
}

static void
on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct route_filter *f = (struct route_filter *)self;
    struct sendguard_conn *c = NULL;

    if (req->version >= 0x200 || f->shared)
        c = conn_of(req);
    if (c != NULL)
        c->timeout_ms = f->timeout_ms; /* SNI may have picked another service */
    /* Registered first, so set up last: no filter comes after this one, and none may (the
     * watch stays at the chain's top after the final data, which a later filter's
     * h2o_ostream_send_next asserts against). */
    if (c != NULL && req->version >= 0x200 && req->_generator != NULL)
        slot = add_watch(req, slot);
    h2o_setup_next_ostream(req, slot);
}

void
sendguard_register(h2o_pathconf_t *pc, int64_t timeout_ms, int http2, int shared)
{
    struct route_filter *f;

    if (!http2 && !shared)
        return;
    f = (struct route_filter *)h2o_create_filter(pc, sizeof(*f));
    f->super.on_setup_ostream = on_setup_ostream;
    f->timeout_ms = (uint32_t)timeout_ms;
    f->shared = shared;
}
