/* What a worker inherits from the master, all in one place (as Varnish's heritage.h): the
 * master fills one in for each worker just before the fork, and worker_run takes it. Read
 * only in the worker, which frees nothing in it: its memory stays the master's (the
 * worker's copy of it goes with the worker). Of the fds, a worker keeps its slot's socket
 * of each group it serves and notify_fd, and closes the master's own first thing; it also
 * holds the files roots (O_PATH) of every config the master held at the fork, its own in
 * use and those of a generation draining or coming, which give no access by themselves. */
#ifndef PERCORE_HERITAGE_H
#define PERCORE_HERITAGE_H

#include <assert.h>
#include <stddef.h>
#include <sys/types.h>

struct conf;
struct listener;
struct metrics_region;
struct tls_tickets;
struct upstate_region;

struct heritage {
    /* Who the worker is. */
    unsigned slot;    /* which socket of each group it polls; "worker N" in the log */
    unsigned gen;     /* the config generation it serves */
    int cpu;          /* the CPU to pin itself to, or -1 */
    pid_t master_pid; /* its parent: a worker whose parent is another has lost its master */

    /* What it serves: the generation's config tree (immutable after load: workers never
     * write to it; the TLS contexts in it carry the session ticket callbacks) and every
     * listener group the master holds, of which it polls those its config names. */
    const struct conf *conf;
    const struct listener *listeners;
    size_t nlisteners;

    /* Shared memory, mapped by the master before the first fork and never unmapped: the
     * workers' counters and heartbeats (metrics.c; the worker writes only slot
     * metrics_idx), the session ticket secrets (tls.c; NULL if never made), and the
     * upstream servers' health and counters (upstate.c). A worker attaches to them at
     * start, before it makes any use of them. The addresses of upstream host names
     * (upresolve.c) need no attaching: each server in the config tree points at its slot,
     * mapped before the fork of any worker whose config names it. */
    struct metrics_region *metrics;
    int metrics_idx;
    struct tls_tickets *tickets;
    struct upstate_region *upstate;

    /* fds: the write end of the master's worker-message pipe (struct wmsg, worker.h), and
     * the master's own (signalfd, that pipe's read end, the control socket, its clients),
     * which the worker closes. */
    int notify_fd;
    const int *master_fds;
    size_t nmaster_fds;
};

/* Which process runs: the master (also before it forks, and percore -t), or a worker,
 * from the fork on. Functions of one process only assert it. */
enum process_role { ROLE_MASTER, ROLE_WORKER };
extern enum process_role process_role;

#define ASSERT_MASTER() assert(process_role == ROLE_MASTER)
#define ASSERT_WORKER() assert(process_role == ROLE_WORKER)

#endif
