/* The master process: listeners, worker generations, respawn with back-off, reload on
 * SIGHUP or `percore -s reload`, graceful stop on SIGTERM/SIGINT, and systemd's notify
 * and watchdog (the listeners and the fd store are sockets.c's). Single-threaded: one poll loop on a signalfd, the pipe on which
 * workers report readiness, the control socket and the resolver's sockets (upresolve.c);
 * timers are deadlines checked after each wakeup. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "cpus.h"
#include "ctl.h"
#include "heritage.h"
#include "listener.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "priv.h"
#include "sandbox.h"
#include "service_rt.h"
#include "sockets.h"
#include "status.h"
#include "sysd.h"
#include "tls.h"
#include "upresolve.h"
#include "upstate.h"
#include "util.h"
#include "worker.h"

#define RELOAD_READY_TIMEOUT_MS 10000
#define KILL_GRACE_MS 2000
#define CRASH_FAST_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STATUS_INTERVAL_MS 2000
#define HANG_CHECK_MS 250
#define HEARTBEAT_FRESH_MS 3000 /* a worker's loop turned this recently: fit for WATCHDOG=1 */
/* Metrics slots: room for two full generations during a reload, plus stragglers. */
#define WORKER_SLOTS (2 * CONF_WORKERS_MAX + 64)
_Static_assert(WORKER_SLOTS <= UPSTATE_WORKER_SLOTS, "upstate.h counts fewer worker slots");
#define CTL_CLIENTS_MAX 16
/* The master's own fds: signalfd, the notify pipe, the control socket's and its clients,
 * the resolver's. */
#define MASTER_FDS_MAX (4 + CTL_PENDING_MAX + 2 * CTL_CLIENTS_MAX + UPRESOLVE_FDS_MAX)

enum mstate { M_STARTING, M_RUNNING, M_RELOADING, M_STOPPING };

struct wproc {
    pid_t pid;
    unsigned slot, gen;
    int mslot; /* metrics slot */
    int ready;
    int draining;
    int sigkilled; /* SIGKILL sent: only waited for */
    int hung;
    int64_t started_ms;
    int64_t kill_at_ms;
};

struct slot {
    int vacant;
    unsigned failures;
    int64_t respawn_at_ms;
};

struct master {
    const struct master_opts *opts;
    enum mstate state;
    struct conf *conf; /* the serving generation's */
    unsigned nslots, gen;
    struct slot *slots;
    struct conf *next_conf; /* a reload's, until its workers are all ready */
    unsigned next_nslots, next_gen;
    unsigned last_gen; /* generation numbers are never reused, even by a failed reload */
    int64_t reload_deadline_ms;
    int reload_pending;
    int64_t stop_at_ms; /* end of shutdown_delay */
    int drain_started;
    struct sockets socks; /* the listeners every worker inherits */
    struct metrics_region *metrics;
    struct upstate_region *upstate;
    struct wproc *procs;
    size_t nprocs;
    int sigfd, notify_rd, notify_wr;
    struct ctl ctl;
    int ctl_now[CTL_CLIENTS_MAX], nctl_now;   /* waiting for the reload under way */
    int ctl_next[CTL_CLIENTS_MAX], nctl_next; /* waiting for the one queued after it */
    char last_reload[256];
    int64_t watchdog_ms, next_watchdog_ms, next_status_ms, next_hang_check_ms;
    int64_t next_ticket_rotation_ms;
    uint64_t status_requests;
    int64_t status_at_ms;
    double rps;
};

static struct master master = {
    .sigfd = -1, .notify_rd = -1, .notify_wr = -1, .ctl = {.lfd = -1, .pidfd = -1}};

static unsigned
slots_for(const struct conf *c)
{
    if (master.opts->workers_override != 0)
        return master.opts->workers_override;
    return c->workers != 0 ? c->workers : cpus_auto();
}

/* ---- listeners ---- */

void
master_adopt_sockets(struct conf_sockets *socks)
{
    ASSERT_MASTER();
    sockets_adopt(&master.socks);
    *socks = sockets_names(&master.socks);
}

void
master_open_listeners(struct conf *conf, const struct master_opts *opts)
{
    char err[512];

    ASSERT_MASTER();
    master.opts = opts;
    if (sockets_open(&master.socks, conf, slots_for(conf), err, sizeof(err)) == -1)
        fatalx("cannot listen: %s", err);
    /* Here, before detaching, so a taken control socket fails the start for the caller. */
    if (ctl_open(&master.ctl, opts->conf_path, err, sizeof(err)) == -1)
        fatalx("%s", err);
}

/* ---- worker processes ---- */

static struct wproc *
find_proc(pid_t pid)
{
    for (size_t i = 0; i < master.nprocs; i++)
        if (master.procs[i].pid == pid)
            return &master.procs[i];
    return NULL;
}

static void
remove_proc(struct wproc *p)
{
    upstate_worker_gone(p->mslot, p->pid);
    metrics_release(p->mslot);
    *p = master.procs[--master.nprocs];
}

/* Every fd of the master's own into fds (room for MASTER_FDS_MAX), so that a worker holds
 * no control client open; returns how many. */
static size_t
master_fds(int *fds)
{
    size_t n = 0;

    fds[n++] = master.sigfd;
    fds[n++] = master.notify_rd;
    n += ctl_fds(&master.ctl, fds + n);
    for (int i = 0; i < master.nctl_now; i++)
        fds[n++] = master.ctl_now[i];
    for (int i = 0; i < master.nctl_next; i++)
        fds[n++] = master.ctl_next[i];
    n += upresolve_fds(fds + n);
    assert(n <= MASTER_FDS_MAX);
    return n;
}

/* Fork worker `slot` of generation gen, serving c, with metrics slot mslot (which it owns
 * from then on). -1 if the fork failed. */
static int
spawn_worker(unsigned slot, unsigned gen, const struct conf *c, int mslot)
{
    int fds[MASTER_FDS_MAX];
    struct heritage h = {
        .slot = slot,
        .gen = gen,
        .cpu = c->cpu_affinity ? cpus_nth_allowed(slot) : -1,
        .master_pid = getpid(),
        .conf = c,
        .listeners = master.socks.groups,
        .nlisteners = master.socks.ngroups,
        .metrics = master.metrics,
        .metrics_idx = mslot,
        .tickets = tls_tickets(),
        .upstate = master.upstate,
        .notify_fd = master.notify_wr,
        .master_fds = fds,
        .nmaster_fds = master_fds(fds),
    };
    pid_t pid = fork();

    if (pid == -1)
        return -1;
    if (pid == 0) {
        process_role = ROLE_WORKER;
        worker_run(&h);
    }
    metrics_slot(mslot)->gen = gen;
    metrics_slot(mslot)->wslot = slot;
    metrics_slot(mslot)->pid = pid;
    master.procs = xreallocarray(master.procs, master.nprocs + 1, sizeof(*master.procs));
    master.procs[master.nprocs++] = (struct wproc){
        .pid = pid, .slot = slot, .gen = gen, .mslot = mslot, .started_ms = util_now_ms()};
    log_debug("started worker %u (pid %d, generation %u)", slot, (int)pid, gen);
    return 0;
}

static int
spawn(unsigned slot, unsigned gen, const struct conf *c)
{
    int mslot;

    ASSERT_MASTER(); /* a worker never forks */
    mslot = metrics_claim();
    if (mslot == -1) {
        log_warnx("no free metrics slot for worker %u", slot);
        return -1;
    }
    if (spawn_worker(slot, gen, c, mslot) == -1) {
        log_warn("fork for worker %u", slot);
        metrics_release(mslot);
        return -1;
    }
    return 0;
}

static void
schedule_respawn(unsigned slot, int64_t delay_ms)
{
    master.slots[slot].vacant = 1;
    master.slots[slot].respawn_at_ms = util_now_ms() + delay_ms;
}

/* SIGKILL for a worker: from now on it is only waited for. */
static void
kill_worker(struct wproc *p)
{
    assert(p->pid > 0); /* never kill(0) or kill(-1) */
    p->sigkilled = 1;
    kill(p->pid, SIGKILL);
}

static void
signal_workers(int signo)
{
    for (size_t i = 0; i < master.nprocs; i++)
        if (!master.procs[i].sigkilled)
            (void)kill(master.procs[i].pid, signo);
}

/* Send SIGTERM to every worker of generations other than keep_gen (0: all) and give them
 * shutdown_timeout plus a grace before SIGKILL. */
static void
drain_workers(unsigned keep_gen, int64_t timeout_ms)
{
    int64_t kill_at = util_now_ms() + timeout_ms + KILL_GRACE_MS;

    for (size_t i = 0; i < master.nprocs; i++) {
        struct wproc *p = &master.procs[i];
        if (p->draining || (keep_gen != 0 && p->gen == keep_gen))
            continue;
        p->draining = 1;
        p->kill_at_ms = kill_at;
        if (kill(p->pid, SIGTERM) == -1 && errno != ESRCH)
            log_warn("kill worker pid %d", (int)p->pid);
    }
}

static unsigned
count_ready(unsigned gen)
{
    unsigned n = 0;

    for (size_t i = 0; i < master.nprocs; i++)
        if (master.procs[i].gen == gen && master.procs[i].ready && !master.procs[i].draining)
            n++;
    return n;
}

/* ---- status ---- */

/* Service names and routes get their metrics index before any worker of c looks them
 * up. */
static void
register_services(const struct conf *c)
{
    for (size_t i = 0; i < c->nservices; i++) {
        const struct conf_service *s = &c->services[i];
        metrics_register_service(s->name);
        for (size_t j = 0; j < s->nroutes; j++) {
            char *label = service_rt_route_label(&s->routes[j]);
            metrics_register_route(s->name, label);
            free(label);
        }
    }
}

static void
status_line(char *buf, size_t len)
{
    struct metrics_totals t;

    metrics_sum(&t, NULL);
    snprintf(buf, len, "generation %u: %u/%u workers up, %.0f req/s, %llu connections%s%s",
             master.gen, count_ready(master.gen), master.nslots, master.rps,
             (unsigned long long)t.conns, master.last_reload[0] ? "; " : "", master.last_reload);
}

static void
update_rate(int64_t now)
{
    struct metrics_totals t;

    metrics_sum(&t, NULL);
    if (master.status_at_ms != 0 && now > master.status_at_ms)
        master.rps = (double)(t.requests - master.status_requests) * 1000.0 /
                     (double)(now - master.status_at_ms);
    master.status_requests = t.requests;
    master.status_at_ms = now;
}

/* ---- reload ---- */

static void
ctl_answer(int *fds, int *n, const char *line)
{
    for (int i = 0; i < *n; i++) {
        ctl_reply(fds[i], line);
        close(fds[i]);
    }
    *n = 0;
}

static void
ctl_send_all(const int *fds, int n, const char *line)
{
    for (int i = 0; i < n; i++)
        ctl_reply(fds[i], line);
}

/* The end of a reload, good or bad: tell systemd (with why it failed, so that
 * `systemctl status` shows it) and the waiting clients. */
static void
reload_finished(int ok, const char *why)
{
    char when[16], status[512];
    time_t now = time(NULL);
    struct tm tm;

    strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
    if (ok)
        snprintf(master.last_reload, sizeof(master.last_reload), "last reload %s ok", when);
    else
        snprintf(master.last_reload, sizeof(master.last_reload),
                 "last reload %s failed, old config kept: %.180s", when, why);
    status_line(status, sizeof(status));
    sysd_ready(status);
    ctl_answer(master.ctl_now, &master.nctl_now, ok ? "ok" : "failed");
}

/* SIGKILL for the workers of generation gen: they are only waited for from now on. */
static void
kill_generation(unsigned gen)
{
    for (size_t i = 0; i < master.nprocs; i++) {
        struct wproc *p = &master.procs[i];
        if (p->gen == gen && !p->draining) {
            p->draining = 1;
            kill_worker(p);
        }
    }
}

/* A reload failed, at whichever step: kill the workers it started, close the listeners it
 * opened, drop its config, and tell the log, the waiting clients and systemd (status_why,
 * when not NULL, instead of the line: the first config error says more). The serving
 * generation goes on. */
static void
reload_failed(const char *why, const char *status_why)
{
    char line[512];

    assert(master.state == M_RUNNING || master.state == M_RELOADING);
    /* Before M_RELOADING, next_gen is still the last reload's: the serving one. */
    if (master.state == M_RELOADING)
        kill_generation(master.next_gen);
    sockets_rollback(&master.socks);
    upstate_discard();
    conf_free(master.next_conf);
    master.next_conf = NULL;
    master.state = M_RUNNING;
    snprintf(line, sizeof(line), "reload failed: %s; generation %u keeps serving", why, master.gen);
    log_warnx("%s", line);
    ctl_send_all(master.ctl_now, master.nctl_now, line);
    reload_finished(0, status_why != NULL ? status_why : line);
}

/* Whether the master's log goes elsewhere under next than under cur. */
static int
log_changed(const struct conf *cur, const struct conf *next)
{
    if (next->log_target != cur->log_target)
        return 1;
    return next->log_path != NULL &&
           (cur->log_path == NULL || strcmp(cur->log_path, next->log_path) != 0);
}

static void
commit_reload(void)
{
    int64_t old_timeout = master.conf->shutdown_timeout_ms;
    char line[128];

    assert(master.state == M_RELOADING && master.next_conf != NULL);
    drain_workers(master.next_gen, old_timeout);
    sockets_commit(&master.socks, master.next_nslots);
    upstate_commit(master.next_gen);
    if (log_changed(master.conf, master.next_conf) &&
        log_open(master.next_conf->log_target, master.next_conf->log_path) == -1)
        log_warn("cannot open log '%s', keeping the current log", master.next_conf->log_path);
    conf_free(master.conf);
    master.conf = master.next_conf;
    master.next_conf = NULL;
    master.gen = master.next_gen;
    metrics_set_generation(master.gen);
    free(master.slots);
    master.nslots = master.next_nslots;
    master.slots = xcalloc(master.nslots, sizeof(*master.slots));
    master.state = M_RUNNING;
    snprintf(line, sizeof(line), "reload done: generation %u serving with %u worker%s", master.gen,
             master.nslots, master.nslots == 1 ? "" : "s");
    log_info("%s", line);
    ctl_send_all(master.ctl_now, master.nctl_now, line);
    reload_finished(1, line);
}

/* Whether a reload may start now; if not, it waits for the one under way or the start, or
 * its clients are told the master is stopping. */
static int
reload_may_start(void)
{
    switch (master.state) {
    case M_STARTING:
    case M_RELOADING:
        master.reload_pending = 1;
        return 0;
    case M_STOPPING:
        ctl_answer(master.ctl_next, &master.nctl_next, "failed: stopping");
        return 0;
    case M_RUNNING:
        return 1;
    }
    return 0;
}

/* Load the reload's config into master.next_conf; on errors (a `user` percore cannot
 * become among them), tell the log and the waiting clients each of them, fail the reload
 * and return -1. */
/* The oldest generation with a worker still running (the serving one when none drains). */
static unsigned
oldest_generation(void)
{
    unsigned gen = master.gen;

    for (size_t i = 0; i < master.nprocs; i++)
        if (master.procs[i].gen < gen)
            gen = master.procs[i].gen;
    return gen;
}

static int
load_next_conf(void)
{
    struct conf_diag diag = {0};
    struct conf_sockets socks = sockets_names(&master.socks);
    char err[256];

    upstate_set_oldest(oldest_generation());
    master.next_conf = conf_load(master.opts->conf_path, &socks, &diag);
    if (master.next_conf != NULL && priv_check(master.next_conf, err, sizeof(err)) == -1) {
        conf_diag_add(&diag, NULL, "%s", err);
        conf_free(master.next_conf);
        master.next_conf = NULL;
    }
    if (master.next_conf != NULL)
        return 0;
    for (size_t i = 0; i < diag.n; i++) {
        log_warnx("%s", diag.msgs[i]);
        ctl_send_all(master.ctl_now, master.nctl_now, diag.msgs[i]);
    }
    reload_failed("configuration has errors", diag.n > 0 ? diag.msgs[0] : NULL);
    conf_diag_clear(&diag);
    return -1;
}

static void
start_reload(void)
{
    char err[256], why[300];

    if (!reload_may_start())
        return;
    /* Clients that asked while the last reload ran get this one's result; those of the
     * last one have theirs (reload_finished). */
    assert(master.nctl_now == 0 && master.next_conf == NULL);
    for (int i = 0; i < master.nctl_next; i++)
        master.ctl_now[master.nctl_now++] = master.ctl_next[i];
    master.nctl_next = 0;
    sysd_reloading();
    log_info("reloading %s", master.opts->conf_path);
    if (load_next_conf() == -1)
        return;
    master.next_nslots = slots_for(master.next_conf);
    if (sockets_prepare(&master.socks, master.next_conf, master.next_nslots, err,
                        sizeof(err)) == -1) {
        snprintf(why, sizeof(why), "cannot listen: %s", err);
        reload_failed(why, NULL);
        return;
    }
    register_services(master.next_conf);
    master.next_gen = ++master.last_gen;
    master.state = M_RELOADING;
    master.reload_deadline_ms = util_now_ms() + RELOAD_READY_TIMEOUT_MS;
    for (unsigned i = 0; i < master.next_nslots; i++) {
        if (spawn(i, master.next_gen, master.next_conf) == -1) {
            reload_failed("cannot start the new workers", NULL);
            return;
        }
    }
}

/* ---- stop ---- */

static void
begin_drain(void)
{
    master.drain_started = 1;
    log_info("stopping: draining %zu workers (shutdown_timeout %lld ms)", master.nprocs,
             (long long)master.conf->shutdown_timeout_ms);
    drain_workers(0, master.conf->shutdown_timeout_ms);
}

static void
start_stop(int signo)
{
    if (master.state == M_STOPPING) {
        if (!master.drain_started) {
            begin_drain();
            return;
        }
        log_warnx("second %s: stopping now", strsignal(signo));
        for (size_t i = 0; i < master.nprocs; i++)
            kill_worker(&master.procs[i]);
        return;
    }
    if (master.state == M_RELOADING)
        reload_failed("stopping", NULL);
    master.state = M_STOPPING;
    /* First, so the health handler fails for the whole shutdown_delay. */
    metrics_set_stopping();
    sysd_stopping();
    ctl_answer(master.ctl_next, &master.nctl_next, "failed: stopping");
    if (master.conf->shutdown_delay_ms > 0) {
        log_info("stopping after shutdown_delay of %lld ms; still accepting until then",
                 (long long)master.conf->shutdown_delay_ms);
        master.stop_at_ms = util_now_ms() + master.conf->shutdown_delay_ms;
    } else {
        begin_drain();
    }
}

/* ---- events ---- */

/* How worker p ended, into buf; for a worker the sandbox killed, with the call it made. */
static void
describe_status(const struct wproc *p, int status, char *buf, size_t len)
{
    char call[64] = "";

    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
        sandbox_describe(metrics_slot(p->mslot), call, sizeof(call));
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status) && call[0] != '\0')
        snprintf(buf, len, "died (signal %d, %s) on system call %s, which the sandbox forbids",
                 WTERMSIG(status), strsignal(WTERMSIG(status)), call);
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "died (signal %d, %s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended (status 0x%x)", status);
}

/* How long slot s waits to respawn after its worker p died: at once, unless it keeps
 * dying young, then with an exponential back-off so a crash loop does not spin the CPU. */
static int64_t
crash_backoff_ms(struct slot *s, const struct wproc *p)
{
    int64_t lived = util_now_ms() - p->started_ms, delay = 0;

    s->failures = lived < CRASH_FAST_MS && !p->hung ? s->failures + 1 : 0;
    if (s->failures > 1) {
        delay = BACKOFF_MIN_MS << (s->failures - 2 < 7 ? s->failures - 2 : 7);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
    }
    return delay;
}

static void
on_worker_exit(struct wproc *p, int status)
{
    char what[160];
    int64_t delay;

    describe_status(p, status, what, sizeof(what));
    if (p->draining) {
        if (p->sigkilled || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
            log_debug("worker %u (pid %d, generation %u) %s", p->slot, (int)p->pid, p->gen,
                      what);
        else
            log_warnx("worker %u (pid %d, generation %u) %s while draining", p->slot,
                      (int)p->pid, p->gen, what);
        remove_proc(p);
        return;
    }
    if (master.state == M_RELOADING && p->gen == master.next_gen) {
        char why[256];
        snprintf(why, sizeof(why), "new worker %u (pid %d) %s before it was ready", p->slot,
                 (int)p->pid, what);
        remove_proc(p);
        reload_failed(why, NULL);
        return;
    }
    if (master.state == M_STOPPING || p->gen != master.gen || p->slot >= master.nslots) {
        log_warnx("worker %u (pid %d) %s", p->slot, (int)p->pid, what);
        remove_proc(p);
        return;
    }
    /* A worker of the serving generation died. */
    delay = crash_backoff_ms(&master.slots[p->slot], p);
    if (delay == 0)
        log_warnx("worker %u (pid %d) %s, respawning", p->slot, (int)p->pid, what);
    else
        log_warnx("worker %u (pid %d) %s, crash loop: respawning in %lld ms", p->slot,
                  (int)p->pid, what, (long long)delay);
    schedule_respawn(p->slot, delay);
    remove_proc(p);
}

static void
reap(void)
{
    struct wproc *p;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        p = find_proc(pid);
        if (p != NULL)
            on_worker_exit(p, status);
    }
}

static void
on_signals(void)
{
    struct signalfd_siginfo si;

    while (read(master.sigfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap();
            break;
        case SIGHUP:
            start_reload();
            break;
        case SIGUSR1:
            if (log_reopen() == -1)
                log_warn("cannot reopen the log file");
            else
                log_info("log files reopened");
            signal_workers(SIGUSR1);
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            start_stop((int)si.ssi_signo);
            break;
        }
    }
}

static void
on_ready(struct wproc *p)
{
    char status[512];

    p->ready = 1;
    if (master.state == M_STARTING && p->gen == master.gen &&
        count_ready(master.gen) == master.nslots) {
        master.state = M_RUNNING;
        log_info("ready: %u worker%s serving generation %u", master.nslots,
                 master.nslots == 1 ? "" : "s", master.gen);
        status_line(status, sizeof(status));
        sysd_ready(status);
    } else if (master.state == M_RELOADING && p->gen == master.next_gen &&
               count_ready(master.next_gen) == master.next_nslots) {
        commit_reload();
    } else if (p->gen == master.gen) {
        master.slots[p->slot].vacant = 0;
        log_debug("worker %u (pid %d) ready", p->slot, (int)p->pid);
    }
}

static void
on_notify(void)
{
    struct wmsg msg;
    struct wproc *p;

    while (read(master.notify_rd, &msg, sizeof(msg)) == sizeof(msg)) {
        p = find_proc(msg.pid);
        if (p != NULL && msg.type == WMSG_READY)
            on_ready(p);
    }
}

static void
answer_close(int fd, const char *line)
{
    ctl_reply(fd, line);
    close(fd);
}

/* fd waits for the next reload's result, unless too many already do: a busy master, which
 * says so. */
static void
queue_reload(int fd)
{
    assert(master.nctl_next <= CTL_CLIENTS_MAX);
    if (master.nctl_next == CTL_CLIENTS_MAX) {
        answer_close(fd, "error: too many clients already wait for a reload");
        return;
    }
    master.ctl_next[master.nctl_next++] = fd;
    start_reload();
}

/* The status's lines on the serving config's upstream servers, in one write (a thousand
 * small ones could fill the socket faster than the client reads: the master never waits). */
static void
reply_upstreams(int fd)
{
    char *text = xmalloc(CTL_REPLY_MAX);
    struct timespec wall;

    clock_gettime(CLOCK_REALTIME, &wall);
    if (upstate_status_text(util_now_ms(), (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
                            text, CTL_REPLY_MAX) > 0)
        ctl_reply(fd, text);
    free(text);
}

/* What `percore -s top` shows, from the shared region: the client makes the rates from
 * successive answers. In one write, as the upstream servers' lines. */
static void
reply_snapshot(int fd)
{
    struct status_buf b;

    status_buf_init(&b, 16 * 1024, CTL_REPLY_MAX - 1);
    status_snapshot_text(&b);
    ctl_reply(fd, b.buf);
    status_buf_free(&b);
}

/* A control client's command line; fd is ours to answer and close. */
static void
on_command(int fd, const char *cmd)
{
    char status[512];

    if (strcmp(cmd, "status") == 0) {
        status_line(status, sizeof(status));
        ctl_reply(fd, status);
        reply_upstreams(fd);
        answer_close(fd, "ok");
    } else if (strcmp(cmd, "top") == 0) {
        reply_snapshot(fd);
        answer_close(fd, "ok");
    } else if (strcmp(cmd, "reload") == 0) {
        queue_reload(fd);
    } else {
        answer_close(fd, "error: unknown command (expected 'reload', 'status' or 'top')");
    }
}

/* The serving generation's workers whose loops have not turned for too long. */
static void
check_hangs(int64_t now)
{
    for (size_t i = 0; i < master.nprocs; i++) {
        struct wproc *p = &master.procs[i];
        int64_t beat = atomic_load(&metrics_slot(p->mslot)->heartbeat_ms);
        if (!p->ready || p->sigkilled || beat == 0 || now - beat < master.conf->worker_watchdog_ms)
            continue;
        log_warnx("worker %u (pid %d) is stuck: its event loop has not turned for %lld ms "
                  "(worker_watchdog %lld ms), killing it", p->slot, (int)p->pid,
                  (long long)(now - beat), (long long)master.conf->worker_watchdog_ms);
        p->hung = 1;
        kill_worker(p); /* on_worker_exit respawns it unless it was draining */
    }
}

/* WATCHDOG=1 only while every ready worker's loop is turning. */
static void
watchdog_tick(int64_t now)
{
    for (size_t i = 0; i < master.nprocs; i++) {
        struct wproc *p = &master.procs[i];
        int64_t beat = atomic_load(&metrics_slot(p->mslot)->heartbeat_ms);
        /* A serving worker killed for hanging counts until it is reaped: one SIGKILL
         * cannot end (uninterruptible sleep) must still stop the pings. */
        if (p->ready && !(p->sigkilled && p->draining) && now - beat > HEARTBEAT_FRESH_MS) {
            log_debug("watchdog: worker %u heartbeat %lld ms old, not pinging", p->slot,
                      (long long)(now - beat));
            return;
        }
    }
    sysd_watchdog_ping();
}

static void
kill_late_drainers(int64_t now)
{
    for (size_t i = 0; i < master.nprocs; i++) {
        struct wproc *p = &master.procs[i];
        if (p->draining && !p->sigkilled && now >= p->kill_at_ms) {
            log_warnx("worker %u (pid %d) did not finish draining in time, killing it",
                      p->slot, (int)p->pid);
            kill_worker(p);
        }
    }
}

static void
respawn_vacant(int64_t now)
{
    for (unsigned i = 0; i < master.nslots; i++) {
        if (master.slots[i].vacant && now >= master.slots[i].respawn_at_ms) {
            master.slots[i].vacant = 0;
            if (spawn(i, master.gen, master.conf) == -1)
                schedule_respawn(i, BACKOFF_MAX_MS);
        }
    }
}

static void
run_timers(int64_t now)
{
    char status[512];

    if (master.state == M_STOPPING && !master.drain_started && now >= master.stop_at_ms)
        begin_drain();
    if (master.state == M_RELOADING && now >= master.reload_deadline_ms)
        reload_failed("new workers not ready in time", NULL);
    kill_late_drainers(now);
    ctl_expire(&master.ctl, now);
    if (now >= master.next_hang_check_ms) {
        check_hangs(now);
        master.next_hang_check_ms = now + HANG_CHECK_MS;
    }
    if (master.watchdog_ms > 0 && now >= master.next_watchdog_ms) {
        watchdog_tick(now);
        master.next_watchdog_ms = now + master.watchdog_ms / 2;
    }
    if (now >= master.next_ticket_rotation_ms) {
        tls_tickets_rotate();
        master.next_ticket_rotation_ms = now + master.conf->tls_ticket_rotation_ms;
    }
    if (now >= master.next_status_ms) {
        update_rate(now);
        if (master.state == M_RUNNING) {
            status_line(status, sizeof(status));
            sysd_status(status);
        }
        master.next_status_ms = now + STATUS_INTERVAL_MS;
    }
    if (master.state == M_STOPPING)
        return;
    respawn_vacant(now);
    if (master.reload_pending && master.state == M_RUNNING) {
        master.reload_pending = 0;
        start_reload();
    }
}

static int64_t
min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Milliseconds until the next timer. */
static int
next_timeout(int64_t now)
{
    int64_t next = min64(min64(master.next_status_ms, master.next_hang_check_ms),
                         min64(master.next_ticket_rotation_ms, ctl_deadline(&master.ctl)));

    if (master.watchdog_ms > 0)
        next = min64(next, master.next_watchdog_ms);
    if (master.state == M_STOPPING && !master.drain_started)
        next = min64(next, master.stop_at_ms);
    if (master.state == M_RELOADING)
        next = min64(next, master.reload_deadline_ms);
    for (size_t i = 0; i < master.nprocs; i++)
        if (master.procs[i].draining && !master.procs[i].sigkilled)
            next = min64(next, master.procs[i].kill_at_ms);
    for (unsigned i = 0; i < master.nslots; i++)
        if (master.slots[i].vacant)
            next = min64(next, master.slots[i].respawn_at_ms);
    next = min64(next, upresolve_deadline(now));
    if (master.reload_pending && master.state == M_RUNNING)
        next = now;
    return next <= now ? 0 : (int)min64(next - now, 60000);
}

static void
setup_signals(void)
{
    sigset_t set;
    int fds[2];

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    /* Blocked before any fork: workers inherit the mask and take theirs by signalfd. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
        fatal("sigprocmask");
    master.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (master.sigfd == -1)
        fatal("signalfd");
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1)
        fatal("pipe2");
    master.notify_rd = fds[0];
    master.notify_wr = fds[1];
}

static void
master_fini(void)
{
    sockets_free(&master.socks);
    free(master.procs);
    free(master.slots);
    conf_free(master.conf);
    upresolve_fini();
    close(master.sigfd);
    close(master.notify_rd);
    close(master.notify_wr);
    ctl_close(&master.ctl);
}

/* Everything master_run needs before its first worker. */
static void
master_init(struct conf *conf, const struct master_opts *opts)
{
    char err[512];
    int64_t now;

    master.opts = opts;
    master.conf = conf;
    master.nslots = slots_for(conf);
    master.gen = master.last_gen = 1;
    master.slots = xcalloc(master.nslots, sizeof(*master.slots));
    master.state = M_STARTING;
    master.watchdog_ms = sysd_watchdog_ms();
    log_set_role(-1, 0);
    master.metrics = metrics_init(WORKER_SLOTS);
    metrics_set_generation(master.gen);
    register_services(master.conf);
    /* The config's upstream servers were registered as it was loaded. */
    master.upstate = upstate_init();
    upstate_commit(master.gen);
    setup_signals();
    if (ctl_start(&master.ctl, err, sizeof(err)) == -1)
        fatalx("%s", err);
    now = util_now_ms();
    master.next_status_ms = now + STATUS_INTERVAL_MS;
    master.next_hang_check_ms = now + HANG_CHECK_MS;
    master.next_ticket_rotation_ms = now + master.conf->tls_ticket_rotation_ms;
    master.next_watchdog_ms = now;
}

/* One turn of the loop: wait for a signal, a worker's message, a control client, an
 * upstream host name's answer or the next timer, and act on it. */
static void
master_turn(void)
{
    struct pollfd pfd[2 + 1 + CTL_PENDING_MAX + UPRESOLVE_FDS_MAX];
    nfds_t n, nres;

    pfd[0] = (struct pollfd){.fd = master.sigfd, .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = master.notify_rd, .events = POLLIN};
    n = 2 + ctl_pollfds(&master.ctl, &pfd[2]);
    nres = upresolve_pollfds(&pfd[n]);
    if (poll(pfd, n + nres, next_timeout(util_now_ms())) == -1 && errno != EINTR)
        fatal("poll");
    if (pfd[0].revents & POLLIN)
        on_signals();
    if (pfd[1].revents & POLLIN)
        on_notify();
    ctl_on_events(&master.ctl, &pfd[2], util_now_ms(), on_command);
    upresolve_run(&pfd[n], nres, util_now_ms());
    run_timers(util_now_ms());
}

int
master_run(struct conf *conf, const struct master_opts *opts)
{
    ASSERT_MASTER();
    /* The master holds the private keys: no process of its user (a worker taken over
     * among them) may read its memory through /proc or ptrace. Workers inherit it. */
    if (prctl(PR_SET_DUMPABLE, 0) == -1)
        log_warn("prctl(PR_SET_DUMPABLE)");
    master_init(conf, opts);
    for (unsigned i = 0; i < master.nslots; i++)
        if (spawn(i, master.gen, master.conf) == -1)
            schedule_respawn(i, BACKOFF_MIN_MS);
    while (!(master.state == M_STOPPING && master.drain_started && master.nprocs == 0))
        master_turn();
    log_info("stopped");
    master_fini();
    return 0;
}
