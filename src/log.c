/* Logging for master and workers: plain lines on stderr, prefixed with the role. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char log_role[32] = "percore";
static int log_verbose;

void
log_set_role(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(log_role, sizeof(log_role), fmt, ap);
    va_end(ap);
}

void
log_set_verbose(int verbose)
{
    log_verbose = verbose;
}

/* One write(2) per line so lines from concurrent workers never interleave. */
static void
vlog(enum log_level lvl, const char *errstr, const char *fmt, va_list ap)
{
    static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
    char buf[1024];
    int n, m;

    if (lvl == LOG_LVL_DEBUG && !log_verbose)
        return;
    n = snprintf(buf, sizeof(buf), "%s%s: ", getenv("JOURNAL_STREAM") ? prio[lvl] : "",
                 log_role);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n >= sizeof(buf) - 1)
        n = sizeof(buf) - 2;
    if (errstr != NULL)
        n += snprintf(buf + n, sizeof(buf) - 1 - n, ": %s", errstr);
    if ((size_t)n >= sizeof(buf) - 1)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    (void)!write(STDERR_FILENO, buf, n);
}

#define LOG_BODY(lvl, errstr)                                                                      \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog(lvl, errstr, fmt, ap);                                                                \
        va_end(ap);                                                                                \
    } while (0)

void
log_warn(const char *fmt, ...)
{
    const char *e = strerror(errno);

    LOG_BODY(LOG_LVL_WARN, e);
}

void
log_warnx(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_WARN, NULL);
}

void
log_info(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
    const char *e = strerror(errno);

    LOG_BODY(LOG_LVL_ERR, e);
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_ERR, NULL);
    exit(1);
}
