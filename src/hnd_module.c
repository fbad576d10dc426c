/* The module handler: request handlers written in C, loaded by the master when the config
 * is read (so a bad module is a config error with its position) and run by the workers.
 * The functions modules call are in module_api.c. */
#include "config.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "log.h"
#include "percore/module.h"
#include "reqdata.h"
#include "util.h"

struct module_conf {
    void *dl;
    const struct percore_module *mod;
    char *path;
    char *arg;
    char *unsandboxed; /* "module 'x' (/path)" when it says it needs the sandbox off */
};

/* Whether the module exports percore_module_needs_syscalls, not 0. */
static int
needs_syscalls(void *dl)
{
    const int *flag = dlsym(dl, "percore_module_needs_syscalls");

    return flag != NULL && *flag != 0;
}

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
    if (needs_syscalls(dl))
        mc->unsandboxed = xasprintf("module '%s' (%s)", mc->mod->name, mc->path);
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
    free(mc->unsandboxed);
    free(mc);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct module_handler *h = (struct module_handler *)self;
    int rc;

    if (h->failed) {
        h2o_send_error_500(req, hnd_reason(500), "module failed to start\n", 0);
        return 0;
    }
    reqdata_mark_upstream(req); /* what the module answers is its own */
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

const char *
hnd_module_name(const void *hconf)
{
    const struct module_conf *mc = hconf;

    return mc->mod->name != NULL ? mc->mod->name : mc->path;
}

static const char *
module_unsandboxed(const void *p)
{
    const struct module_conf *mc = p;

    return mc->unsandboxed;
}

const struct hnd_ops hnd_module_ops = {
    .name = "module",
    .min_args = 1,
    .max_args = 2,
    .usage = "module /PATH/TO/MODULE.so [ARGUMENT]",
    .parse = module_parse,
    .setup = module_setup,
    .free_conf = module_free,
    .unsandboxed = module_unsandboxed,
};
