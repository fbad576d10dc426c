/* Logging for master and workers: one line per event, prefixed with the role, to stderr,
 * a file, or the journal (with PERCORE_ROLE, WORKER_SLOT and GENERATION fields). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sysd.h"

/* A worker inherits these from the master by fork and sets them again from its heritage
 * at start (log_set_role from its slot and generation, log_open from its config), all but
 * log_verbose, which -v set for both. */
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_fd = STDERR_FILENO;
static char *log_path;
static int log_prio_prefix; /* stderr goes to the journal: prefix lines with <N> */
static char log_role[32] = "percore";
static int log_slot = -1;
static unsigned log_gen;
static int log_verbose;

int
log_open(enum log_target target, const char *path)
{
    int fd;

    if (target == LOG_TARGET_AUTO)
        target = sysd_stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
    if (target == LOG_TARGET_FILE) {
        char *copy;

        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd == -1)
            return -1;
        /* Copied before the old one goes: a reopen passes log_path itself. */
        copy = strdup(path);
        if (copy == NULL) {
            close(fd);
            return -1;
        }
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = fd;
        free(log_path);
        log_path = copy;
    } else if (log_fd != STDERR_FILENO) {
        close(log_fd);
        log_fd = STDERR_FILENO;
    }
    log_target = target;
    log_prio_prefix = target == LOG_TARGET_STDERR && sysd_stderr_is_journal();
    return 0;
}

int
log_reopen(void)
{
    if (log_target != LOG_TARGET_FILE || log_path == NULL)
        return 0;
    return log_open(LOG_TARGET_FILE, log_path);
}

void
log_set_role(int slot, unsigned gen)
{
    log_slot = slot;
    log_gen = gen;
    if (slot < 0)
        snprintf(log_role, sizeof(log_role), "master");
    else
        snprintf(log_role, sizeof(log_role), "worker %d", slot);
}

void
log_set_verbose(int verbose)
{
    log_verbose = verbose;
}

/* The request a line is about (log_req_warnx), for the time of that line. */
static const char *line_request_id, *line_trace_id;

static void
emit_journal(int prio, const char *line)
{
    char role[48], slot[32], gen[32], rid[160], tid[48];
    const char *fields[5];
    size_t n = 0;

    snprintf(role, sizeof(role), "PERCORE_ROLE=%s", log_slot < 0 ? "master" : "worker");
    fields[n++] = role;
    if (log_slot >= 0) {
        snprintf(slot, sizeof(slot), "WORKER_SLOT=%d", log_slot);
        snprintf(gen, sizeof(gen), "GENERATION=%u", log_gen);
        fields[n++] = slot;
        fields[n++] = gen;
    }
    if (line_request_id != NULL) {
        snprintf(rid, sizeof(rid), "REQUEST_ID=%s", line_request_id);
        fields[n++] = rid;
    }
    if (line_trace_id != NULL) {
        snprintf(tid, sizeof(tid), "TRACE_ID=%s", line_trace_id);
        fields[n++] = tid;
    }
    if (sysd_journal(prio, line, fields, n) < 0)
        dprintf(STDERR_FILENO, "%s\n", line);
}

/* s with control bytes and bytes >= 0x80 as \xHH, cut to fit out (outlen > 0): whatever
 * a message quotes, the line stays one line of ASCII. */
static void
escape_msg(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int esc = c < 0x20 || c >= 0x7f;
        if (o + (esc ? 4 : 1) >= outlen)
            break;
        if (esc) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* One write(2) per line so lines from concurrent workers never interleave. */
static void __attribute__((format(printf, 3, 0)))
vlog(int prio, const char *errstr, const char *fmt, va_list ap)
{
    char raw[1024], msg[1024], line[1200];
    int n;

    if (prio == LOG_DEBUG && !log_verbose)
        return;
    vsnprintf(raw, sizeof(raw), fmt, ap);
    escape_msg(msg, sizeof(msg), raw);
    if (line_request_id != NULL)
        snprintf(line, sizeof(line), "%s: request %s: %s%s%s", log_role, line_request_id, msg,
                 errstr ? ": " : "", errstr ? errstr : "");
    else
        snprintf(line, sizeof(line), "%s: %s%s%s", log_role, msg, errstr ? ": " : "",
                 errstr ? errstr : "");
    switch (log_target) {
    case LOG_TARGET_JOURNAL:
        emit_journal(prio, line);
        return;
    case LOG_TARGET_FILE: {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S%z", localtime_r(&now, &tm));
        n = snprintf(msg, sizeof(msg), "%s [%d] %s\n", ts, (int)getpid(), line);
        break;
    }
    default:
        n = log_prio_prefix ? snprintf(msg, sizeof(msg), "<%d>%s\n", prio, line)
                            : snprintf(msg, sizeof(msg), "%s\n", line);
        break;
    }
    /* A line cut to fit still ends with its newline, or the next one would join it. */
    if (n > (int)sizeof(msg) - 1) {
        n = (int)sizeof(msg) - 1;
        msg[n - 1] = '\n';
    }
    (void)!write(log_fd, msg, (size_t)n);
}

#define LOG_BODY(prio, errstr)                                                                     \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vlog(prio, errstr, fmt, ap);                                                               \
        va_end(ap);                                                                                \
    } while (0)

void
log_warn(const char *fmt, ...)
{
    const char *e = strerror(errno);

    LOG_BODY(LOG_WARNING, e);
}

void
log_warnx(const char *fmt, ...)
{
    LOG_BODY(LOG_WARNING, NULL);
}

void
log_req_warnx(const char *request_id, const char *trace_id, const char *fmt, ...)
{
    line_request_id = request_id;
    line_trace_id = trace_id;
    LOG_BODY(LOG_WARNING, NULL);
    line_request_id = line_trace_id = NULL;
}

void
log_info(const char *fmt, ...)
{
    LOG_BODY(LOG_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
    LOG_BODY(LOG_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
    const char *e = strerror(errno);

    LOG_BODY(LOG_ERR, e);
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    LOG_BODY(LOG_ERR, NULL);
    exit(1);
}
