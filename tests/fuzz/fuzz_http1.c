/* libFuzzer harness for the HTTP/1 request path, in one process that stands in for a
 * worker. Each input is a client connection: its bytes go in through a socketpair whose
 * server end is served by worker.c's own accept path (the connection record, the request
 * guards, the send guard) and by a service that service_rt.c builds from a config with
 * the respond, files, redirect, metrics and proxy handlers; the proxy's upstreams, a unix
 * socket and a loopback TCP port, are served by this harness on the same event loop.
 *
 * Checked for every input, besides what ASan, UBSan and LeakSanitizer catch:
 * - what the client gets: responses, one after the other, each with a well-formed head
 *   (status line, header lines without a control byte, at most one Content-Length),
 *   framed so the next one can be found (which answer a HEAD, the access log says), with
 *   the status the access log has and one for each request it has, nothing after one
 *   that says Connection: close,
 *   no redirect to another host than configured or to a scheme-relative "//host", no byte
 *   of the file outside the files root, no markup of a file name in a listing; and the
 *   connection closes once the client has stopped sending;
 * - what an upstream gets: a well-formed request under the upstream's path with no
 *   parent segment, one Host, one Forwarded and one Via of percore's own, and none of
 *   the hop-by-hop or forwarding headers a client must not choose;
 * - the access log and the error log: printable lines;
 * - after each input: no connection, upstream connection or fd left open.
 *
 * Input: byte 0 picks the upstream's answer (bits 0-2) and the number of extra writes
 * the client's bytes are split into (bits 3-4, at most 2); byte 1 where the splits fall;
 * the rest is what the client sends, after which it shuts down its sending side. With
 * FUZZ_HTTP1_SHOW set in the environment, what each input got is printed.
 *
 * worker.c is included for its static accept path and worker record, which the harness
 * fills in as worker_run would. */
#include "../../src/worker.c"

#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "conf_parse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SERVICE_NAME "fuzz"
/* Control bytes: nothing a client sends can come back with them, so finding it in a
 * response means the file was read. */
#define SECRET "SECRET\x01OUTSIDE\x7fTHE-ROOT"
#define RESP_MAX (1024 * 1024) /* response bytes kept for the checks; the rest is read */
#define SETTLE_TURNS 4         /* loop turns between two writes of the client */
#define CLOSE_WAIT_MS 5000     /* a connection the client has finished with must close */
#define UP_HEAD_MAX (64 * 1024)

/* Everything made once, in LLVMFuzzerInitialize. */
static struct {
    char dir[PATH_MAX]; /* the temporary tree: www/ (the files root), secret.txt, logs and
                         * up.sock (a unix socket address: at most 107 bytes) */
    char alog[PATH_MAX], elog[PATH_MAX];
    int alog_fd, elog_fd; /* read and truncated after each input */
    struct heritage heritage;
    const struct lsn_rt *lr;
    int tcp_port;
    int lowest_fd; /* the lowest free fd between inputs: an fd leak moves it */
    h2o_socket_t *up_listeners[2]; /* only the kernel's epoll set would hold them else */
    int show; /* FUZZ_HTTP1_SHOW set: print what each input got */
} fz;

/* The input being run. */
static struct {
    unsigned variant; /* the upstreams' answer */
    char resp[RESP_MAX];
    char log[RESP_MAX];
    size_t resp_len;
    int resp_overflow;
    int cfd; /* the client's end */
    int eof; /* the client read the end of the server's output */
    size_t up_open;
    const uint8_t *data;
    size_t size;
} in;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void remove_tree(void);

/* An invariant does not hold: say which and what the client sent and got, then abort so
 * libFuzzer keeps the input. */
static void
fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fuzz_http1: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n---- client sent (%zu bytes) ----\n", in.size);
    fwrite(in.data, 1, in.size < 4096 ? in.size : 4096, stderr);
    fprintf(stderr, "\n---- client got (%zu bytes) ----\n", in.resp_len);
    fwrite(in.resp, 1, in.resp_len < 4096 ? in.resp_len : 4096, stderr);
    fprintf(stderr, "\n----\n");
    remove_tree(); /* abort() skips atexit */
    abort();
}

/* ---- the temporary tree ---- */

static void
put_file(const char *rel, const char *content, size_t len)
{
    char path[PATH_MAX];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", fz.dir, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1 || write(fd, content, len) != (ssize_t)len)
        fatal("cannot write %s", path);
    close(fd);
}

static void
put_dir(const char *rel)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", fz.dir, rel);
    if (mkdir(path, 0755) == -1)
        fatal("cannot make %s", path);
}

static void
put_link(const char *target, const char *rel)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", fz.dir, rel);
    if (symlink(target, path) == -1)
        fatal("cannot link %s", path);
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (remove(path) == -1)
        fprintf(stderr, "fuzz_http1: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void
remove_tree(void)
{
    (void)nftw(fz.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* www/ holds small and large files (the large one goes out with sendfile), an index, a
 * subdirectory, names that need escaping in a listing, and links: one inside the root,
 * one to secret.txt outside it. */
static void
make_tree(void)
{
    static char big[100000];
    const char *tmp = getenv("TMPDIR");

    snprintf(fz.dir, sizeof(fz.dir), "%s/fuzz_http1.XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (strlen(fz.dir) > 96 || mkdtemp(fz.dir) == NULL)
        fatal("cannot make a temporary directory");
    atexit(remove_tree);
    put_dir("www");
    put_dir("www/sub");
    put_file("secret.txt", H2O_STRLIT(SECRET "\n"));
    put_file("www/index.html", H2O_STRLIT("<p>index</p>\n"));
    put_file("www/a.txt", H2O_STRLIT("plain text\n"));
    put_file("www/empty.txt", "", 0);
    put_file("www/sub/index.html", H2O_STRLIT("<p>sub</p>\n"));
    put_file("www/<img src=x>.txt", H2O_STRLIT("markup\n"));
    put_file("www/a b%41.txt", H2O_STRLIT("escaped\n"));
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "0123456789abcdef\n"[i % 17];
    put_file("www/big.txt", big, sizeof(big));
    put_link("sub", "www/insidelink");
    put_link("../secret.txt", "www/outlink");
    snprintf(fz.alog, sizeof(fz.alog), "%s/access.log", fz.dir);
    snprintf(fz.elog, sizeof(fz.elog), "%s/error.log", fz.dir);
}

/* ---- the upstreams ---- */

static const char *up_answers[8];
static size_t up_answer_len[8];
static char *tcp_redirect;

/* The upstream's answer to the request on sock, by the input's choice: most are framed
 * and say Connection: close; one is framed by the close itself, one is not HTTP. A
 * redirect names the upstream itself, so the proxy rewrites it. */
static h2o_iovec_t
up_answer(h2o_socket_t *sock)
{
    int tcp = sock->data != NULL;

    if (in.variant == 2 && tcp)
        return h2o_iovec_init(tcp_redirect, strlen(tcp_redirect));
    return h2o_iovec_init(up_answers[in.variant], up_answer_len[in.variant]);
}

static void
make_up_answers(void)
{
    static char big[200000], chunked[8192];
    static const char *const fixed[8] = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
        "Connection: close\r\n\r\nproxy\n",
        NULL, /* chunked, below */
        "HTTP/1.1 302 Found\r\nLocation: http://localhost/elsewhere?x=1\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>till the close</p>\n",
        "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
        "Set-Cookie: a=1\r\nContent-Length: 2\r\n\r\nok",
        NULL, /* large, below */
        "HTTP/1.1 abc\r\n\r\n",
    };
    size_t n;

    n = (size_t)snprintf(chunked, sizeof(chunked),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n",
                         4000);
    for (size_t i = 0; i < 4000; i++)
        chunked[n++] = "proxied text\n"[i % 13];
    memcpy(chunked + n, "\r\n0\r\n\r\n", 7);
    n += 7;
    n = (size_t)snprintf(big, sizeof(big),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         "Connection: close\r\n\r\n",
                         150000);
    for (size_t i = 0; i < 150000; i++)
        big[n + i] = "large body\n"[i % 11];
    for (size_t i = 0; i < 8; i++) {
        up_answers[i] = fixed[i];
        up_answer_len[i] = fixed[i] != NULL ? strlen(fixed[i]) : 0;
    }
    up_answers[1] = chunked;
    up_answer_len[1] = strlen(chunked);
    up_answers[6] = big;
    up_answer_len[6] = n + 150000;
    tcp_redirect = xasprintf("HTTP/1.1 301 Moved Permanently\r\n"
                             "Location: http://127.0.0.1:%d/base/moved/\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n",
                             fz.tcp_port);
}

static int
lc_prefix(const char *s, size_t len, const char *want)
{
    size_t n = strlen(want);

    return len >= n && strncasecmp(s, want, n) == 0;
}

/* The decoded-once form of segment s[0..len) up to any ';' is "..": it would climb (a "."
 * stays where it is). */
static int
is_dot_segment(const char *s, size_t len)
{
    char d[3];
    size_t n = 0;

    for (size_t i = 0; i < len && s[i] != ';'; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (n == sizeof(d) || c != '.')
            return 0;
        d[n++] = c;
    }
    return n == 2;
}

/* The request target t[0..len) an upstream whose path is base got: under base, with no
 * byte that needs escaping and no segment that reads as ".." (also with '\' as a separator
 * and ";..." as a parameter, as some servers read them). */
static void
check_up_target(const char *t, size_t len, const char *base)
{
    size_t plen = len, start = 0;
    const char *q = memchr(t, '?', len);

    if (!lc_prefix(t, len, base))
        fail("upstream target '%.*s' not under '%s'", (int)len, t, base);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            fail("upstream target with byte 0x%02x", (unsigned char)t[i]);
    if (q != NULL)
        plen = (size_t)(q - t);
    for (size_t i = 0; i <= plen; i++) {
        if (i == plen || t[i] == '/' || t[i] == '\\') {
            if (i > start && is_dot_segment(t + start, i - start))
                fail("upstream target '%.*s' with a parent segment", (int)len, t);
            start = i + 1;
        }
    }
}

/* Whether a Via value (from just after the colon to eol) is the one percore adds. */
static int
is_own_via(const char *v, const char *eol)
{
    static const char *const own[] = {"1.0 percore", "1.1 percore", "2 percore"};

    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    for (size_t i = 0; i < NELEMS(own); i++)
        if ((size_t)(eol - v) == strlen(own[i]) && memcmp(v, own[i], strlen(own[i])) == 0)
            return 1;
    return 0;
}

/* Whether the header line [name, eol) is percore's own "upgrade: websocket". */
static int
is_websocket_upgrade(const char *name, size_t nlen, const char *eol)
{
    static const char own[] = "upgrade: websocket";

    return nlen == 7 && (size_t)(eol - name) == strlen(own) && memcmp(name, own, strlen(own)) == 0;
}

/* What the upstream must never get: hop-by-hop headers and those that say who the client
 * is, unless percore set them (one Forwarded; a Via may come from the client, percore's
 * own comes once; on a GET its own "upgrade: websocket", for a WebSocket handshake). The
 * header line is [name, eol). */
static void
check_up_header(const char *name, size_t nlen, const char *eol, int is_get, unsigned *nhost,
                unsigned *nfwd, unsigned *nvia)
{
    static const char *const never[] = {"proxy-connection", "trailer", "te", "upgrade",
                                        "keep-alive", "proxy-authorization", "http2-settings",
                                        "x-real-ip", "transfer-encoding"};

    if (is_get && is_websocket_upgrade(name, nlen, eol))
        return;
    for (size_t i = 0; i < NELEMS(never); i++)
        if (nlen == strlen(never[i]) && strncasecmp(name, never[i], nlen) == 0)
            fail("upstream got a '%s' header", never[i]);
    if (nlen == 4 && strncasecmp(name, "host", 4) == 0)
        (*nhost)++;
    else if (nlen == 9 && strncasecmp(name, "forwarded", 9) == 0)
        (*nfwd)++;
    else if (nlen == 3 && strncasecmp(name, "via", 3) == 0)
        *nvia = is_own_via(name + 4, eol); /* a client's own Via may come first */
}

/* The head h[0..len) (up to and with its empty line) of a request an upstream got;
 * returns its Content-Length (0 if none). */
static size_t
check_up_request(const char *h, size_t len, const char *base)
{
    const char *eol = memmem(h, len, "\r\n", 2), *sp1, *sp2, *p, *end = h + len - 2;
    unsigned nhost = 0, nfwd = 0, nvia = 0;
    size_t clen = 0;

    sp1 = memchr(h, ' ', (size_t)(eol - h));
    sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == h || (size_t)(eol - sp2) != 9 ||
        memcmp(sp2, " HTTP/1.1", 9) != 0)
        fail("upstream request line '%.*s'", (int)(eol - h), h);
    check_up_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), base);
    for (p = eol + 2; p < end; p = eol + 2) {
        const char *colon;
        eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p)
            fail("upstream header line '%.*s'", (int)(eol - p), p);
        for (const char *c = p; c < eol; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f ||
                (c < colon && (*c == ' ' || *c == '\t')))
                fail("upstream header line with byte 0x%02x", (unsigned char)*c);
        check_up_header(p, (size_t)(colon - p), eol, sp1 - h == 3 && memcmp(h, "GET", 3) == 0,
                        &nhost, &nfwd, &nvia);
        if (lc_prefix(p, (size_t)(eol - p), "content-length:"))
            clen = strtoul(colon + 1, NULL, 10);
    }
    if (nhost != 1 || nfwd != 1 || nvia != 1)
        fail("upstream got %u Host, %u Forwarded, last Via %s percore's", nhost, nfwd,
             nvia ? "is" : "is not");
    return clen;
}

static void
on_up_written(h2o_socket_t *sock, const char *err)
{
    h2o_socket_close(sock);
}

/* Answers once the whole request (head and Content-Length body) is in. */
static void
on_up_read(h2o_socket_t *sock, const char *err)
{
    const char *hend;
    size_t hlen;
    h2o_iovec_t answer;

    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    hend = memmem(sock->input->bytes, sock->input->size, "\r\n\r\n", 4);
    if (hend == NULL) {
        if (sock->input->size > UP_HEAD_MAX)
            fail("upstream got a head of over %d bytes", UP_HEAD_MAX);
        return;
    }
    hlen = (size_t)(hend - sock->input->bytes) + 4;
    if (sock->input->size < hlen + check_up_request(sock->input->bytes, hlen,
                                                    sock->data != NULL ? "/base" : "/"))
        return;
    h2o_socket_read_stop(sock);
    answer = up_answer(sock);
    h2o_socket_write(sock, &answer, 1, on_up_written);
}

static void
on_up_closed(void *data)
{
    assert(in.up_open > 0);
    in.up_open--;
}

static void
on_up_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL) {
        in.up_open++;
        sock->data = listener->data; /* non-NULL: the TCP one */
        sock->on_close.cb = on_up_closed;
        h2o_socket_read_start(sock, on_up_read);
    }
}

static int
listen_fd(int family, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1 || bind(fd, sa, len) == -1 || listen(fd, 128) == -1)
        fatal("cannot listen for the upstream");
    return fd;
}

/* The unix socket upstream at up.sock and the TCP one on a loopback port of the kernel's
 * choice (fz.tcp_port), both served on loop. */
static void
start_upstreams(h2o_loop_t *loop, int ufd, int tfd)
{
    h2o_socket_t *u = h2o_evloop_socket_create(loop, ufd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_t *t = h2o_evloop_socket_create(loop, tfd, H2O_SOCKET_FLAG_DONT_READ);

    fz.up_listeners[0] = u;
    fz.up_listeners[1] = t;
    u->data = NULL;
    t->data = t;
    h2o_socket_read_start(u, on_up_accept);
    h2o_socket_read_start(t, on_up_accept);
}

static void
open_upstreams(int *ufd, int *tfd)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/up.sock", fz.dir);
    *ufd = listen_fd(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun));
    *tfd = listen_fd(AF_INET, (struct sockaddr *)&sin, sizeof(sin));
    if (getsockname(*tfd, (struct sockaddr *)&sin, &len) == -1)
        fatal("getsockname");
    fz.tcp_port = ntohs(sin.sin_port);
}

/* ---- the service ---- */

static struct conf *
load_conf(void)
{
    struct conf_diag diag = {0};
    struct conf_sockets socks = {0};
    struct conf *c;
    char *text = xasprintf(
        "log %s/error.log;\n"
        "service " SERVICE_NAME " {\n"
        "    listen 127.0.0.1:1;\n" /* never bound: the harness's socketpairs stand in */
        "    access_log %s;\n"
        "    max_body_size 64k;\n"
        "    max_header_size 8k;\n"
        "    route / { files %s/www; }\n"
        "    route /l/ { files %s/www listing; compress on; }\n"
        "    route /hello { respond 200 \"hello\\n\"; header X-Frame-Options DENY;"
        " header_add Cache-Control no-store; }\n"
        "    route /gone/ { respond 410; header_unset X-Powered-By; }\n"
        "    route /old/ { redirect 301 /new/; }\n"
        "    route /pre { redirect 302 /; }\n"
        "    route /go/ { redirect 308 https://example.com; }\n"
        "    route /x/ { redirect 307 //example.com:8080/a/ exact; }\n"
        "    route /p/ { proxy unix:%s/up.sock timeout=5s; compress on; }\n"
        "    route /b/ { proxy http://127.0.0.1:%d/base/ preserve_host; }\n"
        "    route /api { proxy http://127.0.0.1:%d/base buffer_size=4k; }\n"
        "    route /metrics { metrics; }\n"
        "}\n",
        fz.dir, fz.alog, fz.dir, fz.dir, fz.dir, fz.tcp_port, fz.tcp_port);

    c = conf_load_string("fuzz_http1.conf", text, &socks, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.msgs[i]);
    if (c == NULL)
        fatalx("the harness's config does not load");
    conf_diag_clear(&diag);
    free(text);
    return c;
}

/* The listener the config names, as the master would hold it (without its sockets). */
static const struct lsn_rt *
find_listener(const struct conf *c)
{
    static char owner[] = SERVICE_NAME;
    static struct listener l = {.owner = owner};
    struct listen_addr *addrs;
    size_t n;
    char err[256];
    const struct lsn_rt *lr;

    if (listener_parse_addr("127.0.0.1:1", &addrs, &n, err, sizeof(err)) == -1)
        fatalx("%s", err);
    l.addr = addrs[0];
    free(addrs);
    lr = service_rt_listener(c, this_worker.services, &l, this_worker.loop,
                             this_worker.metrics);
    if (lr == NULL)
        fatalx("no service for the harness's listener");
    return lr;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct conf *c;
    struct metrics_region *region;
    int ufd, tfd, probe;

    signal(SIGPIPE, SIG_IGN);
    fz.show = getenv("FUZZ_HTTP1_SHOW") != NULL;
    make_tree();
    open_upstreams(&ufd, &tfd);
    make_up_answers();
    /* The master's part: the config, the shared counters. */
    c = load_conf();
    region = metrics_init(1);
    metrics_register_service(SERVICE_NAME);
    fz.heritage = (struct heritage){.conf = c, .metrics = region, .metrics_idx = metrics_claim(),
                                    .cpu = -1, .master_pid = getpid(), .notify_fd = -1};
    /* The worker's, as worker_run does it. */
    process_role = ROLE_WORKER;
    this_worker.heritage = &fz.heritage;
    metrics_attach(region);
    this_worker.metrics = metrics_slot(fz.heritage.metrics_idx);
    reqcheck_init(this_worker.metrics);
    log_set_role(0, 1);
    if (log_open(c->log_target, c->log_path) == -1)
        fatal("cannot open %s", c->log_path);
    this_worker.loop = h2o_evloop_create();
    this_worker.services = service_rt_setup(c, this_worker.loop, this_worker.metrics);
    sendguard_init(this_worker.loop);
    linger_init(this_worker.loop);
    fz.lr = find_listener(c);
    start_upstreams(this_worker.loop, ufd, tfd);
    fz.alog_fd = open(fz.alog, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    fz.elog_fd = open(fz.elog, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fz.alog_fd == -1 || fz.elog_fd == -1)
        fatal("cannot open the logs");
    probe = dup(0);
    fz.lowest_fd = probe;
    close(probe);
    return 0;
}

/* ---- one connection ---- */

/* Reads what the server sent so far. */
static void
drain_client(void)
{
    char buf[65536];
    ssize_t n;

    while (!in.eof) {
        n = read(in.cfd, buf, sizeof(buf));
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            in.eof = 1; /* ECONNRESET too: a cut connection */
            return;
        }
        if (in.resp_len + (size_t)n > RESP_MAX) {
            in.resp_overflow = 1;
            continue;
        }
        memcpy(in.resp + in.resp_len, buf, (size_t)n);
        in.resp_len += (size_t)n;
    }
}

/* One turn of the worker's loop, with what worker_run does after each. */
static void
turn(int32_t wait_ms)
{
    h2o_evloop_run(this_worker.loop, wait_ms);
    hnd_files_turn_end();
    accesslog_flush();
    drain_client();
}

/* The client sends p[0..n); a server that stopped reading (it closed, or the socket is
 * full while it works) gets loop turns. */
static void
client_send(const uint8_t *p, size_t n)
{
    int64_t deadline = util_now_ms() + CLOSE_WAIT_MS;
    ssize_t w;

    while (n > 0 && this_worker.conns > 0) {
        w = write(in.cfd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w == -1 && errno == EAGAIN) {
            if (util_now_ms() > deadline)
                fail("the server has read nothing for %d ms", CLOSE_WAIT_MS);
            turn(10);
        } else if (w == -1 && errno != EINTR) {
            return; /* EPIPE, ECONNRESET: the server closed */
        }
    }
}

/* ---- what the client got ---- */

struct head {
    int status;
    size_t clen; /* SIZE_MAX: none */
    int chunked;
    int close;
};

static int
is_tchar(unsigned char c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A Location percore or its upstreams' rewriting may send: a path that does not start
 * with "//" or "/\" (a scheme-relative reference to another host) unless it is the one
 * configured, or an absolute http URL with a valid host, or the configured https one. */
static void
check_location(const char *v, size_t len)
{
    const char *auth, *aend;

    if (len == 0 || memchr(v, ' ', len) != NULL || memchr(v, '\\', len) != NULL)
        fail("Location '%.*s'", (int)len, v);
    if (v[0] == '/') {
        if (len >= 2 && v[1] == '/' && !lc_prefix(v, len, "//example.com:8080/"))
            fail("scheme-relative Location '%.*s'", (int)len, v);
        return;
    }
    if (lc_prefix(v, len, "http://"))
        auth = v + 7;
    else if (lc_prefix(v, len, "https://"))
        auth = v + 8;
    else
        fail("Location '%.*s' neither a path nor an http URL", (int)len, v);
    for (aend = auth; aend < v + len && *aend != '/' && *aend != '?' && *aend != '#'; aend++)
        ;
    if (!reqcheck_host_valid(auth, (size_t)(aend - auth)) || aend == auth)
        fail("Location '%.*s' with an invalid host", (int)len, v);
    /* https is the configured redirect's alone (the proxy rewrites to the client's plain
     * http and Host, any valid one). */
    if (auth == v + 8 && !(aend - auth == 11 && lc_prefix(auth, 11, "example.com")))
        fail("Location '%.*s' on another host", (int)len, v);
}

/* One header line [p, eol) of a response (eol at its "\r\n"). */
static void
check_resp_header(const char *p, const char *eol, struct head *h)
{
    const char *colon = memchr(p, ':', (size_t)(eol - p)), *v;
    size_t vlen;

    if (colon == NULL || colon == p)
        fail("response header line '%.*s'", (int)(eol - p), p);
    for (const char *c = p; c < colon; c++)
        if (!is_tchar((unsigned char)*c))
            fail("response header name with byte 0x%02x", (unsigned char)*c);
    for (const char *c = colon; c < eol; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            fail("response header '%.*s' with byte 0x%02x", (int)(colon - p), p,
                 (unsigned char)*c);
    for (v = colon + 1; v < eol && *v == ' '; v++)
        ;
    vlen = (size_t)(eol - v);
    if (lc_prefix(p, (size_t)(eol - p), "content-length:")) {
        if (h->clen != SIZE_MAX)
            fail("two Content-Length headers");
        h->clen = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (!isdigit((unsigned char)v[i]))
                fail("Content-Length '%.*s'", (int)vlen, v);
            h->clen = h->clen * 10 + (size_t)(v[i] - '0');
        }
    } else if (lc_prefix(p, (size_t)(eol - p), "transfer-encoding:")) {
        if (h->chunked || vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
            fail("Transfer-Encoding '%.*s'", (int)vlen, v);
        h->chunked = 1;
    } else if (lc_prefix(p, (size_t)(eol - p), "connection:")) {
        if (h2o_contains_token(v, vlen, H2O_STRLIT("close"), ','))
            h->close = 1;
    } else if (lc_prefix(p, (size_t)(eol - p), "location:")) {
        check_location(v, vlen);
    }
}

/* The response head at r[0..n): its length, or 0 if it is not all there yet. */
static size_t
check_resp_head(const char *r, size_t n, struct head *h)
{
    const char *end = memmem(r, n, "\r\n\r\n", 4), *eol, *p;

    if (memcmp(r, "HTTP/1.1 ", n < 9 ? n : 9) != 0)
        fail("a response not starting with 'HTTP/1.1 '");
    if (end == NULL)
        return 0;
    if (end - r < 13 || !isdigit((unsigned char)r[9]) || !isdigit((unsigned char)r[10]) ||
        !isdigit((unsigned char)r[11]) || r[12] != ' ')
        fail("status line '%.*s'", (int)(end - r), r);
    *h = (struct head){.status = (int)strtol(r + 9, NULL, 10), .clen = SIZE_MAX};
    eol = memmem(r, (size_t)(end - r) + 2, "\r\n", 2);
    for (p = r + 13; p < eol; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            fail("reason phrase with byte 0x%02x", (unsigned char)*p);
    for (p = eol + 2; p < end + 2; p = eol + 2) {
        eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        check_resp_header(p, eol, h);
    }
    if (h->chunked && h->clen != SIZE_MAX)
        fail("Content-Length with Transfer-Encoding");
    return (size_t)(end - r) + 4;
}

/* The length of the chunked body at r[0..n), or 0 if it is not all there. */
static size_t
chunked_len(const char *r, size_t n)
{
    size_t off = 0;

    for (;;) {
        const char *eol = memmem(r + off, n - off, "\r\n", 2);
        char *end;
        unsigned long size;

        if (eol == NULL)
            return 0;
        size = strtoul(r + off, &end, 16);
        if (end == r + off || end != eol || size > RESP_MAX)
            fail("chunk size line '%.*s'", (int)(eol - r - off), r + off);
        off = (size_t)(eol - r) + 2;
        if (size == 0)
            return n - off >= 2 && memcmp(r + off, "\r\n", 2) == 0 ? off + 2 : 0;
        if (n - off < size + 2)
            return 0;
        if (memcmp(r + off + size, "\r\n", 2) != 0)
            fail("chunk of %lu bytes not followed by CRLF", size);
        off += size + 2;
    }
}

/* The requests the access log has for this input, in the order they were answered
 * (HTTP/1 answers in order): whether each was a HEAD, and its status. */
#define LOGGED_MAX 4096
static struct {
    size_t n;
    struct logged {
        int head;
        int status;
    } req[LOGGED_MAX];
} logged;

/* Lines look like: ADDR - - [TIME] "METHOD PATH HTTP/1.1" STATUS BYTES "REF" "UA" SECS */
static void
parse_access_log(const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n, *eol, *q;

    logged.n = 0;
    for (; p < end && logged.n < LOGGED_MAX; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        q = memchr(p, '"', (size_t)(eol - p));
        if (q == NULL)
            fail("access log line '%.*s'", (int)(eol - p), p);
        logged.req[logged.n].head = eol - q > 5 && memcmp(q + 1, "HEAD ", 5) == 0;
        /* The request line is escaped: its closing quote is the first one after it. */
        q = memchr(q + 1, '"', (size_t)(eol - q - 1));
        if (q == NULL || eol - q < 5)
            fail("access log line '%.*s'", (int)(eol - p), p);
        logged.req[logged.n++].status = (int)strtol(q + 2, NULL, 10);
    }
}

/* Every response the client got, one after the other, against the requests logged.
 * closed: the server closed the connection, so everything it sent is there. A final
 * response may be one that is not logged (libh2o's own 400, 413 and 417, which close). */
static void
check_responses(const char *r, size_t n, int closed)
{
    size_t off = 0, hlen, blen, k = 0;
    struct head h;
    int head;

    while (off < n) {
        hlen = check_resp_head(r + off, n - off, &h);
        if (hlen == 0)
            goto partial;
        off += hlen;
        head = 0;
        if (h.status >= 200 && k < logged.n) {
            if (logged.req[k].status != h.status)
                fail("response %zu has status %d, the access log %d", k, h.status,
                     logged.req[k].status);
            head = logged.req[k++].head;
        }
        if (h.status < 200 || h.status == 204 || h.status == 304 || head)
            blen = 0;
        else if (h.chunked)
            blen = chunked_len(r + off, n - off);
        else if (h.clen != SIZE_MAX)
            blen = h.clen;
        else if (h.close)
            blen = n - off; /* till the close */
        else
            fail("a response without framing on a kept connection");
        if ((h.chunked && !head && blen == 0) || n - off < blen)
            goto partial;
        off += blen;
        if (h.close && h.status >= 200 && off < n)
            fail("%zu bytes after a Connection: close response", n - off);
    }
    if (closed && k < logged.n)
        fail("%zu requests logged, %zu answered", logged.n, k);
    return;
partial:
    if (closed)
        fail("the connection closed in the middle of a response");
}

/* What no response may hold anywhere: the outside file, a file name's markup unescaped. */
static void
check_content(const char *r, size_t n)
{
    if (memmem(r, n, SECRET, strlen(SECRET)) != NULL)
        fail("the file outside the root was served");
    if (memmem(r, n, "<img src=x>", 11) != NULL)
        fail("a file name's markup in a response");
}

/* The log file on fd, read whole into buf (of size RESP_MAX), then emptied for the next
 * input; each of its lines must be printable. */
static size_t
read_log(int fd, const char *name, char *buf)
{
    ssize_t n = pread(fd, buf, RESP_MAX, 0);

    if (n == -1 || n == RESP_MAX)
        fail("%s: cannot read it whole", name);
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if ((c < 0x20 && c != '\n') || c >= 0x7f)
            fail("%s: byte 0x%02x in '%.*s'", name, c, (int)(n - i < 200 ? n - i : 200),
                 buf + i);
    }
    if (n > 0 && buf[n - 1] != '\n')
        fail("%s: a line without its end", name);
    if (n != 0 && ftruncate(fd, 0) == -1)
        fatal("ftruncate %s", name);
    return (size_t)n;
}

/* The fd state between inputs is as it was at start: no connection, fd or upstream left. */
static void
check_clean(void)
{
    int probe;

    if (this_worker.conns != 0)
        fail("%zu connections left open", this_worker.conns);
    if (in.up_open != 0)
        fail("%zu upstream connections left open", in.up_open);
    probe = dup(0);
    close(probe);
    if (probe != fz.lowest_fd) {
        char path[64], what[PATH_MAX] = "?";
        ssize_t n;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fz.lowest_fd);
        n = readlink(path, what, sizeof(what) - 1);
        what[n > 0 ? n : 1] = '\0';
        /* The sanitizers' symbolizer, started when libFuzzer names a new function, talks
         * to it over pipes it keeps; percore makes none. */
        if (strncmp(what, "pipe:", 5) == 0) {
            fz.lowest_fd = probe;
            return;
        }
        fail("an fd leaked: %d is %s", fz.lowest_fd, what);
    }
}

/* Where the client's bytes are split: up to 2 points chosen by two nibbles of b. */
static size_t
split_points(unsigned nsplit, uint8_t b, size_t len, size_t *at)
{
    size_t k = 0;

    for (unsigned i = 0; i < nsplit && i < 2; i++) {
        size_t pos = len * (size_t)(1 + ((b >> (4 * i)) & 15)) / 17;
        if (k > 0 && pos <= at[k - 1])
            continue;
        at[k++] = pos;
    }
    return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    h2o_socket_t *sock;
    size_t at[2], nsplit, prev = 0, len;
    const uint8_t *body;
    int64_t deadline;
    size_t alog_len;

    if (size < 2)
        return 0;
    in.data = data;
    in.size = size;
    in.variant = data[0] & 7;
    in.resp_len = 0;
    in.resp_overflow = 0;
    in.eof = 0;
    body = data + 2;
    len = size - 2;
    nsplit = split_points((data[0] >> 3) & 3, data[1], len, at);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
        fatal("socketpair");
    in.cfd = sv[0];
    sock = h2o_evloop_socket_create(this_worker.loop, sv[1], 0);
    serve_conn(sock, fz.lr);
    for (size_t i = 0; i < nsplit; i++) {
        client_send(body + prev, at[i] - prev);
        prev = at[i];
        for (int t = 0; t < SETTLE_TURNS; t++)
            turn(0);
    }
    client_send(body + prev, len - prev);
    (void)shutdown(in.cfd, SHUT_WR);
    deadline = util_now_ms() + CLOSE_WAIT_MS;
    while (this_worker.conns > 0 || in.up_open > 0) {
        if (util_now_ms() > deadline)
            fail("%zu connections and %zu upstream ones still open %d ms after the client "
                 "finished", this_worker.conns, in.up_open, CLOSE_WAIT_MS);
        turn(10);
    }
    turn(0); /* libh2o frees closed sockets at the end of a turn */
    while (!in.eof)
        drain_client();
    close(in.cfd);
    (void)read_log(fz.elog_fd, "error log", in.log);
    alog_len = read_log(fz.alog_fd, "access log", in.log);
    parse_access_log(in.log, alog_len);
    if (!in.resp_overflow) {
        check_responses(in.resp, in.resp_len, 1);
        check_content(in.resp, in.resp_len);
    }
    check_clean();
    if (fz.show)
        fprintf(stderr, "---- got ----\n%.*s\n---- logged ----\n%.*s", (int)in.resp_len, in.resp,
                (int)alog_len, in.log);
    return 0;
}
