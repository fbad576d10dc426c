/* CPUs this process may really use: the affinity mask, capped by a cgroup CPU quota. */
#ifndef PERCORE_CPUS_H
#define PERCORE_CPUS_H

#include <sched.h>

/* The number of workers for `workers auto`: CPUs in the affinity mask, capped by the
 * cgroup (v2 cpu.max or v1 cfs quota) of this process, rounded up; at least 1. */
unsigned cpus_auto(void);
/* The CPU quota in whole CPUs (rounded up) found under sysfs_root for the cgroup named in
 * proc_cgroup (a /proc/PID/cgroup file), walking up to the root; 0 when unlimited. */
unsigned cpus_cgroup_quota(const char *sysfs_root, const char *proc_cgroup);
/* The id of the n-th CPU (modulo the count) in this process's affinity mask, or -1. */
int cpus_nth_allowed(unsigned n);

#endif
