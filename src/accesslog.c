/* Access logs.
 *
 *   127.0.0.1 - - [26/Nov/2026:12:00:00 +0000] "GET /a?b HTTP/1.1" 200 512 "-" "curl/7.88.1" 0.001
 *
 * The address is the client's as clientaddr.c takes it (behind trusted proxies, the one
 * they forwarded for). Request line, referer and user agent have '"', '\' and bytes
 * outside printable ASCII written as \xHH, so a line is always one line and never breaks
 * its quoting. Lines are buffered per file and written with one append per loop turn:
 * several workers share the file (O_APPEND keeps their writes whole). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "clientaddr.h"
#include "h2o_inc.h"
#include "log.h"
#include "util.h"

#define BUF_SIZE (64 * 1024)
#define LINE_MAX_LEN 4096 /* fields are cut to fit */

struct access_log {
    char *path;
    int fd;
    char *buf;
    size_t len;
    struct access_log *next;
};

static struct access_log *logs; /* per worker */

static int
open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/* Checked without creating the file: `percore -t` run as root must not leave behind a
 * file the workers' user cannot write. */
int
accesslog_check(const char *path, char *err, size_t errlen)
{
    char *dir, *slash;
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY), rc = 0;

    if (fd != -1) {
        close(fd);
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    dir = xstrdup(path);
    slash = strrchr(dir, '/');
    slash[slash == dir ? 1 : 0] = '\0';
    if (access(dir, W_OK | X_OK) == -1) {
        snprintf(err, errlen, "%s: cannot create it in %s: %s", path, dir, strerror(errno));
        rc = -1;
    }
    free(dir);
    return rc;
}

struct access_log *
accesslog_open(const char *path)
{
    struct access_log *al;
    int fd;

    for (al = logs; al != NULL; al = al->next)
        if (strcmp(al->path, path) == 0)
            return al;
    if ((fd = open_log(path)) == -1) {
        log_warn("cannot open access log %s, not logging there", path);
        return NULL;
    }
    al = xcalloc(1, sizeof(*al));
    al->path = xstrdup(path);
    al->fd = fd;
    al->buf = xmalloc(BUF_SIZE);
    al->next = logs;
    logs = al;
    return al;
}

static void
flush_one(struct access_log *al)
{
    size_t off = 0;
    ssize_t n;

    while (off < al->len) {
        n = write(al->fd, al->buf + off, al->len - off);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_warn("access log %s: lines lost", al->path);
            break;
        }
        off += (size_t)n;
    }
    al->len = 0;
}

void
accesslog_flush(void)
{
    for (struct access_log *al = logs; al != NULL; al = al->next)
        if (al->len > 0)
            flush_one(al);
}

void
accesslog_reopen(void)
{
    for (struct access_log *al = logs; al != NULL; al = al->next) {
        int fd;
        flush_one(al);
        if ((fd = open_log(al->path)) == -1) {
            log_warn("cannot reopen access log %s, still writing to the old file", al->path);
            continue;
        }
        close(al->fd);
        al->fd = fd;
    }
}

/* Append s (at most max bytes of it) to p, escaped; returns the new end. */
static char *
put_escaped(char *p, h2o_iovec_t s, size_t max)
{
    static const char hex[] = "0123456789abcdef";

    if (s.base == NULL || s.len == 0) {
        *p++ = '-';
        return p;
    }
    for (size_t i = 0; i < s.len && i < max; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

static h2o_iovec_t
header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);

    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

void
accesslog_write(struct access_log *al, h2o_req_t *req, uint64_t us)
{
    char line[LINE_MAX_LEN], addr[NI_MAXHOST] = "-";
    struct sockaddr_storage ss;
    socklen_t sslen = clientaddr_get(req, &ss);
    char *p = line;

    if (sslen != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, sslen, addr) == SIZE_MAX)
        memcpy(addr, "-", sizeof("-"));
    /* Each escaped byte takes 4: the fields' caps keep the line under LINE_MAX_LEN. */
    p += snprintf(p, 128, "%s - - [%s] \"", addr,
                  req->processed_at.str != NULL ? req->processed_at.str->log : "-");
    p = put_escaped(p, req->input.method, 16);
    *p++ = ' ';
    p = put_escaped(p, req->input.path, 512);
    p += snprintf(p, 64, " HTTP/%d.%d\" %d %zu \"", req->version >> 8, req->version & 0xff,
                  req->res.status, req->bytes_sent);
    p = put_escaped(p, header(req, H2O_TOKEN_REFERER), 128);
    *p++ = '"';
    *p++ = ' ';
    *p++ = '"';
    p = put_escaped(p, header(req, H2O_TOKEN_USER_AGENT), 128);
    p += snprintf(p, 32, "\" %.3f\n", (double)us / 1e6);
    if (al->len + (size_t)(p - line) > BUF_SIZE)
        flush_one(al);
    memcpy(al->buf + al->len, line, (size_t)(p - line));
    al->len += (size_t)(p - line);
}

void
accesslog_write_refused(struct access_log *al, const struct sockaddr *sa, unsigned salen,
                        int status, size_t bytes)
{
    char line[512], addr[NI_MAXHOST] = "-", ts[64];
    time_t now = time(NULL);
    struct tm tm;
    int n;

    if (salen != 0 && h2o_socket_getnumerichost((struct sockaddr *)sa, salen, addr) == SIZE_MAX)
        memcpy(addr, "-", sizeof("-"));
    strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S %z", localtime_r(&now, &tm));
    n = snprintf(line, sizeof(line), "%s - - [%s] \"-\" %d %zu \"-\" \"-\" 0.000\n", addr, ts,
                 status, bytes);
    if (al->len + (size_t)n > BUF_SIZE)
        flush_one(al);
    memcpy(al->buf + al->len, line, (size_t)n);
    al->len += (size_t)n;
}
