/* A worker process, forked by the master: builds the libh2o configuration from the conf
 * tree, accepts on its own reuseport sockets, and drains gracefully on SIGTERM. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "accesslog.h"
#include "conf.h"
#include "h2guard.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "reqcheck.h"
#include "sendguard.h"
#include "tls.h"
#include "tlsaccept.h"
#include "util.h"
#include "worker.h"

#define ACCEPT_BATCH 16
#define HEARTBEAT_MS 500
#define DRAIN_IDLE_GRACE_MS 1000

enum lsn_kind { LSN_PLAIN, LSN_TLS, LSN_TLS_H2 };

/* A service's own libh2o configuration and context (all on the worker's one loop), so
 * that its limits and timeouts are its own. Never moved once set up. */
struct service_rt {
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t actx[3]; /* by enum lsn_kind: each with its SSL_CTX */
    h2o_hostconf_t *hosts[2];
    unsigned http2_max_resets;
    struct access_log *access; /* or NULL */
    int svc;                   /* metrics index */
};

/* What a listening socket's data points to. */
struct lsn_rt {
    struct service_rt *owner;
    h2o_accept_ctx_t *actx; /* plain */
    struct tls_site *sites; /* TLS: the owner first, then services sharing it by SNI */
    size_t nsites;
    int64_t send_timeout_ms; /* the owner's, until a request names its service */
};

struct worker {
    const struct heritage *args; /* what it inherited from the master */
    h2o_evloop_t *loop;
    struct service_rt *services;
    h2o_socket_t **lsocks;
    size_t nlsocks;
    size_t conns;
    int paused; /* at max_connections: listeners not read */
    int stopping;
    struct metrics_slot *metrics;
    h2o_timeout_t heartbeat_timeout;
    h2o_timeout_entry_t heartbeat;
};

static struct worker w;

static void on_accept(h2o_socket_t *listener, const char *err);

/* At max_connections the listeners are not read: new connections wait in the kernel's
 * backlog (or go to another worker's socket) instead of being accepted and starved. */
static void
set_paused(int paused)
{
    if (w.paused == paused || w.stopping)
        return;
    w.paused = paused;
    for (size_t i = 0; i < w.nlsocks; i++) {
        if (paused)
            h2o_socket_read_stop(w.lsocks[i]);
        else
            h2o_socket_read_start(w.lsocks[i], on_accept);
    }
}

/* fd: the connection's, which the socket no longer has. */
static void
on_conn_close(int fd)
{
    sendguard_forget(fd);
    w.conns--;
    atomic_store_explicit(&w.metrics->conns, w.conns, memory_order_relaxed);
    if (w.paused && w.conns < w.args->conf->max_connections)
        set_paused(0);
}

/* The master reads this to tell a busy worker from a stuck one. */
static void
beat(void)
{
    atomic_store_explicit(&w.metrics->heartbeat_ms, util_now_ms(), memory_order_relaxed);
}

static void error_lines_tick(void);

static void
on_heartbeat(h2o_timeout_entry_t *entry)
{
    beat();
    error_lines_tick(); /* a flood's last count is logged even if it stops */
    h2o_timeout_link(w.loop, &w.heartbeat_timeout, &w.heartbeat);
}

/* s for a log line: at most len bytes of it, with control bytes, bytes >= 0x80 and '\'
 * written as \xHH, so a request can neither forge log lines nor smuggle terminal escapes
 * or invalid UTF-8 into the journal. */
static const char *
printable(h2o_mem_pool_t *pool, h2o_iovec_t s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = s.len < len ? s.len : len;
    char *out = h2o_mem_alloc_pool(pool, n * 4 + 1), *p = out;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p = '\0';
    return out;
}

#define ERROR_LINES_PER_SECOND 20

/* At most ERROR_LINES_PER_SECOND request errors are logged per second and worker (an
 * upstream outage must not flood the journal); the rest are counted in one line when the
 * second is over. */
static struct {
    uint64_t second;
    unsigned lines;
    unsigned long dropped;
} errlines;

static void
error_lines_tick(void)
{
    uint64_t now = h2o_now(w.loop) / 1000;

    if (now == errlines.second)
        return;
    if (errlines.dropped > 0)
        log_warnx("%lu more request errors not logged", errlines.dropped);
    errlines.second = now;
    errlines.lines = 0;
    errlines.dropped = 0;
}

int
worker_error_line_allowed(void)
{
    error_lines_tick();
    if (errlines.lines < ERROR_LINES_PER_SECOND) {
        errlines.lines++;
        return 1;
    }
    errlines.dropped++;
    return 0;
}

struct request_logger {
    h2o_logger_t super;
    struct access_log *access; /* the service's, or NULL */
    int svc;                   /* its metrics index, or -1 */
};

/* Logger on every path: counts requests for the status line's req/s, writes the access
 * log, and logs what went wrong in handlers (libh2o's own printing is off, it has no
 * prefix or level). */
static void
on_request_done(h2o_logger_t *self, h2o_req_t *req)
{
    struct request_logger *rl = (struct request_logger *)self;
    struct access_log *al = rl->access;
    struct timeval now = *h2o_get_timestamp(req->conn->ctx, NULL, NULL);
    int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                 (now.tv_usec - req->timestamps.request_begin_at.tv_usec);

    if (us < 0)
        us = 0;
    metrics_count(w.metrics, rl->svc, req->res.status, req->bytes_sent, (uint64_t)us);
    h2guard_request_done(req);
    if (al != NULL)
        accesslog_write(al, req, (uint64_t)us);
    reqcheck_conn_logged(req, al, rl->svc);
    for (size_t i = 0; i < req->error_logs.size; i++) {
        const h2o_iovec_t *msg = &req->error_logs.entries[i].msg;
        if (worker_error_line_allowed())
            log_warnx("%s %s: %s", printable(&req->pool, req->input.method, 16),
                      printable(&req->pool, req->input.path, 256),
                      printable(&req->pool, *msg, 256));
    }
}

static void
add_request_logger(h2o_pathconf_t *pc, struct access_log *access, int svc)
{
    struct request_logger *rl = (void *)h2o_create_logger(pc, sizeof(*rl));

    rl->super.log_access = on_request_done;
    rl->access = access;
    rl->svc = svc;
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    struct lsn_rt *lr = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    /* A bounded batch per wakeup keeps one busy listener from starving the others. */
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (w.conns >= w.args->conf->max_connections) {
            set_paused(1);
            break;
        }
        sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        w.conns++;
        atomic_store_explicit(&w.metrics->conns, w.conns, memory_order_relaxed);
        reqcheck_conn_track(sock, lr->owner->access, lr->owner->svc); /* owns on_close */
        sendguard_watch(sock, lr->send_timeout_ms);
        if (lr->nsites == 0)
            h2o_accept(lr->actx, sock);
        else
            tlsaccept(sock, lr->sites, lr->nsites);
    }
}

static void
on_signal(h2o_socket_t *sock, const char *err)
{
    struct signalfd_siginfo si;
    int fd = h2o_socket_get_fd(sock);

    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGQUIT)
            w.stopping = 1;
        else if (si.ssi_signo == SIGUSR1) {
            if (log_reopen() == -1)
                log_warn("cannot reopen the log file");
            accesslog_reopen();
            log_info("log files reopened");
        }
    }
}

static int
route_cmp(const void *a, const void *b)
{
    const struct conf_route *ra = *(struct conf_route *const *)a;
    const struct conf_route *rb = *(struct conf_route *const *)b;
    size_t la = strlen(ra->prefix), lb = strlen(rb->prefix);

    /* libh2o takes the first registered prefix that matches: longest first. */
    return la < lb ? 1 : la > lb ? -1 : strcmp(ra->prefix, rb->prefix);
}

static void
setup_headers(h2o_pathconf_t *pc, const struct conf_route *r)
{
    static const int cmd_of[] = {[HDR_SET] = H2O_HEADERS_CMD_SET,
                                 [HDR_ADD] = H2O_HEADERS_CMD_ADD,
                                 [HDR_UNSET] = H2O_HEADERS_CMD_UNSET};
    h2o_headers_command_t *cmds;

    if (r->nheaders == 0)
        return;
    /* Lives as long as the worker: libh2o keeps the pointer. */
    cmds = xcalloc(r->nheaders + 1, sizeof(*cmds));
    for (size_t i = 0; i < r->nheaders; i++) {
        h2o_iovec_t *name = xmalloc(sizeof(*name));
        const h2o_token_t *tok;
        const char *v = r->headers[i].value;

        *name = h2o_strdup(NULL, r->headers[i].name, SIZE_MAX);
        h2o_strtolower(name->base, name->len);
        tok = h2o_lookup_token(name->base, name->len);
        if (tok != NULL)
            name = (h2o_iovec_t *)&tok->buf;
        cmds[i].cmd = cmd_of[r->headers[i].cmd];
        cmds[i].name = name;
        cmds[i].value = v != NULL ? h2o_iovec_init(v, strlen(v)) : h2o_iovec_init("", 0);
    }
    cmds[r->nheaders].cmd = H2O_HEADERS_CMD_NULL;
    h2o_headers_register(pc, cmds);
}

/* libh2o reads requests of up to about 400 KiB of headers; a service may want less. */
struct header_limit {
    h2o_handler_t super;
    size_t max;
};

static int
on_header_limit(h2o_handler_t *self, h2o_req_t *req)
{
    size_t n = req->input.method.len + req->input.path.len + 12;

    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (n <= ((struct header_limit *)self)->max)
        return -1;
    h2o_send_error_generic(req, 431, "Request Header Fields Too Large",
                           "request header fields too large",
                           H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    return 0;
}

static void
add_header_limit(h2o_pathconf_t *pc, const struct conf_service *s)
{
    struct header_limit *hl;

    if (s->max_header_size >= CONF_MAX_HEADER_SIZE_MAX)
        return;
    hl = (void *)h2o_create_handler(pc, sizeof(*hl));
    hl->super.on_req = on_header_limit;
    hl->max = s->max_header_size;
}

static int
on_misdirected(h2o_handler_t *self, h2o_req_t *req)
{
    if (!tlsaccept_misdirected(req))
        return -1;
    h2o_send_error_generic(req, 421, "Misdirected Request",
                           "this connection is for another host; make a new one\n", 0);
    return 0;
}

/* The checks every request of s goes through before its route's handler. */
static void
add_guards(h2o_pathconf_t *pc, const struct conf_service *s)
{
    reqcheck_register(pc);
    if (s->shared)
        h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_misdirected;
    add_header_limit(pc, s);
}

static void
setup_globalconf(h2o_globalconf_t *g, const struct conf_service *s)
{
    const struct conf *c = w.args->conf;

    h2o_config_init(g);
    g->server_name = h2o_iovec_init(H2O_STRLIT("percore"));
    g->max_request_entity_size = s->max_body;
    g->handshake_timeout = (uint64_t)s->handshake_timeout_ms;
    g->http1.req_timeout = (uint64_t)s->header_timeout_ms;
    g->http2.idle_timeout = (uint64_t)s->idle_timeout_ms;
    /* Cleartext h2c (Upgrade or prior knowledge) stays off: it would bypass the reset
     * guard, which sits at ALPN (h2guard.c). */
    g->http1.upgrade_to_http2 = 0;
    g->http2.max_concurrent_requests_per_connection = c->http2_max_requests;
    /* A drain sends GOAWAY; streams still open when shutdown_timeout ends are cut. */
    g->http2.graceful_shutdown_timeout = (uint64_t)c->shutdown_timeout_ms;
}

static int
offers_http2(const struct conf_service *s)
{
    for (size_t i = 0; i < s->nlistens; i++)
        if (s->listens[i].http2)
            return 1;
    return 0;
}

static void
setup_service(const struct conf_service *s, struct service_rt *rt)
{
    h2o_hostconf_t *host;
    const struct conf_route **routes;
    struct access_log *access = s->access_log != NULL ? accesslog_open(s->access_log) : NULL;
    int svc = metrics_service_index(s->name);

    setup_globalconf(&rt->gconf, s);
    host = h2o_config_register_host(&rt->gconf, h2o_iovec_init(s->name, strlen(s->name)),
                                    65535);
    /* A Link: rel=preload header must never turn into an HTTP/2 push. */
    host->http2.push_preload = 0;
    routes = xcalloc(s->nroutes, sizeof(*routes));
    for (size_t i = 0; i < s->nroutes; i++)
        routes[i] = &s->routes[i];
    qsort(routes, s->nroutes, sizeof(*routes), route_cmp);
    for (size_t i = 0; i < s->nroutes; i++) {
        /* Finish each pathconf before registering the next: registering reallocs. */
        h2o_pathconf_t *pc = h2o_config_register_path(host, routes[i]->prefix, 0);
        pc->error_log.emit_request_errors = 0; /* on_request_done logs them */
        /* First: its filter must be set up last, next to the connection. */
        sendguard_register(pc, s->send_timeout_ms, offers_http2(s), s->shared);
        add_guards(pc, s);
        routes[i]->hnd->setup(pc, routes[i]->hnd_conf);
        setup_headers(pc, routes[i]);
        if (routes[i]->compress) {
            /* gzip only: Debian's libh2o is built without brotli. */
            static h2o_compress_args_t gzip = {.min_size = 256, .gzip = {.quality = 1},
                                               .brotli = {.quality = -1}};
            h2o_compress_register(pc, &gzip);
        }
        add_request_logger(pc, access, svc);
    }
    free(routes);
    /* Requests no route matched (404s) are limited, counted and logged too. */
    sendguard_register(&host->fallback_path, s->send_timeout_ms, offers_http2(s), s->shared);
    add_guards(&host->fallback_path, s);
    add_request_logger(&host->fallback_path, access, svc);
    rt->hosts[0] = host;
    rt->hosts[1] = NULL;
    rt->access = access;
    rt->svc = svc;
}

static enum lsn_kind
kind_of(const struct conf_listen *cl)
{
    return cl->http2 ? LSN_TLS_H2 : cl->tls ? LSN_TLS : LSN_PLAIN;
}

/* The index of the service that l serves in this worker's config, or -1; *kind tells
 * whether its `listen` asked for TLS and HTTP/2. */
static int
service_of(const struct listener *l, enum lsn_kind *kind)
{
    const struct conf *c = w.args->conf;

    *kind = LSN_PLAIN;
    for (size_t i = 0; i < c->nservices; i++) {
        if (l->owner == NULL || strcmp(c->services[i].name, l->owner) != 0)
            continue;
        if (l->activated)
            return (int)i;
        for (size_t j = 0; j < c->services[i].nlistens; j++) {
            const struct conf_listen *cl = &c->services[i].listens[j];
            if (listener_addr_equal(&cl->addr, &l->addr)) {
                *kind = kind_of(cl);
                return (int)i;
            }
        }
    }
    return -1;
}

static void
add_site(struct lsn_rt *lr, size_t svc, enum lsn_kind kind)
{
    const struct conf_service *cs = &w.args->conf->services[svc];
    struct service_rt *rt = &w.services[svc];

    lr->sites = xreallocarray(lr->sites, lr->nsites + 1, sizeof(*lr->sites));
    lr->sites[lr->nsites++] = (struct tls_site){cs->server_names, cs->nserver_names,
                                                &rt->actx[kind], rt->http2_max_resets};
}

/* How connections on l are served: by its owner svc, or for TLS by the site SNI picks
 * among the services listening on it (owner first: the default). */
static struct lsn_rt *
listener_rt(const struct listener *l, int svc, enum lsn_kind kind)
{
    const struct conf *c = w.args->conf;
    struct lsn_rt *lr = xcalloc(1, sizeof(*lr)); /* lives as long as the worker */

    lr->send_timeout_ms = c->services[svc].send_timeout_ms;
    lr->owner = &w.services[svc];
    if (kind == LSN_PLAIN) {
        lr->actx = &w.services[svc].actx[LSN_PLAIN];
        return lr;
    }
    add_site(lr, (size_t)svc, kind);
    for (size_t i = 0; i < c->nservices; i++) {
        if ((int)i == svc)
            continue;
        for (size_t j = 0; j < c->services[i].nlistens; j++)
            if (listener_addr_equal(&c->services[i].listens[j].addr, &l->addr))
                add_site(lr, i, kind_of(&c->services[i].listens[j]));
    }
    return lr;
}

static void
start_listening(void)
{
    for (size_t i = 0; i < w.args->nlisteners; i++) {
        const struct listener *l = &w.args->listeners[i];
        enum lsn_kind kind;
        int svc = service_of(l, &kind);
        h2o_socket_t *ls;

        if (svc == -1)
            continue;
        if (!l->activated && w.args->slot >= l->nfds)
            fatalx("no socket for %s in slot %u", l->addr.text, w.args->slot);
        ls = h2o_evloop_socket_create(w.loop, listener_fd_for_slot(l, w.args->slot),
                                      H2O_SOCKET_FLAG_DONT_READ);
        ls->data = listener_rt(l, svc, kind);
        h2o_socket_read_start(ls, on_accept);
        w.lsocks = xreallocarray(w.lsocks, w.nlsocks + 1, sizeof(*w.lsocks));
        w.lsocks[w.nlsocks++] = ls;
    }
}

/* Close every inherited fd this worker does not serve: the master's own, the other slots'
 * sockets and those of addresses its config does not name (the master keeps them all open,
 * so closing here drops nothing). */
static void
close_foreign_fds(void)
{
    for (size_t i = 0; i < w.args->nmaster_fds; i++)
        close(w.args->master_fds[i]);
    for (size_t i = 0; i < w.args->nlisteners; i++) {
        const struct listener *l = &w.args->listeners[i];
        enum lsn_kind kind;
        int keep = service_of(l, &kind) != -1 ? listener_fd_for_slot(l, w.args->slot) : -1;
        for (size_t k = 0; k < l->nfds; k++)
            if (l->fds[k] != keep)
                close(l->fds[k]);
    }
}

static void
setup_process(void)
{
    char name[16];
    sigset_t set;
    int sfd;

    log_set_role((int)w.args->slot, w.args->gen);
    if (log_open(w.args->conf->log_target, w.args->conf->log_path) == -1)
        log_warn("cannot open log '%s', ignoring", w.args->conf->log_path);
    /* A worker never outlives its master: orphans would keep the port. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        log_warn("prctl(PR_SET_PDEATHSIG)");
    snprintf(name, sizeof(name), "percore-w%u", w.args->slot);
    (void)prctl(PR_SET_NAME, name);
    /* Terminal signals are for the master, which coordinates the stop. */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd == -1)
        fatal("signalfd");
    if (w.args->cpu >= 0) {
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(w.args->cpu, &cpus);
        if (sched_setaffinity(0, sizeof(cpus), &cpus) == -1)
            log_warn("cannot pin to CPU %d, ignoring", w.args->cpu);
    }
    close_foreign_fds();
    h2o_socket_read_start(h2o_evloop_socket_create(w.loop, sfd, H2O_SOCKET_FLAG_DONT_READ),
                          on_signal);
}

static void
notify_master(enum wmsg_type type)
{
    struct wmsg m = {.pid = getpid(), .type = type};

    if (write(w.args->notify_fd, &m, sizeof(m)) != sizeof(m))
        log_warn("cannot notify the master");
}

/* Stop accepting, let in-flight requests finish, give idle keep-alive connections a short
 * grace (libh2o has no HTTP/1 shutdown hook), and exit once all are gone or time is up. */
static void __attribute__((noreturn))
drain_and_exit(void)
{
    int64_t deadline = util_now_ms() + w.args->conf->shutdown_timeout_ms;

    for (size_t i = 0; i < w.nlsocks; i++) {
        h2o_socket_read_stop(w.lsocks[i]);
        h2o_socket_close(w.lsocks[i]);
    }
    for (size_t i = 0; i < w.args->conf->nservices; i++) {
        h2o_context_request_shutdown(&w.services[i].ctx);
        w.services[i].ctx.http1.req_timeout.timeout = DRAIN_IDLE_GRACE_MS;
    }
    while (w.conns > 0 && util_now_ms() < deadline) {
        h2o_evloop_run(w.loop, 100);
        hnd_files_turn_end();
        accesslog_flush();
    }
    if (w.conns > 0)
        log_warnx("shutdown_timeout reached with %zu connections open, closing them", w.conns);
    else
        log_debug("drained");
    _exit(0);
}

void
worker_run(const struct heritage *h)
{
    const struct conf *c = h->conf;

    ASSERT_WORKER();
    w.args = h;
    metrics_attach(h->metrics);
    tls_tickets_attach(h->tickets);
    w.metrics = metrics_slot(h->metrics_idx);
    reqcheck_init(w.metrics, on_conn_close);
    w.loop = h2o_evloop_create();
    w.services = xcalloc(c->nservices, sizeof(*w.services));
    for (size_t i = 0; i < c->nservices; i++) {
        struct service_rt *rt = &w.services[i];
        void *ssl[] = {[LSN_PLAIN] = NULL, [LSN_TLS] = c->services[i].ssl_ctx,
                       [LSN_TLS_H2] = c->services[i].ssl_ctx_h2};
        setup_service(&c->services[i], rt);
        h2o_context_init(&rt->ctx, w.loop, &rt->gconf);
        for (size_t k = 0; k < NELEMS(rt->actx); k++)
            rt->actx[k] = (h2o_accept_ctx_t){.ctx = &rt->ctx, .hosts = rt->hosts,
                                             .ssl_ctx = ssl[k]};
        rt->http2_max_resets = c->services[i].http2_max_resets;
        for (size_t k = LSN_TLS; k < NELEMS(ssl); k++)
            if (ssl[k] != NULL)
                tlsaccept_prepare(ssl[k]);
    }
    setup_process();
    if (getppid() != h->master_pid)
        _exit(0); /* the master died before PDEATHSIG was armed */
    start_listening();
    h2o_timeout_init(w.loop, &w.heartbeat_timeout, HEARTBEAT_MS);
    w.heartbeat.cb = on_heartbeat;
    on_heartbeat(&w.heartbeat);
    sendguard_init(w.loop);
    notify_master(WMSG_READY);
    while (!w.stopping) {
        h2o_evloop_run(w.loop, INT32_MAX);
        hnd_files_turn_end();
        accesslog_flush();
    }
    drain_and_exit();
}
