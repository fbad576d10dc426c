/* Grammar of the config language: directives and blocks into a syntax tree, includes expanded. */
#ifndef PERCORE_CONF_PARSE_H
#define PERCORE_CONF_PARSE_H

#include <stddef.h>

#include "conf_lex.h"

/* What one load may read, so that no config can exhaust the master's stack, memory or
 * time; each is reported at the position that crosses it. */
#define CONF_NEST_MAX 16              /* blocks inside blocks, across includes */
#define CONF_INCLUDE_DEPTH_MAX 8      /* files including files */
#define CONF_FILES_MAX 1000           /* files read by one load */
#define CONF_FILE_MAX (16 * 1024 * 1024)
#define CONF_TOTAL_MAX (64 * 1024 * 1024) /* bytes of all files read by one load */
#define CONF_WORDS_MAX 100000         /* directive names and arguments of one load */
#define CONF_PATTERN_MAX 4095         /* bytes of an include pattern, made absolute */
#define CONF_PATTERN_SLASHES_MAX 64
#define CONF_PATTERN_WILDCARD_DIRS_MAX 2 /* path components with wildcards */
#define CONF_DIAG_MAX 100             /* messages kept; one more says the rest were cut */

/* Diagnostics collected while loading a config, each "file:line:col: message" on one line
 * (control bytes in it escaped as \n, \t, \r or \xHH). */
struct conf_diag {
    char **msgs;
    size_t n;
};

void conf_diag_add(struct conf_diag *d, const struct conf_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conf_diag_clear(struct conf_diag *d);

struct conf_arg {
    char *s;
    struct conf_pos pos;
    int quoted;
};

struct conf_node {
    char *name;
    struct conf_pos pos;
    struct conf_arg *args;
    size_t nargs;
    int has_block;
    struct conf_node *children;
    size_t nchildren;
};

/* A parsed document: the top-level directives and the names of every file read. */
struct conf_doc {
    struct conf_node root;
    char **files;
    size_t nfiles;
};

/* Parse a file (or an in-memory text, named for diagnostics) into doc; -1 after a syntax
 * error, which is added to diag. The caller frees doc with conf_doc_free either way. */
int conf_parse_file(const char *path, struct conf_doc *doc, struct conf_diag *diag);
int conf_parse_string(const char *name, const char *text, struct conf_doc *doc,
                      struct conf_diag *diag);
void conf_doc_free(struct conf_doc *doc);
/* What a file the config names is when it is not a regular file ("a FIFO", "a device",
 * ...), found without opening it: opening a FIFO would block the master. NULL for a
 * regular file or one that cannot be looked up (its open then says why). */
const char *conf_path_kind(const char *path);
/* Take the file name list out of doc (for a conf that outlives the tree). */
char **conf_doc_steal_files(struct conf_doc *doc, size_t *n);

#endif
