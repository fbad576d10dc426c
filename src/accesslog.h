/* Access logs: one entry per request, in the combined format or as JSON in a file, or as a
 * journal entry with a field per value, written by each worker a loop turn at a time. */
#ifndef PERCORE_ACCESSLOG_H
#define PERCORE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct access_log;
struct st_h2o_req_t;
struct sockaddr;

enum accesslog_format {
    ACCESSLOG_OFF,
    ACCESSLOG_COMBINED,
    ACCESSLOG_JSON,
    ACCESSLOG_JOURNAL,
    ACCESSLOG_FORMAT_MAX
};

/* What a JSON line or journal entry may hold, in the default order. */
enum accesslog_field {
    ALF_TIME,
    ALF_REQUEST_ID,
    ALF_TRACE_ID,
    ALF_CLIENT,
    ALF_SERVICE,
    ALF_ROUTE,
    ALF_METHOD,
    ALF_PATH,
    ALF_PROTOCOL,
    ALF_HOST,
    ALF_STATUS,
    ALF_BYTES,
    ALF_DURATION,
    ALF_UPSTREAM_ADDR,
    ALF_UPSTREAM_STATUS,
    ALF_UPSTREAM_CONNECT_TIME,
    ALF_UPSTREAM_HEADER_TIME,
    ALF_UPSTREAM_TIME,
    ALF_UPSTREAM_ATTEMPTS,
    ALF_USER_AGENT,
    ALF_REFERER,
    ALF_ERROR,
    ALF_MAX
};

/* A service's `access_log`, as loaded: where, in what form, which fields. */
struct accesslog_conf {
    enum accesslog_format format; /* ACCESSLOG_OFF: no log */
    char *path;                   /* the file; NULL for the journal */
    uint8_t fields[ALF_MAX];       /* JSON and journal: the fields, in order */
    unsigned nfields;             /* 0: the format's default */
};

/* Master, when the config is read: whether path can be opened for appending (0), or -1
 * with "path: reason" in err. */
int accesslog_check(const char *path, char *err, size_t errlen);

/* Master, when the config is read: `fields=` list (comma separated names) into c. 0, or
 * -1 with the reason in err and in *at the offset in list of the name at fault. */
int accesslog_parse_fields(struct accesslog_conf *c, const char *list, char *err,
                           size_t errlen, size_t *at);

/* Worker: the log that c describes, for service (which the entries name); NULL, with a
 * warning, if its file cannot be opened. Services naming one file share its buffer and
 * descriptor; the result lives as long as the worker. */
struct access_log *accesslog_open(const struct accesslog_conf *c, const char *service);
/* Worker: log req, which took us microseconds. */
void accesslog_write(struct access_log *al, struct st_h2o_req_t *req, uint64_t us);
/* Worker: log a request that was refused before it could be read (no request line is
 * known), answered with status and a body of bytes, from the peer sa (salen 0: unknown). */
void accesslog_write_refused(struct access_log *al, const struct sockaddr *sa,
                             unsigned salen, int status, size_t bytes);
/* Write out what is buffered: at the end of every loop turn, and before exit. */
void accesslog_flush(void);
/* SIGUSR1: flush, then reopen every file by its path (after log rotation). */
void accesslog_reopen(void);

#endif
