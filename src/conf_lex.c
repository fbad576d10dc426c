/* Tokenizer for the config language, run by the master (and by percore -t). */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_lex.h"
#include "util.h"

void
conf_lex_init(struct conf_lex *lx, const char *file, const char *buf, size_t len)
{
    memset(lx, 0, sizeof(*lx));
    lx->buf = buf;
    lx->len = len;
    lx->pos.file = file;
    lx->pos.line = 1;
    lx->pos.col = 1;
}

const char *
conf_tok_name(enum conf_tok_type type)
{
    static const char *const names[] = {
        [TOK_WORD] = "word",  [TOK_STRING] = "string", [TOK_LBRACE] = "'{'",  [TOK_RBRACE] = "'}'",
        [TOK_SEMI] = "';'",   [TOK_EOF] = "end of file", [TOK_ERROR] = "error",
    };
    return names[type];
}

static int
peek(const struct conf_lex *lx)
{
    return lx->off < lx->len ? (unsigned char)lx->buf[lx->off] : -1;
}

static void
advance(struct conf_lex *lx)
{
    if (lx->buf[lx->off] == '\n') {
        lx->pos.line++;
        lx->pos.col = 1;
    } else {
        lx->pos.col++;
    }
    lx->off++;
}

static struct conf_token __attribute__((format(printf, 3, 4)))
lex_error(struct conf_lex *lx, struct conf_pos at, const char *fmt, ...)
{
    struct conf_token t = {.type = TOK_ERROR, .pos = at};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(lx->errmsg, sizeof(lx->errmsg), fmt, ap);
    va_end(ap);
    lx->errpos = at;
    return t;
}

static void
skip_space_and_comments(struct conf_lex *lx)
{
    int c;

    while ((c = peek(lx)) != -1) {
        if (c == '#') {
            while ((c = peek(lx)) != -1 && c != '\n')
                advance(lx);
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            advance(lx);
        } else {
            break;
        }
    }
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Growable output buffer for unescaped token text. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void
sbuf_putc(struct sbuf *sb, char c)
{
    if (sb->len + 2 > sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 64;
        sb->p = xreallocarray(sb->p, sb->cap, 1);
    }
    sb->p[sb->len++] = c;
    sb->p[sb->len] = '\0';
}

/* One escape after a backslash in a double-quoted string; -1 on a bad escape. */
static int
lex_escape(struct conf_lex *lx, struct sbuf *sb, struct conf_token *err)
{
    struct conf_pos at = lx->pos;
    int c, h1, h2;

    advance(lx); /* the backslash */
    c = peek(lx);
    if (c == -1) {
        *err = lex_error(lx, at, "unterminated escape sequence");
        return -1;
    }
    switch (c) {
    case 'n': sbuf_putc(sb, '\n'); break;
    case 't': sbuf_putc(sb, '\t'); break;
    case 'r': sbuf_putc(sb, '\r'); break;
    case '\\': sbuf_putc(sb, '\\'); break;
    case '"': sbuf_putc(sb, '"'); break;
    case '\'': sbuf_putc(sb, '\''); break;
    case '$': sbuf_putc(sb, '$'); break;
    case 'x':
        advance(lx);
        h1 = lx->off < lx->len ? hexval((unsigned char)lx->buf[lx->off]) : -1;
        h2 = lx->off + 1 < lx->len ? hexval((unsigned char)lx->buf[lx->off + 1]) : -1;
        if (h1 == -1 || h2 == -1) {
            *err = lex_error(lx, at, "invalid escape '\\x': expected two hex digits");
            return -1;
        }
        if (h1 == 0 && h2 == 0) {
            *err = lex_error(lx, at, "NUL byte ('\\x00') is not allowed in a string");
            return -1;
        }
        sbuf_putc(sb, (char)(h1 * 16 + h2));
        advance(lx);
        break;
    default:
        if (c >= 0x20 && c < 0x7f)
            *err = lex_error(lx, at, "unknown escape sequence '\\%c'", c);
        else
            *err = lex_error(lx, at, "unknown escape sequence '\\' followed by byte 0x%02x", c);
        return -1;
    }
    advance(lx);
    return 0;
}

static struct conf_token
lex_string(struct conf_lex *lx)
{
    struct conf_token t = {.type = TOK_STRING, .pos = lx->pos};
    struct sbuf sb = {0};
    int quote = peek(lx), c;

    advance(lx);
    sbuf_putc(&sb, 0);
    sb.len = 0;
    for (;;) {
        c = peek(lx);
        if (c == -1) {
            free(sb.p);
            return lex_error(lx, t.pos, "unterminated string");
        }
        if (c == quote) {
            advance(lx);
            break;
        }
        if (c == '\0') {
            free(sb.p);
            return lex_error(lx, lx->pos, "NUL byte in string");
        }
        if (sb.len >= CONF_TOKEN_MAX) {
            free(sb.p);
            return lex_error(lx, t.pos, "string longer than %d bytes", CONF_TOKEN_MAX);
        }
        if (c == '\\' && quote == '"') {
            struct conf_token err;
            if (lex_escape(lx, &sb, &err) == -1) {
                free(sb.p);
                return err;
            }
            continue;
        }
        sbuf_putc(&sb, (char)c);
        advance(lx);
    }
    t.text = sb.p;
    return t;
}

static int
is_word_char(int c)
{
    return c > 0x20 && c != 0x7f && c != '{' && c != '}' && c != ';' && c != '"' && c != '\'' &&
           c != '#';
}

/* Whether the '{' at lx's offset, in a word begun at start, opens a "${name}". */
static int
braced_name(const struct conf_lex *lx, size_t start)
{
    size_t o = lx->off;

    return o > start && lx->buf[o - 1] == '$' && o + 1 < lx->len &&
           (isalnum((unsigned char)lx->buf[o + 1]) || lx->buf[o + 1] == '_');
}

struct conf_token
conf_lex_next(struct conf_lex *lx)
{
    struct conf_token t = {0};
    size_t start;
    int c, in_braces = 0;

    skip_space_and_comments(lx);
    t.pos = lx->pos;
    c = peek(lx);
    switch (c) {
    case -1:
        t.type = TOK_EOF;
        return t;
    case '{':
        t.type = TOK_LBRACE;
        advance(lx);
        return t;
    case '}':
        t.type = TOK_RBRACE;
        advance(lx);
        return t;
    case ';':
        t.type = TOK_SEMI;
        advance(lx);
        return t;
    case '"':
    case '\'':
        return lex_string(lx);
    }
    if (!is_word_char(c)) {
        if (c == 0)
            return lex_error(lx, t.pos, "NUL byte in file");
        return lex_error(lx, t.pos, "unexpected character (byte 0x%02x)", c);
    }
    start = lx->off;
    /* A variable's "${name}" belongs to the word (`header X-A ${host};`); a '{' after a
     * regex's '$' ("^/a${") still opens a block. */
    while ((c = peek(lx)) != -1 &&
           (is_word_char(c) || (c == '{' && braced_name(lx, start)) ||
            (c == '}' && in_braces))) {
        if (lx->off - start >= CONF_TOKEN_MAX)
            return lex_error(lx, t.pos, "word longer than %d bytes", CONF_TOKEN_MAX);
        in_braces = c == '{' || (in_braces && c != '}');
        advance(lx);
    }
    t.type = TOK_WORD;
    t.text = xstrndup(lx->buf + start, lx->off - start);
    return t;
}
