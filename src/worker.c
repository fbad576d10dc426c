/* A worker process, forked by the master: sets itself up (its services' libh2o
 * configuration comes from service_rt.c), accepts on its own reuseport sockets, beats its
 * heartbeat, and drains gracefully on SIGTERM. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "accesslog.h"
#include "conf.h"
#include "conn.h"
#include "h2guard.h"
#include "h2o_inc.h"
#include "hnd.h"
#include "linger.h"
#include "listener.h"
#include "log.h"
#include "looplag.h"
#include "metrics.h"
#include "otel.h"
#include "priv.h"
#include "proxyproto.h"
#include "reqcheck.h"
#include "sandbox.h"
#include "sendguard.h"
#include "service_rt.h"
#include "tls.h"
#include "tlsaccept.h"
#include "tunnel.h"
#include "upprobe.h"
#include "upstate.h"
#include "uptls.h"
#include "util.h"
#include "worker.h"

#define ACCEPT_BATCH 16
#define HEARTBEAT_MS 500
#define DRAIN_IDLE_GRACE_MS 1000
/* The last span export of a stopping worker takes at most this long (and export_timeout),
 * well within the master's grace after shutdown_timeout. */
#define OTEL_FINISH_MS 1000

/* The one worker this process is: its inherited arguments and what it made of them. */
struct worker {
    const struct heritage *heritage; /* what it inherited from the master */
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

static struct worker this_worker;

static void on_accept(h2o_socket_t *listener, const char *err);

/* At max_connections the listeners are not read: new connections wait in the kernel's
 * backlog (or go to another worker's socket) instead of being accepted and starved. */
static void
set_paused(int paused)
{
    if (this_worker.paused == paused || this_worker.stopping)
        return;
    this_worker.paused = paused;
    for (size_t i = 0; i < this_worker.nlsocks; i++) {
        if (paused)
            h2o_socket_read_stop(this_worker.lsocks[i]);
        else
            h2o_socket_read_start(this_worker.lsocks[i], on_accept);
    }
}

/* The one close hook of every accepted connection: each module drops its part of the
 * record, then the record goes. libh2o has closed the fd, but frees the socket only at the
 * end of the loop turn, so the modules may still read it. */
static void
on_conn_close(void *data)
{
    struct conn *c = data;

    assert(c->sock->on_close.data == c);
    /* Whatever looks the record up later in this turn finds none. */
    c->sock->on_close.cb = NULL;
    c->sock->on_close.data = NULL;
    reqcheck_conn_closed(c);
    sendguard_conn_closed(c);
    linger_conn_closed(c); /* before the HTTP/2 guard's part, by which it knows HTTP/2 */
    h2guard_conn_closed(c);
    free(c);
    assert(this_worker.conns > 0);
    this_worker.conns--;
    atomic_store_explicit(&this_worker.metrics->conns, this_worker.conns, memory_order_relaxed);
    if (this_worker.paused && this_worker.conns < this_worker.heritage->conf->max_connections)
        set_paused(0);
}

/* The master reads this to tell a busy worker from a stuck one. */
static void
beat(void)
{
    atomic_store_explicit(&this_worker.metrics->heartbeat_ms, util_now_ms(), memory_order_relaxed);
}

static void error_lines_tick(void);

static void
on_heartbeat(h2o_timeout_entry_t *entry)
{
    beat();
    looplag_fold(); /* the worker's CPU time, and the routes' share of it */
    error_lines_tick(); /* a flood's last count is logged even if it stops */
    h2o_timeout_link(this_worker.loop, &this_worker.heartbeat_timeout, &this_worker.heartbeat);
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
    uint64_t now;

    assert(this_worker.loop != NULL); /* a worker's, once set up */
    now = h2o_now(this_worker.loop) / 1000;
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

/* The record of an accepted connection on a socket served as lr says; freed by its close
 * hook. */
static void
conn_open(h2o_socket_t *sock, const struct lsn_rt *lr)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    c->sock = sock;
    c->fd = h2o_socket_get_fd(sock);
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = c;
    sendguard_conn_open(c, lr->send_timeout_ms);
    linger_conn_open(c, lr->nsites > 0);
}

struct conn *
worker_conn(h2o_socket_t *sock)
{
    struct conn *c;

    if (sock == NULL || sock->on_close.cb != on_conn_close)
        return NULL;
    c = sock->on_close.data;
    assert(c->sock == sock);
    return c;
}

struct conn *
worker_conn_of_req(h2o_req_t *req)
{
    if (req->conn->callbacks->get_socket == NULL)
        return NULL;
    return worker_conn(req->conn->callbacks->get_socket(req->conn));
}

/* Hand sock, accepted on a socket served as lr says and past its PROXY header if it had
 * one, to libh2o (or to the TLS handshake first). */
static void
start_protocol(h2o_socket_t *sock, const struct lsn_rt *lr)
{
    struct conn *c = worker_conn(sock);

    /* Now that the peer address is the one to keep: libh2o's own 400s are logged with
     * it. */
    assert(c != NULL);
    reqcheck_conn_open(c, lr->owner->access, lr->owner->svc);
    if (lr->nsites == 0)
        h2o_accept(lr->actx, sock);
    else
        tlsaccept(sock, lr->sites, lr->nsites);
}

/* The PROXY header read: arg is the socket's lsn_rt. */
static void
on_proxy_header(h2o_socket_t *sock, void *arg)
{
    start_protocol(sock, arg);
}

/* Serve sock, just accepted on a socket served as lr says: counted, given its record, then
 * (on a proxy_protocol listen, from a trusted peer and after its PROXY header) handed on.
 * The fuzzer's HTTP/1 harness serves its socketpairs through here too. */
static void
serve_conn(h2o_socket_t *sock, const struct lsn_rt *lr)
{
    struct sockaddr_storage ss;
    socklen_t len;

    this_worker.conns++;
    assert(this_worker.conns <= this_worker.heritage->conf->max_connections);
    atomic_store_explicit(&this_worker.metrics->conns, this_worker.conns, memory_order_relaxed);
    conn_open(sock, lr);
    if (!lr->proxy_protocol) {
        start_protocol(sock, lr);
        return;
    }
    len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    if (len == 0 || !service_rt_peer_trusted(lr, (struct sockaddr *)&ss)) {
        proxyproto_close(sock, "not in trusted_proxies, which a proxy_protocol listen needs");
        return;
    }
    proxyproto_read(sock, lr->actx->ctx, on_proxy_header, (void *)lr);
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
        if (this_worker.conns >= this_worker.heritage->conf->max_connections) {
            set_paused(1);
            break;
        }
        sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        serve_conn(sock, lr);
    }
}

static void
on_signal(h2o_socket_t *sock, const char *err)
{
    struct signalfd_siginfo si;
    int fd = h2o_socket_get_fd(sock);

    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGQUIT)
            this_worker.stopping = 1;
        else if (si.ssi_signo == SIGUSR1) {
            if (log_reopen() == -1)
                log_warn("cannot reopen the log file");
            accesslog_reopen();
            log_info("log files reopened");
        }
    }
}

static void
start_listening(void)
{
    const struct heritage *args = this_worker.heritage;

    for (size_t i = 0; i < args->nlisteners; i++) {
        const struct listener *l = &args->listeners[i];
        struct lsn_rt *lr = service_rt_listener(args->conf, this_worker.services, l,
                                                this_worker.loop, this_worker.metrics);
        h2o_socket_t *ls;

        if (lr == NULL)
            continue;
        if (!l->activated && args->slot >= l->nfds)
            fatalx("no socket for %s in slot %u", l->addr.text, args->slot);
        ls = h2o_evloop_socket_create(this_worker.loop, listener_fd_for_slot(l, args->slot),
                                      H2O_SOCKET_FLAG_DONT_READ);
        ls->data = lr;
        h2o_socket_read_start(ls, on_accept);
        this_worker.lsocks = xreallocarray(this_worker.lsocks, this_worker.nlsocks + 1,
                                           sizeof(*this_worker.lsocks));
        this_worker.lsocks[this_worker.nlsocks++] = ls;
    }
}

/* Close every inherited fd this worker does not serve: the master's own, the other slots'
 * sockets and those of addresses its config does not name (the master keeps them all open,
 * so closing here drops nothing). */
static void
close_foreign_fds(void)
{
    const struct heritage *args = this_worker.heritage;

    for (size_t i = 0; i < args->nmaster_fds; i++)
        close(args->master_fds[i]);
    for (size_t i = 0; i < args->nlisteners; i++) {
        const struct listener *l = &args->listeners[i];
        int keep = service_rt_serves(args->conf, l) ? listener_fd_for_slot(l, args->slot) : -1;
        for (size_t k = 0; k < l->nfds; k++)
            if (l->fds[k] != keep)
                close(l->fds[k]);
    }
}

/* Terminal signals are for the master, which coordinates the stop; those a worker acts on
 * come through the returned signalfd (the master blocked them before the fork). */
static int
signal_fd(void)
{
    sigset_t set;
    int sfd;

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
    return sfd;
}

static void
pin_to_cpu(int cpu)
{
    cpu_set_t cpus;

    CPU_ZERO(&cpus);
    CPU_SET(cpu, &cpus);
    if (sched_setaffinity(0, sizeof(cpus), &cpus) == -1)
        log_warn("cannot pin to CPU %d, ignoring", cpu);
}

static void
setup_process(void)
{
    const struct heritage *args = this_worker.heritage;
    char name[16];
    int sfd;

    log_set_role((int)args->slot, args->gen);
    if (log_open(args->conf->log_target, args->conf->log_path) == -1)
        log_warn("cannot open log '%s', ignoring", args->conf->log_path);
    /* A worker never outlives its master: orphans would keep the port. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        log_warn("prctl(PR_SET_PDEATHSIG)");
    snprintf(name, sizeof(name), "percore-w%u", args->slot);
    (void)prctl(PR_SET_NAME, name);
    sfd = signal_fd();
    if (args->cpu >= 0)
        pin_to_cpu(args->cpu);
    close_foreign_fds();
    h2o_socket_read_start(
        h2o_evloop_socket_create(this_worker.loop, sfd, H2O_SOCKET_FLAG_DONT_READ), on_signal);
}

/* Last step of the set-up, with everything opened: become `user`. A worker that cannot
 * exits, and the master's respawn back-off takes over. The kernel forgets the parent-death
 * signal when the ids change: it is armed again. */
static void
drop_privileges(void)
{
    const struct heritage *h = this_worker.heritage;
    char err[256];

    if (h->conf->user == NULL)
        return;
    if (priv_drop(h->conf, err, sizeof(err)) == -1) {
        log_warnx("cannot drop privileges to user %s: %s", h->conf->user, err);
        _exit(1);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
        log_warn("prctl(PR_SET_PDEATHSIG)");
    if (getppid() != h->master_pid)
        _exit(0);
}

/* After the privileges, with nothing left to open: confine the worker to serving, unless
 * `worker_sandbox off`. A worker that cannot exits, as for the privileges. */
static void
enter_sandbox(void)
{
    const struct heritage *h = this_worker.heritage;
    char err[256];

    if (!h->conf->worker_sandbox)
        return;
    /* libh2o moves a socket buffer past 32 MiB into a temp file it creates, which the
     * sandbox forbids: buffers stay in memory, bounded by the proxy's buffer_size (which
     * a read may pass by one read's worth before the proxy stops reading). */
    h2o_socket_buffer_mmap_settings.threshold = SIZE_MAX;
    if (sandbox_install(h->conf, this_worker.metrics, err, sizeof(err)) == -1) {
        log_warnx("cannot enter the sandbox: %s; the worker exits (set 'worker_sandbox off;' "
                  "to run without it)", err);
        _exit(1);
    }
}

static void
notify_master(enum wmsg_type type)
{
    struct wmsg m = {.pid = getpid(), .type = type};

    if (write(this_worker.heritage->notify_fd, &m, sizeof(m)) != sizeof(m))
        log_warn("cannot notify the master");
}

/* Stop accepting, let in-flight requests finish, give idle keep-alive connections a short
 * grace (libh2o has no HTTP/1 shutdown hook), and exit once all are gone, their lingering
 * closes included, or time is up. A WebSocket tunnel is an open connection (its client's
 * socket keeps its record) and runs on until it ends or time is up; the exit closes it. */
static void __attribute__((noreturn))
drain_and_exit(void)
{
    int64_t deadline = util_now_ms() + this_worker.heritage->conf->shutdown_timeout_ms;
    h2o_context_t **ctxs;
    size_t nctxs;

    linger_arm_all();
    upprobe_stop(); /* the leases go to the next generation's workers */
    for (size_t i = 0; i < this_worker.nlsocks; i++) {
        h2o_socket_read_stop(this_worker.lsocks[i]);
        h2o_socket_close(this_worker.lsocks[i]);
    }
    nctxs = service_rt_contexts(&ctxs);
    for (size_t i = 0; i < nctxs; i++) {
        h2o_context_request_shutdown(ctxs[i]);
        ctxs[i]->http1.req_timeout.timeout = DRAIN_IDLE_GRACE_MS;
    }
    while ((this_worker.conns > 0 || linger_count() > 0) && util_now_ms() < deadline) {
        looplag_turn_begin();
        h2o_evloop_run(this_worker.loop, 100);
        hnd_files_turn_end();
        accesslog_flush();
        looplag_turn_end();
    }
    if (this_worker.conns > 0)
        log_warnx("shutdown_timeout reached with %zu connections open (%zu websocket "
                  "tunnels), closing them", this_worker.conns, tunnel_count());
    else
        log_debug("drained");
    looplag_fold(); /* what the routes took since the last heartbeat */
    otel_finish(this_worker.heritage->conf->tracing.export_timeout_ms < OTEL_FINISH_MS
                    ? this_worker.heritage->conf->tracing.export_timeout_ms
                    : OTEL_FINISH_MS);
    _exit(0);
}

/* The health checks of the config's upstream blocks (a proxy line's servers have none). */
static void
start_probes(const struct conf *c)
{
    struct upprobe_target *t = NULL;
    size_t n = 0;

    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct conf_upstream *g = c->upstreams[i];
        if (g->policy.check.path == NULL)
            continue;
        t = xreallocarray(t, n + g->nservers, sizeof(*t));
        for (size_t k = 0; k < g->nservers; k++) {
            const struct conf_upserver *s = &g->servers[k];
            t[n++] = (struct upprobe_target){
                .idx = s->state,
                .addr = (const struct sockaddr *)&s->ss,
                .addrlen = s->sslen,
                .host = s->authority,
                .policy = &g->policy,
                .ssl_ctx = s->tls ? g->ssl_ctx : NULL,
                .tls_name = g->tls != NULL && g->tls->name != NULL ? g->tls->name : s->host,
                .proxy_protocol = g->proxy_protocol,
                .rslot = s->rslot,
                .rid = s->rid,
            };
        }
    }
    if (n > 0 && upprobe_start(this_worker.loop, t, n) == -1)
        log_warn("upstream health checks not started");
    free(t);
}

void
worker_run(const struct heritage *h)
{
    ASSERT_WORKER();
    this_worker.heritage = h;
    metrics_attach(h->metrics);
    tls_tickets_attach(h->tickets);
    upstate_attach(h->upstate, h->metrics_idx);
    this_worker.metrics = metrics_slot(h->metrics_idx);
    looplag_init(this_worker.metrics, h->conf->slow_turn_ms, worker_error_line_allowed);
    reqcheck_init(this_worker.metrics);
    this_worker.loop = h2o_evloop_create();
    this_worker.services = service_rt_setup(h->conf, this_worker.loop, this_worker.metrics);
    otel_init(h->conf, this_worker.loop, this_worker.metrics, h->slot);
    setup_process();
    if (getppid() != h->master_pid)
        _exit(0); /* the master died before PDEATHSIG was armed */
    start_listening();
    h2o_timeout_init(this_worker.loop, &this_worker.heartbeat_timeout, HEARTBEAT_MS);
    this_worker.heartbeat.cb = on_heartbeat;
    on_heartbeat(&this_worker.heartbeat);
    sendguard_init(this_worker.loop);
    linger_init(this_worker.loop);
    start_probes(h->conf);
    drop_privileges();
    /* Changing ids resets it: a worker taken over must not read a sibling's memory (other
     * clients' requests) through /proc/PID/mem. */
    if (prctl(PR_SET_DUMPABLE, 0) == -1)
        log_warn("prctl(PR_SET_DUMPABLE)");
    enter_sandbox();
    notify_master(WMSG_READY);
    while (!this_worker.stopping) {
        looplag_turn_begin();
        h2o_evloop_run(this_worker.loop, INT32_MAX);
        hnd_files_turn_end();
        accesslog_flush();
        looplag_turn_end();
    }
    drain_and_exit();
}
