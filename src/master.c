/* The master process: listeners, worker generations, respawn with back-off, reload on
 * SIGHUP, graceful stop on SIGTERM/SIGINT. Single-threaded: one poll loop on a signalfd and
 * the pipe on which workers report readiness. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "cpus.h"
#include "listener.h"
#include "log.h"
#include "master.h"
#include "util.h"
#include "worker.h"

#define RELOAD_READY_TIMEOUT_MS 10000
#define KILL_GRACE_MS 2000
#define CRASH_FAST_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

enum mstate { M_STARTING, M_RUNNING, M_RELOADING, M_STOPPING, M_STATE_MAX };

struct wproc {
    pid_t pid;
    unsigned slot, gen;
    int ready;
    int draining;
    int killed;
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
    int64_t stop_at_ms; /* end of shutdown_delay; 0 once the drain has begun */
    int drain_started;
    struct listener *ls;
    size_t nls;
    struct wproc *procs;
    size_t nprocs;
    int sigfd, notify_rd, notify_wr;
};

static struct master m = {.sigfd = -1, .notify_rd = -1, .notify_wr = -1};

static unsigned
slots_for(const struct conf *c)
{
    if (m.opts->workers_override != 0)
        return m.opts->workers_override;
    return c->workers != 0 ? c->workers : cpus_auto();
}

/* ---- listeners ---- */

static struct listener *
find_group(const struct listen_addr *a)
{
    for (size_t i = 0; i < m.nls; i++)
        if (listener_addr_equal(&m.ls[i].addr, a))
            return &m.ls[i];
    return NULL;
}

/* Make sure every address of c has a group of at least nslots sockets. Groups that c does
 * not name keep used == 0; groups opened here get used == 2 so a failed reload can close
 * them again. Returns -1 with a message in err. */
static int
prepare_listeners(const struct conf *c, unsigned nslots, char *err, size_t errlen)
{
    for (size_t i = 0; i < m.nls; i++)
        m.ls[i].used = 0;
    for (size_t i = 0; i < c->nservices; i++) {
        for (size_t j = 0; j < c->services[i].nlistens; j++) {
            const struct listen_addr *a = &c->services[i].listens[j].addr;
            struct listener *l = find_group(a);
            if (l == NULL) {
                if (listener_probe(a, err, errlen) == -1)
                    return -1;
                m.ls = xreallocarray(m.ls, m.nls + 1, sizeof(*m.ls));
                l = &m.ls[m.nls++];
                memset(l, 0, sizeof(*l));
                l->addr = *a;
                l->used = 2;
            } else if (l->used == 0) {
                l->used = 1;
            }
            if (l->nfds < nslots && listener_resize(l, nslots, err, errlen) == -1)
                return -1;
        }
    }
    return 0;
}

/* Close groups whose used mark is `mark`; compact the array. */
static void
close_groups(int mark)
{
    size_t k = 0;

    for (size_t i = 0; i < m.nls; i++) {
        if (m.ls[i].used == mark) {
            log_info("closing listener %s", m.ls[i].addr.text);
            listener_close(&m.ls[i]);
        } else {
            m.ls[k++] = m.ls[i];
        }
    }
    m.nls = k;
}

void
master_open_listeners(struct conf *conf, const struct master_opts *opts)
{
    char err[256];

    m.opts = opts;
    if (prepare_listeners(conf, slots_for(conf), err, sizeof(err)) == -1)
        fatalx("cannot listen: %s", err);
}

/* ---- worker processes ---- */

static struct wproc *
find_proc(pid_t pid)
{
    for (size_t i = 0; i < m.nprocs; i++)
        if (m.procs[i].pid == pid)
            return &m.procs[i];
    return NULL;
}

static void
remove_proc(struct wproc *p)
{
    *p = m.procs[--m.nprocs];
}

static int
spawn(unsigned slot, unsigned gen, const struct conf *c)
{
    int master_fds[] = {m.sigfd, m.notify_rd};
    struct worker_args args = {
        .conf = c,
        .listeners = m.ls,
        .nlisteners = m.nls,
        .slot = slot,
        .gen = gen,
        .master_pid = getpid(),
        .cpu = c->cpu_affinity ? cpus_nth_allowed(slot) : -1,
        .notify_fd = m.notify_wr,
        .master_fds = master_fds,
        .nmaster_fds = NELEMS(master_fds),
    };
    pid_t pid = fork();

    if (pid == -1) {
        log_warn("fork for worker %u", slot);
        return -1;
    }
    if (pid == 0)
        worker_run(&args);
    m.procs = xreallocarray(m.procs, m.nprocs + 1, sizeof(*m.procs));
    m.procs[m.nprocs++] = (struct wproc){
        .pid = pid, .slot = slot, .gen = gen, .started_ms = util_now_ms()};
    log_debug("started worker %u (pid %d, generation %u)", slot, (int)pid, gen);
    return 0;
}

static void
schedule_respawn(unsigned slot, int64_t delay_ms)
{
    m.slots[slot].vacant = 1;
    m.slots[slot].respawn_at_ms = util_now_ms() + delay_ms;
}

/* Send SIGTERM to every worker of generations other than keep_gen (0: all) and give them
 * shutdown_timeout plus a grace before SIGKILL. */
static void
drain_workers(unsigned keep_gen, int64_t timeout_ms)
{
    int64_t kill_at = util_now_ms() + timeout_ms + KILL_GRACE_MS;

    for (size_t i = 0; i < m.nprocs; i++) {
        struct wproc *p = &m.procs[i];
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

    for (size_t i = 0; i < m.nprocs; i++)
        if (m.procs[i].gen == gen && m.procs[i].ready && !m.procs[i].draining)
            n++;
    return n;
}

/* ---- reload ---- */

static void
abort_reload(const char *why)
{
    for (size_t i = 0; i < m.nprocs; i++) {
        struct wproc *p = &m.procs[i];
        if (p->gen == m.next_gen && !p->draining) {
            p->draining = 1;
            p->killed = 1;
            kill(p->pid, SIGKILL);
        }
    }
    close_groups(2);
    conf_free(m.next_conf);
    m.next_conf = NULL;
    m.state = M_RUNNING;
    log_warnx("reload failed: %s; generation %u keeps serving", why, m.gen);
}

static void
commit_reload(void)
{
    int64_t old_timeout = m.conf->shutdown_timeout_ms;

    drain_workers(m.next_gen, old_timeout);
    /* Groups no longer named close now; the draining workers hold their own copies until
     * they exit, and the new workers never poll them. */
    close_groups(0);
    for (size_t i = 0; i < m.nls; i++) {
        char err[256];
        if (m.ls[i].nfds > m.next_nslots)
            (void)listener_resize(&m.ls[i], m.next_nslots, err, sizeof(err));
        m.ls[i].used = 1;
    }
    conf_free(m.conf);
    m.conf = m.next_conf;
    m.next_conf = NULL;
    m.gen = m.next_gen;
    free(m.slots);
    m.nslots = m.next_nslots;
    m.slots = xcalloc(m.nslots, sizeof(*m.slots));
    m.state = M_RUNNING;
    log_info("reload done: generation %u serving with %u worker%s", m.gen, m.nslots,
             m.nslots == 1 ? "" : "s");
}

static void
start_reload(void)
{
    struct conf_diag diag = {0};
    struct conf *c;
    unsigned n;
    char err[256];

    if (m.state == M_RELOADING || m.state == M_STARTING) {
        m.reload_pending = 1;
        return;
    }
    if (m.state == M_STOPPING)
        return;
    log_info("reloading %s", m.opts->conf_path);
    c = conf_load(m.opts->conf_path, &diag);
    if (c == NULL) {
        for (size_t i = 0; i < diag.n; i++)
            log_warnx("%s", diag.msgs[i]);
        conf_diag_clear(&diag);
        log_warnx("reload failed: configuration has errors; generation %u keeps serving",
                  m.gen);
        return;
    }
    n = slots_for(c);
    if (prepare_listeners(c, n, err, sizeof(err)) == -1) {
        close_groups(2);
        for (size_t i = 0; i < m.nls; i++)
            m.ls[i].used = 1;
        conf_free(c);
        log_warnx("reload failed: cannot listen: %s; generation %u keeps serving", err, m.gen);
        return;
    }
    m.next_conf = c;
    m.next_nslots = n;
    m.next_gen = ++m.last_gen;
    m.state = M_RELOADING;
    m.reload_deadline_ms = util_now_ms() + RELOAD_READY_TIMEOUT_MS;
    for (unsigned i = 0; i < n; i++) {
        if (spawn(i, m.next_gen, c) == -1) {
            abort_reload("cannot fork the new workers");
            return;
        }
    }
}

/* ---- stop ---- */

static void
begin_drain(void)
{
    m.drain_started = 1;
    m.stop_at_ms = 0;
    log_info("stopping: draining %zu workers (shutdown_timeout %lld ms)", m.nprocs,
             (long long)m.conf->shutdown_timeout_ms);
    drain_workers(0, m.conf->shutdown_timeout_ms);
}

static void
start_stop(int signo)
{
    if (m.state == M_STOPPING) {
        if (!m.drain_started) {
            begin_drain();
            return;
        }
        log_warnx("second %s: stopping now", strsignal(signo));
        for (size_t i = 0; i < m.nprocs; i++) {
            m.procs[i].killed = 1;
            kill(m.procs[i].pid, SIGKILL);
        }
        return;
    }
    if (m.state == M_RELOADING)
        abort_reload("stopping");
    m.state = M_STOPPING;
    if (m.conf->shutdown_delay_ms > 0) {
        log_info("stopping after shutdown_delay of %lld ms; still accepting until then",
                 (long long)m.conf->shutdown_delay_ms);
        m.stop_at_ms = util_now_ms() + m.conf->shutdown_delay_ms;
    } else {
        begin_drain();
    }
}

/* ---- events ---- */

static void
describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "died (signal %d, %s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended (status 0x%x)", status);
}

static void
on_worker_exit(struct wproc *p, int status)
{
    char what[96];
    struct slot *s;
    int64_t lived, delay;

    describe_status(status, what, sizeof(what));
    if (p->draining) {
        if (p->killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
            log_debug("worker %u (pid %d, generation %u) %s", p->slot, (int)p->pid, p->gen,
                      what);
        else
            log_warnx("worker %u (pid %d, generation %u) %s while draining", p->slot,
                      (int)p->pid, p->gen, what);
        remove_proc(p);
        return;
    }
    if (m.state == M_RELOADING && p->gen == m.next_gen) {
        char why[160];
        snprintf(why, sizeof(why), "new worker %u (pid %d) %s before it was ready", p->slot,
                 (int)p->pid, what);
        remove_proc(p);
        abort_reload(why);
        return;
    }
    if (m.state == M_STOPPING || p->gen != m.gen || p->slot >= m.nslots) {
        log_warnx("worker %u (pid %d) %s", p->slot, (int)p->pid, what);
        remove_proc(p);
        return;
    }
    /* A worker of the serving generation crashed: respawn at once, unless it keeps dying
     * young, then back off exponentially so a crash loop does not spin the CPU. */
    s = &m.slots[p->slot];
    lived = util_now_ms() - p->started_ms;
    s->failures = lived < CRASH_FAST_MS ? s->failures + 1 : 0;
    delay = 0;
    if (s->failures > 1) {
        delay = BACKOFF_MIN_MS << (s->failures - 2 < 7 ? s->failures - 2 : 7);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
    }
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

    while (read(m.sigfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap();
            break;
        case SIGHUP:
            start_reload();
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
    p->ready = 1;
    if (m.state == M_STARTING && p->gen == m.gen && count_ready(m.gen) == m.nslots) {
        m.state = M_RUNNING;
        log_info("ready: %u worker%s serving generation %u", m.nslots, m.nslots == 1 ? "" : "s",
                 m.gen);
    } else if (m.state == M_RELOADING && p->gen == m.next_gen &&
               count_ready(m.next_gen) == m.next_nslots) {
        commit_reload();
    } else if (p->gen == m.gen) {
        m.slots[p->slot].vacant = 0;
        log_debug("worker %u (pid %d) ready", p->slot, (int)p->pid);
    }
}

static void
on_notify(void)
{
    struct wmsg msg;
    struct wproc *p;

    while (read(m.notify_rd, &msg, sizeof(msg)) == sizeof(msg)) {
        p = find_proc(msg.pid);
        if (p != NULL && msg.type == WMSG_READY)
            on_ready(p);
    }
}

static void
run_timers(int64_t now)
{
    if (m.state == M_STOPPING && !m.drain_started && now >= m.stop_at_ms)
        begin_drain();
    if (m.state == M_RELOADING && now >= m.reload_deadline_ms)
        abort_reload("new workers not ready in time");
    for (size_t i = 0; i < m.nprocs; i++) {
        struct wproc *p = &m.procs[i];
        if (p->draining && !p->killed && now >= p->kill_at_ms) {
            log_warnx("worker %u (pid %d) did not finish draining in time, killing it",
                      p->slot, (int)p->pid);
            p->killed = 1;
            kill(p->pid, SIGKILL);
        }
    }
    if (m.state == M_STOPPING)
        return;
    for (unsigned i = 0; i < m.nslots; i++) {
        if (m.slots[i].vacant && now >= m.slots[i].respawn_at_ms) {
            m.slots[i].vacant = 0;
            if (spawn(i, m.gen, m.conf) == -1)
                schedule_respawn(i, BACKOFF_MAX_MS);
        }
    }
    if (m.reload_pending && m.state == M_RUNNING) {
        m.reload_pending = 0;
        start_reload();
    }
}

/* Milliseconds until the next timer, or -1 for none. */
static int
next_timeout(int64_t now)
{
    int64_t next = INT64_MAX;

    if (m.state == M_STOPPING && !m.drain_started)
        next = m.stop_at_ms;
    if (m.state == M_RELOADING && m.reload_deadline_ms < next)
        next = m.reload_deadline_ms;
    for (size_t i = 0; i < m.nprocs; i++)
        if (m.procs[i].draining && !m.procs[i].killed && m.procs[i].kill_at_ms < next)
            next = m.procs[i].kill_at_ms;
    for (unsigned i = 0; i < m.nslots; i++)
        if (m.slots[i].vacant && m.slots[i].respawn_at_ms < next)
            next = m.slots[i].respawn_at_ms;
    if (m.reload_pending && m.state == M_RUNNING)
        next = now;
    if (next == INT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
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
    /* Blocked before any fork: workers inherit the mask and take SIGTERM by signalfd. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
        fatal("sigprocmask");
    m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sigfd == -1)
        fatal("signalfd");
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1)
        fatal("pipe2");
    m.notify_rd = fds[0];
    m.notify_wr = fds[1];
}

int
master_run(struct conf *conf, const struct master_opts *opts)
{
    struct pollfd pfd[2];
    int64_t now;

    m.opts = opts;
    m.conf = conf;
    m.nslots = slots_for(conf);
    m.gen = m.last_gen = 1;
    m.slots = xcalloc(m.nslots, sizeof(*m.slots));
    m.state = M_STARTING;
    log_set_role("master");
    setup_signals();
    for (unsigned i = 0; i < m.nslots; i++)
        if (spawn(i, m.gen, m.conf) == -1)
            schedule_respawn(i, BACKOFF_MIN_MS);
    for (;;) {
        if (m.state == M_STOPPING && m.drain_started && m.nprocs == 0)
            break;
        pfd[0] = (struct pollfd){.fd = m.sigfd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = m.notify_rd, .events = POLLIN};
        if (poll(pfd, 2, next_timeout(util_now_ms())) == -1 && errno != EINTR)
            fatal("poll");
        if (pfd[0].revents & POLLIN)
            on_signals();
        if (pfd[1].revents & POLLIN)
            on_notify();
        now = util_now_ms();
        run_timers(now);
    }
    log_info("stopped");
    for (size_t i = 0; i < m.nls; i++)
        listener_close(&m.ls[i]);
    free(m.ls);
    free(m.procs);
    free(m.slots);
    conf_free(m.conf);
    close(m.sigfd);
    close(m.notify_rd);
    close(m.notify_wr);
    return 0;
}
