/* Regular expressions of the config (routes, rewrites, header and argument conditions):
 * PCRE2, compiled and JIT-compiled once by the master at load, so workers (which inherit
 * them) never make executable memory; matched in workers with one match block each. */
#ifndef PERCORE_REGEX_H
#define PERCORE_REGEX_H

#include <stddef.h>

/* Captures a config may use: $1 .. $9. */
#define REGEX_MAX_CAPTURES 9

struct regex {
    char *src;          /* as written, for messages and $route */
    void *code;         /* pcre2_code_8 */
    unsigned ncaptures; /* capturing groups in the pattern */
    char *literal;      /* the literal text any match must start with (from a leading
                           "^"), "" when none: lets a caller skip patterns cheaply */
    size_t literal_len;
    int caseless;
};

/* Compile src (caseless: as "~*"): NULL with a message in err (PCRE2's own, and the offset
 * in src it points at in *off) when it does not compile or has more than
 * REGEX_MAX_CAPTURES groups. */
struct regex *regex_compile(const char *src, int caseless, char *err, size_t errlen,
                            size_t *off);
void regex_free(struct regex *re);

/* Whether re matches s[0..len). When ov is not NULL it gets 2 * nov offsets: ov[0], ov[1]
 * the whole match, ov[2k], ov[2k+1] group k, both SIZE_MAX for a group that took no part.
 * nov is at most REGEX_MAX_CAPTURES + 1. Never fails for lack of memory once the process
 * made its match block (regex_worker_init, or the first call). */
int regex_match(const struct regex *re, const char *s, size_t len, size_t *ov, unsigned nov);

/* Worker: make the match block before the sandbox is on. */
void regex_worker_init(void);

#endif
