/* Small pure helpers shared by master and workers. */
#include "config.h"

#include <assert.h>
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

int64_t
util_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

int
util_parse_port(const char *s)
{
    int v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
    }
    return v >= 1 ? v : -1;
}

int
util_port_text(const char *s, size_t len)
{
    unsigned v = 0;

    if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535 ? (int)v : -1;
}

uint64_t
util_hash_str(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Put entry i at the end of its bucket's chain. */
static void
hmap_link(struct util_hmap *m, size_t i)
{
    size_t b = (size_t)(m->ents[i].hash & (m->nbuckets - 1));

    assert(m->nbuckets > 0 && (m->nbuckets & (m->nbuckets - 1)) == 0);
    m->ents[i].next = SIZE_MAX;
    if (m->tails[b] == SIZE_MAX)
        m->heads[b] = i;
    else
        m->ents[m->tails[b]].next = i;
    m->tails[b] = i;
}

/* Twice the buckets, relinked in the order the entries were added: chains keep it. */
static void
hmap_grow(struct util_hmap *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;

    free(m->heads);
    free(m->tails);
    m->heads = xreallocarray(NULL, nb, sizeof(*m->heads));
    m->tails = xreallocarray(NULL, nb, sizeof(*m->tails));
    m->nbuckets = nb;
    for (size_t b = 0; b < nb; b++)
        m->heads[b] = m->tails[b] = SIZE_MAX;
    for (size_t i = 0; i < m->n; i++)
        hmap_link(m, i);
}

void
util_hmap_add(struct util_hmap *m, uint64_t hash, size_t a, size_t b)
{
    if (m->n >= m->nbuckets)
        hmap_grow(m);
    m->ents = xreallocarray(m->ents, m->n + 1, sizeof(*m->ents));
    m->ents[m->n] = (struct util_hmap_ent){hash, a, b, SIZE_MAX};
    hmap_link(m, m->n++);
}

size_t
util_hmap_first(const struct util_hmap *m, uint64_t hash)
{
    size_t i;

    if (m->nbuckets == 0)
        return SIZE_MAX;
    i = m->heads[hash & (m->nbuckets - 1)];
    while (i != SIZE_MAX && m->ents[i].hash != hash)
        i = m->ents[i].next;
    return i;
}

size_t
util_hmap_next(const struct util_hmap *m, size_t i)
{
    uint64_t hash = m->ents[i].hash;

    for (i = m->ents[i].next; i != SIZE_MAX && m->ents[i].hash != hash; i = m->ents[i].next)
        ;
    return i;
}

void
util_hmap_clear(struct util_hmap *m)
{
    free(m->heads);
    free(m->tails);
    free(m->ents);
    memset(m, 0, sizeof(*m));
}
