/* Handler registry, read by the config loader (master) and the worker set-up. */
#include "config.h"

#include <string.h>

#include "hnd.h"

static const struct hnd_ops *const hnd_all[] = {
    &hnd_respond_ops,
    &hnd_files_ops,
    &hnd_redirect_ops,
    &hnd_proxy_ops,
    &hnd_fastcgi_ops,
    &hnd_module_ops,
};

const struct hnd_ops *
hnd_find(const char *name)
{
    for (size_t i = 0; i < sizeof(hnd_all) / sizeof(hnd_all[0]); i++)
        if (strcmp(hnd_all[i]->name, name) == 0)
            return hnd_all[i];
    return NULL;
}

const char *
hnd_names(void)
{
    return "respond, files, redirect, proxy, fastcgi, module";
}
