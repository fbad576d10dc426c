/* Regular expressions of the config with PCRE2: compiled (and JIT-compiled when the
 * platform allows it) by the master at load, matched by workers with one match block per
 * process, so a match never allocates. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "log.h"
#include "regex.h"
#include "util.h"

/* What the header shows, and whether the code was JIT-compiled: pcre2_jit_match skips the
 * checks pcre2_match makes, but only works on JIT-compiled code. */
struct regex_impl {
    struct regex pub;
    int jit;
};

/* The process's match block, big enough for any pattern regex_compile accepts. Workers are
 * single-threaded, so one is enough; it is reused by every match and never freed. */
static pcre2_match_data *match_data;
/* A pattern that backtracks without end (an admin's "((a+)+)+$") costs a request at most
 * this many steps, about a millisecond, instead of PCRE2's ten million. */
#define REGEX_MATCH_LIMIT 100000
static pcre2_match_context *match_ctx;

/* Whether src has a '|' outside any group: then a leading "^" anchors only the first
 * alternative and no literal text is common to all matches. src compiled, so it is well
 * formed; anything this scan does not understand counts as an alternation, which only
 * costs the caller its shortcut. */
static int
has_top_alternation(const char *s)
{
    int depth = 0;

    while (*s != '\0') {
        if (s[0] == '\\' && s[1] == 'Q') {
            const char *e = strstr(s + 2, "\\E");
            if (e == NULL)
                return 0; /* quoted to the end: no more metacharacters */
            s = e + 2;
        } else if (s[0] == '\\') {
            if (s[1] == '\0')
                return 1;
            s += 2;
        } else if (s[0] == '[') {
            /* A class: ']' right after '[' or "[^" is a member, not its end. */
            s++;
            if (*s == '^')
                s++;
            if (*s == ']')
                s++;
            while (*s != '\0' && *s != ']') {
                if (s[0] == '\\' && s[1] != '\0') {
                    s += 2;
                } else if (s[0] == '[' && s[1] == ':') {
                    const char *e = strstr(s + 2, ":]");
                    if (e == NULL)
                        return 1;
                    s = e + 2;
                } else {
                    s++;
                }
            }
            if (*s == '\0')
                return 1;
            s++;
        } else if (s[0] == '(' && s[1] == '?' && s[2] == '#') {
            /* A comment ends at the first ')', whatever it holds. */
            s = strchr(s, ')');
            if (s == NULL)
                return 1;
            s++;
        } else {
            if (*s == '(')
                depth++;
            else if (*s == ')')
                depth--;
            /* Unbalanced (not expected of a compiled pattern) counts as alternation. */
            if (depth < 0 || (*s == '|' && depth == 0))
                return 1;
            s++;
        }
    }
    return 0;
}

/* The literal text every match of src starts with: the characters after a leading '^' up
 * to the first metacharacter, an escaped punctuation character standing for itself. One
 * followed by a quantifier may be absent, so it is left out. Returned malloc'd (owned by
 * the regex), "" when there is none. */
static char *
leading_literal(const char *src, size_t *lenp)
{
    static const char meta[] = "\\.[](){}?*+|^$";
    const char *s = src;
    char *lit;
    size_t n = 0;

    *lenp = 0;
    if (*s != '^' || has_top_alternation(src))
        return xstrdup("");
    lit = xmalloc(strlen(src));
    for (s++; *s != '\0';) {
        if (s[0] == '\\' && s[1] != '\0' && (unsigned char)s[1] < 0x80 &&
            ispunct((unsigned char)s[1])) {
            lit[n++] = s[1];
            s += 2;
        } else if (strchr(meta, *s) == NULL) {
            lit[n++] = *s++;
        } else {
            break;
        }
    }
    if (n > 0 && (*s == '?' || *s == '*' || *s == '{'))
        n--;
    lit[n] = '\0';
    *lenp = n;
    return lit;
}

struct regex *
regex_compile(const char *src, int caseless, char *err, size_t errlen, size_t *off)
{
    struct regex_impl *ri;
    pcre2_code *code;
    int errcode;
    PCRE2_SIZE erroff;
    uint32_t ncap;

    if (off != NULL)
        *off = 0;
    /* No PCRE2_UTF: paths are bytes, and any byte (also one that is not UTF-8) must be
     * able to match. */
    code = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, caseless ? PCRE2_CASELESS : 0,
                         &errcode, &erroff, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
            (void)snprintf((char *)msg, sizeof(msg), "error %d", errcode);
        (void)snprintf(err, errlen, "%s", (char *)msg);
        if (off != NULL)
            *off = erroff;
        return NULL;
    }
    if (pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &ncap) != 0)
        ncap = 0;
    if (ncap > REGEX_MAX_CAPTURES) {
        (void)snprintf(err, errlen, "%u capture groups, at most %d may be used ($1..$%d)",
                       (unsigned)ncap, REGEX_MAX_CAPTURES, REGEX_MAX_CAPTURES);
        pcre2_code_free(code);
        return NULL;
    }
    ri = xcalloc(1, sizeof(*ri));
    /* Without JIT (an unsupported CPU, or no executable memory allowed) the interpreter
     * runs the same code, only slower. */
    ri->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    ri->pub.src = xstrdup(src);
    ri->pub.code = code;
    ri->pub.ncaptures = ncap;
    ri->pub.caseless = caseless;
    /* A memcmp can't stand for a caseless comparison. */
    if (caseless) {
        ri->pub.literal = xstrdup("");
        ri->pub.literal_len = 0;
    } else {
        ri->pub.literal = leading_literal(src, &ri->pub.literal_len);
    }
    return &ri->pub;
}

void
regex_free(struct regex *re)
{
    if (re == NULL)
        return;
    pcre2_code_free(re->code);
    free(re->src);
    free(re->literal);
    free((struct regex_impl *)re);
}

void
regex_worker_init(void)
{
    if (match_data != NULL)
        return;
    match_data = pcre2_match_data_create(REGEX_MAX_CAPTURES + 1, NULL);
    match_ctx = pcre2_match_context_create(NULL);
    if (match_ctx != NULL) {
        pcre2_set_match_limit(match_ctx, REGEX_MATCH_LIMIT);
        pcre2_set_depth_limit(match_ctx, REGEX_MATCH_LIMIT);
    }
    if (match_data == NULL)
        fatalx("regex: out of memory for the match block");
}

int
regex_match(const struct regex *re, const char *s, size_t len, size_t *ov, unsigned nov)
{
    const struct regex_impl *ri = (const struct regex_impl *)re;
    PCRE2_SIZE *v;
    int rc;

    assert(nov <= REGEX_MAX_CAPTURES + 1);
    regex_worker_init();
    if (ri->jit)
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)s, len, 0, 0, match_data, match_ctx);
    else
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, match_data, match_ctx);
    /* Errors (the match limit, for one) count as no match: the request goes on to the
     * next route, as for any other pattern that does not match. */
    if (rc <= 0)
        return 0;
    if (ov == NULL)
        return 1;
    v = pcre2_get_ovector_pointer(match_data);
    for (size_t k = 0; k < nov; k++) {
        if (k < (size_t)rc && v[2 * k] != PCRE2_UNSET) {
            ov[2 * k] = v[2 * k];
            ov[2 * k + 1] = v[2 * k + 1];
        } else {
            ov[2 * k] = ov[2 * k + 1] = SIZE_MAX;
        }
    }
    return 1;
}
