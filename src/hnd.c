/* Handler registry, read by the config loader (master) and the worker set-up, and what
 * handlers share. */
#include "config.h"

#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "util.h"

static const struct hnd_ops *const hnd_all[] = {
    &hnd_respond_ops, &hnd_files_ops,   &hnd_redirect_ops, &hnd_proxy_ops,
    &hnd_fastcgi_ops, &hnd_metrics_ops, &hnd_module_ops,
};

const struct hnd_ops *
hnd_find(const char *name)
{
    for (size_t i = 0; i < NELEMS(hnd_all); i++)
        if (strcmp(hnd_all[i]->name, name) == 0)
            return hnd_all[i];
    return NULL;
}

const char *
hnd_names(void)
{
    static char names[128];

    if (names[0] == '\0') {
        for (size_t i = 0; i < NELEMS(hnd_all); i++) {
            if (i > 0)
                strncat(names, ", ", sizeof(names) - strlen(names) - 1);
            strncat(names, hnd_all[i]->name, sizeof(names) - strlen(names) - 1);
        }
    }
    return names;
}

void
hnd_send_body(h2o_req_t *req, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = h2o_iovec_init(body, len);

    /* libh2o leaves HEAD to handlers: the headers keep the length, the body is left out. */
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}
