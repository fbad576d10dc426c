/* Escaping a client's bytes for JSON log lines and journal fields (logesc.h). */
#include "config.h"

#include "logesc.h"

static const char hex[] = "0123456789abcdef";

size_t
logesc_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c < 0xc2) /* a continuation byte, or the lead of an overlong 2-byte form */
        return 0;
    if (c < 0xe0) {
        len = 2;
    } else if (c < 0xf0) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below */
        else if (c == 0xed)
            hi = 0x9f; /* U+D800 to U+DFFF, the surrogates, above */
    } else if (c < 0xf5) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong below */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* What the ASCII bytes need in a JSON string: 0 nothing, 1 a backslash before them, 2 the
 * \u00XX form. */
static const unsigned char json_ascii[128] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    ['"'] = 1, ['\\'] = 1, [0x7f] = 2,
};

static char *
put_u00(char *p, unsigned c)
{
    p[0] = '\\';
    p[1] = 'u';
    p[2] = '0';
    p[3] = '0';
    p[4] = hex[(c >> 4) & 15];
    p[5] = hex[c & 15];
    return p + 6;
}

static char *
put_x(char *p, unsigned char c)
{
    p[0] = '\\';
    p[1] = 'x';
    p[2] = hex[c >> 4];
    p[3] = hex[c & 15];
    return p + 4;
}

/* Whether the well-formed sequence at s of len bytes is a C1 control (U+0080 to U+009F) or
 * U+2028, U+2029. */
static int
is_c1(const unsigned char *s, size_t len)
{
    return len == 2 && s[0] == 0xc2 && s[1] < 0xa0;
}

static int
is_line_sep(const unsigned char *s, size_t len)
{
    return len == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9);
}

size_t
logesc_json(char *out, const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = len < max ? len : max, i = 0, l;
    char *p = out;

    while (i < n) {
        unsigned char c = u[i];
        if (c < 0x80) {
            switch (json_ascii[c]) {
            case 0: *p++ = (char)c; break;
            case 1:
                *p++ = '\\';
                *p++ = (char)c;
                break;
            default: p = put_u00(p, c); break;
            }
            i++;
            continue;
        }
        l = logesc_utf8_len(u + i, len - i);
        if (l == 0) {
            p = put_u00(p, c);
            i++;
            continue;
        }
        if (i + l > n)
            break; /* a whole character or none */
        if (is_c1(u + i, l)) {
            p = put_u00(p, u[i + 1]);
        } else if (is_line_sep(u + i, l)) {
            p[0] = '\\';
            p[1] = 'u';
            p[2] = '2';
            p[3] = '0';
            p[4] = '2';
            p[5] = u[i + 2] == 0xa8 ? '8' : '9';
            p += 6;
        } else {
            for (size_t k = 0; k < l; k++)
                *p++ = (char)u[i + k];
        }
        i += l;
    }
    return (size_t)(p - out);
}

size_t
logesc_text(char *out, const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = len < max ? len : max, i = 0, l;
    char *p = out;

    while (i < n) {
        unsigned char c = u[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f || c == '\\')
                p = put_x(p, c);
            else
                *p++ = (char)c;
            i++;
            continue;
        }
        l = logesc_utf8_len(u + i, len - i);
        if (l == 0) {
            p = put_x(p, c);
            i++;
            continue;
        }
        if (i + l > n)
            break;
        if (is_c1(u + i, l) || is_line_sep(u + i, l)) {
            for (size_t k = 0; k < l; k++)
                p = put_x(p, u[i + k]);
        } else {
            for (size_t k = 0; k < l; k++)
                *p++ = (char)u[i + k];
        }
        i += l;
    }
    return (size_t)(p - out);
}
