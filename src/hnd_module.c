/* The module handler: request handlers written in C, loaded by the master when the config
 * is read (so a bad module is a config error with its position) and run by the workers.
 * Also the functions modules call (include/percore/module.h). */
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "log.h"
#include "percore/module.h"
#include "util.h"

#define DEFER_QUEUES_MAX 32

struct module_conf {
    void *dl;
    const struct percore_module *mod;
    char *path;
    char *arg;
};

struct module_handler {
    h2o_handler_t super;
    const struct module_conf *conf;
    void *data;
    int failed; /* init() failed in this worker: answer 500 */
};

static int
module_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    const struct conf_arg *p = &n->args[0];
    struct module_conf *mc;
    void *dl, *sym;

    if (p->s[0] != '/') {
        conf_diag_add(diag, &p->pos, "module path '%s' must be absolute", p->s);
        return -1;
    }
    if (conf_path_kind(p->s) != NULL) {
        conf_diag_add(diag, &p->pos, "module %s is %s, not a regular file", p->s,
                      conf_path_kind(p->s));
        return -1;
    }
    dl = dlopen(p->s, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        conf_diag_add(diag, &p->pos, "cannot load module: %s", dlerror());
        return -1;
    }
    sym = dlsym(dl, "percore_module");
    if (sym == NULL) {
        conf_diag_add(diag, &p->pos, "'%s' is not a percore module: no 'percore_module' symbol",
                      p->s);
        dlclose(dl);
        return -1;
    }
    if (((const struct percore_module *)sym)->abi != PERCORE_MODULE_ABI ||
        ((const struct percore_module *)sym)->handle == NULL) {
        conf_diag_add(diag, &p->pos, "module '%s' was built for module ABI %u; this percore "
                      "speaks %u", p->s, ((const struct percore_module *)sym)->abi,
                      PERCORE_MODULE_ABI);
        dlclose(dl);
        return -1;
    }
    mc = xcalloc(1, sizeof(*mc));
    mc->dl = dl;
    mc->mod = sym;
    mc->path = xstrdup(p->s);
    mc->arg = n->nargs > 1 ? xstrdup(n->args[1].s) : NULL;
    *out = mc;
    return 0;
}

static void
module_free(void *p)
{
    struct module_conf *mc = p;

    if (mc == NULL)
        return;
    /* The module stays mapped: workers forked from this process may still run it. */
    free(mc->path);
    free(mc->arg);
    free(mc);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct module_handler *h = (struct module_handler *)self;
    int rc;

    if (h->failed) {
        h2o_send_error_500(req, "Internal Server Error", "module failed to start\n", 0);
        return 0;
    }
    rc = h->conf->mod->handle(h->data, (struct percore_request *)req);
    return rc == PERCORE_DECLINED ? -1 : 0;
}

static void
module_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    struct module_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));
    const struct module_conf *mc = hconf;

    h->super.on_req = on_req;
    h->conf = mc;
    /* Runs in the worker, once: per-worker module state. */
    if (mc->mod->init != NULL && mc->mod->init(mc->arg, &h->data) != 0) {
        log_warnx("module '%s' (%s): init failed; its route answers 500", mc->mod->name,
                  mc->path);
        h->failed = 1;
    }
}

const struct hnd_ops hnd_module_ops = {
    .name = "module",
    .min_args = 1,
    .max_args = 2,
    .usage = "module /PATH/TO/MODULE.so [ARGUMENT]",
    .parse = module_parse,
    .setup = module_setup,
    .free_conf = module_free,
};

/* ---- the API modules call ---- */

#define REQ(r) ((h2o_req_t *)(r))

const char *
percore_req_method(const struct percore_request *r, size_t *len)
{
    *len = REQ(r)->method.len;
    return REQ(r)->method.base;
}

const char *
percore_req_path(const struct percore_request *r, size_t *len)
{
    *len = REQ(r)->path.len;
    return REQ(r)->path.base;
}

/* Header names are lower case inside libh2o. */
static h2o_iovec_t
lower_dup(h2o_mem_pool_t *pool, const char *s)
{
    h2o_iovec_t v = h2o_strdup(pool, s, SIZE_MAX);

    for (size_t i = 0; i < v.len; i++)
        v.base[i] = (char)tolower((unsigned char)v.base[i]);
    return v;
}

const char *
percore_req_header(const struct percore_request *r, const char *name, size_t *len)
{
    h2o_req_t *req = REQ(r);
    h2o_iovec_t lname = lower_dup(&req->pool, name);
    ssize_t i = h2o_find_header_by_str(&req->headers, lname.base, lname.len, -1);

    if (i == -1)
        return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

const char *
percore_req_body(const struct percore_request *r, size_t *len)
{
    *len = REQ(r)->entity.len;
    return REQ(r)->entity.base;
}

int
percore_resp_header(struct percore_request *r, const char *name, const char *value)
{
    h2o_req_t *req = REQ(r);
    h2o_iovec_t lname, v;

    if (req->_generator != NULL)
        return -1;
    lname = lower_dup(&req->pool, name);
    v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lname.base, lname.len, 1, NULL,
                          v.base, v.len);
    return 0;
}

int
percore_respond(struct percore_request *r, int status, const char *content_type,
                const void *body, size_t len)
{
    h2o_req_t *req = REQ(r);
    h2o_iovec_t buf;

    if (req->_generator != NULL || status < 100 || status > 999)
        return -1;
    req->res.status = status;
    req->res.reason = "";
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       content_type, strlen(content_type));
    req->res.content_length = len;
    buf = h2o_strdup(&req->pool, body != NULL ? body : "", len);
    hnd_send_body(req, buf.base, buf.len);
    return 0;
}

/* libh2o timeouts have one fixed duration per queue: one queue per distinct delay. */
struct defer_queue {
    unsigned ms;
    h2o_timeout_t timeout;
};
static struct defer_queue defer_queues[DEFER_QUEUES_MAX];
static size_t ndefer_queues;

struct deferred {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
    percore_defer_cb *cb;
    void *arg;
};

static void
on_deferred(h2o_timeout_entry_t *entry)
{
    struct deferred *d = H2O_STRUCT_FROM_MEMBER(struct deferred, entry, entry);

    d->cb((struct percore_request *)d->req, d->arg);
}

/* The request is gone (client closed): the callback must never run. */
static void
on_deferred_dispose(void *p)
{
    struct deferred *d = p;

    if (h2o_timeout_is_linked(&d->entry))
        h2o_timeout_unlink(&d->entry);
}

int
percore_defer(struct percore_request *r, unsigned ms, percore_defer_cb *cb, void *arg)
{
    h2o_req_t *req = REQ(r);
    h2o_loop_t *loop = req->conn->ctx->loop;
    struct defer_queue *q = NULL;
    struct deferred *d;

    for (size_t i = 0; i < ndefer_queues; i++)
        if (defer_queues[i].ms == ms)
            q = &defer_queues[i];
    if (q == NULL) {
        if (ndefer_queues == DEFER_QUEUES_MAX)
            return -1;
        q = &defer_queues[ndefer_queues++];
        q->ms = ms;
        h2o_timeout_init(loop, &q->timeout, ms);
    }
    d = h2o_mem_alloc_shared(&req->pool, sizeof(*d), on_deferred_dispose);
    memset(d, 0, sizeof(*d));
    d->entry.cb = on_deferred;
    d->req = req;
    d->cb = cb;
    d->arg = arg;
    h2o_timeout_link(loop, &q->timeout, &d->entry);
    return 0;
}
