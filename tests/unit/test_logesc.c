/* Escaping a client's bytes for JSON log lines and journal fields: the UTF-8 validator on
 * the edges of RFC 3629, each escape, the caps, and random bytes that must come out as a
 * valid JSON string meaning what was sent. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "logesc.h"

/* ---- the validator ---- */

struct utf8_case {
    const char *s;
    size_t n; /* bytes of s offered */
    size_t want;
};

static const struct utf8_case utf8_cases[] = {
    {"a", 1, 1},
    {"\x7f", 1, 1},
    {"\xc2\x80", 2, 2},             /* U+0080 */
    {"\xdf\xbf", 2, 2},             /* U+07FF */
    {"\xe0\xa0\x80", 3, 3},         /* U+0800 */
    {"\xed\x9f\xbf", 3, 3},         /* U+D7FF, below the surrogates */
    {"\xee\x80\x80", 3, 3},         /* U+E000, above them */
    {"\xef\xbf\xbf", 3, 3},         /* U+FFFF */
    {"\xf0\x90\x80\x80", 4, 4},     /* U+10000 */
    {"\xf4\x8f\xbf\xbf", 4, 4},     /* U+10FFFF */
    {"\x80", 1, 0},                 /* a continuation byte alone */
    {"\xbf", 1, 0},
    {"\xc0\x80", 2, 0},             /* overlong NUL */
    {"\xc1\xbf", 2, 0},             /* overlong U+007F */
    {"\xe0\x80\x80", 3, 0},         /* overlong NUL in 3 */
    {"\xe0\x9f\xbf", 3, 0},         /* overlong U+07FF */
    {"\xf0\x80\x80\x80", 4, 0},     /* overlong NUL in 4 */
    {"\xf0\x8f\xbf\xbf", 4, 0},     /* overlong U+FFFF */
    {"\xed\xa0\x80", 3, 0},         /* U+D800 */
    {"\xed\xbf\xbf", 3, 0},         /* U+DFFF */
    {"\xf4\x90\x80\x80", 4, 0},     /* U+110000 */
    {"\xf5\x80\x80\x80", 4, 0},
    {"\xff", 1, 0},
    {"\xfe", 1, 0},
    {"\xe2\x82\xac", 2, 0},         /* the euro sign cut short */
    {"\xf0\x9f\x98", 3, 0},         /* an emoji cut short */
    {"\xe2\x28\xa1", 3, 0},         /* a continuation that is none */
    {"\xc3\xc3", 2, 0},
};

Test(logesc, utf8_len)
{
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        const struct utf8_case *c = &utf8_cases[i];
        cr_expect_eq(logesc_utf8_len((const unsigned char *)c->s, c->n), c->want,
                     "case %zu: got %zu, want %zu", i,
                     logesc_utf8_len((const unsigned char *)c->s, c->n), c->want);
    }
}

/* ---- JSON ---- */

static char out[1 << 16];

static const char *
json(const char *s, size_t len, size_t max)
{
    size_t n = logesc_json(out, s, len, max);

    cr_assert_leq(n, LOGESC_JSON_GROWTH * max);
    out[n] = '\0';
    return out;
}

#define JSON(lit) json(lit, sizeof(lit) - 1, 4096)

Test(logesc, json_escapes)
{
    cr_expect_str_eq(JSON("/a?b=1&c"), "/a?b=1&c");
    cr_expect_str_eq(JSON("say \"hi\""), "say \\\"hi\\\"");
    cr_expect_str_eq(JSON("a\\b"), "a\\\\b");
    /* The six bytes \u0000 as sent: a backslash, not a NUL. */
    cr_expect_str_eq(JSON("\\u0000"), "\\\\u0000");
    cr_expect_str_eq(JSON("\x01\x1f\n\r\t"), "\\u0001\\u001f\\u000a\\u000d\\u0009");
    cr_expect_str_eq(json("a\0b", 3, 16), "a\\u0000b");
    cr_expect_str_eq(JSON("\x7f"), "\\u007f");
    /* Well-formed UTF-8 as it is. */
    cr_expect_str_eq(JSON("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* C1 controls and the line separators by their code points. */
    cr_expect_str_eq(JSON("\xc2\x85\xc2\x9b"), "\\u0085\\u009b");
    cr_expect_str_eq(JSON("\xe2\x80\xa8\xe2\x80\xa9"), "\\u2028\\u2029");
}

Test(logesc, json_invalid_bytes)
{
    cr_expect_str_eq(JSON("\xff"), "\\u00ff");
    cr_expect_str_eq(JSON("\xc0\x80"), "\\u00c0\\u0080");
    cr_expect_str_eq(JSON("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");
    cr_expect_str_eq(JSON("\xf0\x8f\xbf\xbf"), "\\u00f0\\u008f\\u00bf\\u00bf");
    cr_expect_str_eq(JSON("x\xe2\x82"), "x\\u00e2\\u0082");
    /* An invalid lead does not swallow the valid byte after it. */
    cr_expect_str_eq(JSON("\xc3(\xc3\xa9"), "\\u00c3(\xc3\xa9");
}

Test(logesc, json_caps)
{
    cr_expect_str_eq(json("abcdef", 6, 3), "abc");
    /* A character is whole or left out. */
    cr_expect_str_eq(json("a\xc3\xa9", 3, 2), "a");
    cr_expect_str_eq(json("a\xc3\xa9", 3, 3), "a\xc3\xa9");
    cr_expect_str_eq(json("\xf0\x9f\x98\x80", 4, 3), "");
    /* Bytes that start no character are one each. */
    cr_expect_str_eq(json("\xff\xff\xff", 3, 2), "\\u00ff\\u00ff");
    cr_expect_str_eq(json("", 0, 10), "");
    cr_expect_str_eq(json(NULL, 0, 10), "");
}

/* ---- random bytes: valid JSON string contents that say exactly what was sent ---- */

/* The code point of the well-formed sequence s of l bytes. */
static long
code_point(const unsigned char *s, size_t l)
{
    long cp = l == 1 ? s[0] : l == 2 ? s[0] & 0x1f : l == 3 ? s[0] & 0x0f : s[0] & 0x07;

    for (size_t i = 1; i < l; i++)
        cp = cp << 6 | (s[i] & 0x3f);
    return cp;
}

/* Decode one code point of a JSON string's contents at *p; -1 if it is not valid there
 * (a raw control character, a bad escape, bytes that are not UTF-8). */
static long
json_next(const unsigned char **p, const unsigned char *end)
{
    const unsigned char *s = *p;
    size_t l;
    long cp;

    if (*s == '\\') {
        if (end - s < 2)
            return -1;
        switch (s[1]) {
        case '"':
        case '\\':
        case '/': *p = s + 2; return s[1];
        case 'b': *p = s + 2; return 8;
        case 'f': *p = s + 2; return 12;
        case 'n': *p = s + 2; return 10;
        case 'r': *p = s + 2; return 13;
        case 't': *p = s + 2; return 9;
        case 'u': {
            char hex[5] = {0};
            char *e;
            if (end - s < 6)
                return -1;
            memcpy(hex, s + 2, 4);
            cp = strtol(hex, &e, 16);
            if (*e != '\0' || (cp >= 0xd800 && cp <= 0xdfff))
                return -1;
            *p = s + 6;
            return cp;
        }
        default: return -1;
        }
    }
    if (*s < 0x20 || *s == '"')
        return -1;
    l = logesc_utf8_len(s, (size_t)(end - s));
    if (l == 0)
        return -1;
    *p = s + l;
    return code_point(s, l);
}

/* What the input means: its characters, and each byte that starts none as U+00XX. */
static long
input_next(const unsigned char **p, const unsigned char *end)
{
    const unsigned char *s = *p;
    size_t l = logesc_utf8_len(s, (size_t)(end - s));

    *p = s + (l == 0 ? 1 : l);
    return l == 0 ? s[0] : code_point(s, l);
}

static unsigned
rnd(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 16;
}

Test(logesc, json_random_bytes_decode_to_what_was_sent)
{
    static const unsigned char pick[] = {'a', '"', '\\', 'u', '0', 0x00, 0x01, 0x1f, 0x7f,
                                         0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2,
                                         0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x8f,
                                         0x90, 0xa8};
    unsigned st = 12345;
    unsigned char in[64];

    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rnd(&st) % sizeof(in), n;
        for (size_t i = 0; i < len; i++)
            in[i] = rnd(&st) % 4 == 0 ? (unsigned char)rnd(&st) : pick[rnd(&st) % sizeof(pick)];
        n = logesc_json(out, (const char *)in, len, len);
        cr_assert_leq(n, LOGESC_JSON_GROWTH * len);
        const unsigned char *o = (const unsigned char *)out, *oend = o + n;
        const unsigned char *s = in, *send = in + len;
        while (o < oend && s < send) {
            long got = json_next(&o, oend), want = input_next(&s, send);
            cr_assert_neq(got, -1, "iteration %d: output not a valid JSON string", iter);
            cr_assert_eq(got, want, "iteration %d: U+%04lx for U+%04lx", iter, got, want);
        }
        cr_assert(o == oend && s == send, "iteration %d: lengths differ", iter);
    }
}

/* ---- journal ---- */

static const char *
text(const char *s, size_t len, size_t max)
{
    size_t n = logesc_text(out, s, len, max);

    cr_assert_leq(n, LOGESC_TEXT_GROWTH * max);
    out[n] = '\0';
    return out;
}

#define TEXT(lit) text(lit, sizeof(lit) - 1, 4096)

Test(logesc, text_escapes)
{
    cr_expect_str_eq(TEXT("curl/8 \"x\""), "curl/8 \"x\"");
    cr_expect_str_eq(TEXT("a\nPERCORE_STATUS=200"), "a\\x0aPERCORE_STATUS=200");
    cr_expect_str_eq(TEXT("a\\b\x01\x7f"), "a\\x5cb\\x01\\x7f");
    cr_expect_str_eq(text("a\0b", 3, 16), "a\\x00b");
    cr_expect_str_eq(TEXT("caf\xc3\xa9"), "caf\xc3\xa9");
    cr_expect_str_eq(TEXT("\xff\xc0\x80\xed\xa0\x80"),
                     "\\xff\\xc0\\x80\\xed\\xa0\\x80");
    cr_expect_str_eq(TEXT("\xc2\x85\xe2\x80\xa8"), "\\xc2\\x85\\xe2\\x80\\xa8");
    cr_expect_str_eq(text("a\xc3\xa9", 3, 2), "a");
}

Test(logesc, text_random_bytes_stay_one_line_of_utf8)
{
    unsigned st = 777;
    unsigned char in[64];

    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rnd(&st) % sizeof(in), n, l;
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)rnd(&st);
        n = logesc_text(out, (const char *)in, len, len);
        cr_assert_leq(n, LOGESC_TEXT_GROWTH * len);
        for (size_t i = 0; i < n; i += l) {
            const unsigned char *o = (const unsigned char *)out + i;
            l = logesc_utf8_len(o, n - i);
            cr_assert_neq(l, 0, "iteration %d: not UTF-8 at %zu", iter, i);
            cr_assert(l > 1 || (o[0] >= 0x20 && o[0] != 0x7f), "iteration %d: control byte",
                      iter);
        }
    }
}
