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

/* Monotonic clock in milliseconds, and microseconds (a vDSO read: no system call). */
int64_t util_now_ms(void);
int64_t util_now_us(void);

/* A TCP port from 1 to 65535 written in decimal digits only (no sign or space), or -1: the
 * port parser for listen addresses, upstream URLs and FastCGI addresses alike (a
 * configuration's; util_port_text is a request's). */
int util_parse_port(const char *s);
/* A port as it comes in a protocol's text, s[0..len): 1 to 5 digits, no leading zero (but
 * "0"), 0 to 65535; -1 otherwise. */
int util_port_text(const char *s, size_t len);

/* A multimap from 64-bit hashes to pairs of indices, for finding equal items among many
 * without comparing each with each (duplicate checks of the config loader). The caller
 * hashes and then compares the items of the entries it gets; entries of one hash come in
 * the order they were added. Zero-initialised is empty; util_hmap_clear frees it. */
struct util_hmap_ent {
    uint64_t hash;
    size_t a, b; /* the caller's indices, e.g. a block and an item in it */
    size_t next; /* the next entry in the same bucket, or SIZE_MAX */
};
struct util_hmap {
    size_t *heads, *tails; /* per bucket: first and last entry, SIZE_MAX when empty */
    size_t nbuckets;       /* a power of two, or 0 */
    struct util_hmap_ent *ents;
    size_t n;
};

void util_hmap_add(struct util_hmap *m, uint64_t hash, size_t a, size_t b);
/* The first entry (an index into m->ents) added with hash, or SIZE_MAX; then the next
 * one with the same hash after entry i. */
size_t util_hmap_first(const struct util_hmap *m, uint64_t hash);
size_t util_hmap_next(const struct util_hmap *m, size_t i);
void util_hmap_clear(struct util_hmap *m);
/* FNV-1a of a string. */
uint64_t util_hash_str(const char *s);

#endif
