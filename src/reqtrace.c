/* Request IDs and W3C Trace Context (https://www.w3.org/TR/trace-context/).
 *
 * The router calls reqtrace_begin for every request it takes. With everything off that is
 * one clock read. With request_id on, the ID a trusted proxy sent is kept if it is
 * printable, else one is made (128 random bits, no system call), and the request goes on
 * with exactly one such header: upstreams and FastCGI see it, and a filter sends it back.
 * With tracing on, a valid traceparent (from those accept_parent allows) puts the request
 * in the caller's trace, else a trace begins here; either way the request goes on with
 * percore's own traceparent, so nothing malformed is ever passed on. */
#include "config.h"

#include <string.h>

#include "clientaddr.h"
#include "conf.h"
#include "reqdata.h"
#include "reqtrace.h"
#include "util.h"

static const struct conf_tracing *tracing; /* NULL: off */

void
reqtrace_init(const struct conf *c)
{
    tracing = c->tracing.on ? &c->tracing : NULL;
}

void
reqtrace_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* One byte from two lowercase hex digits (the spec allows no uppercase): 0, or -1. */
static int
hexbyte(const char *s, uint8_t *out)
{
    int v = 0;

    for (int i = 0; i < 2; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    *out = (uint8_t)v;
    return 0;
}

/* n bytes from 2n hex digits; -1 if any is not one, or all are zero (an invalid ID). */
static int
unhex(const char *s, size_t n, uint8_t *out)
{
    uint8_t any = 0;

    for (size_t i = 0; i < n; i++) {
        if (hexbyte(s + 2 * i, &out[i]) == -1)
            return -1;
        any |= out[i];
    }
    return any ? 0 : -1;
}

int
reqtrace_parse_traceparent(h2o_iovec_t v, struct reqtrace *t)
{
    const char *s = v.base;
    uint8_t ver, flags;

    if (v.len < REQTRACE_TRACEPARENT_LEN || hexbyte(s, &ver) == -1)
        return -1;
    /* Version ff is invalid; 00 is exactly 55 bytes; a later version may add fields after
     * a '-', which are not read. */
    if (ver == 0xff || (ver == 0 && v.len != REQTRACE_TRACEPARENT_LEN) ||
        (v.len > REQTRACE_TRACEPARENT_LEN && s[REQTRACE_TRACEPARENT_LEN] != '-'))
        return -1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (unhex(s + 3, 16, t->trace_id) == -1 || unhex(s + 36, 8, t->parent_id) == -1 ||
        hexbyte(s + 53, &flags) == -1)
        return -1;
    t->flags = flags & 1; /* other bits are not ours to pass on */
    return 0;
}

static int
is_key_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '*' || c == '/' || c == '@';
}

int
reqtrace_valid_tracestate(h2o_iovec_t v)
{
    size_t i = 0, members = 0;

    if (v.len == 0 || v.len > REQTRACE_TRACESTATE_MAX)
        return 0;
    while (i < v.len) {
        size_t k = 0, val = 0;
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t'))
            i++;
        if (i == v.len) /* empty members are allowed */
            break;
        if (v.base[i] == ',') {
            i++;
            continue;
        }
        while (i < v.len && is_key_byte((unsigned char)v.base[i]) && k < 256)
            i++, k++;
        if (k == 0 || i == v.len || v.base[i] != '=')
            return 0;
        i++;
        while (i < v.len && v.base[i] != ',') {
            unsigned char c = (unsigned char)v.base[i];
            if (c < 0x20 || c > 0x7e || c == '=')
                return 0;
            i++, val++;
        }
        if (val == 0 || val > 256 || ++members > 32)
            return 0;
    }
    return members > 0;
}

int
reqtrace_valid_request_id(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > REQTRACE_ID_MAX)
        return 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

void
reqtrace_new_span(uint8_t span[8])
{
    uint64_t r;

    do
        r = reqdata_random();
    while (r == 0);
    memcpy(span, &r, 8);
}

void
reqtrace_traceparent(const struct reqtrace *t, const uint8_t span[8], char *out)
{
    memcpy(out, "00-", 3);
    reqtrace_hex(t->trace_id, 16, out + 3);
    out[35] = '-';
    reqtrace_hex(span, 8, out + 36);
    out[52] = '-';
    out[53] = '0';
    out[54] = (char)('0' + (t->flags & 1));
    out[55] = '\0';
}

/* Take every line named name (lowercase; tok its token, or NULL) out of hs in one pass,
 * keeping the others in order, and return how many there were: over HTTP/2 a client can
 * repeat a line thousands of times at a byte each (HPACK), so nothing here may cost more
 * than once per line. *v is the first line's value; with join_pool, the values of all
 * joined with ',' (in join_pool), or a NULL base when that is longer than join_max. */
static unsigned
take_lines(h2o_headers_t *hs, const h2o_token_t *tok, const char *name, size_t len,
           h2o_iovec_t *v, h2o_mem_pool_t *join_pool, size_t join_max)
{
    size_t kept = 0;
    unsigned n = 0;
    char *buf = NULL;

    *v = h2o_iovec_init(NULL, 0);
    for (size_t i = 0; i < hs->size; i++) {
        const h2o_header_t *h = &hs->entries[i];
        if (tok != NULL ? h->name != &tok->buf
                        : !h2o_memis(h->name->base, h->name->len, name, len)) {
            hs->entries[kept++] = *h;
            continue;
        }
        if (n++ == 0) {
            *v = h->value;
            if (join_pool != NULL && v->len > join_max)
                v->base = NULL;
            continue;
        }
        if (join_pool == NULL || v->base == NULL)
            continue;
        if (v->len + 1 + h->value.len > join_max) {
            v->base = NULL;
            continue;
        }
        if (buf == NULL) {
            buf = h2o_mem_alloc_pool(join_pool, join_max);
            memcpy(buf, v->base, v->len);
            v->base = buf;
        }
        buf[v->len] = ',';
        memcpy(buf + v->len + 1, h->value.base, h->value.len);
        v->len += 1 + h->value.len;
    }
    hs->size = kept;
    return n;
}

/* Delete every header named name (lowercase), returning the value of the only one, or a
 * NULL base if there were none or several. */
static h2o_iovec_t
take_header(h2o_headers_t *hs, const char *name, size_t len, const h2o_token_t *tok)
{
    h2o_iovec_t v;

    return take_lines(hs, tok, name, len, &v, NULL, 0) == 1 ? v : h2o_iovec_init(NULL, 0);
}

/* Every tracestate line joined with ',', or a NULL base if none or longer than a valid
 * list; their headers deleted. */
static h2o_iovec_t
take_tracestate(h2o_req_t *req)
{
    h2o_iovec_t all;

    (void)take_lines(&req->headers, NULL, H2O_STRLIT("tracestate"), &all, &req->pool,
                     REQTRACE_TRACESTATE_MAX);
    return all;
}

static void
begin_request_id(h2o_req_t *req, struct reqdata *rd, const struct conf_service *s)
{
    const char *name = s->reqid.header;
    size_t len = strlen(name);
    const h2o_token_t *tok = h2o_lookup_token(name, len);
    h2o_iovec_t v = take_header(&req->headers, name, len, tok);

    if (v.base != NULL && reqtrace_valid_request_id(v) && clientaddr_peer_trusted(req)) {
        memcpy(rd->request_id, v.base, v.len);
        rd->request_id[v.len] = '\0';
    } else {
        reqdata_request_id(req);
    }
    v = h2o_iovec_init(rd->request_id, strlen(rd->request_id));
    if (tok != NULL)
        h2o_add_header(&req->pool, &req->headers, tok, NULL, v.base, v.len);
    else
        h2o_add_header_by_str(&req->pool, &req->headers, name, len, 0, NULL, v.base, v.len);
}

static int
parent_accepted(h2o_req_t *req)
{
    switch (tracing->accept) {
    case TRACE_ACCEPT_ANY: return 1;
    case TRACE_ACCEPT_TRUSTED: return clientaddr_peer_trusted(req);
    default: return 0;
    }
}

static void
begin_trace(h2o_req_t *req, struct reqtrace *t)
{
    h2o_iovec_t tp = take_header(&req->headers, H2O_STRLIT("traceparent"), NULL);
    h2o_iovec_t ts = take_tracestate(req);
    char *hdr;

    t->on = 1;
    if (tp.base != NULL && parent_accepted(req) && reqtrace_parse_traceparent(tp, t) == 0) {
        if (ts.base != NULL && reqtrace_valid_tracestate(ts))
            t->tracestate = ts;
    } else {
        uint64_t id[2] = {reqdata_random(), reqdata_random()};
        memcpy(t->trace_id, id, 16);
        memset(t->parent_id, 0, sizeof(t->parent_id));
        /* A ratio of 1 samples all; the top 53 bits make a uniform double. */
        t->flags = (double)(reqdata_random() >> 11) * 0x1.0p-53 < tracing->sample;
    }
    reqtrace_new_span(t->span_id);
    reqtrace_hex(t->trace_id, 16, t->trace_hex);
    hdr = h2o_mem_alloc_pool(&req->pool, REQTRACE_TRACEPARENT_LEN + 1);
    reqtrace_traceparent(t, t->span_id, hdr);
    h2o_add_header_by_str(&req->pool, &req->headers, H2O_STRLIT("traceparent"), 0, NULL, hdr,
                          REQTRACE_TRACEPARENT_LEN);
    if (t->tracestate.base != NULL)
        h2o_add_header_by_str(&req->pool, &req->headers, H2O_STRLIT("tracestate"), 0, NULL,
                              t->tracestate.base, t->tracestate.len);
}

void
reqtrace_begin(h2o_req_t *req, struct reqdata *rd, const struct conf_service *s)
{
    /* Once: a request that came round again keeps its time, ID and span, and its own
     * headers are not taken for a caller's. */
    if (rd->start_us != 0)
        return;
    rd->start_us = util_now_us();
    if (s->reqid.on)
        begin_request_id(req, rd, s);
    if (tracing != NULL)
        begin_trace(req, &rd->trace);
}

/* ---- the response header ---- */

struct idfilter {
    h2o_filter_t super;
    h2o_iovec_t name; /* lowercase */
    const h2o_token_t *tok;
};

static void
on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct idfilter *f = (struct idfilter *)self;
    const char *id = reqdata_request_id(req);

    if (f->tok != NULL)
        h2o_set_header(&req->pool, &req->res.headers, f->tok, id, strlen(id), 1);
    else
        h2o_set_header_by_str(&req->pool, &req->res.headers, f->name.base, f->name.len, 0, id,
                              strlen(id), 1);
    h2o_setup_next_ostream(req, slot);
}

void
reqtrace_register(h2o_pathconf_t *pc, const struct conf_service *s)
{
    struct idfilter *f;

    if (!s->reqid.on)
        return;
    f = (void *)h2o_create_filter(pc, sizeof(*f));
    f->super.on_setup_ostream = on_setup_ostream;
    f->name = h2o_iovec_init(s->reqid.header, strlen(s->reqid.header));
    f->tok = h2o_lookup_token(f->name.base, f->name.len);
}
