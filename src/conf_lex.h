/* Tokenizer for the config language: words, quoted strings, braces, semicolons, comments. */
#ifndef PERCORE_CONF_LEX_H
#define PERCORE_CONF_LEX_H

#include <stddef.h>

#define CONF_TOKEN_MAX (64 * 1024) /* bytes of one word or string */

struct conf_pos {
    const char *file; /* interned by the parser, lives as long as the conf */
    int line;
    int col;
};

enum conf_tok_type { TOK_WORD, TOK_STRING, TOK_LBRACE, TOK_RBRACE, TOK_SEMI, TOK_EOF, TOK_ERROR };

struct conf_token {
    enum conf_tok_type type;
    char *text; /* TOK_WORD/TOK_STRING: unescaped text, owned by the caller once returned */
    struct conf_pos pos;
};

struct conf_lex {
    const char *buf;
    size_t len;
    size_t off;
    struct conf_pos pos;
    char errmsg[256]; /* set when TOK_ERROR is returned; errpos says where */
    struct conf_pos errpos;
};

void conf_lex_init(struct conf_lex *lx, const char *file, const char *buf, size_t len);
/* Next token. TOK_ERROR stops lexing: the input cannot be resynchronised reliably. */
struct conf_token conf_lex_next(struct conf_lex *lx);
const char *conf_tok_name(enum conf_tok_type type);

#endif
