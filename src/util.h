/* Small pure helpers shared by master and workers. */
#ifndef PERCORE_UTIL_H
#define PERCORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is fatal: a daemon that cannot allocate at start has nothing to serve. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Levenshtein distance, for "did you mean" hints. */
size_t util_edit_distance(const char *a, const char *b);

struct sockaddr_storage;
/* Fill ss with the unix socket address of the absolute path; -1 if it is not one. */
int util_unix_sockaddr(const char *path, struct sockaddr_storage *ss, unsigned *len);

/* Monotonic clock in milliseconds. */
int64_t util_now_ms(void);

#endif
