/* A worker process: one single-threaded libh2o event loop serving its slot's sockets. */
#ifndef PERCORE_WORKER_H
#define PERCORE_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conf;
struct listener;

/* What a worker inherits from the master at fork (read-only). */
struct worker_args {
    const struct conf *conf;
    const struct listener *listeners;
    size_t nlisteners;
    unsigned slot;
    unsigned gen;
    pid_t master_pid;
    int cpu;       /* pin to this CPU, or -1 */
    int notify_fd; /* write end of the master's worker-message pipe */
    int metrics_idx; /* this worker's slot in the shared counters */
    const int *master_fds; /* fds of the master's own, closed in the worker */
    size_t nmaster_fds;
};

/* Messages on the notify pipe; one write each, so they never interleave. */
enum wmsg_type { WMSG_READY = 1 };
struct wmsg {
    pid_t pid;
    uint32_t type;
};

/* Whether one more request error may be logged in this second (a worker logs at most 20
 * a second; the rest are counted in one line). */
int worker_error_line_allowed(void);

/* Run the worker until it is told to stop and has drained; never returns. */
void worker_run(const struct worker_args *args) __attribute__((noreturn));

#endif
