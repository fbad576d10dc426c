/* Small pure helpers shared by master and workers. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "log.h"
#include "util.h"

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        fatal("malloc");
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        fatal("calloc");
    return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
    void *q = reallocarray(p, n ? n : 1, size ? size : 1);

    if (q == NULL)
        fatal("reallocarray");
    return q;
}

char *
xstrdup(const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        fatal("strdup");
    return p;
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);

    if (p == NULL)
        fatal("strndup");
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n == -1)
        fatal("vasprintf");
    return s;
}

size_t
util_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t *row = xcalloc(lb + 1, sizeof(*row));
    size_t d;

    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    d = row[lb];
    free(row);
    return d;
}

int64_t
util_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
util_unix_sockaddr(const char *path, struct sockaddr_storage *ss, unsigned *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;

    if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path))
        return -1;
    memset(ss, 0, sizeof(*ss));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, strlen(path) + 1);
    *len = sizeof(*sun);
    return 0;
}
