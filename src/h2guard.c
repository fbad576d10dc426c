/* The HTTP/2 reset guard.
 *
 * libh2o 2.2.5 runs the handler of every stream a client opens and resets at once (Rapid
 * Reset, CVE-2023-44487) and of every stream it resets itself because the client broke a
 * rule on purpose (MadeYouReset). The guard takes over a connection where ALPN picked h2:
 * it wraps the connection's read callback, meters each read before libh2o parses it, and
 * closes the connection once its reset budget is spent. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>

#include "h2guard.h"
#include "log.h"
#include "util.h"

#define PREFACE_LEN 24 /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define FRAME_HEADER_LEN 9
#define FRAME_RST_STREAM 0x3
#define FRAME_WINDOW_UPDATE 0x8

/* One per HTTP/2 connection, owned by its socket (freed on close). */
struct meter {
    h2o_socket_cb read; /* libh2o's HTTP/2 reader */
    void (*prev_close)(void *);
    void *prev_close_data;
    h2o_context_t *ctx;
    size_t left;   /* input bytes already metered when the reader last returned */
    uint32_t skip; /* bytes of the current frame's payload (or the preface) still to pass */
    uint8_t hdr[FRAME_HEADER_LEN];
    uint8_t hlen;
    uint8_t inc[4], inclen; /* a stream WINDOW_UPDATE's increment, being read */
    int in_wu;
    unsigned zero_wu; /* seen, not yet matched by libh2o's count of resets it made */
    uint8_t in_read, closed;
    unsigned max;
    double budget; /* resets still allowed; refills at max per period */
    uint64_t refilled_at;
    unsigned long resets;
};

/* Resets the next n bytes of the stream will cause: RST_STREAM frames, and stream
 * WINDOW_UPDATEs of 0, which the server must answer with a reset (the usual MadeYouReset
 * trigger, counted before libh2o acts on it). Frames may span reads. */
static unsigned
count_resets(struct meter *m, const uint8_t *p, size_t n)
{
    unsigned resets = 0;
    size_t k;

    while (n > 0) {
        if (m->in_wu) {
            k = sizeof(m->inc) - m->inclen;
            k = n < k ? n : k;
            memcpy(m->inc + m->inclen, p, k);
            m->inclen += (uint8_t)k;
            m->skip -= (uint32_t)k;
            p += k;
            n -= k;
            if (m->inclen < sizeof(m->inc))
                break;
            m->in_wu = 0;
            if (((m->inc[0] & 0x7f) | m->inc[1] | m->inc[2] | m->inc[3]) == 0) {
                m->zero_wu++;
                resets++;
            }
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
        m->skip = (uint32_t)m->hdr[0] << 16 | (uint32_t)m->hdr[1] << 8 | m->hdr[2];
        if (m->hdr[3] == FRAME_RST_STREAM)
            resets++;
        else if (m->hdr[3] == FRAME_WINDOW_UPDATE && m->skip == 4 &&
                 ((m->hdr[5] & 0x7f) | m->hdr[6] | m->hdr[7] | m->hdr[8]) != 0) {
            m->in_wu = 1;
            m->inclen = 0;
        }
    }
    return resets;
}

/* Charge n resets; -1 when the budget is spent. */
static int
spend(struct meter *m, unsigned n)
{
    uint64_t now = h2o_now(m->ctx->loop);

    m->resets += n;
    m->budget += (double)(now - m->refilled_at) * m->max / H2GUARD_PERIOD_MS;
    if (m->budget > m->max)
        m->budget = m->max;
    m->refilled_at = now;
    m->budget -= n;
    return m->budget < 0 ? -1 : 0;
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
spend_refused(struct meter *m, uint64_t before)
{
    uint64_t n = refused_streams(m->ctx) - before;

    if (n <= m->zero_wu) {
        m->zero_wu -= (unsigned)n;
        return 0;
    }
    n -= m->zero_wu;
    m->zero_wu = 0;
    return spend(m, (unsigned)n);
}

static int
meter_input(struct meter *m, h2o_socket_t *sock)
{
    size_t size = sock->input->size;
    unsigned n = 0;

    if (size > m->left)
        n = count_resets(m, (const uint8_t *)sock->input->bytes + m->left, size - m->left);
    m->left = size;
    return spend(m, n);
}

static void
log_trip(struct meter *m, h2o_socket_t *sock)
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    char host[NI_MAXHOST] = "?";
    int32_t port = 0;

    if (len != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, len, host) != SIZE_MAX)
        port = h2o_socket_getport((struct sockaddr *)&ss);
    log_warnx("closing HTTP/2 connection from %s:%d: %lu stream resets, more than "
              "http2_max_resets %u per %ds", host, (int)port, m->resets, m->max,
              H2GUARD_PERIOD_MS / 1000);
}

static void
on_guarded_close(void *data)
{
    struct meter *m = data;

    if (m->prev_close != NULL)
        m->prev_close(m->prev_close_data);
    if (m->in_read)
        m->closed = 1; /* the reader's wrapper frees it when libh2o returns */
    else
        free(m);
}

/* Runs libh2o's reader; 0 when the connection is still open afterwards. */
static int
run_reader(struct meter *m, h2o_socket_t *sock, const char *err)
{
    m->in_read = 1;
    m->read(sock, err);
    m->in_read = 0;
    if (m->closed) {
        free(m);
        return -1;
    }
    return 0;
}

static void
guarded_read(h2o_socket_t *sock, const char *err)
{
    struct meter *m = sock->on_close.data;
    uint64_t before = refused_streams(m->ctx);

    /* Over the budget: libh2o closes the connection as on a read error, and never parses
     * the frames that spent it. */
    if (err == NULL && meter_input(m, sock) == -1) {
        log_trip(m, sock);
        err = "http2_max_resets";
    }
    if (run_reader(m, sock, err) == -1 || err != NULL || !h2o_socket_is_reading(sock))
        return;
    m->left = sock->input->size;
    if (spend_refused(m, before) == -1) {
        log_trip(m, sock);
        run_reader(m, sock, "http2_max_resets");
    }
}

void
h2guard_accept(h2o_accept_ctx_t *actx, h2o_socket_t *sock, struct timeval connected_at,
               unsigned max_resets)
{
    struct meter *m = xcalloc(1, sizeof(*m));
    uint64_t before = refused_streams(actx->ctx);

    m->ctx = actx->ctx;
    m->max = max_resets;
    m->budget = m->max;
    m->refilled_at = h2o_now(m->ctx->loop);
    m->skip = PREFACE_LEN;
    /* What came with the handshake is parsed inside h2o_http2_accept: meter it first. */
    if (meter_input(m, sock) == -1) {
        log_trip(m, sock);
        free(m);
        h2o_socket_close(sock);
        return;
    }
    h2o_http2_accept(actx, sock, connected_at);
    if (!h2o_socket_is_reading(sock)) {
        free(m); /* closed already */
        return;
    }
    m->read = sock->_cb.read;
    sock->_cb.read = guarded_read;
    m->prev_close = sock->on_close.cb;
    m->prev_close_data = sock->on_close.data;
    sock->on_close.cb = on_guarded_close;
    sock->on_close.data = m;
    m->left = sock->input->size;
    if (spend_refused(m, before) == -1) {
        log_trip(m, sock);
        run_reader(m, sock, "http2_max_resets");
    }
}
