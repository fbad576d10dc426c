/* A percore module used by the tests, and an example of the API: answers at once, later
 * (percore_defer), or declines. Build: cc -shared -fPIC $(pkg-config --cflags percore-module) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <percore/module.h>

struct state {
    char greeting[64];
    unsigned long served; /* calls, per worker: modules run on one thread per worker */
};

static int
hello_init(const char *arg, void **data)
{
    struct state *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return -1;
    if (arg != NULL && strcmp(arg, "fail") == 0) {
        free(st);
        return -1;
    }
    snprintf(st->greeting, sizeof(st->greeting), "%s", arg != NULL ? arg : "hello");
    *data = st;
    return 0;
}

static void
answer_late(struct percore_request *req, void *arg)
{
    (void)arg;
    percore_respond(req, 200, "text/plain", "late\n", 5);
}

static int
hello_handle(void *data, struct percore_request *req)
{
    struct state *st = data;
    char body[512];
    const char *path, *ua, *in;
    size_t plen, ualen = 0, inlen = 0;
    int n;

    ++st->served;
    path = percore_req_path(req, &plen);
    if (plen >= 7 && memcmp(path, "/m/slow", 7) == 0)
        return percore_defer(req, 300, answer_late, NULL) == 0 ? PERCORE_DONE : PERCORE_DECLINED;
    if (plen >= 7 && memcmp(path, "/m/none", 7) == 0)
        return PERCORE_DECLINED;
    ua = percore_req_header(req, "X-Who", &ualen);
    in = percore_req_body(req, &inlen);
    n = snprintf(body, sizeof(body), "%s %.*s who=%.*s body=%zu served=%lu\n", st->greeting,
                 (int)plen, path, (int)ualen, ua ? ua : "", inlen, st->served);
    (void)in;
    percore_resp_header(req, "X-Module", "hello");
    percore_respond(req, 200, "text/plain; charset=utf-8", body, (size_t)n);
    return PERCORE_DONE;
}

const struct percore_module percore_module = {
    .abi = PERCORE_MODULE_ABI,
    .name = "hello",
    .init = hello_init,
    .handle = hello_handle,
};
