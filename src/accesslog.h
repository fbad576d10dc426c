/* Access logs: one line per request, in the combined format plus the time taken, written
 * by each worker to its services' files a loop turn at a time. */
#ifndef PERCORE_ACCESSLOG_H
#define PERCORE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct access_log;
struct st_h2o_req_t;

/* Master, when the config is read: whether path can be opened for appending (0), or -1
 * with "path: reason" in err. */
int accesslog_check(const char *path, char *err, size_t errlen);

/* Worker: the log writing to path (one per path, shared by services naming the same
 * file); NULL, with a warning, if it cannot be opened. */
struct access_log *accesslog_open(const char *path);
/* Worker: log req, which took us microseconds. */
void accesslog_write(struct access_log *al, struct st_h2o_req_t *req, uint64_t us);
struct sockaddr;
/* Worker: log a request that was refused before it could be read (no request line is
 * known), answered with status and a body of bytes, from the peer sa (salen 0: unknown). */
void accesslog_write_refused(struct access_log *al, const struct sockaddr *sa,
                             unsigned salen, int status, size_t bytes);
/* Write out what is buffered: at the end of every loop turn, and before exit. */
void accesslog_flush(void);
/* SIGUSR1: flush, then reopen every file by its path (after log rotation). */
void accesslog_reopen(void);

#endif
