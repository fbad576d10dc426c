/* Logging for master and workers: stderr, a file, or the journal with structured fields. */
#ifndef PERCORE_LOG_H
#define PERCORE_LOG_H

#include <stdarg.h>

enum log_target { LOG_TARGET_AUTO, LOG_TARGET_STDERR, LOG_TARGET_JOURNAL, LOG_TARGET_FILE };

/* Where lines go. AUTO: the journal when stderr is connected to it, else stderr. A file is
 * opened for appending; -1 (with errno) if it cannot be, and the target is unchanged. */
int log_open(enum log_target target, const char *path);
/* Reopen the log file (after rotation); no-op for other targets. */
int log_reopen(void);
/* Who is speaking: the master, or worker `slot` of generation `gen` (slot < 0: master). */
void log_set_role(int slot, unsigned gen);
void log_set_verbose(int verbose);

/* log_warn appends strerror(errno); the x variants do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line about one request: "request ID: " before the message, and REQUEST_ID= (and
 * TRACE_ID=, unless NULL) in the journal. The IDs are printable ASCII. */
void log_req_warnx(const char *request_id, const char *trace_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
