/* Grammar of the config language, run by the master: directives and blocks into a syntax
 * tree, with `include` expanded in place so later stages never see it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_parse.h"
#include "util.h"

/* A file being read, to catch an include loop however the file was named. */
struct file_id {
    dev_t dev;
    ino_t ino;
};

struct parser {
    struct conf_doc *doc;
    struct conf_diag *diag;
    int depth;                                     /* includes */
    int nest;                                      /* blocks */
    struct file_id chain[CONF_INCLUDE_DEPTH_MAX + 1]; /* files being read, outermost first */
    size_t nfiles, bytes, words;                   /* read so far */
};

/* s with control bytes escaped, so that a diagnostic is one line in a terminal, a log or a
 * control socket answer whatever a config value or file name holds. */
static char *
escape_controls(const char *s)
{
    /* An escape is 4 bytes at most: with the NUL, each snprintf stays within out. */
    char *out = xmalloc(strlen(s) * 4 + 1), *o = out;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p >= 0x20 && *p != 0x7f)
            *o++ = (char)*p;
        else if (*p == '\n' || *p == '\t' || *p == '\r')
            o += snprintf(o, 5, "\\%c", *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
        else
            o += snprintf(o, 5, "\\x%02x", *p);
    }
    *o = '\0';
    return out;
}

void
conf_diag_add(struct conf_diag *d, const struct conf_pos *pos, const char *fmt, ...)
{
    char msg[512], *line;
    va_list ap;

    if (d->n > CONF_DIAG_MAX)
        return;
    if (d->n == CONF_DIAG_MAX) {
        pos = NULL;
        snprintf(msg, sizeof(msg), "more than %d errors; the rest are not shown",
                 CONF_DIAG_MAX);
    } else {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    if (pos != NULL && pos->file != NULL)
        line = xasprintf("%s:%d:%d: %s", pos->file, pos->line, pos->col, msg);
    else
        line = xstrdup(msg);
    d->msgs = xreallocarray(d->msgs, d->n + 1, sizeof(*d->msgs));
    d->msgs[d->n++] = escape_controls(line);
    free(line);
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

/* Room for item n of an array of n items: grown to twice its size when n is a power of
 * two, so that a million items cost twenty reallocations, not a million. */
static void *
grow(void *p, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return p;
    return xreallocarray(p, n == 0 ? 1 : 2 * n, size);
}

static struct conf_node *
push_node(struct conf_node *parent)
{
    struct conf_node *n;

    parent->children = grow(parent->children, parent->nchildren, sizeof(*n));
    n = &parent->children[parent->nchildren++];
    memset(n, 0, sizeof(*n));
    return n;
}

static int parse_text(struct parser *p, const char *file, const char *text, size_t len,
                      struct conf_node *into);

/* What a non-regular file is, for the error that refuses it. */
static const char *
file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "a special file";
}

const char *
conf_path_kind(const char *path)
{
    struct stat st;

    if (stat(path, &st) == -1 || S_ISREG(st.st_mode))
        return NULL;
    return file_kind(st.st_mode);
}

/* Open path for reading if it is a regular file, into *fdp and *st; NULL on success, else
 * why not. Opened without blocking so that a FIFO or a device can only be refused, never
 * waited on. */
static const char *
open_regular(const char *path, int *fdp, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    const char *why;

    if (fd == -1) {
        /* A socket cannot be opened at all (ENXIO): say what it is. */
        if (errno == ENXIO && stat(path, st) == 0 && !S_ISREG(st->st_mode))
            return file_kind(st->st_mode);
        return strerror(errno);
    }
    if (fstat(fd, st) == -1) {
        why = strerror(errno);
        goto fail;
    }
    if (!S_ISREG(st->st_mode)) {
        why = file_kind(st->st_mode);
        goto fail;
    }
    *fdp = fd;
    return NULL;
fail:
    close(fd);
    return why;
}

/* Read fd to its end into *bufp (malloc'ed, NUL-terminated, freed by the caller even on
 * error) and *len. size is the file's st_size, a first guess only. NULL on success, else
 * why not: "too large" past max bytes. */
static const char *
read_all(int fd, size_t size, size_t max, char **bufp, size_t *len)
{
    /* st_size may be stale (or 0 in /proc): read to the end, up to one byte past max. */
    size_t n = 0, cap = size < max ? size + 1 : max + 1;
    char *buf = xmalloc(cap + 1);
    const char *why = NULL;
    ssize_t r;

    for (;;) {
        if (n == cap && cap <= max) {
            cap = cap > max / 2 ? max + 1 : cap * 2;
            buf = xreallocarray(buf, cap + 1, 1);
        }
        if (n == cap)
            break;
        r = read(fd, buf + n, cap - n);
        if (r == 0)
            break;
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            why = strerror(errno);
            break;
        }
        n += (size_t)r;
    }
    if (why == NULL && n > max)
        why = "too large";
    buf[n] = '\0';
    *bufp = buf;
    *len = n;
    return why;
}

/* Read a whole regular file of at most max bytes into *text (malloc'ed, the caller frees
 * it) and *len, with its identity in *id; NULL on success, else why not. */
static const char *
read_file(const char *path, size_t max, char **text, size_t *len, struct file_id *id)
{
    const char *why;
    struct stat st;
    char *buf;
    int fd = -1;

    why = open_regular(path, &fd, &st);
    if (why != NULL)
        return why;
    why = read_all(fd, (size_t)st.st_size, max, &buf, len);
    close(fd);
    if (why != NULL) {
        free(buf);
        return why;
    }
    *text = buf;
    *id = (struct file_id){st.st_dev, st.st_ino};
    return NULL;
}

/* Room left for one more file in this load, or the reason there is none. */
static const char *
over_budget(const struct parser *p, char *why, size_t whylen)
{
    if (p->nfiles >= CONF_FILES_MAX)
        snprintf(why, whylen, "more than %d files read", CONF_FILES_MAX);
    else if (p->bytes >= CONF_TOTAL_MAX)
        snprintf(why, whylen, "more than %d MiB read in all", CONF_TOTAL_MAX >> 20);
    else
        return NULL;
    return why;
}

/* Read path within what is left of this load's budgets, as read_file() does; NULL on
 * success, else why not (written into why when the reason is a budget). */
static const char *
read_in_budget(const struct parser *p, const char *path, char *why, size_t whylen, char **text,
               size_t *len, struct file_id *id)
{
    size_t max = CONF_FILE_MAX;
    const char *r;

    r = over_budget(p, why, whylen);
    if (r != NULL)
        return r;
    if (CONF_TOTAL_MAX - p->bytes < max)
        max = CONF_TOTAL_MAX - p->bytes;
    r = read_file(path, max, text, len, id);
    if (r == NULL || strcmp(r, "too large") != 0)
        return r;
    /* Say which limit the file hit: its own, or what is left of the load's total. */
    if (max < CONF_FILE_MAX)
        snprintf(why, whylen, "more than %d MiB read in all", CONF_TOTAL_MAX >> 20);
    else
        snprintf(why, whylen, "larger than %d MiB", CONF_FILE_MAX >> 20);
    return why;
}

static int
parse_path(struct parser *p, const char *path, const struct conf_pos *from, struct conf_node *into)
{
    size_t len = 0;
    char *text = NULL, budget[80];
    const char *why;
    struct file_id id;
    int rc;

    why = read_in_budget(p, path, budget, sizeof(budget), &text, &len, &id);
    if (why != NULL) {
        if (from != NULL)
            conf_diag_add(p->diag, from, "cannot read included file '%s': %s", path, why);
        else
            conf_diag_add(p->diag, NULL, "%s: cannot read config: %s", path, why);
        return -1;
    }
    for (int i = 0; i < p->depth; i++) {
        if (p->chain[i].dev == id.dev && p->chain[i].ino == id.ino) {
            conf_diag_add(p->diag, from, "include loop: '%s' is already being read", path);
            free(text);
            return -1;
        }
    }
    p->chain[p->depth] = id;
    p->nfiles++;
    p->bytes += len;
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

/* glob() recurses once per directory level after the first wildcard and walks every
 * directory a wildcard matches: keep both small. NULL if pat is fine, else why not. */
static const char *
pattern_too_big(const char *pat, char *why, size_t whylen)
{
    size_t slashes = 0, wild_dirs = 0;
    int wild = 0;

    if (strlen(pat) > CONF_PATTERN_MAX) {
        snprintf(why, whylen, "is longer than %d bytes", CONF_PATTERN_MAX);
        return why;
    }
    for (const char *c = pat;; c++) {
        if (*c == '/' || *c == '\0') {
            wild_dirs += wild;
            wild = 0;
            if (*c == '\0')
                break;
            slashes++;
        } else if (*c == '*' || *c == '?' || *c == '[') {
            wild = 1;
        }
    }
    if (slashes > CONF_PATTERN_SLASHES_MAX)
        snprintf(why, whylen, "has more than %d '/'", CONF_PATTERN_SLASHES_MAX);
    else if (wild_dirs > CONF_PATTERN_WILDCARD_DIRS_MAX)
        snprintf(why, whylen, "has wildcards in more than %d path components",
                 CONF_PATTERN_WILDCARD_DIRS_MAX);
    else
        return NULL;
    return why;
}

/* The include pattern as a path: a relative one is taken from the including file's
 * directory, where its reader would look. The caller frees the result. */
static char *
include_pattern(const struct conf_node *inc)
{
    const char *pat = inc->args[0].s, *slash = strrchr(inc->pos.file, '/');

    if (pat[0] != '/' && slash != NULL)
        return xasprintf("%.*s/%s", (int)(slash - inc->pos.file), inc->pos.file, pat);
    return xstrdup(pat);
}

/* Parse every file that full (inc's pattern as a path) matches into into. A pattern with
 * wildcards may match nothing; a plain path must exist. */
static int
include_matches(struct parser *p, const struct conf_node *inc, const char *full,
                struct conf_node *into)
{
    const struct conf_pos *at = &inc->args[0].pos;
    glob_t g;
    int rc = 0, grc;

    grc = glob(full, 0, glob_err, &g);
    if (grc == GLOB_NOMATCH) {
        if (strpbrk(inc->args[0].s, "*?[") != NULL)
            return 0;
        conf_diag_add(p->diag, at, "cannot read included file '%s': %s", full,
                      strerror(ENOENT));
        return -1;
    }
    if (grc != 0) {
        conf_diag_add(p->diag, at, "cannot expand include '%s': %s", full,
                      grc == GLOB_NOSPACE ? "out of memory" : "a directory cannot be read");
        return -1;
    }
    p->depth++;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
        rc = parse_path(p, g.gl_pathv[i], at, into);
    p->depth--;
    globfree(&g);
    return rc;
}

/* Expand `include PATTERN;` into into, after the checks that keep it bounded: nesting
 * depth, and the pattern's size for glob(). */
static int
expand_include(struct parser *p, const struct conf_node *inc, struct conf_node *into)
{
    const char *why;
    char *full, whybuf[80];
    int rc;

    if (p->depth >= CONF_INCLUDE_DEPTH_MAX) {
        conf_diag_add(p->diag, &inc->pos, "includes nested deeper than %d at '%s'",
                      CONF_INCLUDE_DEPTH_MAX, inc->args[0].s);
        return -1;
    }
    full = include_pattern(inc);
    why = pattern_too_big(full, whybuf, sizeof(whybuf));
    if (why != NULL) {
        conf_diag_add(p->diag, &inc->args[0].pos, "include pattern '%.200s%s' %s", full,
                      strlen(full) > 200 ? "..." : "", why);
        rc = -1;
    } else {
        rc = include_matches(p, inc, full, into);
    }
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

/* Count a word of the load against CONF_WORDS_MAX (freeing it when over), so that the tree
 * stays a bounded size whatever the files hold. */
static int
count_word(struct parser *p, struct conf_token *t)
{
    if (++p->words <= CONF_WORDS_MAX)
        return 0;
    free(t->text);
    t->text = NULL;
    conf_diag_add(p->diag, &t->pos, "more than %d words in the configuration",
                  CONF_WORDS_MAX);
    return -1;
}

/* Arguments up to ';' or '{' for a directive whose name is already in n. */
static int
parse_directive(struct parser *p, struct conf_lex *lx, struct conf_node *n)
{
    struct conf_token t;

    int rc;

    for (;;) {
        t = conf_lex_next(lx);
        if (t.type == TOK_WORD || t.type == TOK_STRING) {
            if (count_word(p, &t) == -1)
                return -1;
            n->args = grow(n->args, n->nargs, sizeof(*n->args));
            n->args[n->nargs++] = (struct conf_arg){t.text, t.pos, t.type == TOK_STRING};
            continue;
        }
        if (t.type == TOK_SEMI)
            return 0;
        if (t.type == TOK_LBRACE) {
            /* The parser recurses once per block: bound it before the stack does. */
            if (p->nest >= CONF_NEST_MAX) {
                conf_diag_add(p->diag, &t.pos, "blocks nested deeper than %d", CONF_NEST_MAX);
                return -1;
            }
            n->has_block = 1;
            p->nest++;
            rc = parse_block(p, lx, n, n);
            p->nest--;
            return rc;
        }
        return syntax_error(p, lx, &t, "expected ';' or '{' after '%s', got %s", n->name,
                            conf_tok_name(t.type));
    }
}

/* The next directive name of a block into *t: 1 if there is one, 0 at the block's end ('}',
 * or end of input at top level), -1 on error. */
static int
next_name(struct parser *p, struct conf_lex *lx, const struct conf_node *opener,
          struct conf_token *t)
{
    *t = conf_lex_next(lx);
    switch (t->type) {
    case TOK_EOF:
        if (opener == NULL)
            return 0;
        return syntax_error(p, lx, t, "unexpected end of file, expected '}' to close '%s' "
                            "opened at %d:%d", opener->name, opener->pos.line,
                            opener->pos.col);
    case TOK_RBRACE:
        if (opener != NULL)
            return 0;
        return syntax_error(p, lx, t, "unexpected '}'");
    case TOK_WORD:
        if (count_word(p, t) == -1)
            return -1;
        return 1;
    case TOK_STRING:
        free(t->text);
        return syntax_error(p, lx, t, "expected a directive name, got a quoted string");
    default:
        return syntax_error(p, lx, t, "unexpected %s", conf_tok_name(t->type));
    }
}

/* Replace the include directive just parsed (parent's last child) by the directives of the
 * files it names, so that later stages never see an include. */
static int
splice_include(struct parser *p, struct conf_node *parent)
{
    struct conf_node inc = parent->children[parent->nchildren - 1];
    int rc;

    if (inc.has_block || inc.nargs != 1) {
        conf_diag_add(p->diag, &inc.pos, inc.has_block ? "'include' does not take a block"
                                                       : "'include' takes 1 argument");
        return -1;
    }
    parent->nchildren--;
    rc = expand_include(p, &inc, parent);
    node_clear(&inc);
    return rc;
}

/* Directives until '}' (opener != NULL) or end of input (top level). */
static int
parse_block(struct parser *p, struct conf_lex *lx, struct conf_node *parent,
            const struct conf_node *opener)
{
    struct conf_token t;
    struct conf_node *n;
    int rc;

    for (;;) {
        rc = next_name(p, lx, opener, &t);
        if (rc != 1)
            return rc;
        n = push_node(parent);
        n->name = t.text;
        n->pos = t.pos;
        if (parse_directive(p, lx, n) == -1)
            return -1;
        if (strcmp(n->name, "include") == 0 && splice_include(p, parent) == -1)
            return -1;
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
