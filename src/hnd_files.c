/* The files handler: a document root served by libh2o's file handler (index files, MIME
 * types, ETag and Last-Modified with conditional requests, byte ranges), behind a front
 * that keeps every request inside the root and sends whole files itself.
 *
 * libh2o normalises "..", "%2e%2e" and friends away before routing; the front opens the
 * file with openat2(RESOLVE_BENEATH) from the root, so no symbolic link may lead out of
 * it unless `symlinks` is given (on kernels without openat2, a realpath check does the
 * same). A plain GET of a whole file is answered here: small files in one write with the
 * headers, larger ones on cleartext HTTP/1.x with sendfile(2), which libh2o 2.2.5 lacks.
 * Everything else (HEAD, ranges, conditional requests, directories, TLS, HTTP/2) goes on
 * to libh2o's handler. Directory listings are off unless `listing` is given. */
#include "config.h"

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
#include "util.h"

#define SMALL_FILE (32 * 1024) /* read whole and written with the headers */
#define READ_CHUNK (64 * 1024)
#define SENDFILE_TURN (1024 * 1024) /* per event loop turn, so one client cannot hog it */

struct files_conf {
    char *root; /* realpath, no trailing slash */
    int listing;
    int symlinks_out;
};

struct files_front {
    h2o_handler_t super;
    const struct files_conf *conf;
    int rootfd;             /* O_PATH, per worker */
    h2o_mimemap_t *mimemap; /* libh2o's handler's, so both agree on types */
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

/* A response body being sent from an open file. */
struct file_gen {
    h2o_generator_t super;
    h2o_req_t *req;
    struct open_file *of;
    int fd;
    int sockfd; /* >= 0: sendfile to this socket */
    h2o_socket_t *sock;
    off_t off, end;
    char *buf;
};

static int
files_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    const struct conf_arg *root = &n->args[0];
    struct files_conf *fc;
    char real[PATH_MAX];
    struct stat st;

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

    if (g == NULL)
        return;
    waiting[fd] = NULL;
    if (err != NULL) {
        h2o_send(g->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    push_sendfile(g);
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

/* Read the next chunk into the buffer and send it through the ostream chain. */
static void
push_read(struct file_gen *g)
{
    size_t want = (size_t)(g->end - g->off);
    ssize_t n;

    if (want > READ_CHUNK)
        want = READ_CHUNK;
    do
        n = pread(g->fd, g->buf, want, g->off);
    while (n == -1 && errno == EINTR);
    if (n <= 0) {
        h2o_send(g->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    g->off += n;
    h2o_iovec_t chunk = h2o_iovec_init(g->buf, (size_t)n);
    h2o_send(g->req, &chunk, 1, g->off < g->end ? H2O_SEND_STATE_IN_PROGRESS
                                                 : H2O_SEND_STATE_FINAL);
}

static void
on_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    struct file_gen *g = (struct file_gen *)self;

    if (g->sockfd >= 0)
        push_sendfile(g);
    else
        push_read(g);
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

static void
add_validators(h2o_req_t *req, const struct stat *st)
{
    char *lm = h2o_mem_alloc_pool(&req->pool, H2O_TIMESTR_RFC1123_LEN + 1);
    char *etag = h2o_mem_alloc_pool(&req->pool, 32);
    struct tm gm;
    int n;

    gmtime_r(&st->st_mtime, &gm);
    h2o_time2str_rfc1123(lm, &gm);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LAST_MODIFIED, NULL, lm,
                   H2O_TIMESTR_RFC1123_LEN);
    /* libh2o's own format, so conditional requests it answers match. */
    n = snprintf(etag, 32, "\"%08x-%zx\"", (unsigned)st->st_mtime, (size_t)st->st_size);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, etag, (size_t)n);
}

/* Answer a plain GET of a whole regular file; takes the caller's reference to of. */
static void
send_file(h2o_req_t *req, struct open_file *of, const h2o_mimemap_type_t *mime)
{
    struct file_gen *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_gen_dispose);
    const struct stat *st = &of->st;
    h2o_socket_t *sock = NULL;

    *g = (struct file_gen){.super = {on_proceed, on_stop}, .req = req, .of = of, .fd = of->fd,
                           .sockfd = -1, .end = st->st_size};
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = (size_t)st->st_size;
    req->res.mime_attr = (h2o_mime_attributes_t *)&mime->data.attr;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   mime->data.mimetype.base, mime->data.mimetype.len);
    add_validators(req, st);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL,
                   H2O_STRLIT("bytes"));
    h2o_start_response(req, &g->super);
    if (st->st_size == 0) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    if (st->st_size > SMALL_FILE && (g->sockfd = sendfile_socket(req, &sock)) >= 0) {
        g->sock = sock;
        /* Corked, the headers leave in the same segments as the file's first bytes. */
        set_cork(g->sockfd, 1);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS); /* the headers; then on_proceed */
        return;
    }
    g->buf = h2o_mem_alloc_pool(&req->pool, st->st_size < READ_CHUNK ? (size_t)st->st_size
                                                                      : READ_CHUNK);
    push_read(g);
}

/* Only a GET of the whole file with no validators to check is answered here. */
static int
plain_get(h2o_req_t *req)
{
    static const h2o_token_t *const defer[] = {H2O_TOKEN_RANGE, H2O_TOKEN_IF_NONE_MATCH,
                                              H2O_TOKEN_IF_MODIFIED_SINCE};

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return 0;
    for (size_t i = 0; i < NELEMS(defer); i++)
        if (h2o_find_header(&req->headers, defer[i], -1) != -1)
            return 0;
    return 1;
}

/* Kernels without openat2: the resolved path must stay inside the root. 0 to go on,
 * -1 when it leads out. */
static int
check_realpath(const struct files_conf *fc, const char *rel)
{
    size_t rlen = strlen(fc->root);
    char path[PATH_MAX], real[PATH_MAX];

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", fc->root, rel) >= sizeof(path))
        return -1;
    if (realpath(path, real) == NULL)
        return 0; /* missing: the open says so */
    return strncmp(real, fc->root, rlen) == 0 && (real[rlen] == '/' || real[rlen] == '\0')
               ? 0
               : -1;
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
            have_openat2 = 0;
            log_info("openat2 unavailable (%s): the files handler checks paths with "
                     "realpath", strerror(errno));
        } else if (errno != EXDEV && errno != ELOOP) {
            return -1;
        }
    }
    if (!f->conf->symlinks_out && check_realpath(f->conf, rel) == -1) {
        errno = EXDEV;
        return -1;
    }
    return openat(f->rootfd, rel, flags);
}

/* A directory's index file must not lead out of the root either. */
static int
index_escapes(const struct files_front *f, h2o_mem_pool_t *pool, h2o_iovec_t rel)
{
    static const char *const names[] = {"index.html", "index.htm"};

    for (size_t i = 0; i < NELEMS(names); i++) {
        h2o_iovec_t p = h2o_concat(pool, rel, h2o_iovec_init(names[i], strlen(names[i])),
                                   h2o_iovec_init(H2O_STRLIT("\0")));
        int fd = open_beneath(f, p.base);
        if (fd >= 0) {
            close(fd);
            return 0; /* libh2o serves this one */
        }
        if (errno == EXDEV)
            return 1;
    }
    return 0;
}

/* A directory named without its trailing slash: 301 to the name with it, as libh2o would,
 * but with the path encoded again and runs of '/' made one, so that "//host" (a link to
 * another site) cannot come out of a request for "//host". */
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
    h2o_send_redirect(req, 301, "Moved Permanently", dest.base, dest.len);
}

static int
on_front(h2o_handler_t *self, h2o_req_t *req)
{
    struct files_front *f = (struct files_front *)self;
    size_t plen = req->pathconf->path.len;
    h2o_iovec_t rel = {(char *)"", 0}, relz;
    const h2o_mimemap_type_t *mime;
    struct open_file *of;

    /* The path below the route, without leading slashes ("" for the route itself). */
    if (req->path_normalized.len > plen)
        rel = h2o_iovec_init(req->path_normalized.base + plen, req->path_normalized.len - plen);
    while (rel.len > 0 && rel.base[0] == '/') {
        rel.base++;
        rel.len--;
    }
    relz = h2o_concat(&req->pool, rel.len ? rel : h2o_iovec_init(H2O_STRLIT(".")),
                      h2o_iovec_init(H2O_STRLIT("\0")));
    of = of_get(f, relz.base);
    if (of == NULL) /* out of the root: 404; anything else: libh2o says 404 or 403 */
        return errno == EXDEV ? 404 : -1;
    /* A FIFO or device would block libh2o's own open(): never hand it on. */
    if (!S_ISREG(of->st.st_mode) && !S_ISDIR(of->st.st_mode)) {
        of_put(of);
        return 404;
    }
    if (S_ISDIR(of->st.st_mode) && req->path_normalized.len > 0 &&
        req->path_normalized.base[req->path_normalized.len - 1] != '/') {
        of_put(of);
        redirect_to_dir(req);
        return 0;
    }
    if (!S_ISREG(of->st.st_mode) || !plain_get(req)) {
        h2o_iovec_t dir = rel.len ? h2o_concat(&req->pool, rel, h2o_iovec_init(H2O_STRLIT("/")))
                                  : rel;
        int escapes = S_ISDIR(of->st.st_mode) && index_escapes(f, &req->pool, dir);
        of_put(of);
        return escapes ? 404 : -1;
    }
    mime = h2o_mimemap_get_type_by_extension(f->mimemap,
                                             h2o_get_filext(req->path_normalized.base,
                                                            req->path_normalized.len));
    if (mime->type != H2O_MIMEMAP_TYPE_MIMETYPE) {
        of_put(of);
        return -1;
    }
    send_file(req, of, mime);
    return 0;
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    int rc = on_front(self, req);

    if (rc != 404)
        return rc;
    h2o_send_error_404(req, "File Not Found", "not found", 0);
    return 0;
}

static void
files_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    static const char *index_files[] = {"index.html", "index.htm", NULL};
    const struct files_conf *fc = hconf;
    struct files_front *f = (void *)h2o_create_handler(pc, sizeof(*f));
    h2o_file_handler_t *fh;

    f->super.on_req = on_req;
    f->conf = fc;
    f->rootfd = open(fc->root[0] ? fc->root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (f->rootfd == -1)
        fatal("document root %s", fc->root[0] ? fc->root : "/");
    fh = h2o_file_register(pc, fc->root[0] ? fc->root : "/", index_files, NULL,
                           fc->listing ? H2O_FILE_FLAG_DIR_LISTING : 0);
    f->mimemap = h2o_file_get_mimemap(fh);
}

const struct hnd_ops hnd_files_ops = {
    .name = "files",
    .min_args = 1,
    .max_args = 3,
    .parse = files_parse,
    .setup = files_setup,
    .free_conf = files_free,
};
