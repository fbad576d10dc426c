/* A worker's connections to one upstream server (see uppool.h). libh2o 2.2.5's socket
 * pool exports a socket when it is returned and imports it again when it is taken (an
 * fcntl and an epoll_ctl each way); here an idle connection keeps its h2o socket and its
 * place in the loop, and is taken and given back by moving a list link. */
#include "config.h"

#include <string.h>

#include "uppool.h"
#include "util.h"

struct uppool {
    h2o_loop_t *loop;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h2o_timeout_t keepalive;
    h2o_linklist_t idle; /* struct upconn; the most recently used at the end */
    size_t nidle, max_idle;
    int rcvbuf;
};

struct uppool *
uppool_new(h2o_loop_t *loop, const struct sockaddr *addr, socklen_t len, uint64_t keepalive_ms,
           size_t max_idle, int rcvbuf)
{
    struct uppool *p = xcalloc(1, sizeof(*p));

    p->loop = loop;
    memcpy(&p->addr, addr, len);
    p->addrlen = len;
    h2o_timeout_init(loop, &p->keepalive, keepalive_ms);
    h2o_linklist_init_anchor(&p->idle);
    p->max_idle = max_idle;
    p->rcvbuf = rcvbuf;
    return p;
}

static void
unlink_idle(struct upconn *c)
{
    h2o_linklist_unlink(&c->link);
    h2o_timeout_unlink(&c->timer);
    c->pool->nidle--;
}

void
upconn_close(struct upconn *c)
{
    if (h2o_linklist_is_linked(&c->link))
        unlink_idle(c);
    h2o_timeout_unlink(&c->timer);
    h2o_socket_close(c->sock);
    free(c);
}

/* Anything from an idle connection (its close, or bytes no request asked for) ends it. */
static void
on_idle_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    upconn_close(sock->data);
}

static void
on_idle_timeout(h2o_timeout_entry_t *entry)
{
    upconn_close(H2O_STRUCT_FROM_MEMBER(struct upconn, timer, entry));
}

struct upconn *
uppool_take(struct uppool *p)
{
    struct upconn *c;

    if (h2o_linklist_is_empty(&p->idle))
        return NULL;
    c = H2O_STRUCT_FROM_MEMBER(struct upconn, link, p->idle.prev);
    unlink_idle(c);
    return c;
}

void
uppool_put(struct upconn *c)
{
    struct uppool *p = c->pool;

    if (p->nidle >= p->max_idle)
        upconn_close(H2O_STRUCT_FROM_MEMBER(struct upconn, link, p->idle.next));
    c->sock->data = c;
    h2o_socket_read_start(c->sock, on_idle_read);
    h2o_linklist_insert(&p->idle, &c->link);
    c->timer.cb = on_idle_timeout;
    h2o_timeout_link(p->loop, &p->keepalive, &c->timer);
    p->nidle++;
}

static void
on_connect(h2o_socket_t *sock, const char *err)
{
    struct upconn *c = sock->data;

    c->cb(c, err, c->data);
}

struct upconn *
uppool_connect(struct uppool *p, upconn_cb cb, void *data)
{
    struct upconn *c = xcalloc(1, sizeof(*c));

    c->sock = h2o_socket_connect(p->loop, (struct sockaddr *)&p->addr, p->addrlen, on_connect);
    if (c->sock == NULL) {
        free(c);
        return NULL;
    }
    /* libh2o reads all a socket holds at once: its receive buffer bounds what one read
     * brings past a response's read-ahead limit. */
    if (p->rcvbuf > 0)
        (void)setsockopt(h2o_socket_get_fd(c->sock), SOL_SOCKET, SO_RCVBUF, &p->rcvbuf,
                         sizeof(p->rcvbuf));
    c->sock->data = c;
    c->pool = p;
    c->cb = cb;
    c->data = data;
    return c;
}
