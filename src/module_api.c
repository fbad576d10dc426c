/* The functions percore modules call (include/percore/module.h, exported through
 * src/module.sym), in workers: read the request, answer it, or answer it later. A
 * struct percore_request is libh2o's request. */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "looplag.h"
#include "percore/module.h"

#define DEFER_QUEUES_MAX 32

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
    struct looplag_scope s;

    looplag_enter(&s, d->req);
    d->cb((struct percore_request *)d->req, d->arg);
    looplag_leave(&s);
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
