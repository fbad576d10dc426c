/* The workers' seccomp sandbox (libseccomp), installed by each worker as the last step of
 * its set-up, and the master's naming of the call that killed one.
 *
 * What a worker does once set up is small and known: accept, read and write sockets, open
 * files read-only, stat them and send them, connect to upstreams, allocate memory, tell the
 * time, write its logs. Everything else (exec, fork, ptrace, mount, writing files, making
 * code executable, changing ids or signal handlers ...) is what an attacker who took over
 * the worker would need next, and ends the worker.
 *
 * A forbidden call traps (SECCOMP_RET_TRAP) rather than killing in the kernel
 * (SECCOMP_RET_KILL_PROCESS): the SIGSYS handler writes the call's number into the
 * worker's metrics slot, where the master reads it to name the call, and the worker then
 * dies of that SIGSYS. The trap cannot be disarmed: rt_sigaction is not allowed once the
 * filter is in, and a SIGSYS the worker blocked or ignored is delivered with its default
 * action (death) by the kernel anyway. KILL_PROCESS would tell the master only "signal 31",
 * and libseccomp cannot use it where seccomp(2) itself is filtered out (as systemd's
 * @system-service does), falling back to prctl(PR_SET_SECCOMP). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "conf.h"
#include "heritage.h"
#include "metrics.h"
#include "sandbox.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a seccomp trap (asm-generic/siginfo.h) */
#endif

/* Allowed with any arguments. A name the architecture lacks is skipped. */
static const char *const allowed[] = {
    /* the event loop and its sockets */
    "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "accept", "read", "readv", "write",
    "writev", "recvfrom", "recvmsg", "sendto", "sendmsg", "sendmmsg", "shutdown", "close",
    "getsockopt", "setsockopt", "getsockname", "getpeername", "connect", "poll", "ppoll",
    /* files: served read-only (openat below), stat, sent, listed */
    "pread64", "preadv", "lseek", "sendfile", "fstat", "newfstatat", "statx", "lstat", "stat",
    "readlink", "readlinkat", "getdents64",
    /* realpath(3), the files handler's check without openat2: it asks if a name exists */
    "access", "faccessat", "faccessat2",
    /* memory (mmap and mprotect below) */
    "brk", "munmap", "mremap", "madvise",
    /* time, identity, ending */
    "clock_gettime", "gettimeofday", "clock_nanosleep", "nanosleep", "getpid", "gettid",
    "getrandom", "futex", "sched_yield", "rt_sigprocmask", "rt_sigreturn", "exit",
    "exit_group",
};

static struct metrics_slot *record; /* where the SIGSYS handler writes */

/* A forbidden call: leave its number for the master, then die of SIGSYS (SA_RESETHAND
 * made its action the default again). */
static void
on_sigsys(int signo, siginfo_t *si, void *uctx)
{
    sigset_t set;

    (void)uctx;
    if (si->si_code == SYS_SECCOMP && record != NULL) {
        atomic_store(&record->sandbox_arch, si->si_arch);
        atomic_store(&record->sandbox_nr, si->si_syscall + 1);
    }
    sigemptyset(&set);
    sigaddset(&set, signo);
    (void)raise(signo); /* pending while the handler runs... */
    (void)sigprocmask(SIG_UNBLOCK, &set, NULL); /* ...delivered here */
    _exit(128 + signo); /* NOTREACHED */
}

static int
allow(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *cmp)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0;
    return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
}

static int
allow_list(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (allow(ctx, names[i], 0, NULL) < 0)
            return -1;
    return 0;
}

/* Whether the worker writes a log file or access log, which it reopens on SIGUSR1. */
static int
writes_log_files(const struct conf *c)
{
    if (c->log_target == LOG_TARGET_FILE)
        return 1;
    for (size_t i = 0; i < c->nservices; i++)
        if (c->services[i].access_log.path != NULL)
            return 1;
    return 0;
}

/* fcntl for what the loop does with descriptors (flags, close-on-exec, the lingering
 * close's duplicate), never F_SETOWN/F_SETSIG or O_ASYNC: with those a worker could
 * signal any process of its user, the master among them. */
static int
allow_fcntl(scmp_filter_ctx ctx)
{
    const int plain[] = {F_GETFD, F_SETFD, F_GETFL, F_DUPFD_CLOEXEC};
    struct scmp_arg_cmp setfl[] = {
        SCMP_A1(SCMP_CMP_EQ, F_SETFL, 0),
        SCMP_A2(SCMP_CMP_MASKED_EQ, O_ASYNC, 0),
    };

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        struct scmp_arg_cmp cmd = SCMP_A1(SCMP_CMP_EQ, (uint64_t)plain[i], 0);
        if (allow(ctx, "fcntl", 1, &cmd) < 0)
            return -1;
    }
    return allow(ctx, "fcntl", 2, setfl);
}

/* The calls allowed only with some arguments. */
static int
allow_with_args(scmp_filter_ctx ctx, const struct conf *c)
{
    /* Opens that cannot write, create or truncate. */
    const uint64_t wmask = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND;
    struct scmp_arg_cmp rdonly = SCMP_A2(SCMP_CMP_MASKED_EQ, wmask, O_RDONLY);
    /* The log files' reopen (log.c, accesslog.c): append, create, nothing more, and a
     * mode that makes nothing executable or set-id. Only the low 32 bits of the flags:
     * the kernel reads an int. */
    struct scmp_arg_cmp logopen[] = {
        SCMP_A2(SCMP_CMP_MASKED_EQ, (uint32_t) ~(O_CLOEXEC | O_NOCTTY),
                O_WRONLY | O_APPEND | O_CREAT),
        SCMP_A3(SCMP_CMP_MASKED_EQ, S_IXUSR | S_IXGRP | S_IXOTH | S_ISUID | S_ISGID | S_ISVTX, 0),
    };
    /* No executable memory: code is mapped before the sandbox or never. */
    struct scmp_arg_cmp noexec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
    /* Upstreams: IP and Unix sockets, no other family. */
    const int families[] = {AF_INET, AF_INET6, AF_UNIX};
    /* Signals only to itself: raise() and abort(). */
    struct scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ, (uint64_t)getpid(), 0);
    int nr;

    if (allow(ctx, "openat", 1, &rdonly) < 0 || allow(ctx, "mmap", 1, &noexec) < 0 ||
        allow(ctx, "mprotect", 1, &noexec) < 0 || allow(ctx, "tgkill", 1, &self) < 0)
        return -1;
    if (writes_log_files(c) && allow(ctx, "openat", 2, logopen) < 0)
        return -1;
    if (allow_fcntl(ctx) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        struct scmp_arg_cmp fam = SCMP_A0(SCMP_CMP_EQ, (uint64_t)families[i], 0);
        if (allow(ctx, "socket", 1, &fam) < 0)
            return -1;
    }
    /* openat2's flags sit in memory no filter can read: the files handler hears "no such
     * call" and checks its opens with realpath instead (hnd_files.c). */
    nr = seccomp_syscall_resolve_name("openat2");
    if (nr != __NR_SCMP_ERROR && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0) < 0)
        return -1;
    return 0;
}

static scmp_filter_ctx
build(const struct conf *c)
{
#ifdef PERCORE_SANDBOX_LOG_ONLY
    /* Development: log what would be forbidden (the kernel log's type=1326 lines). */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_LOG);
#else
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
#endif

    if (ctx == NULL)
        return NULL;
    if (allow_list(ctx, allowed, sizeof(allowed) / sizeof(allowed[0])) == -1 ||
        allow_with_args(ctx, c) == -1)
        goto fail;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
    /* Sanitizer builds only: a report asks whether stderr is a terminal (for colours),
     * and the runtime drops its alternate signal stack when the worker exits. */
    if (allow(ctx, "ioctl", 1, &(struct scmp_arg_cmp)SCMP_A1(SCMP_CMP_EQ, TCGETS, 0)) < 0 ||
        allow(ctx, "sigaltstack", 0, NULL) < 0)
        goto fail;
#endif
    return ctx;
fail:
    seccomp_release(ctx);
    return NULL;
}

int
sandbox_install(const struct conf *c, struct metrics_slot *slot, char *err, size_t errlen)
{
    struct sigaction sa;
    scmp_filter_ctx ctx;
    int rc;

    ASSERT_WORKER();
    ctx = build(c);
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot build the seccomp filter");
        return -1;
    }
    record = slot;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) == -1) {
        snprintf(err, errlen, "sigaction(SIGSYS): %s", strerror(errno));
        goto fail;
    }
    /* Without privileges no filter may go in otherwise; a worker left with root's (no
     * `user`) needs it as much. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        goto fail;
    }
#if defined(__SANITIZE_ADDRESS__)
    /* The runtime caches what its reports read (memory maps, the executable's path), and
     * its symbolizer, a process it talks to through pipes, is started now. */
    __sanitizer_sandbox_arguments sargs = {0, -1, 0};
    char sym[256];
    __sanitizer_sandbox_on_notify(&sargs);
    __sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", sym, sizeof(sym));
#endif
    rc = seccomp_load(ctx);
    if (rc < 0) {
        snprintf(err, errlen, "seccomp_load: %s", strerror(-rc));
        goto fail;
    }
    seccomp_release(ctx);
    return 0;
fail:
    seccomp_release(ctx);
    return -1;
}

void
sandbox_describe(const struct metrics_slot *slot, char *buf, size_t len)
{
    /* Written by the worker: any value, read without trusting it. */
    unsigned stored = (unsigned)atomic_load(&slot->sandbox_nr);
    unsigned arch = atomic_load(&slot->sandbox_arch);
    int nr;
    char *name;

    ASSERT_MASTER();
    if (stored == 0 || stored > INT_MAX) {
        buf[0] = '\0';
        return;
    }
    nr = (int)stored - 1;
    name = arch == seccomp_arch_native() ? seccomp_syscall_resolve_num_arch(arch, nr) : NULL;
    if (name != NULL)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "syscall %d", nr);
    free(name);
}
