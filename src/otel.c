/* OpenTelemetry span export over OTLP/HTTP with the JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/), in each worker on its own event loop.
 *
 * A span is copied into a ring of span_queue fixed-size records as it ends (the request's
 * pool is gone by the time it is sent; strings from the config are kept by pointer, as the
 * config outlives the worker). Every export_interval, or as soon as span_batch spans wait,
 * up to span_batch of them leave the ring and become one JSON body, POSTed over a
 * keep-alive connection to the collector's address (resolved by the master at load). One
 * export is in flight at a time; export_timeout bounds it. Spans that cannot be queued (the
 * ring is full) or whose export failed (refused, an error status, timed out) are dropped
 * and counted: nothing is retried, and no request ever waits for the collector.
 *
 * Times: spans are measured with the monotonic clock (util_now_us) and sent as Unix
 * nanoseconds, through an offset between the two clocks read again at most once per loop
 * turn (two vDSO reads, no system call). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clientaddr.h"
#include "conf.h"
#include "heritage.h"
#include "log.h"
#include "metrics.h"
#include "otel.h"
#include "phr.h"
#include "reqdata.h"
#include "reqtrace.h"
#include "service_rt.h"
#include "util.h"

#define PATH_MAX_COPY 256 /* url.path bytes kept; a longer path is cut */
#define HOST_MAX_COPY 128 /* server.address (Host) bytes kept */
#define METHOD_MAX_COPY 24
#define RESPONSE_HEAD_MAX 8192 /* a collector's response head longer than this is refused */
#define WARN_EVERY_MS 10000    /* export failures are logged at most this often */
#define SPAN_JSON_ROOM 1024    /* a span's JSON but its escaped strings, at most */

enum { KIND_SERVER = 2, KIND_CLIENT = 3 };   /* OTLP SpanKind */
enum { STATUS_UNSET = 0, STATUS_ERROR = 2 }; /* OTLP StatusCode */

/* A finished span, as queued: all it needs, copied. */
struct span {
    uint8_t kind;
    uint8_t error;   /* status ERROR */
    uint8_t version; /* server: the HTTP version (0x10 1.0, 0x11 1.1, 0x20 2) */
    uint8_t method_len;
    uint8_t host_len;
    uint16_t path_len;
    uint8_t trace_id[16], span_id[8], parent_id[8]; /* parent all zero: none */
    uint64_t start_ns, end_ns;                      /* Unix time */
    int status;          /* the HTTP response's, 0: none */
    unsigned resend;     /* client: http.request.resend_count */
    const char *route;   /* server: the route's label, or NULL */
    const char *service; /* server: percore.service */
    const struct conf_upserver *server; /* client: the upstream server */
    const char *error_type;             /* NULL: none */
    char method[METHOD_MAX_COPY];
    char path[PATH_MAX_COPY];
    char host[HOST_MAX_COPY];
    char client[INET6_ADDRSTRLEN];       /* "" unknown */
    char request_id[REQTRACE_ID_MAX + 1]; /* "" none */
};

/* A growing byte buffer (malloc'd, kept between exports). */
struct buf {
    char *p;
    size_t len, cap;
};

uint8_t otel_mask;

static struct {
    const struct conf_tracing *conf;
    h2o_loop_t *loop;
    struct metrics_slot *metrics;
    struct span *ring;
    size_t cap, head, n; /* the ring: room, first queued, queued */
    h2o_timeout_t interval_q, timeout_q, kick_q;
    h2o_timeout_entry_t interval, deadline, kick;
    h2o_socket_t *sock; /* the connection to the collector, or NULL */
    int connected;      /* sock is connected (else connecting) */
    int busy;           /* an export is in flight */
    size_t inflight;    /* its spans */
    struct buf body;    /* its JSON */
    char req_head[CONF_OTLP_ENDPOINT_MAX + 256]; /* its request head: the URL's path and
                                                   host, and 256 for the rest */
    size_t req_head_len;
    char *resource;     /* the resource's JSON, made at start */
    int64_t off_ns;     /* Unix time minus monotonic time, in ns */
    uint64_t off_turn;  /* h2o_now() when off_ns was read */
    int64_t warned_ms;  /* the last export failure logged, monotonic */
    uint64_t failed;    /* failed exports since the last one logged */
} ex;

/* ---- JSON ---- */

static void
put_raw(struct buf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap)
            b->cap = b->cap == 0 ? 64 * 1024 : b->cap * 2;
        b->p = xreallocarray(b->p, b->cap, 1);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void
put_str(struct buf *b, const char *s)
{
    put_raw(b, s, strlen(s));
}

static void
put_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put_raw(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The length of the valid UTF-8 sequence at s (of n bytes), or 0 when it is none
 * (overlong forms, surrogates and code points past U+10FFFF are none). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* s[0..n) as a JSON string, quotes included: '"', '\' and control bytes escaped, valid
 * UTF-8 as it is, and any other byte as the code point of the same number (\u00XX), so
 * that whatever a client sent, the body is valid JSON. */
static void
put_json(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run;

    put_raw(b, "\"", 1);
    while (i < n) {
        for (run = i; run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' &&
                      u[run] != '\\';
             run++)
            ;
        put_raw(b, s + i, run - i);
        i = run;
        if (i == n)
            break;
        if (u[i] == '"' || u[i] == '\\') {
            char e[2] = {'\\', s[i]};
            put_raw(b, e, 2);
            i++;
        } else if (u[i] >= 0x80 && (run = utf8_len(u + i, n - i)) > 0) {
            put_raw(b, s + i, run);
            i += run;
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[u[i] >> 4], hex[u[i] & 15]};
            put_raw(b, e, 6);
            i++;
        }
    }
    put_raw(b, "\"", 1);
}

static void
put_id(struct buf *b, const uint8_t *id, size_t n)
{
    char hex[33];

    reqtrace_hex(id, n, hex);
    put_raw(b, "\"", 1);
    put_raw(b, hex, 2 * n);
    put_raw(b, "\"", 1);
}

/* One attribute, after others when more: {"key":K,"value":{"stringValue":V}}. */
static void
attr_str(struct buf *b, int *more, const char *key, const char *v, size_t n)
{
    put_str(b, *more ? ",{\"key\":\"" : "{\"key\":\"");
    put_str(b, key);
    put_str(b, "\",\"value\":{\"stringValue\":");
    put_json(b, v, n);
    put_str(b, "}}");
    *more = 1;
}

static void
attr_int(struct buf *b, int *more, const char *key, long long v)
{
    put_str(b, *more ? ",{\"key\":\"" : "{\"key\":\"");
    put_str(b, key);
    put_fmt(b, "\",\"value\":{\"intValue\":\"%lld\"}}", v);
    *more = 1;
}

static int
is_zero(const uint8_t *id, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (id[i] != 0)
            return 0;
    return 1;
}

/* The port of a TCP server's address, 0 for another kind. */
static int
port_of(const struct conf_upserver *u)
{
    if (u->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&u->ss)->sin_port);
    if (u->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&u->ss)->sin6_port);
    return 0;
}

static void
put_span(struct buf *b, const struct span *s)
{
    int more = 0;

    put_str(b, "{\"traceId\":");
    put_id(b, s->trace_id, 16);
    put_str(b, ",\"spanId\":");
    put_id(b, s->span_id, 8);
    if (!is_zero(s->parent_id, 8)) {
        put_str(b, ",\"parentSpanId\":");
        put_id(b, s->parent_id, 8);
    }
    /* Server: "METHOD ROUTE" (the route's label); client: the method alone. */
    put_str(b, ",\"name\":");
    if (s->kind == KIND_SERVER && s->route != NULL) {
        size_t rl = strlen(s->route);
        char *name = xmalloc(s->method_len + 1 + rl);
        memcpy(name, s->method, s->method_len);
        name[s->method_len] = ' ';
        memcpy(name + s->method_len + 1, s->route, rl);
        put_json(b, name, s->method_len + 1 + rl);
        free(name);
    } else {
        put_json(b, s->method, s->method_len);
    }
    put_fmt(b, ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"",
            s->kind, (unsigned long long)s->start_ns, (unsigned long long)s->end_ns);
    put_str(b, ",\"attributes\":[");
    attr_str(b, &more, "http.request.method", s->method, s->method_len);
    if (s->kind == KIND_SERVER) {
        attr_str(b, &more, "url.path", s->path, s->path_len);
        if (s->route != NULL)
            attr_str(b, &more, "http.route", s->route, strlen(s->route));
        if (s->client[0] != '\0')
            attr_str(b, &more, "client.address", s->client, strlen(s->client));
        if (s->host_len > 0)
            attr_str(b, &more, "server.address", s->host, s->host_len);
        attr_str(b, &more, "network.protocol.version",
                 s->version == 0x20 ? "2" : s->version == 0x10 ? "1.0" : "1.1",
                 s->version == 0x20 ? 1 : 3);
        if (s->service != NULL)
            attr_str(b, &more, "percore.service", s->service, strlen(s->service));
        if (s->request_id[0] != '\0')
            attr_str(b, &more, "percore.request_id", s->request_id, strlen(s->request_id));
    } else {
        const struct conf_upserver *u = s->server;
        const char *addr = u->host != NULL ? u->host : u->url;
        int port = port_of(u);
        attr_str(b, &more, "server.address", addr, strlen(addr));
        if (port != 0)
            attr_int(b, &more, "server.port", port);
        attr_str(b, &more, "url.full", u->url, strlen(u->url));
        attr_int(b, &more, "http.request.resend_count", s->resend);
    }
    if (s->status != 0)
        attr_int(b, &more, "http.response.status_code", s->status);
    if (s->error_type != NULL) {
        attr_str(b, &more, "error.type", s->error_type, strlen(s->error_type));
    } else if (s->error && s->status != 0) {
        /* An error status: error.type is the status code, as the HTTP conventions say. */
        char code[16];
        int n = snprintf(code, sizeof(code), "%d", s->status);
        attr_str(b, &more, "error.type", code, (size_t)n);
    }
    put_str(b, "]");
    if (s->error)
        put_str(b, ",\"status\":{\"code\":2}");
    put_str(b, "}");
}

/* The resource every span of this worker comes from, as JSON: what identifies the
 * process to the collector. */
static char *
make_resource(const char *service_name, unsigned wslot)
{
    struct buf b = {0};
    char host[256], hex[33], id[37];
    uint64_t r[2] = {reqdata_random(), reqdata_random()};
    uint8_t u[16];
    int more = 0;

    if (gethostname(host, sizeof(host)) == -1)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    /* service.instance.id: a random (version 4) UUID for this worker process. */
    memcpy(u, r, sizeof(u));
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    reqtrace_hex(u, 16, hex);
    snprintf(id, sizeof(id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    attr_str(&b, &more, "service.name", service_name, strlen(service_name));
    attr_str(&b, &more, "service.version", PACKAGE_VERSION, strlen(PACKAGE_VERSION));
    attr_str(&b, &more, "service.instance.id", id, strlen(id));
    attr_str(&b, &more, "host.name", host, strlen(host));
    attr_int(&b, &more, "process.pid", (long long)getpid());
    attr_int(&b, &more, "percore.worker", wslot);
    put_raw(&b, "", 1);
    return b.p;
}

/* ---- the queue ---- */

/* Monotonic microseconds as Unix nanoseconds. */
static uint64_t
unix_ns(int64_t mono_us)
{
    uint64_t turn = h2o_now(ex.loop);

    if (turn != ex.off_turn || ex.off_turn == 0) {
        struct timespec rt, mt;
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mt);
        ex.off_ns = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000 + (rt.tv_nsec - mt.tv_nsec);
        ex.off_turn = turn;
    }
    return (uint64_t)(mono_us * 1000 + ex.off_ns);
}

static void export_start(void);

static void
count(uint64_t exported, uint64_t dropped)
{
    metrics_count_spans(ex.metrics, exported, dropped);
}

/* A free record at the ring's end, or NULL (the span is dropped and counted). */
static struct span *
push(void)
{
    struct span *s;

    if (ex.n == ex.cap) {
        count(0, 1);
        return NULL;
    }
    s = &ex.ring[(ex.head + ex.n) % ex.cap];
    ex.n++;
    memset(s, 0, offsetof(struct span, method)); /* the strings are set by length */
    s->request_id[0] = '\0';
    s->client[0] = '\0';
    return s;
}

/* A span was queued: a full batch goes at once (from the loop, not from the caller's
 * stack: a request's logger must not be the one to write to the collector). */
static void
queued(void)
{
    if (ex.n >= ex.conf->span_batch && !ex.busy && !h2o_timeout_is_linked(&ex.kick))
        h2o_timeout_link(ex.loop, &ex.kick_q, &ex.kick);
}

static size_t
copy_iov(char *dst, size_t room, h2o_iovec_t v)
{
    size_t n = v.len < room ? v.len : room;

    if (n > 0)
        memcpy(dst, v.base, n);
    return n;
}

static void
client_span(const struct reqdata *rd, const struct otel_attempt *a, int64_t end_us)
{
    struct span *s = push();
    h2o_iovec_t m = rd->req->method;

    if (s == NULL)
        return;
    s->kind = KIND_CLIENT;
    memcpy(s->trace_id, rd->trace.trace_id, 16);
    memcpy(s->span_id, a->span_id, 8);
    memcpy(s->parent_id, rd->trace.span_id, 8);
    s->start_ns = unix_ns(a->start_us);
    s->end_ns = unix_ns(end_us > a->start_us ? end_us : a->start_us);
    s->status = a->status;
    s->resend = a->resend;
    s->server = a->server;
    s->error_type = a->error;
    /* A failed attempt, and one answered with an error (client spans: 4xx too). */
    s->error = a->error != NULL || a->status >= 400;
    s->method_len = (uint8_t)copy_iov(s->method, sizeof(s->method), m);
    queued();
}

void
otel_attempt_end(const struct reqdata *rd, const struct otel_attempt *a)
{
    client_span(rd, a, util_now_us());
}

void
otel_attempt_answered(h2o_req_t *req, struct reqdata *rd, const struct otel_attempt *a)
{
    struct otel_attempt *o = rd->otel_open;

    if (o != NULL) /* one answered before (and retried): it ends now */
        client_span(rd, o, util_now_us());
    else
        o = rd->otel_open = h2o_mem_alloc_pool(&req->pool, sizeof(*o));
    *o = *a;
}

void
otel_request_end(h2o_req_t *req, struct reqdata *rd, int64_t now)
{
    struct span *s;
    struct sockaddr_storage ss;
    h2o_iovec_t path = req->input.path;
    const char *q;

    if (rd->otel_open != NULL) {
        client_span(rd, rd->otel_open, rd->up.end_us != 0 ? rd->up.end_us : now);
        rd->otel_open = NULL;
    }
    s = push();
    if (s == NULL)
        return;
    s->kind = KIND_SERVER;
    memcpy(s->trace_id, rd->trace.trace_id, 16);
    memcpy(s->span_id, rd->trace.span_id, 8);
    memcpy(s->parent_id, rd->trace.parent_id, 8);
    s->start_ns = unix_ns(rd->start_us != 0 ? rd->start_us : now);
    s->end_ns = unix_ns(now);
    s->status = req->res.status;
    s->version = req->version >= 0x200 ? 0x20 : req->version == 0x100 ? 0x10 : 0x11;
    s->route = rd->route != NULL ? rd->route->label : NULL;
    s->service = rd->site != NULL ? rd->site->service->conf->name : NULL;
    s->error = s->status >= 500;
    s->method_len = (uint8_t)copy_iov(s->method, sizeof(s->method), req->method);
    q = path.base != NULL ? memchr(path.base, '?', path.len) : NULL;
    if (q != NULL)
        path.len = (size_t)(q - path.base);
    s->path_len = (uint16_t)copy_iov(s->path, sizeof(s->path), path);
    s->host_len = (uint8_t)copy_iov(s->host, sizeof(s->host), req->authority);
    if (clientaddr_get(req, &ss) != 0) {
        const void *a = ss.ss_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
            inet_ntop(ss.ss_family, a, s->client, sizeof(s->client)) == NULL)
            s->client[0] = '\0';
    }
    if (rd->request_id[0] != '\0')
        memcpy(s->request_id, rd->request_id, strlen(rd->request_id) + 1);
    queued();
}

/* ---- the export ---- */

static void
close_conn(void)
{
    h2o_socket_t *s = ex.sock;

    ex.sock = NULL;
    ex.connected = 0;
    if (s != NULL)
        h2o_socket_close(s);
}

/* The export in flight ended: its spans counted as exported or dropped; err says why it
 * failed (NULL: it did not). */
static void
export_end(const char *err)
{
    int64_t now = util_now_ms();

    if (!ex.busy)
        return;
    ex.busy = 0;
    if (h2o_timeout_is_linked(&ex.deadline))
        h2o_timeout_unlink(&ex.deadline);
    if (err == NULL) {
        count(ex.inflight, 0);
        if (ex.warned_ms != 0) {
            log_info("span export to %s works again", ex.conf->otlp_endpoint);
            ex.warned_ms = 0;
            ex.failed = 0;
        }
    } else {
        count(0, ex.inflight);
        close_conn();
        ex.failed++;
        if (ex.warned_ms == 0 || now - ex.warned_ms >= WARN_EVERY_MS) {
            log_warnx("span export to %s failed: %s; %zu spans dropped (%llu failed exports "
                      "since the last line)", ex.conf->otlp_endpoint, err, ex.inflight,
                      (unsigned long long)ex.failed);
            ex.warned_ms = now;
            ex.failed = 0;
        }
    }
    ex.inflight = 0;
    /* After a success a full batch goes at once; after a failure, at the next interval:
     * a collector that is down is tried once per interval, not once per loop turn. */
    if (err == NULL && ex.n >= ex.conf->span_batch && !h2o_timeout_is_linked(&ex.kick))
        h2o_timeout_link(ex.loop, &ex.kick_q, &ex.kick);
}

/* The collector closed or wrote to an idle connection: it is not used again. */
static void
on_idle_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    if (sock == ex.sock && !ex.busy)
        close_conn();
}

/* The response, once its head and the body that head announces are in: the export ends,
 * and the connection stays for the next one when it may. */
static void
on_read(h2o_socket_t *sock, const char *err)
{
    struct phr_header hs[32];
    size_t nh = NELEMS(hs), msg_len;
    const char *msg;
    int minor, status, rc, keep;
    uint64_t body = 0;
    int has_len = 0;
    char why[64];

    if (sock != ex.sock || !ex.busy)
        return;
    /* Interim responses (100 Continue, 103 Early Hints), which any HTTP/1.1 server may send
     * unasked (RFC 9110 15.2), come before the one that answers the export: skipped. */
    while ((rc = phr_parse_response(sock->input->bytes, sock->input->size, &minor, &status,
                                    &msg, &msg_len, hs, &nh, 0)) > 0 &&
           status >= 100 && status < 200 && status != 101) {
        h2o_buffer_consume(&sock->input, (size_t)rc);
        nh = NELEMS(hs);
    }
    if (rc == -2 && sock->input->size < RESPONSE_HEAD_MAX && err == NULL)
        return; /* more to come */
    if (rc < 0) {
        export_end(err != NULL ? "the collector closed the connection" : "invalid response");
        return;
    }
    keep = minor >= 1;
    for (size_t i = 0; i < nh; i++) {
        if (hs[i].name_len == 14 && strncasecmp(hs[i].name, "content-length", 14) == 0) {
            char *end;
            char v[24];
            snprintf(v, sizeof(v), "%.*s", (int)hs[i].value_len, hs[i].value);
            body = strtoull(v, &end, 10);
            has_len = end != v && *end == '\0';
        } else if (hs[i].name_len == 10 && strncasecmp(hs[i].name, "connection", 10) == 0 &&
                   hs[i].value_len == 5 && strncasecmp(hs[i].value, "close", 5) == 0) {
            keep = 0;
        }
    }
    /* Kept only when the whole body is here: the next response must start clean. */
    if (!has_len || sock->input->size - (size_t)rc < body) {
        if (has_len && err == NULL && body <= RESPONSE_HEAD_MAX)
            return; /* the rest of a short body is coming */
        keep = 0;
    } else if (sock->input->size - (size_t)rc > body) {
        keep = 0; /* more than asked: not a collector to trust with the next */
    }
    /* A response before the whole request was written: the connection is not reused, and
     * closing it lets the next export have the body buffer back. */
    if (h2o_socket_is_writing(sock))
        keep = 0;
    if (keep && err == NULL) {
        h2o_buffer_consume(&sock->input, sock->input->size);
        h2o_socket_read_start(sock, on_idle_read);
    }
    snprintf(why, sizeof(why), "status %d", status);
    /* The export is done: success is a 2xx, whatever the body says of partial success. */
    if (status >= 200 && status < 300) {
        if (!keep || err != NULL)
            close_conn();
        export_end(NULL);
    } else {
        export_end(why);
    }
}

static void
on_written(h2o_socket_t *sock, const char *err)
{
    if (sock == ex.sock && err != NULL)
        export_end("cannot send the request");
}

static void
send_request(void)
{
    h2o_iovec_t bufs[2] = {h2o_iovec_init(ex.req_head, ex.req_head_len),
                           h2o_iovec_init(ex.body.p, ex.body.len)};

    h2o_socket_read_start(ex.sock, on_read);
    h2o_socket_write(ex.sock, bufs, 2, on_written);
}

static void
on_connect(h2o_socket_t *sock, const char *err)
{
    socklen_t len = sizeof(int);
    int soerr = 0;

    if (sock != ex.sock)
        return;
    if (getsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
        soerr = errno;
    if (soerr != 0 || err != NULL) {
        export_end(soerr != 0 ? strerror(soerr) : "cannot connect");
        return;
    }
    ex.connected = 1;
    send_request();
}

static void
connect_start(void)
{
    const struct conf_tracing *t = ex.conf;
    int fd = socket(t->otlp_ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        export_end(strerror(errno));
        return;
    }
    if (connect(fd, (const struct sockaddr *)&t->otlp_ss, t->otlp_sslen) == -1 &&
        errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        export_end(strerror(err));
        return;
    }
    ex.sock = h2o_evloop_socket_create(ex.loop, fd, 0);
    ex.connected = 0;
    h2o_socket_notify_write(ex.sock, on_connect);
}

/* Up to span_batch queued spans leave the ring as one request body. */
static void
export_start(void)
{
    struct buf *b = &ex.body;
    size_t n = ex.n < ex.conf->span_batch ? ex.n : ex.conf->span_batch;
    int len;

    if (ex.busy || n == 0)
        return;
    b->len = 0;
    put_str(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    put_str(b, ex.resource);
    put_str(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"percore\",\"version\":\"" PACKAGE_VERSION
               "\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put_raw(b, ",", 1);
        put_span(b, &ex.ring[ex.head]);
        ex.head = (ex.head + 1) % ex.cap;
        ex.n--;
    }
    put_str(b, "]}]}]}");
    len = snprintf(ex.req_head, sizeof(ex.req_head),
                   "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nUser-Agent: percore/" PACKAGE_VERSION "\r\n\r\n",
                   ex.conf->otlp_path, ex.conf->otlp_authority, b->len);
    ex.busy = 1;
    ex.inflight = n;
    h2o_timeout_link(ex.loop, &ex.timeout_q, &ex.deadline);
    if (len < 0 || (size_t)len >= sizeof(ex.req_head)) {
        export_end("the endpoint's URL is too long");
        return;
    }
    ex.req_head_len = (size_t)len;
    if (ex.sock != NULL && ex.connected)
        send_request();
    else
        connect_start();
}

static void
on_deadline(h2o_timeout_entry_t *e)
{
    (void)e;
    export_end(ex.connected ? "no response in time (export_timeout)"
                            : "not connected in time (export_timeout)");
}

static void
on_kick(h2o_timeout_entry_t *e)
{
    (void)e;
    export_start();
}

static void
on_interval(h2o_timeout_entry_t *e)
{
    (void)e;
    h2o_timeout_link(ex.loop, &ex.interval_q, &ex.interval);
    export_start();
}

void
otel_init(const struct conf *c, h2o_loop_t *loop, struct metrics_slot *m, unsigned wslot)
{
    const struct conf_tracing *t = &c->tracing;

    ASSERT_WORKER();
    if (!t->on || t->otlp_endpoint == NULL)
        return;
    ex.conf = t;
    ex.loop = loop;
    ex.metrics = m;
    ex.cap = t->span_queue;
    /* Pages are touched only as spans are queued: an idle ring costs address space. */
    ex.ring = xcalloc(ex.cap, sizeof(*ex.ring));
    ex.resource = make_resource(t->service_name, wslot);
    h2o_timeout_init(loop, &ex.interval_q, (uint64_t)t->export_interval_ms);
    h2o_timeout_init(loop, &ex.timeout_q, (uint64_t)t->export_timeout_ms);
    h2o_timeout_init(loop, &ex.kick_q, 0);
    ex.interval.cb = on_interval;
    ex.deadline.cb = on_deadline;
    ex.kick.cb = on_kick;
    h2o_timeout_link(loop, &ex.interval_q, &ex.interval);
    otel_mask = 1;
}

void
otel_finish(int64_t budget_ms)
{
    int64_t deadline = util_now_ms() + budget_ms;

    if (ex.conf == NULL)
        return;
    otel_mask = 0;
    while ((ex.n > 0 || ex.busy) && util_now_ms() < deadline) {
        if (!ex.busy)
            export_start();
        h2o_evloop_run(ex.loop, 10);
    }
    if (ex.busy)
        export_end("stopping");
    if (ex.n > 0) {
        log_warnx("stopping: %zu spans not exported, dropped", ex.n);
        count(0, ex.n);
        ex.n = 0;
    }
    close_conn();
}
