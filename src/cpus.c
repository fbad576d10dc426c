/* CPU discovery for `workers auto` and `cpu_affinity`, run by the master. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpus.h"
#include "util.h"

static FILE *
open_in(const char *dir, const char *name)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "re");

    free(path);
    return f;
}

/* One number (or "max", read as -1) from dir/name; -1 when absent. */
static long long
read_number(const char *dir, const char *name, long long *second)
{
    FILE *f = open_in(dir, name);
    char first[32], *end;
    long long v;
    int n;

    if (f == NULL)
        return -1;
    n = second != NULL ? fscanf(f, "%31s %lld", first, second) : fscanf(f, "%31s", first);
    fclose(f);
    if (n < 1 || strcmp(first, "max") == 0)
        return -1;
    errno = 0;
    v = strtoll(first, &end, 10);
    /* Anything but a whole number is no quota we can read: none, as for "max". */
    return errno != 0 || end == first || *end != '\0' ? -1 : v;
}

/* Quota from one cgroup directory: v2 "cpu.max" ("max 100000" or "150000 100000") or v1
 * cpu.cfs_quota_us / cpu.cfs_period_us. 0 = no limit there. */
static unsigned
quota_in_dir(const char *dir, int v2)
{
    long long quota, period = 0;

    if (v2) {
        quota = read_number(dir, "cpu.max", &period);
    } else {
        quota = read_number(dir, "cpu.cfs_quota_us", NULL);
        period = read_number(dir, "cpu.cfs_period_us", NULL);
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (unsigned)((quota + period - 1) / period);
}

/* Walk from the process's cgroup up to the root of the mount; the tightest quota wins. */
static unsigned
quota_walk(const char *mount, const char *cgpath, int v2)
{
    char dir[4096 + 4096], *slash;
    unsigned best = 0, q;

    snprintf(dir, sizeof(dir), "%s%s", mount, strcmp(cgpath, "/") == 0 ? "" : cgpath);
    for (;;) {
        q = quota_in_dir(dir, v2);
        if (q != 0 && (best == 0 || q < best))
            best = q;
        if (strlen(dir) <= strlen(mount))
            break;
        slash = strrchr(dir, '/');
        if (slash == NULL || slash < dir + strlen(mount))
            break;
        *slash = '\0';
    }
    return best;
}

unsigned
cpus_cgroup_quota(const char *sysfs_root, const char *proc_cgroup)
{
    char line[4096], mount[1024 + 256];
    unsigned best = 0, q;
    FILE *f = fopen(proc_cgroup, "re");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *ctrl, *path, *nl;
        ctrl = strchr(line, ':');
        if (ctrl == NULL)
            continue;
        path = strchr(++ctrl, ':');
        if (path == NULL)
            continue;
        *path++ = '\0';
        nl = strchr(path, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (ctrl[0] == '\0') { /* v2: "0::/path" */
            snprintf(mount, sizeof(mount), "%s", sysfs_root);
            q = quota_walk(mount, path, 1);
        } else if (strstr(ctrl, "cpu") != NULL && strstr(ctrl, "cpuset") != ctrl) {
            snprintf(mount, sizeof(mount), "%s/%s", sysfs_root, ctrl);
            q = quota_walk(mount, path, 0);
            if (q == 0) {
                snprintf(mount, sizeof(mount), "%s/cpu", sysfs_root);
                q = quota_walk(mount, path, 0);
            }
        } else {
            continue;
        }
        if (q != 0 && (best == 0 || q < best))
            best = q;
    }
    fclose(f);
    return best;
}

unsigned
cpus_auto(void)
{
    cpu_set_t set;
    unsigned n = 1, quota;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    if (n == 0)
        n = 1;
    quota = cpus_cgroup_quota("/sys/fs/cgroup", "/proc/self/cgroup");
    if (quota != 0 && quota < n)
        n = quota;
    return n;
}

int
cpus_nth_allowed(unsigned n)
{
    cpu_set_t set;
    unsigned count, seen = 0;

    if (sched_getaffinity(0, sizeof(set), &set) == -1)
        return -1;
    count = (unsigned)CPU_COUNT(&set);
    if (count == 0)
        return -1;
    n %= count;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        if (seen++ == n)
            return cpu;
    }
    return -1;
}
