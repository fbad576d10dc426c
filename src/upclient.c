/* One HTTP/1.1 exchange with an upstream (see upclient.h).
 *
 * The body goes to the client by swapping buffers: what the socket has read (its input
 * buffer, already de-chunked in place) is handed to libh2o whole, and the socket reads on
 * into the buffer the client has finished with. So no byte is copied, and while the client
 * takes one buffer, at most `limit` bytes wait in the other: above that, reading stops
 * until the client asks for more, and the upstream's timeout does not run meanwhile (the
 * client's send timeout does). */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "looplag.h"
#include "phr.h"
#include "reqdata.h"
#include "upclient.h"
#include "uppool.h"
#include "util.h"

#define UPCLIENT_HEAD_MAX (64 * 1024)
#define UPCLIENT_HEADERS_MAX 128

enum framing { FR_NONE, FR_LENGTH, FR_CHUNKED, FR_CLOSE };

/* What upstream sockets read into: libh2o reads all a socket has at once, doubling (and
 * copying into fresh pages) a buffer that fills; from 128 KiB, a response of 64 KiB and its
 * head go in one buffer. Buffers of that size are recycled by libh2o's allocator, so a
 * response costs no allocation. Every response read in one loop turn holds its buffer
 * until the client's write completes, after all of them (libh2o runs the upstream sockets
 * first): UPCLIENT_BUFFERS_KEPT covers such a turn, as a smaller one did not (each buffer
 * past it was malloc'ed and freed, and glibc gave the heap's top back and took it again,
 * a brk and its page faults every 35 requests or so at 64 connections). A kept buffer holds the
 * pages its responses wrote, a page or two for small ones. */
#define UPCLIENT_BUFFER_SIZE (128 * 1024)
#define UPCLIENT_BUFFERS_KEPT 256
static h2o_buffer_prototype_t buffer_prototype = {{UPCLIENT_BUFFERS_KEPT, 0, NULL},
                                                  {UPCLIENT_BUFFER_SIZE, 0, NULL, NULL, -1, {0}},
                                                  NULL};

/* ---- the connection ---- */

/* Gives the connection back when the response was read whole, framed, with nothing after
 * it and the request written; else closes it. */
static void
release_conn(struct upclient *u)
{
    struct upconn *c = u->conn;

    if (c == NULL)
        return;
    u->conn = NULL;
    h2o_timeout_unlink(&u->timer);
    if (u->reusable && u->body_done && c->sock->input->size == 0 &&
        !h2o_socket_is_writing(c->sock)) {
        /* An idle connection holds no buffer. */
        h2o_buffer_dispose(&c->sock->input);
        h2o_buffer_init(&c->sock->input, &buffer_prototype);
        uppool_put(c);
    } else {
        upconn_close(c);
    }
}

static void
close_conn(struct upclient *u)
{
    u->reusable = 0;
    release_conn(u);
}

static void
fail(struct upclient *u, enum upclient_fail why, const char *err)
{
    close_conn(u);
    u->cbs->on_fail(u->data, why, err);
}

/* The body cannot be read on: the client gets a cut response (its connection ends). */
static void
abort_body(struct upclient *u)
{
    close_conn(u);
    u->failed = 1;
    if (!u->in_flight && !u->final_sent) {
        u->final_sent = 1;
        h2o_send(u->req, NULL, 0, H2O_SEND_STATE_ERROR);
    }
}

/* ---- the response head ---- */

/* A Content-Length value: digits, or a list of equal ones ("12, 12"). -1 if invalid. */
static int
parse_length(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0, first = UINT64_MAX;
    size_t i = 0;
    int digits = 0;

    for (;;) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        digits = 0;
        v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (v > (UINT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (uint64_t)(s[i++] - '0');
            digits++;
        }
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (digits == 0 || (first != UINT64_MAX && v != first))
            return -1;
        first = v;
        if (i == len)
            break;
        if (s[i++] != ',')
            return -1;
    }
    *out = v;
    return 0;
}

/* name: lower case. */
static int
name_is(const struct phr_header *h, const char *name, size_t len)
{
    return h2o_lcstris(h->name, h->name_len, name, len);
}

/* Whether a comma-separated list value holds token (any case). */
static int
list_has(const char *s, size_t len, const char *token)
{
    size_t tlen = strlen(token), i = 0;

    while (i < len) {
        size_t start, end;
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        start = i;
        while (i < len && s[i] != ',')
            i++;
        end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp(s + start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

/* Whether the last coding of a Transfer-Encoding is chunked. */
static int
ends_chunked(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return len >= 7 && strncasecmp(s + len - 7, "chunked", 7) == 0 &&
           (len == 7 || s[len - 8] == ',' || s[len - 8] == ' ' || s[len - 8] == '\t');
}

/* How the body of this head is delimited (RFC 9112 6.3), whether the connection may be
 * used again, and the length when known. -1 for a head no proxy may pass on. */
static int
frame(struct upclient *u, const struct upclient_head *h, uint64_t *length)
{
    int te = 0, chunked = 0, has_len = 0, close = h->minor_version == 0;

    for (size_t i = 0; i < h->nheaders; i++) {
        const struct phr_header *p = &h->headers[i];
        if (name_is(p, H2O_STRLIT("transfer-encoding"))) {
            te = 1;
            chunked = ends_chunked(p->value, p->value_len);
        } else if (name_is(p, H2O_STRLIT("content-length"))) {
            uint64_t v;
            if (parse_length(p->value, p->value_len, &v) == -1 || (has_len && v != *length))
                return -1;
            *length = v;
            has_len = 1;
        } else if (name_is(p, H2O_STRLIT("connection"))) {
            if (list_has(p->value, p->value_len, "close"))
                close = 1;
            else if (h->minor_version == 0 && list_has(p->value, p->value_len, "keep-alive"))
                close = 0;
        }
    }
    u->reusable = !close;
    if (u->is_head || h->status == 204 || h->status == 304 || h->status < 200) {
        /* No body: a body the server sends anyway, after this read, would be taken for
         * the next request's response (the HEAD desync), so the connection is not kept.
         * A 204's Content-Length is not passed on (RFC 9110 8.6); HEAD's and 304's are. */
        u->framing = FR_NONE;
        u->reusable = 0;
        if (h->status == 204 || h->status < 200)
            *length = SIZE_MAX;
        return 0;
    }
    if (te) {
        /* Both: the length is not to be trusted, nor the connection after it. */
        if (has_len)
            u->reusable = 0;
        has_len = 0;
        u->framing = chunked ? FR_CHUNKED : FR_CLOSE;
    } else {
        u->framing = has_len ? FR_LENGTH : FR_CLOSE;
    }
    if (u->framing == FR_CLOSE)
        u->reusable = 0;
    if (has_len)
        u->body_left = *length;
    else
        *length = SIZE_MAX;
    return 0;
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req);
static void on_stop(h2o_generator_t *gen, h2o_req_t *req);
static void on_body(struct upclient *u);
static void on_read(h2o_socket_t *sock, const char *err);

/* A 101 head h of headlen bytes: the connection goes to the caller if its request asked
 * to upgrade, else the exchange fails. The exchange is over either way; u is not touched
 * once the caller took the connection. */
static void
switch_protocols(struct upclient *u, const struct upclient_head *h, size_t headlen)
{
    struct upconn *c = u->conn;

    if (u->cbs->on_upgrade == NULL) {
        fail(u, UPF_INVALID, "101 response to a request that did not ask to upgrade");
        return;
    }
    /* The write's callback would find the caller's data on the socket. */
    if (h2o_socket_is_writing(c->sock)) {
        fail(u, UPF_INVALID, "101 response before the request was sent");
        return;
    }
    h2o_socket_read_stop(c->sock);
    h2o_timeout_unlink(&u->timer);
    c->sock->data = NULL;
    u->reading = 0;
    u->conn = NULL;
    u->head_done = 1;
    u->final_sent = 1;
    if (u->cbs->on_upgrade(u->data, h, c) == -1) {
        u->conn = c;
        u->head_done = 0;
        u->final_sent = 0;
        c->sock->data = u;
        fail(u, UPF_INVALID, "101 response to a request that did not ask to upgrade");
        return;
    }
    h2o_buffer_consume(&c->sock->input, headlen);
}

/* Parses the head in the input, skipping interim (1xx) responses but 101; 0 when there is
 * one, 1 when more bytes are needed, -1 when the exchange ended. */
static int
read_head(struct upclient *u)
{
    h2o_buffer_t *in = u->conn->sock->input;
    struct phr_header headers[UPCLIENT_HEADERS_MAX];
    struct upclient_head h;
    const char *msg;
    size_t nheaders, msglen, kept = 0;
    uint64_t length = SIZE_MAX;
    int rc;

    for (;;) {
        nheaders = UPCLIENT_HEADERS_MAX;
        rc = phr_parse_response(in->bytes, in->size, &h.minor_version, &h.status, &msg,
                                &msglen, headers, &nheaders, 0);
        if (rc == -2) {
            if (in->size <= UPCLIENT_HEAD_MAX)
                return 1;
            fail(u, UPF_INVALID, "response head too large");
            return -1;
        }
        if (rc < 0) {
            fail(u, UPF_INVALID, "invalid response head");
            return -1;
        }
        if (h.status >= 200 || h.status == 101)
            break;
        h2o_buffer_consume(&u->conn->sock->input, (size_t)rc);
        in = u->conn->sock->input;
    }
    /* An obs-fold comes as a header with no name: dropped (a proxy may not pass it as it
     * is, and the header it continues may be one that is itself dropped). */
    for (size_t i = 0; i < nheaders; i++)
        if (headers[i].name != NULL && headers[i].name_len > 0)
            headers[kept++] = headers[i];
    h.reason = h2o_iovec_init(msg, msglen);
    h.headers = headers;
    h.nheaders = kept;
    if (h.status == 101) {
        switch_protocols(u, &h, (size_t)rc);
        return -1;
    }
    if (frame(u, &h, &length) == -1) {
        fail(u, UPF_INVALID, "invalid content-length in response");
        return -1;
    }
    if (u->cbs->on_head(u->data, &h) == -1) {
        fail(u, UPF_REFUSED, "head refused");
        return -1;
    }
    u->head_done = 1;
    /* The head stays before the body in this buffer (consuming it would move the body):
     * the first send skips it. */
    u->skip = (size_t)rc;
    u->req->res.content_length = length;
    u->gen.proceed = on_proceed;
    u->gen.stop = on_stop;
    h2o_start_response(u->req, &u->gen);
    if (u->framing == FR_CHUNKED) {
        u->chunked = h2o_mem_alloc_pool(&u->req->pool, PHR_DECODER_ROOM);
        memset(u->chunked, 0, PHR_DECODER_ROOM);
        u->chunked->consume_trailer = 1;
    }
    u->seen = u->skip;
    return 0;
}

/* ---- the body ---- */

/* Hands what was read to the client if it is ready for more. */
/* The response's last byte came: when, for the request's logs. */
static void
note_end(struct upclient *u)
{
    struct reqdata *rd = reqdata_find(u->req);

    if (rd != NULL && rd->up.end_us == 0)
        rd->up.end_us = util_now_us();
}

static void
pump(struct upclient *u)
{
    h2o_socket_t *sock;
    h2o_buffer_t *t;
    h2o_iovec_t v;

    if (u->conn == NULL || u->final_sent)
        return;
    sock = u->conn->sock;
    if (u->in_flight) {
        if (sock->input->size >= u->limit && u->reading) {
            h2o_socket_read_stop(sock);
            h2o_timeout_unlink(&u->timer);
            u->reading = 0;
        }
        return;
    }
    if (sock->input->size == u->skip && !u->body_done)
        return;
    t = sock->input;
    sock->input = u->sending;
    u->sending = t;
    u->seen = 0;
    v = h2o_iovec_init(u->sending->bytes + u->skip, u->sending->size - u->skip);
    u->skip = 0;
    u->in_flight = 1;
    if (u->body_done) {
        u->final_sent = 1;
        release_conn(u);
        h2o_send(u->req, &v, 1, H2O_SEND_STATE_FINAL);
        return;
    }
    if (!u->reading) {
        u->reading = 1;
        h2o_socket_read_start(sock, on_read);
    }
    if (!h2o_timeout_is_linked(&u->timer))
        h2o_timeout_link(u->loop, u->io_timeout, &u->timer);
    h2o_send(u->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* Frames the bytes read since last time: content-length counted, chunks decoded in
 * place. */
static void
on_body(struct upclient *u)
{
    h2o_buffer_t *in = u->conn->sock->input;
    size_t fresh = in->size - u->seen, len;
    ssize_t rc;

    switch (u->framing) {
    case FR_NONE:
        u->body_done = 1;
        if (in->size > u->seen)
            u->reusable = 0;
        in->size = u->seen;
        break;
    case FR_LENGTH:
        if (fresh > u->body_left) {
            in->size -= fresh - u->body_left; /* bytes no response accounts for */
            u->reusable = 0;
            fresh = (size_t)u->body_left;
        }
        u->body_left -= fresh;
        u->body_done = u->body_left == 0;
        break;
    case FR_CHUNKED:
        len = fresh;
        rc = phr_decode_chunked(u->chunked, in->bytes + u->seen, &len);
        if (rc == -1) {
            abort_body(u);
            return;
        }
        in->size = u->seen + len;
        if (rc >= 0) {
            u->body_done = 1;
            if (rc > 0)
                u->reusable = 0;
        }
        break;
    case FR_CLOSE:
        break;
    }
    u->seen = in->size;
    if (u->body_done)
        note_end(u);
    pump(u);
}

static void
on_read_run(h2o_socket_t *sock, const char *err)
{
    struct upclient *u = sock->data;

    if (err != NULL) {
        if (!u->head_done) {
            fail(u, UPF_CLOSED, err);
        } else if (u->framing == FR_CLOSE && err == h2o_socket_error_closed) {
            u->body_done = 1;
            on_body(u);
        } else {
            abort_body(u);
        }
        return;
    }
    u->got_bytes = 1;
    h2o_timeout_unlink(&u->timer);
    h2o_timeout_link(u->loop, u->io_timeout, &u->timer);
    if (!u->head_done && read_head(u) != 0)
        return;
    on_body(u);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_read(h2o_socket_t *sock, const char *err)
{
    struct looplag_scope s;

    looplag_enter(&s, ((struct upclient *)sock->data)->req);
    on_read_run(sock, err);
    looplag_leave(&s);
}

static void
on_timeout_run(h2o_timeout_entry_t *entry)
{
    struct upclient *u = H2O_STRUCT_FROM_MEMBER(struct upclient, timer, entry);

    if (!u->head_done)
        fail(u, UPF_TIMEOUT, "I/O timeout");
    else
        abort_body(u);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_timeout(h2o_timeout_entry_t *entry)
{
    struct looplag_scope s;

    looplag_enter(&s, H2O_STRUCT_FROM_MEMBER(struct upclient, timer, entry)->req);
    on_timeout_run(entry);
    looplag_leave(&s);
}

static void
on_write_run(h2o_socket_t *sock, const char *err)
{
    struct upclient *u = sock->data;

    /* A server may answer and close before it read the whole request: its answer counts. */
    if (err != NULL && !u->head_done && !u->got_bytes)
        fail(u, UPF_CLOSED, err);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_write(h2o_socket_t *sock, const char *err)
{
    struct looplag_scope s;

    looplag_enter(&s, ((struct upclient *)sock->data)->req);
    on_write_run(sock, err);
    looplag_leave(&s);
}

/* ---- the client's side ---- */

static void
on_proceed_run(h2o_generator_t *gen, h2o_req_t *req)
{
    struct upclient *u = H2O_STRUCT_FROM_MEMBER(struct upclient, gen, gen);

    (void)req;
    u->in_flight = 0;
    h2o_buffer_consume(&u->sending, u->sending->size);
    /* A buffer a burst grew past the usual size is not kept for the rest of the body. */
    if (u->sending->capacity > UPCLIENT_BUFFER_SIZE) {
        h2o_buffer_dispose(&u->sending);
        h2o_buffer_init(&u->sending, &buffer_prototype);
    }
    if (u->final_sent)
        return;
    if (u->failed) {
        u->final_sent = 1;
        h2o_send(u->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    pump(u);
}

/* Timed as a callback of the request (looplag.c). */
static void
on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    struct looplag_scope s;

    looplag_enter(&s, req);
    on_proceed_run(gen, req);
    looplag_leave(&s);
}

static void
on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    struct upclient *u = H2O_STRUCT_FROM_MEMBER(struct upclient, gen, gen);

    (void)req;
    u->final_sent = 1;
    close_conn(u);
}

void
upclient_start(struct upclient *u, h2o_req_t *req, struct upconn *c, h2o_iovec_t head,
               h2o_iovec_t body, int is_head, h2o_timeout_t *io_timeout, uint64_t limit,
               const struct upclient_cbs *cbs, void *data)
{
    h2o_iovec_t bufs[2] = {head, body};
    h2o_buffer_t *sending = u->sending;

    memset(u, 0, sizeof(*u));
    u->sending = sending;
    if (u->sending == NULL)
        h2o_buffer_init(&u->sending, &buffer_prototype);
    if (c->sock->input->size == 0 && c->sock->input->_prototype != &buffer_prototype) {
        h2o_buffer_dispose(&c->sock->input);
        h2o_buffer_init(&c->sock->input, &buffer_prototype);
    }
    u->req = req;
    u->conn = c;
    u->cbs = cbs;
    u->data = data;
    u->loop = req->conn->ctx->loop;
    u->io_timeout = io_timeout;
    u->limit = limit;
    u->is_head = is_head;
    u->timer.cb = on_timeout;
    u->reading = 1;
    c->requests++;
    c->sock->data = u;
    h2o_socket_write(c->sock, bufs, body.len > 0 ? 2 : 1, on_write);
    h2o_socket_read_start(c->sock, on_read);
    h2o_timeout_link(u->loop, io_timeout, &u->timer);
}

int
upclient_got_bytes(const struct upclient *u)
{
    return u->got_bytes;
}

void
upclient_dispose(struct upclient *u)
{
    close_conn(u);
    if (u->sending != NULL)
        h2o_buffer_dispose(&u->sending);
}
