/* Access logs, in three forms. Combined (the default):
 *
 *   127.0.0.1 - - [26/Nov/2026:12:00:00 +0000] "GET /a?b HTTP/1.1" 200 512 "-" "curl/7.88.1" 0.001
 *
 * with '"', '\' and bytes outside printable ASCII in the request line, referer and user
 * agent written as \xHH. JSON: one object per line, the fields named (or all of them) in
 * order, a client's bytes escaped by logesc_json so that every line is valid JSON in valid
 * UTF-8, and absent values null. The journal: one entry per request with a PERCORE_NAME=
 * field per value (absent ones left out) and a short MESSAGE=, sent as datagrams in the
 * journal's native protocol; values go through logesc_text, so none holds a newline and a
 * client's bytes cannot make another field or entry.
 *
 * Master: the `access_log` directive's checks. Workers: the writing. Lines are buffered
 * per file and written with one append per loop turn (several workers share the file;
 * O_APPEND keeps their writes whole); journal entries go out in one sendmmsg per loop
 * turn, never waiting: what the journal cannot take at once is dropped and counted. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "clientaddr.h"
#include "conf.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "log.h"
#include "logesc.h"
#include "reqdata.h"
#include "service_rt.h"
#include "util.h"

#define BUF_SIZE (64 * 1024)
#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define JOURNAL_BATCH 64         /* entries per sendmmsg */
#define JOURNAL_SNDBUF (8 << 20) /* as libsystemd asks for its journal socket */
#define DROP_WARN_MS 60000       /* at most one warning a minute about dropped entries */

/* How many bytes of each text value are kept (a character is never cut), which bounds an
 * entry. Values that are not text (numbers, times, IDs, the protocol) are short. */
#define CAP_CLIENT 128
#define CAP_SERVICE 128
#define CAP_ROUTE 256
#define CAP_METHOD 32
#define CAP_PATH 1024
#define CAP_HOST 256
#define CAP_UPSTREAM 256
#define CAP_HEADER 256 /* user agent, referer */
#define CAP_ERROR 256
#define CAP_SAFE 128   /* a value known to need no escaping: at most REQTRACE_ID_MAX */
#define CAP_MSG_PATH 256 /* the path in a journal entry's MESSAGE= */
#define TEXT_CAPS                                                                             \
    (CAP_CLIENT + CAP_SERVICE + CAP_ROUTE + CAP_METHOD + CAP_PATH + CAP_HOST + CAP_UPSTREAM + \
     2 * CAP_HEADER + CAP_ERROR)
/* Room for one entry: the text values at their worst, and for every field its name, a
 * value that is no text (CAP_SAFE at most) and punctuation; the journal's MESSAGE= too. */
#define ENTRY_ROOM                                                                            \
    (LOGESC_JSON_GROWTH * TEXT_CAPS + ALF_MAX * (40 + CAP_SAFE) +                              \
     LOGESC_TEXT_GROWTH * (CAP_CLIENT + CAP_METHOD + CAP_MSG_PATH) + 256)
_Static_assert(LOGESC_TEXT_GROWTH <= LOGESC_JSON_GROWTH, "JSON is the larger form");
_Static_assert(ENTRY_ROOM <= BUF_SIZE / 2, "an entry fits a buffer with room to spare");
#define COMBINED_ROOM 8192 /* combined: its fields are cut to fit */

/* Where entries go: a file (shared by the services that name it) or the journal. */
struct sink {
    char *path; /* NULL: the journal */
    int fd;
    char *buf;
    size_t len;
    size_t ends[JOURNAL_BATCH]; /* the journal: where each buffered entry ends */
    size_t nents;
    uint64_t dropped;  /* journal entries lost since the last warning */
    int64_t warned_ms; /* when that was */
    struct sink *next;
};

/* A service's log: its sink, the form of its entries, its fields. */
struct access_log {
    struct sink *sink;
    enum accesslog_format format;
    uint8_t fields[ALF_MAX];
    unsigned nfields;
    const char *service;
    struct access_log *next;
};

static struct sink *sinks;     /* per worker */
static struct access_log *all; /* per worker, kept for the worker's life */

/* Each field's name in JSON (with its quotes and colon, as written) and in the journal. */
static const struct {
    const char *name, *key, *jname;
} field_names[ALF_MAX] = {
#define F(e, n, j) [e] = {n, "\"" n "\":", "PERCORE_" j "="}
    F(ALF_TIME, "time", "TIME"),
    F(ALF_REQUEST_ID, "request_id", "REQUEST_ID"),
    F(ALF_TRACE_ID, "trace_id", "TRACE_ID"),
    F(ALF_CLIENT, "client", "CLIENT"),
    F(ALF_SERVICE, "service", "SERVICE"),
    F(ALF_ROUTE, "route", "ROUTE"),
    F(ALF_METHOD, "method", "METHOD"),
    F(ALF_PATH, "path", "PATH"),
    F(ALF_PROTOCOL, "protocol", "PROTOCOL"),
    F(ALF_HOST, "host", "HOST"),
    F(ALF_STATUS, "status", "STATUS"),
    F(ALF_BYTES, "bytes", "BYTES"),
    F(ALF_DURATION, "duration", "DURATION"),
    F(ALF_UPSTREAM_ADDR, "upstream_addr", "UPSTREAM_ADDR"),
    F(ALF_UPSTREAM_STATUS, "upstream_status", "UPSTREAM_STATUS"),
    F(ALF_UPSTREAM_CONNECT_TIME, "upstream_connect_time", "UPSTREAM_CONNECT_TIME"),
    F(ALF_UPSTREAM_HEADER_TIME, "upstream_header_time", "UPSTREAM_HEADER_TIME"),
    F(ALF_UPSTREAM_TIME, "upstream_time", "UPSTREAM_TIME"),
    F(ALF_UPSTREAM_ATTEMPTS, "upstream_attempts", "UPSTREAM_ATTEMPTS"),
    F(ALF_USER_AGENT, "user_agent", "USER_AGENT"),
    F(ALF_REFERER, "referer", "REFERER"),
    F(ALF_ERROR, "error", "ERROR"),
#undef F
};

/* ---- configuration (master) ---- */

static int
open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/* Checked without creating the file: `percore -t` run as root must not leave behind a
 * file the workers' user cannot write. */
int
accesslog_check(const char *path, char *err, size_t errlen)
{
    char *dir, *slash;
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY), rc = 0;

    if (fd != -1) {
        close(fd);
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    dir = xstrdup(path);
    slash = strrchr(dir, '/');
    slash[slash == dir ? 1 : 0] = '\0';
    if (access(dir, W_OK | X_OK) == -1) {
        snprintf(err, errlen, "%s: cannot create it in %s: %s", path, dir, strerror(errno));
        rc = -1;
    }
    free(dir);
    return rc;
}

/* "time, request_id, ...": every field's name, for an error message. */
static void
known_fields(char *out, size_t outlen)
{
    size_t o = 0;

    out[0] = '\0';
    for (size_t i = 0; i < ALF_MAX && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", i > 0 ? ", " : "",
                              field_names[i].name);
}

int
accesslog_parse_fields(struct accesslog_conf *c, const char *list, char *err, size_t errlen,
                       size_t *at)
{
    const char *p = list;
    char known[512];

    c->nfields = 0;
    for (;;) {
        size_t len = strcspn(p, ","), i;
        for (i = 0; i < ALF_MAX; i++)
            if (strlen(field_names[i].name) == len && memcmp(field_names[i].name, p, len) == 0)
                break;
        *at = (size_t)(p - list);
        if (i == ALF_MAX) {
            known_fields(known, sizeof(known));
            snprintf(err, errlen, "unknown access_log field '%.*s'; known fields: %s",
                     (int)(len < 64 ? len : 64), p, known);
            return -1;
        }
        for (unsigned k = 0; k < c->nfields; k++)
            if (c->fields[k] == i) {
                snprintf(err, errlen, "access_log field '%s' is named twice",
                         field_names[i].name);
                return -1;
            }
        c->fields[c->nfields++] = (uint8_t)i;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

/* ---- sinks (workers) ---- */

static struct sink *
open_sink(const char *path)
{
    struct sink *sk;
    int fd, size = JOURNAL_SNDBUF;

    for (sk = sinks; sk != NULL; sk = sk->next)
        if (path == NULL ? sk->path == NULL : sk->path != NULL && strcmp(sk->path, path) == 0)
            return sk;
    if (path != NULL) {
        fd = open_log(path);
        if (fd == -1) {
            log_warn("cannot open access log %s, not logging there", path);
            return NULL;
        }
    } else {
        /* Not connected: each send names the socket, so a restarted journald is found
         * again. Non-blocking: a journal that lags loses entries, never the loop's time. */
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd == -1) {
            log_warn("cannot make a socket for the journal access log, not logging there");
            return NULL;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    sk = xcalloc(1, sizeof(*sk));
    sk->path = path != NULL ? xstrdup(path) : NULL;
    sk->fd = fd;
    sk->buf = xmalloc(BUF_SIZE);
    sk->next = sinks;
    sinks = sk;
    return sk;
}

struct access_log *
accesslog_open(const struct accesslog_conf *c, const char *service)
{
    struct access_log *al;
    struct sink *sk = open_sink(c->format == ACCESSLOG_JOURNAL ? NULL : c->path);

    if (sk == NULL)
        return NULL;
    al = xcalloc(1, sizeof(*al));
    al->sink = sk;
    al->format = c->format;
    al->service = service;
    if (c->nfields > 0) {
        memcpy(al->fields, c->fields, c->nfields);
        al->nfields = c->nfields;
    } else {
        /* Every field; the journal stamps entries itself, so it goes without time. */
        for (unsigned i = c->format == ACCESSLOG_JOURNAL ? ALF_TIME + 1 : 0; i < ALF_MAX; i++)
            al->fields[al->nfields++] = (uint8_t)i;
    }
    al->next = all;
    all = al;
    return al;
}

static void
flush_file(struct sink *sk)
{
    size_t off = 0;
    ssize_t n;

    while (off < sk->len) {
        n = write(sk->fd, sk->buf + off, sk->len - off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_warn("access log %s: lines lost", sk->path);
            break;
        }
        off += (size_t)n;
    }
    sk->len = 0;
}

static void
flush_journal(struct sink *sk)
{
    static struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET};
    struct mmsghdr msgs[JOURNAL_BATCH];
    struct iovec iov[JOURNAL_BATCH];
    size_t start = 0, done = 0;
    int n, err = 0;
    int64_t now;

    memset(msgs, 0, sizeof(msgs[0]) * sk->nents);
    for (size_t i = 0; i < sk->nents; i++) {
        iov[i] = (struct iovec){sk->buf + start, sk->ends[i] - start};
        msgs[i].msg_hdr.msg_name = &sun;
        msgs[i].msg_hdr.msg_namelen = sizeof(sun);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        start = sk->ends[i];
    }
    while (done < sk->nents) {
        n = sendmmsg(sk->fd, msgs + done, (unsigned)(sk->nents - done),
                     MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = errno;
            sk->dropped += sk->nents - done;
            break;
        }
        done += (size_t)n;
    }
    sk->len = 0;
    sk->nents = 0;
    if (sk->dropped == 0)
        return;
    now = util_now_ms();
    if (sk->warned_ms != 0 && now - sk->warned_ms < DROP_WARN_MS)
        return;
    errno = err;
    log_warn("journal access log: %llu entries dropped", (unsigned long long)sk->dropped);
    sk->dropped = 0;
    sk->warned_ms = now;
}

static void
flush_one(struct sink *sk)
{
    if (sk->path != NULL)
        flush_file(sk);
    else if (sk->nents > 0)
        flush_journal(sk);
}

void
accesslog_flush(void)
{
    for (struct sink *sk = sinks; sk != NULL; sk = sk->next)
        if (sk->len > 0)
            flush_one(sk);
}

void
accesslog_reopen(void)
{
    for (struct sink *sk = sinks; sk != NULL; sk = sk->next) {
        int fd;
        flush_one(sk);
        if (sk->path == NULL)
            continue;
        if ((fd = open_log(sk->path)) == -1) {
            log_warn("cannot reopen access log %s, still writing to the old file", sk->path);
            continue;
        }
        close(sk->fd);
        sk->fd = fd;
    }
}

/* Where the next entry of at most room bytes goes in sk's buffer: flushed first if it
 * might not fit. */
static char *
entry_start(struct sink *sk, size_t room)
{
    if (sk->len + room > BUF_SIZE || (sk->path == NULL && sk->nents == JOURNAL_BATCH))
        flush_one(sk);
    return sk->buf + sk->len;
}

static void
entry_end(struct sink *sk, const char *end)
{
    sk->len = (size_t)(end - sk->buf);
    if (sk->path == NULL)
        sk->ends[sk->nents++] = sk->len;
}

/* ---- what an entry says ---- */

/* A request as the entry tells it; req NULL for one refused before it could be read. */
struct rec {
    h2o_req_t *req;
    struct reqdata *rd;
    const char *service; /* the log's, when the router did not choose one */
    struct timeval at;   /* when it was received */
    int64_t us;          /* how long it took; -1: not known */
    int status;
    size_t bytes;
    char addr[NI_MAXHOST]; /* "" when not known */
};

enum vkind {
    V_NULL, /* not known, or does not apply */
    V_TEXT, /* bytes from a client or the config: escaped, cut at cap */
    V_SAFE, /* ASCII that needs no escaping: a string */
    V_NUM,  /* a number, written bare */
};

struct val {
    enum vkind kind;
    const char *s;
    size_t len, cap;
    char buf[48];
};

static void
v_text(struct val *v, h2o_iovec_t s, size_t cap)
{
    if (s.base == NULL || s.len == 0) {
        v->kind = V_NULL;
        return;
    }
    v->kind = V_TEXT;
    v->s = s.base;
    v->len = s.len;
    v->cap = cap;
}

static void
v_cstr(struct val *v, const char *s, size_t cap)
{
    v_text(v, h2o_iovec_init(s, s != NULL ? strlen(s) : 0), cap);
}

static void
v_safe(struct val *v, const char *s)
{
    v->kind = s != NULL && s[0] != '\0' ? V_SAFE : V_NULL;
    v->s = s;
    v->len = s != NULL ? strlen(s) : 0;
    if (v->len > CAP_SAFE)
        v->len = CAP_SAFE;
}

/* Decimal digits of n at p; returns the end. */
static char *
put_u64(char *p, uint64_t n)
{
    char tmp[20];
    size_t i = 0;

    do {
        tmp[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    while (i > 0)
        *p++ = tmp[--i];
    return p;
}

static void
v_num(struct val *v, uint64_t n)
{
    v->kind = V_NUM;
    v->s = v->buf;
    v->len = (size_t)(put_u64(v->buf, n) - v->buf);
}

/* us microseconds as seconds: "0.000412". */
static void
v_secs(struct val *v, int64_t us)
{
    char *p;
    uint64_t frac;

    if (us < 0)
        us = 0;
    v->kind = V_NUM;
    v->s = v->buf;
    p = put_u64(v->buf, (uint64_t)us / 1000000);
    *p++ = '.';
    frac = (uint64_t)us % 1000000;
    for (int i = 5; i >= 0; i--) {
        p[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    v->len = (size_t)(p + 6 - v->buf);
}

/* RFC 3339 in UTC with milliseconds: "2026-11-26T12:00:00.123Z". The seconds' part is
 * made once per second. */
static void
v_time(struct val *v, const struct timeval *tv)
{
    static time_t cached_sec = -1;
    static char cached[24];
    unsigned ms = (unsigned)(tv->tv_usec / 1000);
    struct tm tm;

    if (tv->tv_sec != cached_sec) {
        if (gmtime_r(&tv->tv_sec, &tm) == NULL ||
            strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
            v->kind = V_NULL;
            return;
        }
        cached_sec = tv->tv_sec;
    }
    v->kind = V_SAFE;
    v->s = v->buf;
    v->len = strlen(cached);
    memcpy(v->buf, cached, v->len);
    v->buf[v->len++] = '.';
    v->buf[v->len++] = (char)('0' + ms / 100);
    v->buf[v->len++] = (char)('0' + ms / 10 % 10);
    v->buf[v->len++] = (char)('0' + ms % 10);
    v->buf[v->len++] = 'Z';
}

static h2o_iovec_t
header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);

    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static void
v_protocol(struct val *v, int version)
{
    switch (version) {
    case 0x100: v_safe(v, "HTTP/1.0"); break;
    case 0x101: v_safe(v, "HTTP/1.1"); break;
    case 0x200: v_safe(v, "HTTP/2"); break;
    default:
        snprintf(v->buf, sizeof(v->buf), "HTTP/%d.%d", (version >> 8) & 0xff, version & 0xff);
        v_safe(v, v->buf);
    }
}

/* The value of field f for r into v. */
static void
get(const struct rec *r, enum accesslog_field f, struct val *v)
{
    h2o_req_t *req = r->req;
    const struct reqdata *rd = r->rd;
    int up = rd != NULL && rd->up.addr != NULL;

    v->kind = V_NULL;
    switch (f) {
    case ALF_TIME: v_time(v, &r->at); break;
    case ALF_REQUEST_ID:
        /* Made here when nothing asked before: error lines name the same one. */
        if (req != NULL)
            v_safe(v, reqdata_request_id(req));
        break;
    case ALF_TRACE_ID:
        if (rd != NULL && rd->trace.on)
            v_safe(v, rd->trace.trace_hex);
        break;
    case ALF_CLIENT: v_cstr(v, r->addr, CAP_CLIENT); break;
    case ALF_SERVICE:
        v_cstr(v, rd != NULL && rd->site != NULL ? rd->site->service->conf->name : r->service,
               CAP_SERVICE);
        break;
    case ALF_ROUTE:
        if (rd != NULL && rd->route != NULL)
            v_cstr(v, rd->route->label, CAP_ROUTE);
        break;
    case ALF_METHOD:
        if (req != NULL)
            v_text(v, req->input.method, CAP_METHOD);
        break;
    case ALF_PATH:
        if (req != NULL)
            v_text(v, req->input.path, CAP_PATH);
        break;
    case ALF_PROTOCOL:
        if (req != NULL)
            v_protocol(v, req->version);
        break;
    case ALF_HOST:
        /* As sent: not the name libh2o puts in for a request without one. */
        if (req != NULL)
            v_text(v, hnd_client_authority(req), CAP_HOST);
        break;
    case ALF_STATUS: v_num(v, (uint64_t)(r->status > 0 ? r->status : 0)); break;
    case ALF_BYTES: v_num(v, r->bytes); break;
    case ALF_DURATION:
        if (r->us >= 0)
            v_secs(v, r->us);
        break;
    case ALF_UPSTREAM_ADDR:
        if (up)
            v_cstr(v, rd->up.addr, CAP_UPSTREAM);
        break;
    case ALF_UPSTREAM_STATUS:
        if (up && rd->up.status > 0)
            v_num(v, (uint64_t)rd->up.status);
        break;
    case ALF_UPSTREAM_CONNECT_TIME:
        if (up && rd->up.connect_us >= 0)
            v_secs(v, rd->up.connect_us);
        break;
    case ALF_UPSTREAM_HEADER_TIME:
        if (up && rd->up.header_us >= 0)
            v_secs(v, rd->up.header_us);
        break;
    case ALF_UPSTREAM_TIME:
        if (up && rd->up.end_us != 0)
            v_secs(v, rd->up.end_us - rd->up.start_us);
        break;
    case ALF_UPSTREAM_ATTEMPTS:
        if (up)
            v_num(v, rd->up.attempts);
        break;
    case ALF_USER_AGENT:
        if (req != NULL)
            v_text(v, header(req, H2O_TOKEN_USER_AGENT), CAP_HEADER);
        break;
    case ALF_REFERER:
        if (req != NULL)
            v_text(v, header(req, H2O_TOKEN_REFERER), CAP_HEADER);
        break;
    case ALF_ERROR:
        if (req != NULL && req->error_logs.size > 0)
            v_text(v, req->error_logs.entries[0].msg, CAP_ERROR);
        break;
    case ALF_MAX: break;
    }
}

/* ---- the three forms ---- */

static char *
put_str(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

#define PUT_LIT(p, lit) put_str(p, lit, sizeof(lit) - 1)

static void
write_json(struct access_log *al, const struct rec *r)
{
    char *p = entry_start(al->sink, ENTRY_ROOM);
    struct val v;

    *p++ = '{';
    for (unsigned i = 0; i < al->nfields; i++) {
        enum accesslog_field f = al->fields[i];
        if (i > 0)
            *p++ = ',';
        p = put_str(p, field_names[f].key, strlen(field_names[f].key));
        get(r, f, &v);
        switch (v.kind) {
        case V_NULL: p = PUT_LIT(p, "null"); break;
        case V_TEXT:
            *p++ = '"';
            p += logesc_json(p, v.s, v.len, v.cap);
            *p++ = '"';
            break;
        case V_SAFE:
            *p++ = '"';
            p = put_str(p, v.s, v.len);
            *p++ = '"';
            break;
        case V_NUM: p = put_str(p, v.s, v.len); break;
        }
    }
    *p++ = '}';
    *p++ = '\n';
    entry_end(al->sink, p);
}

static void
write_journal(struct access_log *al, const struct rec *r)
{
    char *p = entry_start(al->sink, ENTRY_ROOM);
    struct val v;

    /* MESSAGE=127.0.0.1 "GET /a?b HTTP/1.1" 200 512 0.000412 */
    p = PUT_LIT(p, "MESSAGE=");
    if (r->addr[0] != '\0')
        p += logesc_text(p, r->addr, strlen(r->addr), CAP_CLIENT);
    else
        *p++ = '-';
    p = PUT_LIT(p, " \"");
    if (r->req != NULL) {
        p += logesc_text(p, r->req->input.method.base, r->req->input.method.len, CAP_METHOD);
        *p++ = ' ';
        p += logesc_text(p, r->req->input.path.base, r->req->input.path.len, CAP_MSG_PATH);
        *p++ = ' ';
        get(r, ALF_PROTOCOL, &v);
        p = put_str(p, v.s, v.len);
    } else {
        *p++ = '-';
    }
    *p++ = '"';
    *p++ = ' ';
    p = put_u64(p, (uint64_t)(r->status > 0 ? r->status : 0));
    *p++ = ' ';
    p = put_u64(p, r->bytes);
    if (r->us >= 0) {
        *p++ = ' ';
        v_secs(&v, r->us);
        p = put_str(p, v.s, v.len);
    }
    p = PUT_LIT(p, "\nPRIORITY=6\nSYSLOG_IDENTIFIER=percore-access\n");
    for (unsigned i = 0; i < al->nfields; i++) {
        enum accesslog_field f = al->fields[i];
        get(r, f, &v);
        if (v.kind == V_NULL)
            continue;
        p = put_str(p, field_names[f].jname, strlen(field_names[f].jname));
        if (v.kind == V_TEXT)
            p += logesc_text(p, v.s, v.len, v.cap);
        else
            p = put_str(p, v.s, v.len);
        *p++ = '\n';
    }
    entry_end(al->sink, p);
}

/* Append s (at most max bytes of it) to p, escaped; returns the new end. */
static char *
put_escaped(char *p, h2o_iovec_t s, size_t max)
{
    static const char hex[] = "0123456789abcdef";

    if (s.base == NULL || s.len == 0) {
        *p++ = '-';
        return p;
    }
    for (size_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

static void
write_combined(struct access_log *al, const struct rec *r)
{
    char *line = entry_start(al->sink, COMBINED_ROOM), *p = line;
    h2o_req_t *req = r->req;
    const char *addr = r->addr[0] != '\0' ? r->addr : "-";

    if (req == NULL) {
        char ts[64];
        struct tm tm;
        strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S %z", localtime_r(&r->at.tv_sec, &tm));
        p += snprintf(p, 512, "%s - - [%s] \"-\" %d %zu \"-\" \"-\" 0.000\n", addr, ts, r->status,
                      r->bytes);
        entry_end(al->sink, p);
        return;
    }
    /* Each escaped byte takes 4: the fields' caps keep the line under COMBINED_ROOM. */
    p += snprintf(p, 128 + NI_MAXHOST, "%s - - [%s] \"", addr,
                  req->processed_at.str != NULL ? req->processed_at.str->log : "-");
    p = put_escaped(p, req->input.method, 16);
    *p++ = ' ';
    p = put_escaped(p, req->input.path, 512);
    p += snprintf(p, 64, " HTTP/%d.%d\" %d %zu \"", req->version >> 8, req->version & 0xff,
                  r->status, r->bytes);
    p = put_escaped(p, header(req, H2O_TOKEN_REFERER), 128);
    *p++ = '"';
    *p++ = ' ';
    *p++ = '"';
    p = put_escaped(p, header(req, H2O_TOKEN_USER_AGENT), 128);
    p += snprintf(p, 32, "\" %.3f\n", (double)(r->us > 0 ? r->us : 0) / 1e6);
    entry_end(al->sink, p);
}

static void
write_rec(struct access_log *al, const struct rec *r)
{
    switch (al->format) {
    case ACCESSLOG_JSON: write_json(al, r); break;
    case ACCESSLOG_JOURNAL: write_journal(al, r); break;
    default: write_combined(al, r); break;
    }
}

/* sa as a numeric host into out (NI_MAXHOST bytes), "" when it has none. IPv4 is written
 * here: inet_ntop's sprintf would be the dearest part of a line. */
static void
numeric_host(const struct sockaddr *sa, socklen_t salen, char *out)
{
    if (salen >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        char *p = out;
        for (int i = 0; i < 4; i++) {
            if (i > 0)
                *p++ = '.';
            p = put_u64(p, b[i]);
        }
        *p = '\0';
        return;
    }
    out[0] = '\0';
    if (salen != 0 && h2o_socket_getnumerichost((struct sockaddr *)sa, salen, out) == SIZE_MAX)
        out[0] = '\0';
}

void
accesslog_write(struct access_log *al, h2o_req_t *req, uint64_t us)
{
    struct sockaddr_storage ss;
    struct rec r;

    r.req = req;
    r.rd = reqdata_find(req);
    r.service = al->service;
    r.at = req->processed_at.at;
    if (r.at.tv_sec == 0)
        gettimeofday(&r.at, NULL);
    r.us = (int64_t)us;
    r.status = req->res.status;
    r.bytes = req->bytes_sent;
    numeric_host((struct sockaddr *)&ss, clientaddr_get(req, &ss), r.addr);
    write_rec(al, &r);
}

void
accesslog_write_refused(struct access_log *al, const struct sockaddr *sa, unsigned salen,
                        int status, size_t bytes)
{
    struct rec r;

    r.req = NULL;
    r.rd = NULL;
    r.service = al->service;
    gettimeofday(&r.at, NULL);
    r.us = -1;
    r.status = status;
    r.bytes = bytes;
    numeric_host(sa, salen, r.addr);
    write_rec(al, &r);
}
