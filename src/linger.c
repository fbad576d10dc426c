/* Lingering close for the connections a draining worker ends (see linger.h). Worker only. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "linger.h"
#include "log.h"
#include "util.h"

struct lingering {
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout;
};

static struct {
    h2o_loop_t *loop;
    h2o_linklist_t open; /* struct linger_conn of every open connection */
    h2o_timeout_t timeout;
    size_t count;
} lg;

void
linger_init(h2o_loop_t *loop)
{
    lg.loop = loop;
    h2o_linklist_init_anchor(&lg.open);
    h2o_timeout_init(loop, &lg.timeout, LINGER_MS);
}

void
linger_conn_open(struct conn *c, int tls)
{
    c->linger.fd = -1;
    c->linger.tls = tls;
    h2o_linklist_insert(&lg.open, &c->linger.link);
}

void
linger_arm_all(void)
{
    for (h2o_linklist_t *n = lg.open.next; n != &lg.open; n = n->next) {
        struct linger_conn *l = H2O_STRUCT_FROM_MEMBER(struct linger_conn, link, n);
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, linger, l);

        /* Only HTTP/2 lingers, and it comes over TLS only (a connection may be in its
         * handshake still): a cleartext one would cost an fd for nothing. */
        if (l->fd != -1 || !l->tls)
            continue;
        /* Without a spare fd this one closes as it would have. */
        l->fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
    }
}

static void
linger_end(struct lingering *l)
{
    h2o_timeout_unlink(&l->timeout);
    h2o_socket_close(l->sock);
    free(l);
    assert(lg.count > 0);
    lg.count--;
}

static void
on_linger_timeout(h2o_timeout_entry_t *entry)
{
    linger_end(H2O_STRUCT_FROM_MEMBER(struct lingering, timeout, entry));
}

static void
on_linger_read(h2o_socket_t *sock, const char *err)
{
    if (err != NULL) {
        linger_end(sock->data);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

void
linger_conn_closed(struct conn *c)
{
    struct lingering *l;
    int fd = c->linger.fd;

    h2o_linklist_unlink(&c->linger.link);
    if (fd == -1)
        return;
    /* HTTP/1 clients send their next request on a keep-alive connection the moment a
     * response is complete: dropping it would leave them waiting, where a reset makes
     * them retry at once. Only HTTP/2, whose GOAWAY told the client what was served,
     * lingers. */
    if (c->h2 == NULL) {
        close(fd);
        return;
    }
    /* The FIN follows whatever libh2o wrote; the client's bytes are read from here on. */
    if (shutdown(fd, SHUT_WR) == -1) {
        close(fd);
        return;
    }
    l = xcalloc(1, sizeof(*l));
    l->sock = h2o_evloop_socket_create(lg.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    l->timeout.cb = on_linger_timeout;
    h2o_timeout_link(lg.loop, &lg.timeout, &l->timeout);
    h2o_socket_read_start(l->sock, on_linger_read);
    lg.count++;
}

size_t
linger_count(void)
{
    return lg.count;
}
