/* WebSocket tunnels between a client and an upstream (see tunnel.h). Worker only.
 *
 * Each side's socket reads into its own input buffer; what one side read is written to
 * the other straight from that buffer, which is emptied once the write is done, and only
 * then is the side read again. So no byte is copied here, a side that does not take what
 * it is sent stops the other from being read (the kernel's windows then push back on the
 * sender), and a close or an error on either side ends the tunnel. Half-closes are not
 * passed on: WebSocket ends with a close frame each way before either side closes. */
#include "config.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include "conn.h"
#include "log.h"
#include "reqcheck.h"
#include "tunnel.h"
#include "uppool.h"
#include "util.h"

struct tunnel {
    h2o_socket_t *client; /* NULL while libh2o writes the 101 */
    struct upconn *up;
    h2o_loop_t *loop;
    h2o_timeout_t *idle;
    h2o_timeout_entry_t timer; /* linked once both sides are the tunnel's */
};

static size_t ntunnels;

static void on_read(h2o_socket_t *sock, const char *err);

static void
tunnel_close(struct tunnel *t)
{
    h2o_timeout_unlink(&t->timer);
    assert(ntunnels > 0);
    ntunnels--;
    if (t->client != NULL)
        h2o_socket_close(t->client);
    upconn_close(t->up);
    free(t);
}

static h2o_socket_t *
other_side(const struct tunnel *t, const h2o_socket_t *sock)
{
    return sock == t->client ? t->up->sock : t->client;
}

/* Something moved: the idle timeout starts again. */
static void
touch(struct tunnel *t)
{
    h2o_timeout_unlink(&t->timer);
    h2o_timeout_link(t->loop, t->idle, &t->timer);
}

static void
on_idle(h2o_timeout_entry_t *entry)
{
    struct tunnel *t = H2O_STRUCT_FROM_MEMBER(struct tunnel, timer, entry);

    log_debug("websocket tunnel idle for %" PRIu64 " ms, closed", t->idle->timeout);
    tunnel_close(t);
}

static void on_written(h2o_socket_t *to, const char *err);

/* What from has read goes to the other side, and from is not read until it is written;
 * with nothing read, from is read. */
static void
forward(struct tunnel *t, h2o_socket_t *from)
{
    h2o_iovec_t buf;

    if (from->input->size == 0) {
        h2o_socket_read_start(from, on_read);
        return;
    }
    h2o_socket_read_stop(from);
    buf = h2o_iovec_init(from->input->bytes, from->input->size);
    h2o_socket_write(other_side(t, from), &buf, 1, on_written);
}

static void
on_written(h2o_socket_t *to, const char *err)
{
    struct tunnel *t = to->data;
    h2o_socket_t *from;

    if (err != NULL) {
        tunnel_close(t);
        return;
    }
    from = other_side(t, to);
    /* All of it: a buffer emptied goes back to libh2o's recycling. */
    h2o_buffer_consume(&from->input, from->input->size);
    touch(t);
    forward(t, from);
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
    struct tunnel *t = sock->data;

    if (err != NULL) {
        tunnel_close(t);
        return;
    }
    touch(t);
    forward(t, sock);
}

/* libh2o wrote the 101 and let go of the client's socket (sock NULL: the write failed and
 * libh2o closed it). The socket's input still begins with the request, reqsize bytes;
 * what follows is what the client sent after it. */
static void
on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    struct tunnel *t = data;
    struct conn *c;

    if (sock == NULL) {
        tunnel_close(t);
        return;
    }
    t->client = sock;
    sock->data = t;
    c = worker_conn(sock);
    if (c != NULL) /* its bytes are no HTTP/1 answers any more */
        reqcheck_conn_not_http1(c);
    h2o_buffer_consume(&sock->input, reqsize);
    touch(t);
    forward(t, sock);
    forward(t, t->up->sock);
}

void
tunnel_open(h2o_req_t *req, struct upconn *c, h2o_timeout_t *idle)
{
    struct tunnel *t = xcalloc(1, sizeof(*t));

    assert(req->version < 0x200);
    t->up = c;
    t->loop = req->conn->ctx->loop;
    t->idle = idle;
    t->timer.cb = on_idle;
    c->sock->data = t;
    ntunnels++;
    /* No idle timer until on_upgraded: the 101's write is libh2o's (the send guard watches
     * it), and the tunnel cannot be closed while libh2o still holds the client's socket. */
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, t);
}

size_t
tunnel_count(void)
{
    return ntunnels;
}
