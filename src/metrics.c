/* Shared per-worker counters and heartbeats (mapped by the master, written by workers). */
#include "config.h"

#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "metrics.h"

static struct metrics_slot *slots;
static unsigned nslots;
static uint64_t retired_requests;

void
metrics_init(unsigned n)
{
    slots = mmap(NULL, n * sizeof(*slots), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
    if (slots == MAP_FAILED)
        fatal("mmap of %u metrics slots", n);
    nslots = n;
}

int
metrics_claim(void)
{
    for (unsigned i = 0; i < nslots; i++) {
        if (slots[i].pid == 0) {
            memset(&slots[i], 0, sizeof(slots[i]));
            slots[i].pid = -1; /* reserved until the fork returns */
            return (int)i;
        }
    }
    return -1;
}

void
metrics_release(int idx)
{
    if (idx < 0 || (unsigned)idx >= nslots)
        return;
    retired_requests += atomic_load(&slots[idx].requests);
    memset(&slots[idx], 0, sizeof(slots[idx]));
}

struct metrics_slot *
metrics_slot(int idx)
{
    return &slots[idx];
}

void
metrics_sum(struct metrics_totals *t)
{
    t->requests = retired_requests;
    t->conns = 0;
    for (unsigned i = 0; i < nslots; i++) {
        if (slots[i].pid == 0)
            continue;
        t->requests += atomic_load(&slots[i].requests);
        t->conns += atomic_load(&slots[i].conns);
    }
}
