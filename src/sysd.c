/* systemd integration for the master (notify, watchdog, listen fds, fd store) and for
 * every process's logging (journal). The only file that calls libsystemd. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "sysd.h"
#include "util.h"

size_t
sysd_listen_fds(struct sysd_fd **out)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);

    *out = NULL;
    if (n <= 0)
        return 0;
    *out = xcalloc((size_t)n, sizeof(**out));
    for (int i = 0; i < n; i++) {
        (*out)[i].fd = SD_LISTEN_FDS_START + i;
        (*out)[i].name = names != NULL && names[i] != NULL ? names[i] : xstrdup("unknown");
    }
    free(names);
    return (size_t)n;
}

int
sysd_enabled(void)
{
    return getenv("NOTIFY_SOCKET") != NULL;
}

static void
notify(const char *msg)
{
    /* NotifyAccess=main: only the master may speak, and workers never call this. */
    (void)sd_notify(0, msg);
}

/* "PREFIX" followed by text, as one notification. */
static void
notify2(const char *prefix, const char *text)
{
    char *msg = xasprintf("%s%s", prefix, text);

    notify(msg);
    free(msg);
}

void
sysd_ready(const char *status)
{
    notify2("READY=1\nSTATUS=", status);
}

void
sysd_reloading(void)
{
    struct timespec ts;
    char buf[96];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify(buf);
}

void
sysd_stopping(void)
{
    notify("STOPPING=1\nSTATUS=stopping: draining workers");
}

void
sysd_status(const char *status)
{
    notify2("STATUS=", status);
}

int64_t
sysd_watchdog_ms(void)
{
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return (int64_t)(usec / 1000);
}

void
sysd_watchdog_ping(void)
{
    notify("WATCHDOG=1");
}

int
sysd_fdstore(int fd, const char *name)
{
    char *msg;
    int rc;

    if (!sysd_enabled())
        return 0;
    msg = xasprintf("FDSTORE=1\nFDNAME=%s", name);
    rc = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
    free(msg);
    return rc > 0 ? 0 : -1;
}

void
sysd_fdstore_remove(const char *name)
{
    if (sysd_enabled())
        notify2("FDSTOREREMOVE=1\nFDNAME=", name);
}

int
sysd_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) == -1)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int
sysd_journal(int priority, const char *msg, const char *const *fields, size_t nfields)
{
    struct iovec iov[16];
    char prio[16], *m;
    size_t n = 0;
    int rc;

    snprintf(prio, sizeof(prio), "PRIORITY=%d", priority);
    m = xasprintf("MESSAGE=%s", msg);
    iov[n++] = (struct iovec){m, strlen(m)};
    iov[n++] = (struct iovec){prio, strlen(prio)};
    iov[n++] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=percore", 25};
    for (size_t i = 0; i < nfields && n < 16; i++)
        iov[n++] = (struct iovec){(char *)fields[i], strlen(fields[i])};
    rc = sd_journal_sendv(iov, (int)n);
    free(m);
    return rc;
}
