/* Grammar of the config language, run by the master: directives and blocks into a syntax
 * tree, with `include` expanded in place so later stages never see it. */
#include "config.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf_parse.h"
#include "util.h"

#define INCLUDE_DEPTH_MAX 16
#define CONF_FILE_MAX (16 * 1024 * 1024)

struct parser {
    struct conf_doc *doc;
    struct conf_diag *diag;
    int depth;
};

void
conf_diag_add(struct conf_diag *d, const struct conf_pos *pos, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->msgs = xreallocarray(d->msgs, d->n + 1, sizeof(*d->msgs));
    if (pos != NULL && pos->file != NULL)
        d->msgs[d->n++] = xasprintf("%s:%d:%d: %s", pos->file, pos->line, pos->col, msg);
    else
        d->msgs[d->n++] = xstrdup(msg);
}

void
conf_diag_clear(struct conf_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = 0;
}

static void
node_clear(struct conf_node *n)
{
    for (size_t i = 0; i < n->nargs; i++)
        free(n->args[i].s);
    free(n->args);
    for (size_t i = 0; i < n->nchildren; i++)
        node_clear(&n->children[i]);
    free(n->children);
    free(n->name);
}

void
conf_doc_free(struct conf_doc *doc)
{
    node_clear(&doc->root);
    for (size_t i = 0; i < doc->nfiles; i++)
        free(doc->files[i]);
    free(doc->files);
    memset(doc, 0, sizeof(*doc));
}

char **
conf_doc_steal_files(struct conf_doc *doc, size_t *n)
{
    char **files = doc->files;

    *n = doc->nfiles;
    doc->files = NULL;
    doc->nfiles = 0;
    return files;
}

static const char *
intern_file(struct parser *p, const char *name)
{
    p->doc->files = xreallocarray(p->doc->files, p->doc->nfiles + 1, sizeof(char *));
    p->doc->files[p->doc->nfiles] = xstrdup(name);
    return p->doc->files[p->doc->nfiles++];
}

static struct conf_node *
push_node(struct conf_node *parent)
{
    struct conf_node *n;

    parent->children = xreallocarray(parent->children, parent->nchildren + 1, sizeof(*n));
    n = &parent->children[parent->nchildren++];
    memset(n, 0, sizeof(*n));
    return n;
}

static int parse_text(struct parser *p, const char *file, const char *text, size_t len,
                      struct conf_node *into);

/* Read a whole config file; -1 with errno set. */
static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    struct stat st;
    char *buf = NULL;

    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &st) == -1)
        goto fail;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    if (st.st_size > CONF_FILE_MAX) {
        errno = EFBIG;
        goto fail;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    *len = fread(buf, 1, (size_t)st.st_size, f);
    if (ferror(f))
        goto fail;
    buf[*len] = '\0';
    fclose(f);
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

static int
parse_path(struct parser *p, const char *path, const struct conf_pos *from, struct conf_node *into)
{
    size_t len = 0;
    char *text;
    int rc;

    text = read_file(path, &len);
    if (text == NULL) {
        if (from != NULL)
            conf_diag_add(p->diag, from, "cannot read included file '%s': %s", path,
                          strerror(errno));
        else
            conf_diag_add(p->diag, NULL, "%s: cannot read config: %s", path, strerror(errno));
        return -1;
    }
    rc = parse_text(p, intern_file(p, path), text, len, into);
    free(text);
    return rc;
}

/* A missing directory in a pattern just matches nothing; anything else stops the load. */
static int
glob_err(const char *epath, int eerrno)
{
    return eerrno != ENOENT && eerrno != ENOTDIR;
}

/* Expand `include PATTERN;`: relative patterns are taken from the including file's
 * directory. A pattern with wildcards may match nothing; a plain path must exist. */
static int
expand_include(struct parser *p, const struct conf_node *inc, struct conf_node *into)
{
    const char *pat = inc->args[0].s, *slash;
    char *full;
    glob_t g;
    int rc = 0, grc;

    if (p->depth >= INCLUDE_DEPTH_MAX) {
        conf_diag_add(p->diag, &inc->pos, "includes nested deeper than %d (a loop?) at '%s'",
                      INCLUDE_DEPTH_MAX, pat);
        return -1;
    }
    slash = strrchr(inc->pos.file, '/');
    if (pat[0] != '/' && slash != NULL)
        full = xasprintf("%.*s/%s", (int)(slash - inc->pos.file), inc->pos.file, pat);
    else
        full = xstrdup(pat);

    grc = glob(full, 0, glob_err, &g);
    if (grc == GLOB_NOMATCH) {
        if (strpbrk(pat, "*?[") == NULL) {
            conf_diag_add(p->diag, &inc->args[0].pos, "cannot read included file '%s': %s",
                          full, strerror(ENOENT));
            rc = -1;
        }
        goto out;
    }
    if (grc != 0) {
        conf_diag_add(p->diag, &inc->args[0].pos, "cannot expand include '%s': %s", full,
                      grc == GLOB_NOSPACE ? "out of memory" : "a directory cannot be read");
        rc = -1;
        goto out;
    }
    p->depth++;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
        rc = parse_path(p, g.gl_pathv[i], &inc->args[0].pos, into);
    p->depth--;
    globfree(&g);
out:
    free(full);
    return rc;
}

/* Report a syntax error at token t (or the lexer's own error); always -1. */
static int __attribute__((format(printf, 4, 5)))
syntax_error(struct parser *p, struct conf_lex *lx, const struct conf_token *t, const char *fmt,
             ...)
{
    char msg[400];
    va_list ap;

    if (t->type == TOK_ERROR) {
        conf_diag_add(p->diag, &lx->errpos, "%s", lx->errmsg);
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_diag_add(p->diag, &t->pos, "%s", msg);
    return -1;
}

static int parse_block(struct parser *p, struct conf_lex *lx, struct conf_node *parent,
                       const struct conf_node *opener);

/* Arguments up to ';' or '{' for a directive whose name is already in n. */
static int
parse_directive(struct parser *p, struct conf_lex *lx, struct conf_node *n)
{
    struct conf_token t;

    for (;;) {
        t = conf_lex_next(lx);
        if (t.type == TOK_WORD || t.type == TOK_STRING) {
            n->args = xreallocarray(n->args, n->nargs + 1, sizeof(*n->args));
            n->args[n->nargs++] = (struct conf_arg){t.text, t.pos, t.type == TOK_STRING};
            continue;
        }
        if (t.type == TOK_SEMI)
            return 0;
        if (t.type == TOK_LBRACE) {
            n->has_block = 1;
            return parse_block(p, lx, n, n);
        }
        return syntax_error(p, lx, &t, "expected ';' or '{' after '%s', got %s", n->name,
                            conf_tok_name(t.type));
    }
}

/* Directives until '}' (opener != NULL) or end of input (top level). */
static int
parse_block(struct parser *p, struct conf_lex *lx, struct conf_node *parent,
            const struct conf_node *opener)
{
    struct conf_token t;
    struct conf_node *n;

    for (;;) {
        t = conf_lex_next(lx);
        switch (t.type) {
        case TOK_EOF:
            if (opener == NULL)
                return 0;
            return syntax_error(p, lx, &t, "unexpected end of file, expected '}' to close '%s' "
                                "opened at %d:%d", opener->name, opener->pos.line,
                                opener->pos.col);
        case TOK_RBRACE:
            if (opener != NULL)
                return 0;
            return syntax_error(p, lx, &t, "unexpected '}'");
        case TOK_WORD:
            break;
        case TOK_STRING:
            free(t.text);
            return syntax_error(p, lx, &t, "expected a directive name, got a quoted string");
        default:
            return syntax_error(p, lx, &t, "unexpected %s", conf_tok_name(t.type));
        }
        n = push_node(parent);
        n->name = t.text;
        n->pos = t.pos;
        if (parse_directive(p, lx, n) == -1)
            return -1;
        if (strcmp(n->name, "include") != 0)
            continue;
        /* Splice the included directives in place of the include node. */
        if (n->has_block || n->nargs != 1) {
            conf_diag_add(p->diag, &n->pos, n->has_block ? "'include' does not take a block"
                                                         : "'include' takes 1 argument");
            return -1;
        }
        {
            struct conf_node inc = *n;
            int rc;
            parent->nchildren--;
            rc = expand_include(p, &inc, parent);
            node_clear(&inc);
            if (rc == -1)
                return -1;
        }
    }
}

static int
parse_text(struct parser *p, const char *file, const char *text, size_t len,
           struct conf_node *into)
{
    struct conf_lex lx;

    conf_lex_init(&lx, file, text, len);
    return parse_block(p, &lx, into, NULL);
}

int
conf_parse_file(const char *path, struct conf_doc *doc, struct conf_diag *diag)
{
    struct parser p = {.doc = doc, .diag = diag};

    memset(doc, 0, sizeof(*doc));
    return parse_path(&p, path, NULL, &doc->root);
}

int
conf_parse_string(const char *name, const char *text, struct conf_doc *doc,
                  struct conf_diag *diag)
{
    struct parser p = {.doc = doc, .diag = diag};

    memset(doc, 0, sizeof(*doc));
    return parse_text(&p, intern_file(&p, name), text, strlen(text), &doc->root);
}
