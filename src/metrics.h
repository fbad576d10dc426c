/* Shared counters: one slot per worker process in a region the master maps before forking.
 * Each worker writes only its own slot; the master reads all of them for the watchdog
 * and the status line. */
#ifndef PERCORE_METRICS_H
#define PERCORE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

struct metrics_slot {
    _Atomic int64_t heartbeat_ms; /* CLOCK_MONOTONIC of the worker loop's last turn */
    _Atomic uint64_t requests;
    _Atomic uint64_t conns; /* open connections */
    pid_t pid;              /* 0: free; set by the master */
    char pad[128 - 3 * 8 - sizeof(pid_t)];
};

/* Master: map room for n slots (never unmapped: workers of every generation use it). */
void metrics_init(unsigned n);
/* Master: claim a free slot for a worker about to be forked; -1 if none is free. */
int metrics_claim(void);
/* Master: a worker has exited; fold its counts into the retired totals, free the slot. */
void metrics_release(int idx);
struct metrics_slot *metrics_slot(int idx);

struct metrics_totals {
    uint64_t requests;
    uint64_t conns;
};
/* Sum over live slots plus the counts of workers that have exited. */
void metrics_sum(struct metrics_totals *t);

#endif
