/* The files handler: a document root served from file descriptors opened beneath it
 * (index files, MIME types, ETag and Last-Modified with conditional requests, byte ranges,
 * listings).
 *
 * libh2o normalises "..", "%2e%2e" and friends away before routing; the file is then
 * opened with openat2(RESOLVE_BENEATH) from the root, so no symbolic link may lead out of
 * it unless `symlinks` is given (on kernels without openat2, the opened file is checked
 * against the realpath of its name). Every answer, whatever its kind (GET, HEAD, ranges,
 * 304, index files, listings), is built from that one descriptor and its fstat: nothing is
 * opened a second time by name, so a symbolic link swapped in after the check is never
 * followed. Whole files go out in one write with the headers when small, and on cleartext
 * HTTP/1.x with sendfile(2), which libh2o 2.2.5 lacks. Range requests are bounded: more
 * than MAX_RANGES ranges, or ranges that overlap, get the whole file. Directory listings
 * are off unless `listing` is given. */
#include "config.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "log.h"
#include "looplag.h"
#include "util.h"

#define SMALL_FILE (32 * 1024) /* read whole and written with the headers */
#define READ_CHUNK (64 * 1024)
#define SENDFILE_TURN (1024 * 1024) /* per event loop turn, so one client cannot hog it */
#define MAX_RANGES 16 /* more parts than this in one Range header: the whole file */
#define ETAG_MAX 32
#define BOUNDARY_LEN 20

struct files_conf {
    char *root; /* realpath, no trailing slash */
    /* The root, O_PATH: opened by the master at load, so that a root the master cannot
     * open is a config error (a failed reload keeps the old one serving), and inherited by
     * the workers, which never open it themselves. Closed by files_free. */
    int rootfd;
    int listing;
    int symlinks_out;
};

struct files_front {
    h2o_handler_t super;
    const struct files_conf *conf;
    int rootfd;             /* the config's (files_conf), not closed here */
    h2o_mimemap_t *mimemap; /* libh2o's default types */
};

/* An open file, shared by the requests of one event loop turn that name it (libh2o's own
 * server caches the same way), so a burst of requests costs one open. */
struct open_file {
    const struct files_front *front;
    char *rel; /* the key, below the root */
    int fd;
    struct stat st;
    unsigned refs; /* holders: the cache and each response being sent */
};

#define OPEN_CACHE_SLOTS 64
static struct open_file *open_cache[OPEN_CACHE_SLOTS]; /* per worker, emptied every turn */

/* One stretch of the body: the bytes [start, end) of the file, after head (the part's
 * header in a multipart answer, else empty). */
struct part {
    off_t start, end;
    h2o_iovec_t head;
};

/* A response body being sent from an open file: parts[0..nparts), then tail. */
struct file_gen {
    h2o_generator_t super;
    h2o_req_t *req;
    struct open_file *of;
    int fd;
    int sockfd; /* >= 0: sendfile to this socket */
    h2o_socket_t *sock;
    struct part *parts;
    size_t nparts, cur;
    h2o_iovec_t tail;
    off_t off, end; /* within parts[cur] */
    char *buf;
};

static int
files_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    const struct conf_arg *root = &n->args[0];
    struct files_conf *fc;
    char real[PATH_MAX];
    struct stat st;
    int fd;

    if (realpath(root->s, real) == NULL) {
        conf_diag_add(diag, &root->pos, "document root '%s': %s", root->s, strerror(errno));
        return -1;
    }
    if (stat(real, &st) == -1 || !S_ISDIR(st.st_mode)) {
        conf_diag_add(diag, &root->pos, "document root '%s' is not a directory", root->s);
        return -1;
    }
    fc = xcalloc(1, sizeof(*fc));
    for (size_t i = 1; i < n->nargs; i++) {
        if (strcmp(n->args[i].s, "listing") == 0) {
            fc->listing = 1;
        } else if (strcmp(n->args[i].s, "symlinks") == 0) {
            fc->symlinks_out = 1;
        } else {
            conf_diag_add(diag, &n->args[i].pos, "unknown files option '%s': expected "
                          "'listing' or 'symlinks'", n->args[i].s);
            free(fc);
            return -1;
        }
    }
    fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        conf_diag_add(diag, &root->pos, "document root '%s': %s", root->s, strerror(errno));
        free(fc);
        return -1;
    }
    fc->rootfd = fd;
    fc->root = xstrdup(strcmp(real, "/") == 0 ? "" : real);
    *out = fc;
    return 0;
}

static void
files_free(void *p)
{
    struct files_conf *fc = p;

    if (fc == NULL)
        return;
    close(fc->rootfd);
    free(fc->root);
    free(fc);
}

static int have_openat2 = 1; /* cleared for good on ENOSYS or EPERM */

/* Generators waiting for their socket to be writable, by socket fd (per worker). */
static struct file_gen **waiting;
static size_t nwaiting;

static void
set_waiting(int fd, struct file_gen *g)
{
    if ((size_t)fd >= nwaiting) {
        size_t n = (size_t)fd + 64;
        waiting = xreallocarray(waiting, n, sizeof(*waiting));
        memset(waiting + nwaiting, 0, (n - nwaiting) * sizeof(*waiting));
        nwaiting = n;
    }
    waiting[fd] = g;
}

static void push_sendfile(struct file_gen *g);

static void
set_cork(int fd, int on)
{
    (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
}

static void
on_writable(h2o_socket_t *sock, const char *err)
{
    int fd = h2o_socket_get_fd(sock);
    struct file_gen *g = (size_t)fd < nwaiting ? waiting[fd] : NULL;
    struct looplag_scope s; /* the request's callback (looplag.c) */

    if (g == NULL)
        return;
    waiting[fd] = NULL;
    looplag_enter(&s, g->req);
    if (err != NULL)
        h2o_send(g->req, NULL, 0, H2O_SEND_STATE_ERROR);
    else
        push_sendfile(g);
    looplag_leave(&s);
}

/* Send from the file straight to the socket until done, the socket is full, or this
 * turn's share is used; the kernel copies nothing through user space. */
static void
push_sendfile(struct file_gen *g)
{
    size_t turn = 0;
    ssize_t n;

    while (g->off < g->end) {
        size_t want = (size_t)(g->end - g->off);
        if (turn >= SENDFILE_TURN) {
            set_waiting(g->sockfd, g);
            h2o_socket_notify_write(g->sock, on_writable);
            return;
        }
        n = sendfile(g->sockfd, g->fd, &g->off, want < SENDFILE_TURN ? want : SENDFILE_TURN);
        if (n > 0) {
            turn += (size_t)n;
            g->req->bytes_sent += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            set_waiting(g->sockfd, g);
            h2o_socket_notify_write(g->sock, on_writable);
            return;
        }
        /* The client went away, or the file shrank under us: the length sent is a lie. */
        h2o_send(g->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    set_cork(g->sockfd, 0);
    h2o_send(g->req, NULL, 0, H2O_SEND_STATE_FINAL);
}

/* Read the next chunk of the current part into the buffer and send it through the ostream
 * chain, with the part's header before its first chunk and the tail after the last one. */
static void
push_read(struct file_gen *g)
{
    const struct part *p = &g->parts[g->cur];
    size_t want = (size_t)(g->end - g->off);
    h2o_iovec_t v[3];
    size_t nv = 0;
    ssize_t n;

    if (want > READ_CHUNK)
        want = READ_CHUNK;
    do
        n = pread(g->fd, g->buf, want, g->off);
    while (n == -1 && errno == EINTR);
    if (n <= 0) { /* the file shrank under us: the length sent is a lie */
        h2o_send(g->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    if (g->off == p->start && p->head.len != 0)
        v[nv++] = p->head;
    v[nv++] = h2o_iovec_init(g->buf, (size_t)n);
    g->off += n;
    if (g->off == g->end && ++g->cur < g->nparts) {
        g->off = g->parts[g->cur].start;
        g->end = g->parts[g->cur].end;
    } else if (g->off == g->end) {
        if (g->tail.len != 0)
            v[nv++] = g->tail;
        h2o_send(g->req, v, nv, H2O_SEND_STATE_FINAL);
        return;
    }
    h2o_send(g->req, v, nv, H2O_SEND_STATE_IN_PROGRESS);
}

static void
on_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    struct file_gen *g = (struct file_gen *)self;
    struct looplag_scope s; /* the request's callback (looplag.c) */

    looplag_enter(&s, req);
    if (g->sockfd >= 0)
        push_sendfile(g);
    else
        push_read(g);
    looplag_leave(&s);
}

/* g no longer waits for its socket (the request is over, or going away). */
static void
unwait(struct file_gen *g)
{
    if (g->sockfd >= 0 && (size_t)g->sockfd < nwaiting && waiting[g->sockfd] == g)
        waiting[g->sockfd] = NULL;
}

static void
on_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    unwait((struct file_gen *)self);
}

static void
of_put(struct open_file *of)
{
    if (--of->refs > 0)
        return;
    close(of->fd);
    free(of->rel);
    free(of);
}

static uint32_t
of_slot(const struct files_front *f, const char *rel)
{
    uint32_t h = 2166136261u ^ (uint32_t)(uintptr_t)f;

    for (; *rel != '\0'; rel++)
        h = (h ^ (unsigned char)*rel) * 16777619u;
    return h % OPEN_CACHE_SLOTS;
}

static int open_beneath(const struct files_front *f, const char *rel);

/* rel opened under f's root, with one reference for the caller; NULL with errno. Regular
 * files are kept for the rest of this event loop turn. */
static struct open_file *
of_get(const struct files_front *f, const char *rel)
{
    uint32_t slot = of_slot(f, rel);
    struct open_file *of = open_cache[slot];
    int fd;

    if (of != NULL && of->front == f && strcmp(of->rel, rel) == 0) {
        of->refs++;
        return of;
    }
    if ((fd = open_beneath(f, rel)) == -1)
        return NULL;
    of = xcalloc(1, sizeof(*of));
    of->front = f;
    of->fd = fd;
    of->refs = 1;
    if (fstat(fd, &of->st) == -1)
        of->st.st_mode = 0;
    if (!S_ISREG(of->st.st_mode))
        return of;
    of->rel = xstrdup(rel);
    if (open_cache[slot] != NULL)
        of_put(open_cache[slot]);
    open_cache[slot] = of;
    of->refs++;
    return of;
}

void
hnd_files_turn_end(void)
{
    for (size_t i = 0; i < OPEN_CACHE_SLOTS; i++) {
        if (open_cache[i] != NULL) {
            of_put(open_cache[i]);
            open_cache[i] = NULL;
        }
    }
}

static void
on_gen_dispose(void *p)
{
    struct file_gen *g = p;

    unwait(g);
    of_put(g->of);
}

/* The socket to sendfile to, or -1 when the bytes must pass through libh2o (TLS, HTTP/2,
 * or a filter such as gzip that rewrites the body). */
static int
sendfile_socket(h2o_req_t *req, h2o_socket_t **sock)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return -1;
    *sock = req->conn->callbacks->get_socket(req->conn);
    if (*sock == NULL || (*sock)->ssl != NULL || req->_ostr_top->next != NULL)
        return -1;
    return h2o_socket_get_fd(*sock);
}

/* The file's ETag into buf (ETAG_MAX bytes), from the fstat of the descriptor served;
 * returns its length. */
static size_t
make_etag(char *buf, const struct stat *st)
{
    return (size_t)snprintf(buf, ETAG_MAX, "\"%08x-%zx\"", (unsigned)st->st_mtime,
                            (size_t)st->st_size);
}

static void
add_validators(h2o_req_t *req, const struct stat *st)
{
    char *lm = h2o_mem_alloc_pool(&req->pool, H2O_TIMESTR_RFC1123_LEN + 1);
    char *etag = h2o_mem_alloc_pool(&req->pool, ETAG_MAX);
    struct tm gm;
    size_t n;

    gmtime_r(&st->st_mtime, &gm);
    h2o_time2str_rfc1123(lm, &gm);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LAST_MODIFIED, NULL, lm,
                   H2O_TIMESTR_RFC1123_LEN);
    n = make_etag(etag, st);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, etag, n);
}

/* The value of the request's header tok, or NULL. */
static const h2o_iovec_t *
req_header(h2o_req_t *req, const h2o_token_t *tok)
{
    ssize_t i = h2o_find_header(&req->headers, tok, -1);

    return i == -1 ? NULL : &req->headers.entries[i].value;
}

static int
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* 1 when the If-None-Match list v names etag (weak comparison) or is "*". */
static int
etag_listed(h2o_iovec_t v, const char *etag, size_t elen)
{
    const char *p = v.base, *end = v.base + v.len;

    while (p < end) {
        const char *comma, *e;
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        for (comma = p; comma < end && *comma != ','; comma++)
            ;
        for (e = comma; e > p && is_ows(e[-1]); e--)
            ;
        if ((e - p == 1 && *p == '*') || h2o_memis(p, (size_t)(e - p), etag, elen))
            return 1;
        p = comma;
    }
    return 0;
}

/* The time in an HTTP date, or -1. */
static time_t
http_date(const h2o_iovec_t *v)
{
    struct tm tm;

    if (h2o_time_parse_rfc1123(v->base, v->len, &tm) != 0)
        return -1;
    return timegm(&tm);
}

/* 1 when the request's validators say the client's copy is current (RFC 9110 13.2.2:
 * If-None-Match wins over If-Modified-Since). */
static int
not_modified(h2o_req_t *req, const struct stat *st)
{
    const h2o_iovec_t *v;
    char etag[ETAG_MAX];
    time_t t;

    if ((v = req_header(req, H2O_TOKEN_IF_NONE_MATCH)) != NULL)
        return etag_listed(*v, etag, make_etag(etag, st));
    if ((v = req_header(req, H2O_TOKEN_IF_MODIFIED_SINCE)) != NULL) {
        t = http_date(v);
        return t != -1 && t >= st->st_mtime;
    }
    return 0;
}

/* 1 when a Range may be honoured: no If-Range, or one that names this very file (a strong
 * ETag, or its exact Last-Modified). */
static int
if_range_holds(h2o_req_t *req, const struct stat *st)
{
    const h2o_iovec_t *v = req_header(req, H2O_TOKEN_IF_RANGE);
    char etag[ETAG_MAX];

    if (v == NULL)
        return 1;
    if (v->len > 0 && (v->base[0] == '"' || v->base[0] == 'W'))
        return h2o_memis(v->base, v->len, etag, make_etag(etag, st));
    return http_date(v) == st->st_mtime;
}

/* A decimal number at *p, saturated at INT64_MAX; -1 when there is no digit. */
static int64_t
parse_num(const char **p, const char *end)
{
    int64_t n = 0;
    const char *s = *p;

    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++)
        n = n > (INT64_MAX - 9) / 10 ? INT64_MAX : n * 10 + (**p - '0');
    return *p == s ? -1 : n;
}

/* One range-spec at *p ("first-last", "first-" or "-suffix") as [start, end) of a file of
 * size bytes: 1 when satisfiable, 0 when not, -1 when it is not a range-spec. */
static int
parse_spec(const char **p, const char *end, int64_t size, struct part *r)
{
    int64_t first = parse_num(p, end), last;

    r->head = h2o_iovec_init(NULL, 0);
    if (*p == end || **p != '-')
        return -1;
    (*p)++;
    last = parse_num(p, end);
    if (first == -1) { /* a suffix: the last bytes */
        if (last == -1)
            return -1;
        r->start = last < size ? size - last : 0;
        r->end = size;
        return last > 0 && size > 0;
    }
    if (last != -1 && last < first)
        return -1;
    if (first >= size)
        return 0;
    r->start = first;
    r->end = last == -1 || last >= size - 1 ? size : last + 1;
    return 1;
}

/* The ranges of a Range header value for a file of size bytes, into r[MAX_RANGES]: the
 * number of satisfiable ones (0: answer 416), or -1 to ignore the header and send the
 * whole file: not a bytes range-set, more than MAX_RANGES specs, or satisfiable ranges
 * that overlap (the sum of the parts can then never exceed the file, RFC 9110 14.2). */
static int
parse_ranges(h2o_iovec_t v, int64_t size, struct part *r)
{
    const char *p = v.base, *end = v.base + v.len;
    int n = 0, specs = 0;

    if (v.len < 6 || !h2o_lcstris(p, 6, H2O_STRLIT("bytes=")))
        return -1;
    p += 6;
    for (;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        if (p == end)
            break;
        if (++specs > MAX_RANGES)
            return -1;
        switch (parse_spec(&p, end, size, &r[n])) {
        case -1:
            return -1;
        case 1:
            n++;
            break;
        }
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ',')
            return -1;
    }
    if (specs == 0)
        return -1;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (r[i].start < r[j].end && r[j].start < r[i].end)
                return -1;
    return n;
}

/* Start a response of content_length bytes read from of (the caller's reference is
 * taken) as parts, or none for HEAD. */
static void
start_body(h2o_req_t *req, struct open_file *of, struct part *parts, size_t nparts,
           h2o_iovec_t tail, int is_head)
{
    struct file_gen *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_gen_dispose);
    h2o_socket_t *sock = NULL;
    off_t first = parts[0].end - parts[0].start;

    *g = (struct file_gen){.super = {on_proceed, on_stop}, .req = req, .of = of, .fd = of->fd,
                           .sockfd = -1, .parts = parts, .nparts = nparts, .tail = tail,
                           .off = parts[0].start, .end = parts[0].end};
    h2o_start_response(req, &g->super);
    if (is_head || req->res.content_length == 0) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    if (nparts == 1 && parts[0].head.len == 0 && first > SMALL_FILE &&
        (g->sockfd = sendfile_socket(req, &sock)) >= 0) {
        g->sock = sock;
        /* Corked, the headers leave in the same segments as the file's first bytes. */
        set_cork(g->sockfd, 1);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS); /* the headers; then on_proceed */
        return;
    }
    g->buf = h2o_mem_alloc_pool(&req->pool, first < READ_CHUNK && nparts == 1 ? (size_t)first
                                                                             : READ_CHUNK);
    push_read(g);
}

static void
add_content_type(h2o_req_t *req, h2o_iovec_t type)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type.base,
                   type.len);
}

/* 206 with one range, or multipart/byteranges with n of them; takes of. */
static void
send_ranges(h2o_req_t *req, struct open_file *of, h2o_iovec_t type, struct part *r, int n,
            int is_head)
{
    int64_t size = of->st.st_size;
    h2o_iovec_t tail = {NULL, 0};
    char *cr, boundary[BOUNDARY_LEN + 1];
    size_t total = 0;

    req->res.status = 206;
    req->res.reason = hnd_reason(206);
    req->res.mime_attr = &h2o_mime_attributes_as_is; /* never gzip a part */
    add_validators(req, &of->st);
    if (n == 1) {
        cr = h2o_mem_alloc_pool(&req->pool, 80);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr,
                       (size_t)snprintf(cr, 80, "bytes %jd-%jd/%jd", (intmax_t)r[0].start,
                                        (intmax_t)r[0].end - 1, (intmax_t)size));
        add_content_type(req, type);
        req->res.content_length = (size_t)(r[0].end - r[0].start);
        start_body(req, of, r, 1, tail, is_head);
        return;
    }
    for (size_t i = 0; i < BOUNDARY_LEN; i++)
        boundary[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[h2o_rand() % 36];
    boundary[BOUNDARY_LEN] = '\0';
    for (int i = 0; i < n; i++) {
        size_t cap = BOUNDARY_LEN + type.len + 192; /* the text below with 3 int64s fits */
        r[i].head.base = h2o_mem_alloc_pool(&req->pool, cap);
        r[i].head.len = (size_t)snprintf(r[i].head.base, cap,
                                         "%s--%s\r\nContent-Type: %.*s\r\n"
                                         "Content-Range: bytes %jd-%jd/%jd\r\n\r\n",
                                         i == 0 ? "" : "\r\n", boundary, (int)type.len,
                                         type.base, (intmax_t)r[i].start,
                                         (intmax_t)r[i].end - 1, (intmax_t)size);
        total += r[i].head.len + (size_t)(r[i].end - r[i].start);
    }
    tail.base = h2o_mem_alloc_pool(&req->pool, BOUNDARY_LEN + 9);
    tail.len = (size_t)snprintf(tail.base, BOUNDARY_LEN + 9, "\r\n--%s--\r\n", boundary);
    req->res.content_length = total + tail.len;
    cr = h2o_mem_alloc_pool(&req->pool, BOUNDARY_LEN + 40);
    add_content_type(req, h2o_iovec_init(cr, (size_t)snprintf(cr, BOUNDARY_LEN + 40,
                                                               "multipart/byteranges; "
                                                               "boundary=%s", boundary)));
    start_body(req, of, r, (size_t)n, tail, is_head);
}

/* Answer a GET or HEAD of a regular file from its open descriptor, whatever the request
 * asks: 304, 416, 206 or 200, all from of->st; takes the caller's reference to of. */
static void
send_file(h2o_req_t *req, struct open_file *of, const h2o_mimemap_type_t *mime, int is_head)
{
    static h2o_generator_t none = {NULL, NULL};
    const struct stat *st = &of->st;
    const h2o_iovec_t *range = req_header(req, H2O_TOKEN_RANGE);
    struct part *parts = h2o_mem_alloc_pool(&req->pool, (range != NULL ? MAX_RANGES : 1) *
                                                            sizeof(*parts));
    int n;

    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL,
                   H2O_STRLIT("bytes"));
    if (not_modified(req, st)) {
        req->res.status = 304;
        req->res.reason = hnd_reason(304);
        add_validators(req, st);
        of_put(of);
        h2o_start_response(req, &none);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    n = range != NULL && if_range_holds(req, st) ? parse_ranges(*range, st->st_size, parts) : -1;
    if (n == 0) {
        char *cr = h2o_mem_alloc_pool(&req->pool, 32);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr,
                       (size_t)snprintf(cr, 32, "bytes */%jd", (intmax_t)st->st_size));
        of_put(of);
        h2o_send_error_416(req, hnd_reason(416), "range not satisfiable",
                           H2O_SEND_ERROR_KEEP_HEADERS);
        return;
    }
    if (n > 0) {
        send_ranges(req, of, mime->data.mimetype, parts, n, is_head);
        return;
    }
    req->res.status = 200;
    req->res.reason = hnd_reason(200);
    req->res.content_length = (size_t)st->st_size;
    req->res.mime_attr = (h2o_mime_attributes_t *)&mime->data.attr;
    add_content_type(req, mime->data.mimetype);
    add_validators(req, st);
    parts[0] = (struct part){0, st->st_size, {NULL, 0}};
    start_body(req, of, parts, 1, h2o_iovec_init(NULL, 0), is_head);
}

/* Without openat2 (or for an absolute symbolic link landing inside the root): rel is
 * opened once, then the realpath of its name must lie inside the root and be the very
 * file opened (device and inode), so a link swapped between the open and the check is
 * caught. The realpath is looked up without following a last link: one swapped in after
 * realpath would otherwise lead stat to the outside file just opened. -1 with errno
 * EXDEV when it leads out. */
static int
open_checked(const struct files_front *f, const char *rel, int flags)
{
    const char *root = f->conf->root;
    size_t rlen = strlen(root);
    char path[PATH_MAX], real[PATH_MAX];
    struct stat opened, named;
    int fd = openat(f->rootfd, rel, flags);

    if (fd == -1)
        return -1;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, rel) >= sizeof(path) ||
        realpath(path, real) == NULL || strncmp(real, root, rlen) != 0 ||
        (real[rlen] != '/' && real[rlen] != '\0'))
        goto fail;
    if (fstat(fd, &opened) == -1 || lstat(real, &named) == -1 ||
        opened.st_dev != named.st_dev || opened.st_ino != named.st_ino)
        goto fail;
    return fd;
fail:
    close(fd);
    errno = EXDEV;
    return -1;
}

/* Open rel (relative) under the root: with !symlinks_out nothing may resolve outside it
 * (-1 with errno EXDEV when it tries). openat2(RESOLVE_BENEATH) decides in one call; an
 * absolute symlink that lands inside the root, or a kernel (or seccomp filter) without
 * openat2, takes the realpath way. */
static int
open_beneath(const struct files_front *f, const char *rel)
{
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, fd;
    struct open_how how = {.flags = (uint64_t)flags,
                           .resolve = f->conf->symlinks_out ? 0
                                                            : RESOLVE_BENEATH |
                                                                  RESOLVE_NO_MAGICLINKS};

    if (have_openat2) {
        fd = (int)syscall(SYS_openat2, f->rootfd, rel, &how, sizeof(how));
        if (fd >= 0 || f->conf->symlinks_out)
            return fd;
        if (errno == ENOSYS || errno == EPERM) {
            /* The worker sandbox answers ENOSYS too: no news worth a line per worker. */
            have_openat2 = 0;
            log_debug("openat2 unavailable (%s): the files handler checks paths with "
                      "realpath", strerror(errno));
        } else if (errno != EXDEV && errno != ELOOP) {
            return -1;
        }
    }
    if (f->conf->symlinks_out)
        return openat(f->rootfd, rel, flags);
    return open_checked(f, rel, flags);
}

static const h2o_mimemap_type_t *
mime_of(const struct files_front *f, const char *name)
{
    h2o_mimemap_type_t *t =
        h2o_mimemap_get_type_by_extension(f->mimemap, h2o_get_filext(name, strlen(name)));

    return t->type == H2O_MIMEMAP_TYPE_MIMETYPE ? t : h2o_mimemap_get_default_type(f->mimemap);
}

/* The answer to a failed open, by its errno. */
static void
send_open_error(h2o_req_t *req, int err)
{
    if (err == EACCES || err == EPERM)
        h2o_send_error_403(req, hnd_reason(403), "access forbidden", 0);
    else if (err == EMFILE || err == ENFILE)
        h2o_send_error_503(req, hnd_reason(503), "please try again later", 0);
    else
        h2o_send_error_404(req, hnd_reason(404), "not found", 0);
}

static int
cmp_name(const void *a, const void *b)
{
    const h2o_iovec_t *x = a, *y = b;
    int c = memcmp(x->base, y->base, x->len < y->len ? x->len : y->len);

    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* The names in the directory d, sorted, a slash after those of directories. */
static void
read_names(h2o_mem_pool_t *pool, DIR *d, h2o_iovec_vector_t *names)
{
    struct dirent *e;

    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        h2o_vector_reserve(pool, names, names->size + 1);
        names->entries[names->size++] =
            h2o_concat(pool, h2o_iovec_init(e->d_name, strlen(e->d_name)),
                       h2o_iovec_init("/", e->d_type == DT_DIR));
    }
    if (names->size > 1)
        qsort(names->entries, names->size, sizeof(names->entries[0]), cmp_name);
}

/* An HTML listing of the directory open as dir, read from a descriptor of that same
 * directory; takes dir. */
static void
send_listing(h2o_req_t *req, struct open_file *dir)
{
    static h2o_generator_t none = {NULL, NULL};
    int dfd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd == -1 ? NULL : fdopendir(dfd);
    h2o_iovec_vector_t names = {NULL, 0, 0}, out = {NULL, 0, 0};
    h2o_iovec_t title, body;

    of_put(dir);
    if (d == NULL) {
        if (dfd != -1)
            close(dfd);
        h2o_send_error_403(req, hnd_reason(403), "access forbidden", 0);
        return;
    }
    read_names(&req->pool, d, &names);
    closedir(d);
    h2o_vector_reserve(&req->pool, &out, names.size * 5 + 5);
    title = h2o_htmlescape(&req->pool, req->path_normalized.base, req->path_normalized.len);
    out.entries[out.size++] = h2o_iovec_init(H2O_STRLIT("<!DOCTYPE html>\n<title>Index of "));
    out.entries[out.size++] = title;
    out.entries[out.size++] = h2o_iovec_init(H2O_STRLIT("</title>\n<ul>\n"));
    for (size_t i = 0; i < names.size; i++) {
        h2o_iovec_t n = names.entries[i], href = h2o_uri_escape(&req->pool, n.base, n.len, "/");
        out.entries[out.size++] = h2o_iovec_init(H2O_STRLIT("<li><a href=\"./"));
        out.entries[out.size++] = h2o_htmlescape(&req->pool, href.base, href.len);
        out.entries[out.size++] = h2o_iovec_init(H2O_STRLIT("\">"));
        out.entries[out.size++] = h2o_htmlescape(&req->pool, n.base, n.len);
        out.entries[out.size++] = h2o_iovec_init(H2O_STRLIT("</a>\n"));
    }
    out.entries[out.size++] = h2o_iovec_init(H2O_STRLIT("</ul>\n"));
    body = h2o_concat_list(&req->pool, out.entries, out.size);
    req->res.status = 200;
    req->res.reason = hnd_reason(200);
    req->res.content_length = body.len;
    add_content_type(req, h2o_iovec_init(H2O_STRLIT("text/html; charset=utf-8")));
    h2o_start_response(req, &none);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        body.len = 0;
    h2o_send(req, &body, body.len != 0, H2O_SEND_STATE_FINAL);
}

/* A directory named without its trailing slash: 301 to the name with it and the query,
 * the path encoded again with runs of '/' made one, so that "//host" (a link to another
 * site) cannot come out of a request for "//host". */
static void
redirect_to_dir(h2o_req_t *req)
{
    h2o_iovec_t path, query = {NULL, 0}, dest;

    path.base = hnd_location_path(&req->pool, req->path_normalized.base,
                                  req->path_normalized.len, &path.len);
    if (req->query_at != SIZE_MAX)
        query.base = hnd_location_query(&req->pool, req->path.base + req->query_at,
                                        req->path.len - req->query_at, &query.len);
    dest = h2o_concat(&req->pool, path, h2o_iovec_init(H2O_STRLIT("/")), query);
    h2o_send_redirect(req, 301, hnd_reason(301), dest.base, dest.len);
}

/* A directory open as dir, at rel below the root: its index file, else its listing when
 * allowed, else 404. An index leading out of the root is 404 too. Takes dir. */
static void
send_dir(struct files_front *f, h2o_req_t *req, struct open_file *dir, h2o_iovec_t rel,
         int is_head)
{
    static const char *const names[] = {"index.html", "index.htm"};

    while (rel.len > 0 && rel.base[rel.len - 1] == '/')
        rel.len--;
    for (size_t i = 0; i < NELEMS(names); i++) {
        h2o_iovec_t p = h2o_concat(&req->pool, rel, h2o_iovec_init("/", rel.len != 0),
                                   h2o_iovec_init(names[i], strlen(names[i])),
                                   h2o_iovec_init(H2O_STRLIT("\0")));
        struct open_file *of = of_get(f, p.base);
        int err = errno;
        if (of != NULL && S_ISREG(of->st.st_mode)) {
            of_put(dir);
            send_file(req, of, mime_of(f, names[i]), is_head);
            return;
        }
        if (of != NULL) {
            of_put(of);
            continue;
        }
        if (err != ENOENT && err != ENOTDIR) {
            of_put(dir);
            send_open_error(req, err);
            return;
        }
    }
    if (f->conf->listing) {
        send_listing(req, dir);
        return;
    }
    of_put(dir);
    h2o_send_error_404(req, hnd_reason(404), "not found", 0);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct files_front *f = (struct files_front *)self;
    size_t plen = hnd_prefix_len(req);
    h2o_iovec_t rel = {(char *)"", 0}, relz;
    struct open_file *of;
    int is_head;

    /* The path below the route, without leading slashes ("" for the route itself). */
    if (req->path_normalized.len > plen)
        rel = h2o_iovec_init(req->path_normalized.base + plen, req->path_normalized.len - plen);
    while (rel.len > 0 && rel.base[0] == '/') {
        rel.base++;
        rel.len--;
    }
    /* The name opened and the name that gives the MIME type must be one string: a NUL
     * would cut the first short ("a.txt%00.html"). */
    if (memchr(rel.base, '\0', rel.len) != NULL) {
        h2o_send_error_400(req, hnd_reason(400), "bad request", 0);
        return 0;
    }
    relz = h2o_concat(&req->pool, rel.len ? rel : h2o_iovec_init(H2O_STRLIT(".")),
                      h2o_iovec_init(H2O_STRLIT("\0")));
    of = of_get(f, relz.base);
    if (of == NULL) {
        send_open_error(req, errno);
        return 0;
    }
    /* A FIFO or device is never served. */
    if (!S_ISREG(of->st.st_mode) && !S_ISDIR(of->st.st_mode)) {
        of_put(of);
        h2o_send_error_404(req, hnd_reason(404), "not found", 0);
        return 0;
    }
    is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!is_head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        of_put(of);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        h2o_send_error_405(req, hnd_reason(405), "method not allowed",
                           H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    if (S_ISREG(of->st.st_mode)) {
        send_file(req, of, mime_of(f, relz.base), is_head);
    } else if (req->path_normalized.base[req->path_normalized.len - 1] != '/') {
        of_put(of);
        redirect_to_dir(req);
    } else {
        send_dir(f, req, of, rel, is_head);
    }
    return 0;
}

static void
on_dispose(h2o_handler_t *self)
{
    struct files_front *f = (struct files_front *)self;

    h2o_mem_release_shared(f->mimemap);
}

static void
files_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    const struct files_conf *fc = hconf;
    struct files_front *f = (void *)h2o_create_handler(pc, sizeof(*f));

    f->super.on_req = on_req;
    f->super.dispose = on_dispose;
    f->conf = fc;
    /* Opened by the master at load: a worker finds no config problem of its own. */
    assert(fc->rootfd >= 0);
    f->rootfd = fc->rootfd;
    f->mimemap = h2o_mimemap_create();
}

const struct hnd_ops hnd_files_ops = {
    .name = "files",
    .min_args = 1,
    .max_args = 3,
    .usage = "files /ROOT [listing] [symlinks]",
    .parse = files_parse,
    .setup = files_setup,
    .free_conf = files_free,
};
