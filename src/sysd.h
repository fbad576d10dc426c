/* systemd integration: readiness and status notifications, the watchdog, sockets passed
 * by socket activation or kept in the fd store, and the journal. Everything is a no-op
 * when percore does not run under systemd. The only file that calls libsystemd. */
#ifndef PERCORE_SYSD_H
#define PERCORE_SYSD_H

#include <stddef.h>
#include <stdint.h>

struct sysd_fd {
    int fd;
    char *name; /* FileDescriptorName= or the FDNAME= it was stored with */
};

/* Master, at start: take the passed sockets (LISTEN_FDS) and unset the variables so that
 * workers never see them. *out is malloc'ed; the caller owns the fds and the array. */
size_t sysd_listen_fds(struct sysd_fd **out);

void sysd_ready(const char *status);
void sysd_reloading(void);
void sysd_stopping(void);
void sysd_status(const char *status);

/* The watchdog interval in ms from WATCHDOG_USEC for this process, or 0. */
int64_t sysd_watchdog_ms(void);
void sysd_watchdog_ping(void);

/* Fd store: keep fd under name across restarts; forget name. No-op without systemd. */
int sysd_fdstore(int fd, const char *name);
void sysd_fdstore_remove(const char *name);
int sysd_enabled(void);

/* Journal: send one message with priority (syslog level) and extra KEY=value fields. */
int sysd_journal(int priority, const char *msg, const char *const *fields, size_t nfields);
/* True when stderr is connected to the journal (JOURNAL_STREAM matches it). */
int sysd_stderr_is_journal(void);

#endif
