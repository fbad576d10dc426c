/* Keeping an HTTP/1 client's socket polled for reading while its request is answered (see
 * holdread.h). Worker only.
 *
 * The socket is given a read callback with libh2o's "don't read" flag set: epoll keeps its
 * EPOLLIN (libh2o's stop and this start fall in one turn, so the loop sees no change and
 * makes no system call), and an event only calls the callback, which then stops reading.
 * The flag is cleared when the request is disposed of, before libh2o's HTTP/1 server
 * starts reading again with its own callback. */
#include "config.h"

#include "holdread.h"

static void
on_held_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    /* The client spoke before its answer: wait as libh2o would have (not polled). */
    h2o_socket_read_stop(sock);
}

h2o_socket_t *
holdread_start(h2o_req_t *req)
{
    h2o_socket_t *sock;

    /* HTTP/2 reads its socket all along; an upgrade hands the socket on; a connection
     * that closes after this response reads nothing more. */
    if (req->version >= 0x200 || req->upgrade.base != NULL || !req->http1_is_persistent ||
        req->conn->callbacks->get_socket == NULL)
        return NULL;
    sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || h2o_socket_is_reading(sock))
        return NULL;
    h2o_socket_dont_read(sock, 1);
    h2o_socket_read_start(sock, on_held_read);
    return sock;
}

void
holdread_end(h2o_socket_t *sock)
{
    if (sock == NULL)
        return;
    h2o_socket_dont_read(sock, 0);
    /* libh2o starts reading next with its own callback; until then nothing is read. */
    if (sock->_cb.read == on_held_read)
        h2o_socket_read_stop(sock);
}
