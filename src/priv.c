/* Dropping privileges: priv_check runs in the master (at start and at each reload),
 * priv_drop in each worker once it has opened everything it needs. The master stays root:
 * it reads configs, certificates and keys and binds sockets on reload. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conf.h"
#include "priv.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Nothing to change: the process already is that user and group. */
static int
already(const struct conf *c)
{
    return getuid() == c->uid && geteuid() == c->uid && getgid() == c->gid &&
           getegid() == c->gid;
}

int
priv_check(const struct conf *c, char *err, size_t errlen)
{
    if (c->user == NULL || geteuid() == 0 || already(c))
        return 0;
    if (getuid() != c->uid || geteuid() != c->uid)
        snprintf(err, errlen, "user: percore runs as uid %u, not root: cannot switch to "
                 "'%s' (uid %u)", (unsigned)geteuid(), c->user, (unsigned)c->uid);
    else
        snprintf(err, errlen, "group: percore runs as gid %u, not root: cannot switch to "
                 "gid %u", (unsigned)getegid(), (unsigned)c->gid);
    return -1;
}

/* The ids as the kernel now has them, all three of each, and no supplementary group other
 * than the gid. */
static int
verify(const struct conf *c, char *err, size_t errlen)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg, groups[2];
    int n;

    if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1) {
        snprintf(err, errlen, "getresuid: %s", strerror(errno));
        return -1;
    }
    if (ru != c->uid || eu != c->uid || su != c->uid || rg != c->gid || eg != c->gid ||
        sg != c->gid) {
        snprintf(err, errlen, "ids did not stick: uid %u/%u/%u gid %u/%u/%u", (unsigned)ru,
                 (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg);
        return -1;
    }
    n = getgroups(2, groups);
    if (n < 0 || n > 1 || (n == 1 && groups[0] != c->gid)) {
        snprintf(err, errlen, "supplementary groups left after setgroups");
        return -1;
    }
    return 0;
}

/* Empty every capability set the process has left (the inheritable one survives
 * setresuid) and check the kernel agrees. */
static int
clear_caps(char *err, size_t errlen)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) == -1 || syscall(SYS_capget, &hdr, data) == -1) {
        snprintf(err, errlen, "capset: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective != 0 || data[i].permitted != 0 || data[i].inheritable != 0) {
            snprintf(err, errlen, "capabilities left after setresuid");
            return -1;
        }
    return 0;
}

int
priv_drop(const struct conf *c, char *err, size_t errlen)
{
    if (c->user == NULL || already(c))
        return 0;
    /* Supplementary groups cleared, not the user's (no initgroups): a worker needs none. */
    if (setgroups(0, NULL) == -1) {
        snprintf(err, errlen, "setgroups: %s", strerror(errno));
        return -1;
    }
    if (setresgid(c->gid, c->gid, c->gid) == -1) {
        snprintf(err, errlen, "setresgid(%u): %s", (unsigned)c->gid, strerror(errno));
        return -1;
    }
    /* From uid 0 to another, without PR_SET_KEEPCAPS, the kernel clears the permitted and
     * effective capability sets; the bounding set then only limits what exec could gain,
     * and no_new_privs forbids that. */
    if (setresuid(c->uid, c->uid, c->uid) == -1) {
        snprintf(err, errlen, "setresuid(%u): %s", (unsigned)c->uid, strerror(errno));
        return -1;
    }
    if (verify(c, err, errlen) == -1 || clear_caps(err, errlen) == -1)
        return -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 && errno != EINVAL) {
        snprintf(err, errlen, "prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return -1;
    }
    return 0;
}
