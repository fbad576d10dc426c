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

/* Bytes a path may keep as they are in a Location: RFC 3986 pchar and '/', less '\''. */
static int
path_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&()*+,;=:@/", c) != NULL);
}

/* Bytes a query may keep: printable ASCII but for quotes, angle brackets, '\\' and '`'. */
static int
query_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("\"<>\\`'", c) == NULL;
}

/* s percent-encoded where keep() says no, in pool; with one_slash, runs of '/' made one. */
static char *
encode(h2o_mem_pool_t *pool, const char *s, size_t len, int (*keep)(unsigned char),
       int one_slash, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = h2o_mem_alloc_pool(pool, len * 3 + 1), *p = out;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (one_slash && c == '/' && p > out && p[-1] == '/')
            continue;
        if (keep(c)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    *outlen = (size_t)(p - out);
    return out;
}

char *
hnd_location_path(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    return encode(pool, s, len, path_char_ok, 1, outlen);
}

char *
hnd_location_query(h2o_mem_pool_t *pool, const char *s, size_t len, size_t *outlen)
{
    return encode(pool, s, len, query_char_ok, 0, outlen);
}
