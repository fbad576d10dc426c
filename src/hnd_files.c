/* The files handler: a document root served by libh2o's file handler (index files, MIME
 * types, ETag and Last-Modified with conditional requests, byte ranges), behind a guard
 * that keeps every request inside the root. libh2o normalises "..", "%2e%2e" and friends
 * away before routing; the guard adds that no symbolic link may lead out of the root
 * unless `symlinks` is given. Directory listings are off unless `listing` is given. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "util.h"

struct files_conf {
    char *root; /* realpath, no trailing slash */
    int listing;
    int symlinks_out;
};

struct files_guard {
    h2o_handler_t super;
    const struct files_conf *conf;
};

static int
files_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    const struct conf_arg *root = &n->args[0];
    struct files_conf *fc;
    char real[PATH_MAX];
    struct stat st;

    if (realpath(root->s, real) == NULL) {
        conf_diag_add(diag, &root->pos, "document root '%s': %s", root->s, strerror(errno));
        return -1;
    }
    if (stat(real, &st) == -1 || !S_ISDIR(st.st_mode)) {
        conf_diag_add(diag, &root->pos, "document root '%s' is not a directory", root->s);
        return -1;
    }
    fc = xcalloc(1, sizeof(*fc));
    for (size_t i = 1; i < n->nargs; i++) {
        if (strcmp(n->args[i].s, "listing") == 0) {
            fc->listing = 1;
        } else if (strcmp(n->args[i].s, "symlinks") == 0) {
            fc->symlinks_out = 1;
        } else {
            conf_diag_add(diag, &n->args[i].pos, "unknown files option '%s': expected "
                          "'listing' or 'symlinks'", n->args[i].s);
            free(fc);
            return -1;
        }
    }
    fc->root = xstrdup(strcmp(real, "/") == 0 ? "" : real);
    *out = fc;
    return 0;
}

static void
files_free(void *p)
{
    struct files_conf *fc = p;

    if (fc == NULL)
        return;
    free(fc->root);
    free(fc);
}

/* Let the request through (-1: next handler) unless the file it names resolves outside
 * the root, which is answered 404 as if it did not exist. */
static int
on_guard(h2o_handler_t *self, h2o_req_t *req)
{
    const struct files_conf *fc = ((struct files_guard *)self)->conf;
    size_t plen = req->pathconf->path.len, rlen = strlen(fc->root);
    h2o_iovec_t rel = {NULL, 0}, path;
    char real[PATH_MAX];

    if (fc->symlinks_out)
        return -1;
    if (req->path_normalized.len > plen)
        rel = h2o_iovec_init(req->path_normalized.base + plen, req->path_normalized.len - plen);
    path = h2o_concat(&req->pool, h2o_iovec_init(fc->root, rlen), h2o_iovec_init(H2O_STRLIT("/")),
                      rel, h2o_iovec_init(H2O_STRLIT("\0")));
    if (realpath(path.base, real) == NULL)
        return -1; /* missing: the file handler answers 404 */
    if (strncmp(real, fc->root, rlen) == 0 && (real[rlen] == '/' || real[rlen] == '\0'))
        return -1;
    h2o_send_error_404(req, "File Not Found", "not found", 0);
    return 0;
}

static void
files_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    static const char *index_files[] = {"index.html", "index.htm", NULL};
    const struct files_conf *fc = hconf;
    struct files_guard *g = (void *)h2o_create_handler(pc, sizeof(*g));

    g->super.on_req = on_guard;
    g->conf = fc;
    h2o_file_register(pc, fc->root[0] ? fc->root : "/", index_files, NULL,
                      fc->listing ? H2O_FILE_FLAG_DIR_LISTING : 0);
}

const struct hnd_ops hnd_files_ops = {
    .name = "files",
    .min_args = 1,
    .max_args = 3,
    .parse = files_parse,
    .setup = files_setup,
    .free_conf = files_free,
};
