/* `workers auto`: affinity mask capped by cgroup v1 and v2 CPU quotas. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpus.h"

static char root[64];

static void
mk(const char *rel)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    cr_assert(mkdir(path, 0755) == 0 || access(path, F_OK) == 0, "mkdir %s", path);
}

static void
put(const char *rel, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void
setup(void)
{
    snprintf(root, sizeof(root), "/tmp/percore-cg-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void
teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    (void)!system(cmd);
}

static unsigned
quota(void)
{
    char sys[128], proc[128];

    snprintf(sys, sizeof(sys), "%s/sys", root);
    snprintf(proc, sizeof(proc), "%s/cgroup", root);
    return cpus_cgroup_quota(sys, proc);
}

TestSuite(cpus, .init = setup, .fini = teardown);

Test(cpus, v2_quota_rounds_up)
{
    mk("sys");
    mk("sys/svc");
    put("cgroup", "0::/svc\n");
    put("sys/svc/cpu.max", "150000 100000\n");
    cr_assert_eq(quota(), 2);
}

Test(cpus, v2_unlimited)
{
    mk("sys");
    mk("sys/svc");
    put("cgroup", "0::/svc\n");
    put("sys/svc/cpu.max", "max 100000\n");
    cr_assert_eq(quota(), 0);
}

Test(cpus, v2_parent_limit_applies)
{
    mk("sys");
    mk("sys/slice");
    mk("sys/slice/svc");
    put("cgroup", "0::/slice/svc\n");
    put("sys/slice/svc/cpu.max", "max 100000\n");
    put("sys/slice/cpu.max", "100000 100000\n");
    cr_assert_eq(quota(), 1);
}

Test(cpus, v2_container_root)
{
    mk("sys");
    put("cgroup", "0::/\n");
    put("sys/cpu.max", "300000 100000\n");
    cr_assert_eq(quota(), 3);
}

Test(cpus, v1_quota)
{
    mk("sys");
    mk("sys/cpu,cpuacct");
    mk("sys/cpu,cpuacct/docker");
    put("cgroup", "12:memory:/docker\n4:cpu,cpuacct:/docker\n");
    put("sys/cpu,cpuacct/docker/cpu.cfs_quota_us", "250000\n");
    put("sys/cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(quota(), 3);
}

Test(cpus, v1_unlimited)
{
    mk("sys");
    mk("sys/cpu,cpuacct");
    put("cgroup", "4:cpu,cpuacct:/\n");
    put("sys/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put("sys/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(quota(), 0);
}

Test(cpus, auto_within_affinity)
{
    cpu_set_t set;
    unsigned n = cpus_auto();

    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    cr_assert_geq(n, 1);
    cr_assert_leq(n, (unsigned)CPU_COUNT(&set));
    cr_assert(CPU_ISSET(cpus_nth_allowed(0), &set));
}
