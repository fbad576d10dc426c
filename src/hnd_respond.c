/* The respond handler: a fixed status and body, configured by the master, served by workers. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "util.h"

struct respond_conf {
    int status;
    char *body;
    size_t body_len;
};

struct respond_handler {
    h2o_handler_t super;
    const struct respond_conf *conf;
};

static int
respond_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    const struct conf_arg *st = &n->args[0];
    struct respond_conf *rc;

    if (strlen(st->s) != 3 || !isdigit((unsigned char)st->s[0]) ||
        !isdigit((unsigned char)st->s[1]) || !isdigit((unsigned char)st->s[2]) ||
        st->s[0] < '2' || st->s[0] > '5') {
        conf_diag_add(diag, &st->pos, "invalid status '%s' for 'respond': expected 200 to 599",
                      st->s);
        return -1;
    }
    rc = xcalloc(1, sizeof(*rc));
    rc->status = (st->s[0] - '0') * 100 + (st->s[1] - '0') * 10 + (st->s[2] - '0');
    rc->body = xstrdup(n->nargs > 1 ? n->args[1].s : "");
    rc->body_len = strlen(rc->body);
    if ((rc->status == 204 || rc->status == 304) && rc->body_len > 0) {
        conf_diag_add(diag, &n->args[1].pos, "status %d cannot have a body", rc->status);
        free(rc->body);
        free(rc);
        return -1;
    }
    *out = rc;
    return 0;
}

static void
respond_free(void *p)
{
    struct respond_conf *rc = p;

    if (rc == NULL)
        return;
    free(rc->body);
    free(rc);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    const struct respond_conf *rc = ((struct respond_handler *)self)->conf;

    req->res.status = rc->status;
    req->res.reason = hnd_reason(rc->status);
    if (rc->status != 204 && rc->status != 304) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("text/plain; charset=utf-8"));
        req->res.content_length = rc->body_len;
    }
    /* The body is config data that outlives the request: sent without a copy. */
    hnd_send_body(req, rc->body, rc->body_len);
    return 0;
}

static void
respond_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    struct respond_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));

    h->super.on_req = on_req;
    h->conf = hconf;
}

const struct hnd_ops hnd_respond_ops = {
    .name = "respond",
    .min_args = 1,
    .max_args = 2,
    .usage = "respond STATUS [BODY]",
    .parse = respond_parse,
    .setup = respond_setup,
    .free_conf = respond_free,
};
