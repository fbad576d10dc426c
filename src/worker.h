/* A worker process: one single-threaded libh2o event loop serving its slot's sockets. */
#ifndef PERCORE_WORKER_H
#define PERCORE_WORKER_H

#include <stdint.h>
#include <sys/types.h>

#include "heritage.h"

/* Messages on the notify pipe; one write each, so they never interleave. */
enum wmsg_type { WMSG_READY = 1 };
struct wmsg {
    pid_t pid;
    uint32_t type;
};

/* Whether one more request error may be logged in this second (a worker logs at most 20
 * a second; the rest are counted in one line). */
int worker_error_line_allowed(void);

/* Run the worker with what it inherited from the master (h, which must outlive it) until
 * it is told to stop and has drained; never returns. */
void worker_run(const struct heritage *h) __attribute__((noreturn));

#endif
