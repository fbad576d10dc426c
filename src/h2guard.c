/* The HTTP/2 reset guard.
 *
 * libh2o 2.2.5 runs the handler of every stream a client opens and cancels at once (Rapid
 * Reset, CVE-2023-44487), and of every stream it resets itself because the client broke a
 * rule on purpose (MadeYouReset): DATA after END_STREAM, a stream WINDOW_UPDATE of 0 or one
 * that overflows the window. The guard takes over a connection where ALPN picked h2: it
 * wraps the connection's read callback and walks the frames of each read before libh2o
 * parses them, keeping just enough stream state to know which frames libh2o will answer
 * with a stream reset. Each such frame costs a token of the connection's budget before it
 * runs, and a HEADERS frame that would start a request finds the budget empty, the
 * connection is closed: no request beyond the budget ever starts. Resets libh2o makes for
 * reasons the frames do not show (a body that does not match content-length, bad header
 * fields, a stream over the concurrency limit) start no handler; they are charged from
 * libh2o's own counters after the read. */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>

#include "conn.h"
#include "h2guard.h"
#include "log.h"
#include "util.h"

#define PREFACE_LEN 24 /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define FRAME_HEADER_LEN 9
#define FRAME_DATA 0x0
#define FRAME_HEADERS 0x1
#define FRAME_PRIORITY 0x2
#define FRAME_RST_STREAM 0x3
#define FRAME_SETTINGS 0x4
#define FRAME_WINDOW_UPDATE 0x8
#define FLAG_END_STREAM 0x1 /* also ACK on SETTINGS */
#define FLAG_PADDED 0x8
#define FLAG_PRIORITY 0x20
#define SETTING_LEN 6
#define SETTINGS_INITIAL_WINDOW_SIZE 0x4
#define DEFAULT_WINDOW 65535
#define WINDOW_MAX 0x7fffffffu
/* Streams still sending a request body. libh2o allows 100 open streams; the spare slots
 * absorb streams libh2o refused or reset on its own, which the frames do not show. */
#define MAX_BODIES 128
#define MAX_STREAMS 100 /* the SETTINGS_MAX_CONCURRENT_STREAMS libh2o announces */

/* One per HTTP/2 connection, in its record (conn.h); freed when it closes, or, if that
 * happens inside libh2o's callback, when the callback returns. */
struct h2meter {
    h2o_socket_cb read;  /* libh2o's HTTP/2 reader */
    h2o_socket_cb write; /* libh2o's write callback in flight, when wrapped */
    h2o_context_t *ctx;
    size_t left; /* input bytes already metered when the reader last returned */

    /* The frame being read; frames span reads. */
    uint32_t skip; /* payload bytes (or preface) still to pass */
    uint32_t sid;
    uint8_t hdr[FRAME_HEADER_LEN], hlen;
    uint8_t pl[SETTING_LEN], plen, want; /* leading payload bytes the frame is judged on */
    uint8_t type, flags;

    /* The client's streams, as libh2o sees them. */
    uint32_t max_id;       /* highest stream opened by HEADERS or PRIORITY */
    uint8_t idle_streams;  /* PRIORITY opened a stream HEADERS may use later */
    uint32_t window;       /* largest SETTINGS_INITIAL_WINDOW_SIZE announced */
    uint64_t wu_sum;       /* stream WINDOW_UPDATE increments since the last charge */
    unsigned nbodies;
    uint32_t bodies[MAX_BODIES];

    unsigned precharged; /* charged resets libh2o has yet to count in its own counters */
    uint8_t in_cb, closed;
    uint8_t tripped; /* over the budget while libh2o could not be told */
    const char *violation; /* a frame libh2o closes the connection for */
    unsigned max;
    double budget;  /* resets still allowed; refills at max per period */
    double cancels; /* requests that may still end unanswered; refills likewise */
    uint64_t refilled_at;
    unsigned long resets;
};

static void
refill(struct h2meter *m)
{
    uint64_t now = h2o_now(m->ctx->loop);
    double more = (double)(now - m->refilled_at) * m->max / H2GUARD_PERIOD_MS;

    m->budget += more;
    if (m->budget > m->max)
        m->budget = m->max;
    m->cancels += more;
    if (m->cancels > m->max + MAX_STREAMS)
        m->cancels = m->max + MAX_STREAMS;
    m->refilled_at = now;
}

/* A frame libh2o will answer with a stream reset; counted_by_h2o when it shows up in
 * libh2o's counters too. -1 when that spends more than the budget. */
static int
charge(struct h2meter *m, int counted_by_h2o)
{
    m->resets++;
    m->budget -= 1;
    if (counted_by_h2o)
        m->precharged++;
    return m->budget < 0 ? -1 : 0;
}

static int
body_find(const struct h2meter *m, uint32_t sid)
{
    for (unsigned i = m->nbodies; i-- > 0;)
        if (m->bodies[i] == sid)
            return (int)i;
    return -1;
}

static void
body_drop(struct h2meter *m, uint32_t sid)
{
    int i = body_find(m, sid);

    if (i != -1)
        m->bodies[i] = m->bodies[--m->nbodies];
}

static void
body_add(struct h2meter *m, uint32_t sid)
{
    unsigned oldest = 0;

    if (m->nbodies == MAX_BODIES) { /* only streams libh2o reset unseen are this old */
        for (unsigned i = 1; i < MAX_BODIES; i++)
            if (m->bodies[i] < m->bodies[oldest])
                oldest = i;
        m->bodies[oldest] = sid;
        return;
    }
    assert(m->nbodies < MAX_BODIES);
    m->bodies[m->nbodies++] = sid;
}

/* A frame that completes a request (HEADERS with END_STREAM or before a body, DATA with
 * END_STREAM, trailers): it runs only if a reset of it could still be paid for. */
static int
start_request(struct h2meter *m)
{
    return m->budget < 1 ? -1 : 0;
}

static int
on_headers(struct h2meter *m)
{
    uint32_t sid = m->sid;
    int es = (m->flags & FLAG_END_STREAM) != 0;

    if (sid == 0 || (sid & 1) == 0)
        return 0; /* a connection error libh2o reports */
    if (sid <= m->max_id && body_find(m, sid) != -1) { /* trailers */
        if (!es) {
            m->violation = "trailing HEADERS without END_STREAM";
            return -1;
        }
        body_drop(m, sid);
        return start_request(m);
    }
    if (sid <= m->max_id && !m->idle_streams) {
        m->violation = "HEADERS on a closed stream";
        return -1;
    }
    if (sid > m->max_id)
        m->max_id = sid;
    if (!es)
        body_add(m, sid);
    return start_request(m);
}

/* DATA is accepted only on a stream still sending its body; on any other stream libh2o
 * has opened, it resets the stream, cancelling the request that runs there. */
static int
on_data(struct h2meter *m)
{
    if (m->sid == 0 || m->sid > m->max_id)
        return 0; /* a connection error libh2o reports */
    if (body_find(m, m->sid) == -1)
        return charge(m, 1);
    if ((m->flags & FLAG_END_STREAM) != 0) {
        body_drop(m, m->sid);
        return start_request(m);
    }
    return 0;
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A stream's window may overflow (libh2o then resets the stream) once what the client has
 * granted could exceed 2^31-1: charge every time the increments, over all streams, could
 * have filled a window from the largest initial size. Ordinary downloads pay one token
 * per 2 GiB or so. */
static int
on_window_update(struct h2meter *m, uint32_t inc)
{
    inc &= WINDOW_MAX;
    if (m->sid == 0)
        return 0;
    if (inc == 0) {
        body_drop(m, m->sid);
        return charge(m, 1);
    }
    m->wu_sum += inc;
    if (m->wu_sum > WINDOW_MAX - m->window) {
        m->wu_sum = 0;
        return charge(m, 1);
    }
    return 0;
}

/* The leading payload bytes a frame is judged on are in m->pl. */
static int
on_payload(struct h2meter *m)
{
    uint32_t dep;

    switch (m->type) {
    case FRAME_WINDOW_UPDATE:
        return on_window_update(m, get32(m->pl));
    case FRAME_SETTINGS:
        if (m->pl[0] == 0 && m->pl[1] == SETTINGS_INITIAL_WINDOW_SIZE &&
            get32(m->pl + 2) > m->window && get32(m->pl + 2) <= WINDOW_MAX)
            m->window = get32(m->pl + 2);
        if (m->skip >= SETTING_LEN) { /* the next setting */
            m->plen = 0;
            m->want = SETTING_LEN;
        }
        return 0;
    case FRAME_PRIORITY:
    case FRAME_HEADERS:
        dep = get32(m->pl + m->want - 5) & WINDOW_MAX;
        if (dep == m->sid && m->sid != 0) {
            m->violation = "a stream that depends on itself";
            return -1;
        }
        if (m->type == FRAME_PRIORITY && m->sid > m->max_id && (m->sid & 1) != 0) {
            m->max_id = m->sid;
            m->idle_streams = 1;
        }
        return 0;
    }
    return 0;
}

/* A frame header is complete: act on what it shows, and say which payload bytes to read. */
static int
on_frame(struct h2meter *m)
{
    uint32_t len = (uint32_t)m->hdr[0] << 16 | (uint32_t)m->hdr[1] << 8 | m->hdr[2];

    m->type = m->hdr[3];
    m->flags = m->hdr[4];
    m->sid = get32(m->hdr + 5) & WINDOW_MAX;
    assert(m->skip == 0 && m->plen == m->want); /* the last frame is behind */
    m->skip = len;
    m->plen = 0;
    m->want = 0;
    switch (m->type) {
    case FRAME_DATA:
        return on_data(m);
    case FRAME_HEADERS:
        if ((m->flags & FLAG_PRIORITY) != 0)
            m->want = ((m->flags & FLAG_PADDED) != 0 ? 1 : 0) + 5;
        break;
    case FRAME_PRIORITY:
        m->want = 5;
        break;
    case FRAME_RST_STREAM:
        body_drop(m, m->sid);
        return charge(m, 0);
    case FRAME_SETTINGS:
        if (m->sid == 0 && (m->flags & FLAG_END_STREAM) == 0)
            m->want = SETTING_LEN;
        break;
    case FRAME_WINDOW_UPDATE:
        m->want = 4;
        break;
    }
    if (m->want > len)
        m->want = 0; /* malformed: a connection error libh2o reports */
    assert(m->want <= sizeof(m->pl) && m->want <= m->skip);
    if (m->type == FRAME_HEADERS)
        return on_headers(m);
    return 0;
}

/* Walks the next n bytes of the connection's input. -1 when they spend more than the
 * budget, start a request the budget cannot cover, or break a rule libh2o closes the
 * connection for (then m->violation says which). */
static int
walk(struct h2meter *m, const uint8_t *p, size_t n)
{
    size_t k;

    while (n > 0) {
        assert(m->hlen < FRAME_HEADER_LEN && m->plen <= m->want);
        if (m->plen < m->want) {
            k = m->want - m->plen;
            k = n < k ? n : k;
            memcpy(m->pl + m->plen, p, k);
            m->plen += (uint8_t)k;
            m->skip -= (uint32_t)k;
            p += k;
            n -= k;
            if (m->plen == m->want && on_payload(m) == -1)
                return -1;
            continue;
        }
        if (m->skip > 0) {
            k = n < m->skip ? n : m->skip;
            m->skip -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        k = FRAME_HEADER_LEN - m->hlen;
        k = n < k ? n : k;
        memcpy(m->hdr + m->hlen, p, k);
        m->hlen += (uint8_t)k;
        p += k;
        n -= k;
        if (m->hlen < FRAME_HEADER_LEN)
            break;
        m->hlen = 0;
        if (on_frame(m) == -1)
            return -1;
    }
    return 0;
}

/* Streams libh2o refused or reset itself, in this worker so far. Single-threaded: the
 * growth across one call of a connection's reader is that connection's. */
static uint64_t
refused_streams(h2o_context_t *ctx)
{
    uint64_t n = 0;

    for (size_t i = 0; i < H2O_HTTP2_ERROR_MAX; i++)
        n += ctx->http2.events.protocol_level_errors[i];
    return n;
}

/* Charge the resets libh2o made during one call of the reader, less those already
 * charged when their frames were metered. */
static int
spend_refused(struct h2meter *m, uint64_t before)
{
    uint64_t n = refused_streams(m->ctx) - before;

    if (n <= m->precharged) {
        m->precharged -= (unsigned)n;
        return 0;
    }
    n -= m->precharged;
    m->precharged = 0;
    refill(m);
    m->resets += n;
    m->budget -= (double)n;
    return m->budget < 0 ? -1 : 0;
}

static int
meter_input(struct h2meter *m, h2o_socket_t *sock)
{
    size_t size = sock->input->size;
    int r = 0;

    refill(m);
    if (size > m->left)
        r = walk(m, (const uint8_t *)sock->input->bytes + m->left, size - m->left);
    m->left = size;
    return r;
}

static void
log_trip(struct h2meter *m, h2o_socket_t *sock)
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    char host[NI_MAXHOST] = "?";
    int32_t port = 0;

    if (len != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, len, host) != SIZE_MAX)
        port = h2o_socket_getport((struct sockaddr *)&ss);
    if (m->violation != NULL)
        log_warnx("closing HTTP/2 connection from %s:%d: %s", host, (int)port, m->violation);
    else
        log_warnx("closing HTTP/2 connection from %s:%d: %lu stream resets, more than "
                  "http2_max_resets %u per %ds", host, (int)port, m->resets, m->max,
                  H2GUARD_PERIOD_MS / 1000);
}

void
h2guard_conn_closed(struct conn *c)
{
    struct h2meter *m = c->h2;

    if (m == NULL)
        return;
    c->h2 = NULL;
    if (m->in_cb)
        m->closed = 1; /* the wrapper that runs libh2o frees it when libh2o returns */
    else
        free(m);
}

static void guarded_read(h2o_socket_t *sock, const char *err);
static void guarded_write(h2o_socket_t *sock, const char *err);

/* libh2o stops reading while its output is backed up and restarts with its own reader
 * when a write completes: put the guard back in front of it, and see every write
 * complete. */
static void
rewrap(struct h2meter *m, h2o_socket_t *sock)
{
    if (sock->_cb.read == m->read)
        sock->_cb.read = guarded_read;
    if (sock->_cb.write != NULL && sock->_cb.write != guarded_write) {
        m->write = sock->_cb.write;
        sock->_cb.write = guarded_write;
    }
}

/* Runs one of libh2o's callbacks; 0 when the connection is still open afterwards. */
static int
run_h2o(struct h2meter *m, h2o_socket_cb cb, h2o_socket_t *sock, const char *err)
{
    assert(!m->in_cb); /* libh2o's callbacks do not nest */
    m->in_cb = 1;
    cb(sock, err);
    m->in_cb = 0;
    if (m->closed) {
        free(m);
        return -1;
    }
    rewrap(m, sock);
    return 0;
}

/* The meter of sock, which the guard wrapped: open, so its record is there. */
static struct h2meter *
meter_of(h2o_socket_t *sock)
{
    struct conn *c = worker_conn(sock);

    assert(c != NULL && c->h2 != NULL);
    return c->h2;
}

static void
guarded_write(h2o_socket_t *sock, const char *err)
{
    struct h2meter *m = meter_of(sock);
    h2o_socket_cb cb = m->write;

    m->write = NULL;
    run_h2o(m, cb, sock, err);
}

/* Closes the connection for the guard: through libh2o's reader while it is reading (it
 * closes as on a read error), else on the next read. */
static void
trip(struct h2meter *m, h2o_socket_t *sock)
{
    log_trip(m, sock);
    if (sock->_cb.read == guarded_read)
        run_h2o(m, m->read, sock, "http2_max_resets");
    else
        m->tripped = 1;
}

static void
guarded_read(h2o_socket_t *sock, const char *err)
{
    struct h2meter *m = meter_of(sock);
    uint64_t before = refused_streams(m->ctx);

    /* Over the budget: libh2o closes the connection as on a read error, and never parses
     * the frames that spent it. */
    if (err == NULL && (m->tripped || meter_input(m, sock) == -1)) {
        if (!m->tripped)
            log_trip(m, sock);
        err = "http2_max_resets";
    }
    if (run_h2o(m, m->read, sock, err) == -1 || err != NULL)
        return;
    m->left = sock->input->size;
    if (spend_refused(m, before) == -1)
        trip(m, sock);
}

/* libh2o shuts a context's HTTP/2 connections down in two steps: a GOAWAY that lets every
 * stream under way finish but asks for no new one, then a second later (a round trip,
 * for streams already on their way) the final GOAWAY naming the last stream served; a
 * stream that arrives after it is refused. It tells only the connections it knows when
 * the drain starts. One whose TLS handshake ends later (its client, done with the
 * handshake first, sends requests already) gets no first GOAWAY: it keeps opening streams
 * until the final one, and those then on their way are refused; or, once the final step
 * has run, it hears nothing, and is cut at shutdown_timeout with some in flight. So for
 * every such connection libh2o's shutdown is started over: the first GOAWAY to every
 * connection still open to new streams (again, for those that had it: harmless), the
 * final one a second after this one had its first. The final step thus moves, by at most
 * a second per late connection, and only for connections accepted before the drain
 * (their handshakes are bounded by handshake_timeout). */
static void
goaway_if_draining(h2o_context_t *ctx)
{
    h2o_timeout_entry_t *t = &ctx->http2._graceful_shutdown_timeout;

    if (!ctx->shutdown_requested || ctx->globalconf->http2.callbacks.request_shutdown == NULL)
        return;
    if (h2o_timeout_is_linked(t))
        h2o_timeout_unlink(t);
    t->cb = NULL; /* libh2o starts only once otherwise */
    ctx->globalconf->http2.callbacks.request_shutdown(ctx);
}

void
h2guard_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock, struct timeval connected_at,
               unsigned max_resets)
{
    struct h2meter *m = xcalloc(1, sizeof(*m));
    uint64_t before = refused_streams(actx->ctx);
    struct conn *c;

    m->ctx = actx->ctx;
    m->max = max_resets;
    m->budget = m->max;
    m->cancels = m->max + MAX_STREAMS;
    m->refilled_at = h2o_now(m->ctx->loop);
    m->skip = PREFACE_LEN;
    m->window = DEFAULT_WINDOW;
    /* What came with the handshake is parsed inside h2o_http2_accept: meter it first. */
    if (meter_input(m, sock) == -1) {
        log_trip(m, sock);
        free(m);
        h2o_socket_close(sock);
        return;
    }
    h2o_http2_accept(actx, sock, connected_at);
    c = worker_conn(sock);
    if (c == NULL || !h2o_socket_is_reading(sock)) {
        free(m); /* closed already */
        return;
    }
    goaway_if_draining(actx->ctx);
    m->read = sock->_cb.read;
    c->h2 = m;
    rewrap(m, sock);
    m->left = sock->input->size;
    if (spend_refused(m, before) == -1)
        trip(m, sock);
}

/* The other side of the meter: whatever the frames looked like, a connection gets no more
 * requests ended unanswered than the budget plus those running at once. libh2o is in the
 * middle of the connection here, so it is closed at its next read. */
void
h2guard_request_done(struct conn *c, h2o_req_t *req)
{
    struct h2meter *m;

    if (c == NULL || c->h2 == NULL || req->res.status != 0 || req->version < 0x200)
        return;
    m = c->h2;
    refill(m);
    m->cancels -= 1;
    if (m->cancels >= 0 || m->tripped)
        return;
    m->violation = "more requests ended unanswered than http2_max_resets and the streams "
                   "running at once";
    log_trip(m, c->sock);
    m->tripped = 1;
}
