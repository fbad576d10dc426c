/* Error documents: `error_page` and `error_format` read by the master into a set per
 * service and route, and the worker's filter that puts a set's documents in place of
 * percore's own error bodies.
 *
 * A set maps each status 400..599 to a document (shared, counted, between a service's set
 * and the route sets merged from it) and says which format the statuses without one get.
 * It is built at load and never written after: workers inherit it through fork.
 *
 * The filter is set up when a response starts (h2o_start_response). It leaves alone any
 * status below 400 at the cost of one comparison, and any response reqdata marks as an
 * upstream's, FastCGI application's or module's. For the others it replaces the head's
 * Content-Type and length and adds an ostream that swallows the body libh2o or percore
 * sends and, at its end, sends the document instead. A page is known at setup; a problem
 * document carries the swallowed body as its detail, so its length is set when that body
 * has ended, before the head goes out (libh2o writes the head with the first data the
 * connection's ostream gets, which this ostream holds back until then). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errordoc.h"
#include "hnd.h"
#include "reqdata.h"
#include "util.h"

#define STATUS_MIN 400
#define STATUS_MAX 599
#define NSTATUS (STATUS_MAX - STATUS_MIN + 1)
#define PAGE_FILE_MAX (64 * 1024)
/* The bytes of an error body kept as a problem document's detail; a longer body (which
 * percore's own never are) gives the reason phrase instead. */
#define DETAIL_MAX 512

enum { FORMAT_UNSET, FORMAT_TEXT, FORMAT_PROBLEM };

/* One document, shared by the statuses of its directive and by the sets merged from the
 * one it was parsed into; freed with its last reference. */
struct doc {
    unsigned refs;
    char *body;
    size_t len;
    const char *type; /* static */
};

struct page {
    struct doc *doc;     /* NULL: none for this status */
    struct conf_pos pos; /* where its status was given, for duplicates */
};

struct errordoc_set {
    struct page pages[NSTATUS];
    int format;
    struct conf_pos format_pos;
};

static struct errordoc_set *
set_new(void)
{
    return xcalloc(1, sizeof(struct errordoc_set));
}

static void
doc_unref(struct doc *d)
{
    if (d == NULL || --d->refs > 0)
        return;
    free(d->body);
    free(d);
}

void
errordoc_free(struct errordoc_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < NSTATUS; i++)
        doc_unref(set->pages[i].doc);
    free(set);
}

/* The status a page argument names, or -1 when it is no number in 400..599. */
static int
parse_status(const char *s)
{
    int v = 0;

    if (strlen(s) != 3)
        return -1;
    for (int i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= STATUS_MIN && v <= STATUS_MAX ? v : -1;
}

/* Content-Type of a page file, by its name's extension. */
static const char *
type_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');

    if (dot == NULL || (slash != NULL && dot < slash))
        return "text/plain; charset=utf-8";
    if (strcasecmp(dot, ".html") == 0 || strcasecmp(dot, ".htm") == 0)
        return "text/html; charset=utf-8";
    if (strcasecmp(dot, ".json") == 0)
        return "application/json";
    return "text/plain; charset=utf-8";
}

/* Reads the page file a names into a new document (one reference). O_NONBLOCK: opening a
 * FIFO must not block the master; fstat then turns it down. NULL after adding the error to
 * diag. */
static struct doc *
read_page(const struct conf_arg *a, struct conf_diag *diag)
{
    struct doc *d = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    ssize_t r;
    int fd;

    if (a->s[0] != '/') {
        conf_diag_add(diag, &a->pos, "error page '%s' needs an absolute path", a->s);
        return NULL;
    }
    fd = open(a->s, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd == -1) {
        conf_diag_add(diag, &a->pos, "error page %s: %s", a->s, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) == -1) {
        conf_diag_add(diag, &a->pos, "error page %s: %s", a->s, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        const char *kind = conf_path_kind(a->s);
        conf_diag_add(diag, &a->pos, "error page %s is %s, not a regular file", a->s,
                      kind != NULL ? kind : "something else");
        goto fail;
    }
    if (st.st_size > PAGE_FILE_MAX)
        goto too_big;
    /* One byte more than the limit: a file that grew since fstat is caught too. */
    buf = xmalloc(PAGE_FILE_MAX + 1);
    while (len < PAGE_FILE_MAX + 1) {
        r = read(fd, buf + len, PAGE_FILE_MAX + 1 - len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            conf_diag_add(diag, &a->pos, "error page %s: %s", a->s, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > PAGE_FILE_MAX)
        goto too_big;
    close(fd);
    d = xcalloc(1, sizeof(*d));
    d->refs = 1;
    d->body = buf;
    d->len = len;
    d->type = type_of(a->s);
    return d;
too_big:
    conf_diag_add(diag, &a->pos, "error page %s is larger than %d KiB", a->s,
                  PAGE_FILE_MAX / 1024);
fail:
    free(buf);
    close(fd);
    return NULL;
}

static struct doc *
text_page(const char *s)
{
    struct doc *d = xcalloc(1, sizeof(*d));

    d->refs = 1;
    d->body = xstrdup(s);
    d->len = strlen(s);
    d->type = "text/plain; charset=utf-8";
    return d;
}

/* Checks the statuses args[0..n) (each valid, none given before in set or in this list)
 * into st; -1 after adding the first problem to diag. */
static int
check_statuses(const struct conf_node *nd, size_t n, const struct errordoc_set *set,
               int *st, struct conf_diag *diag)
{
    for (size_t i = 0; i < n; i++) {
        const struct conf_arg *a = &nd->args[i];
        const struct conf_pos *first = NULL;

        st[i] = parse_status(a->s);
        if (st[i] == -1) {
            conf_diag_add(diag, &a->pos,
                          "invalid status '%s' for 'error_page': expected 400 to 599", a->s);
            return -1;
        }
        if (set != NULL && set->pages[st[i] - STATUS_MIN].doc != NULL)
            first = &set->pages[st[i] - STATUS_MIN].pos;
        for (size_t j = 0; first == NULL && j < i; j++)
            if (st[j] == st[i])
                first = &nd->args[j].pos;
        if (first != NULL) {
            conf_diag_add(diag, &a->pos, "duplicate error page for status %d (first at %s:%d:%d)",
                          st[i], first->file, first->line, first->col);
            return -1;
        }
    }
    return 0;
}

static int
is_keyword(const char *s)
{
    return strcmp(s, "file") == 0 || strcmp(s, "respond") == 0;
}

static int
all_digits(const char *s)
{
    return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

/* Reports what is wrong with a page directive that has no keyword: a bad status, a word
 * in the keyword's place, or nothing after the statuses. */
static void
no_keyword(const struct conf_node *n, struct conf_diag *diag)
{
    size_t i = 0;

    while (i < n->nargs && parse_status(n->args[i].s) != -1)
        i++;
    if (i == n->nargs)
        conf_diag_add(diag, n->nargs > 0 ? &n->args[n->nargs - 1].pos : &n->pos,
                      "'error_page' needs 'file PATH' or 'respond TEXT' after its statuses");
    else if (all_digits(n->args[i].s))
        conf_diag_add(diag, &n->args[i].pos,
                      "invalid status '%s' for 'error_page': expected 400 to 599",
                      n->args[i].s);
    else
        conf_diag_add(diag, &n->args[i].pos,
                      "expected 'file' or 'respond' after the statuses of 'error_page', not "
                      "'%s'", n->args[i].s);
}

int
errordoc_parse_page(const struct conf_node *n, struct errordoc_set **set,
                    struct conf_diag *diag)
{
    size_t nst = 0;
    const struct conf_arg *kw, *val;
    struct doc *d;
    int *st;

    while (nst < n->nargs && !is_keyword(n->args[nst].s))
        nst++;
    if (nst == n->nargs) {
        no_keyword(n, diag);
        return -1;
    }
    kw = &n->args[nst];
    if (nst == 0) {
        conf_diag_add(diag, &kw->pos, "'error_page' needs a status (400 to 599) before '%s'",
                      kw->s);
        return -1;
    }
    st = xcalloc(nst, sizeof(*st));
    if (check_statuses(n, nst, *set, st, diag) == -1)
        goto fail;
    if (n->nargs != nst + 2) {
        conf_diag_add(diag, n->nargs < nst + 2 ? &kw->pos : &n->args[nst + 2].pos,
                      "'%s' in 'error_page' takes exactly one argument", kw->s);
        goto fail;
    }
    val = &n->args[nst + 1];
    d = strcmp(kw->s, "file") == 0 ? read_page(val, diag) : text_page(val->s);
    if (d == NULL)
        goto fail;
    if (*set == NULL)
        *set = set_new();
    for (size_t i = 0; i < nst; i++) {
        struct page *p = &(*set)->pages[st[i] - STATUS_MIN];
        p->doc = d;
        p->pos = n->args[i].pos;
        d->refs++;
    }
    doc_unref(d); /* the reference read_page or text_page gave */
    free(st);
    return 0;
fail:
    free(st);
    return -1;
}

int
errordoc_parse_format(const struct conf_node *n, struct errordoc_set **set,
                      struct conf_diag *diag)
{
    int format;

    if (n->nargs != 1) {
        conf_diag_add(diag, n->nargs > 1 ? &n->args[1].pos : &n->pos,
                      "'error_format' takes one argument: 'text' or 'problem+json'");
        return -1;
    }
    if (strcmp(n->args[0].s, "text") == 0) {
        format = FORMAT_TEXT;
    } else if (strcmp(n->args[0].s, "problem+json") == 0) {
        format = FORMAT_PROBLEM;
    } else {
        conf_diag_add(diag, &n->args[0].pos,
                      "invalid value '%s' for 'error_format': expected 'text' or "
                      "'problem+json'", n->args[0].s);
        return -1;
    }
    if (*set != NULL && (*set)->format != FORMAT_UNSET) {
        conf_diag_add(diag, &n->pos, "duplicate 'error_format' (first set at %s:%d:%d)",
                      (*set)->format_pos.file, (*set)->format_pos.line,
                      (*set)->format_pos.col);
        return -1;
    }
    if (*set == NULL)
        *set = set_new();
    (*set)->format = format;
    (*set)->format_pos = n->pos;
    return 0;
}

struct errordoc_set *
errordoc_merge(const struct errordoc_set *route, const struct errordoc_set *service)
{
    struct errordoc_set *m;

    if (route == NULL && service == NULL)
        return NULL;
    m = set_new();
    for (size_t i = 0; i < NSTATUS; i++) {
        const struct page *p = route != NULL && route->pages[i].doc != NULL
                                   ? &route->pages[i]
                                   : service != NULL ? &service->pages[i] : NULL;
        if (p == NULL || p->doc == NULL)
            continue;
        m->pages[i] = *p;
        m->pages[i].doc->refs++;
    }
    if (route != NULL && route->format != FORMAT_UNSET) {
        m->format = route->format;
        m->format_pos = route->format_pos;
    } else if (service != NULL) {
        m->format = service->format;
        m->format_pos = service->format_pos;
    }
    return m;
}

/* Appends the JSON string body of s[0..len) to buf (within cap) at *off, which counts
 * every byte, written or not. Any byte a client sent gives valid JSON: quote, backslash,
 * controls and DEL escaped, and bytes >= 0x80 each as the code point of the same value,
 * so no invalid UTF-8 is ever written. */
static void
put_escaped(char *buf, size_t cap, size_t *off, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t n;

        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            n = 6;
        } else {
            e[0] = (char)c;
            n = 1;
        }
        for (size_t j = 0; j < n; j++, (*off)++)
            if (*off < cap)
                buf[*off] = e[j];
    }
}

static void
put_raw(char *buf, size_t cap, size_t *off, const char *s)
{
    for (; *s != '\0'; s++, (*off)++)
        if (*off < cap)
            buf[*off] = *s;
}

size_t
errordoc_problem_json(char *buf, size_t cap, int status, const char *detail, size_t dlen,
                      const char *path, size_t plen)
{
    const char *title = hnd_reason(status);
    char num[16];
    size_t off = 0;

    (void)snprintf(num, sizeof(num), "%d", status);
    put_raw(buf, cap, &off, "{\"type\":\"about:blank\",\"title\":\"");
    put_escaped(buf, cap, &off, title, strlen(title));
    put_raw(buf, cap, &off, "\",\"status\":");
    put_raw(buf, cap, &off, num);
    put_raw(buf, cap, &off, ",\"detail\":\"");
    put_escaped(buf, cap, &off, detail, dlen);
    put_raw(buf, cap, &off, "\",\"instance\":\"");
    put_escaped(buf, cap, &off, path, plen);
    put_raw(buf, cap, &off, "\"}");
    return off;
}

/* --- worker: the filter --- */

struct doc_filter {
    h2o_filter_t super;
    const struct errordoc_set *set;
};

/* Stands between the response's generator and the connection: takes the body, then sends
 * the document. In the request's pool. */
struct doc_ostream {
    h2o_ostream_t super;
    const struct doc *doc; /* NULL: a problem document */
    h2o_timeout_entry_t more; /* asks the generator for more, from the loop */
    h2o_req_t *req;
    size_t dlen;
    int dover; /* the body did not fit in detail */
    char detail[DETAIL_MAX];
};

static int
is_head(const h2o_req_t *req)
{
    return h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
}

/* The detail of a problem document: the body given, without its final line break (libh2o
 * and percore end theirs with one), or the reason phrase when there was none or too much
 * (HEAD, a streamed body). */
static h2o_iovec_t
detail_of(struct doc_ostream *o, int status)
{
    size_t n = o->dlen;

    if (o->dover || n == 0)
        return h2o_iovec_init(hnd_reason(status), strlen(hnd_reason(status)));
    while (n > 0 && (o->detail[n - 1] == '\n' || o->detail[n - 1] == '\r'))
        n--;
    return h2o_iovec_init(o->detail, n);
}

static h2o_iovec_t
problem_doc(struct doc_ostream *o, h2o_req_t *req)
{
    h2o_iovec_t d = detail_of(o, req->res.status);
    const char *q = memchr(req->input.path.base, '?', req->input.path.len);
    size_t plen = q != NULL ? (size_t)(q - req->input.path.base) : req->input.path.len;
    size_t len = errordoc_problem_json(NULL, 0, req->res.status, d.base, d.len,
                                       req->input.path.base, plen);
    char *buf = h2o_mem_alloc_pool(&req->pool, len);

    (void)errordoc_problem_json(buf, len, req->res.status, d.base, d.len,
                                req->input.path.base, plen);
    return h2o_iovec_init(buf, len);
}

static void
keep_detail(struct doc_ostream *o, const h2o_iovec_t *bufs, size_t bufcnt)
{
    for (size_t i = 0; i < bufcnt && !o->dover; i++) {
        if (bufs[i].len > DETAIL_MAX - o->dlen) {
            o->dover = 1;
            break;
        }
        memcpy(o->detail + o->dlen, bufs[i].base, bufs[i].len);
        o->dlen += bufs[i].len;
    }
}

static void
on_more(h2o_timeout_entry_t *entry)
{
    struct doc_ostream *o = H2O_STRUCT_FROM_MEMBER(struct doc_ostream, more, entry);

    h2o_proceed_response(o->req);
}

/* The request ends before its body did: the generator is not to be asked again. */
static void
doc_stop(h2o_ostream_t *self, h2o_req_t *req)
{
    struct doc_ostream *o = (struct doc_ostream *)self;

    (void)req;
    if (h2o_timeout_is_linked(&o->more))
        h2o_timeout_unlink(&o->more);
}

static void
doc_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
            h2o_send_state_t state)
{
    struct doc_ostream *o = (struct doc_ostream *)self;
    h2o_iovec_t body;

    if (o->doc == NULL)
        keep_detail(o, bufs, bufcnt);
    if (h2o_send_state_is_in_progress(state)) {
        /* The connection asks for more only after data it got: ask from the loop (not from
         * within the generator's own send). */
        if (!h2o_timeout_is_linked(&o->more))
            h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->zero_timeout, &o->more);
        return;
    }
    if (o->doc != NULL) {
        body = h2o_iovec_init(o->doc->body, o->doc->len);
    } else {
        body = problem_doc(o, req);
        /* HEAD: the detail GET would give is unknown, so no length rather than a wrong
         * one (RFC 9110, 8.6). */
        req->res.content_length = is_head(req) ? SIZE_MAX : body.len;
    }
    /* A generator's error after no data sent: the document is whole all the same. */
    if (is_head(req))
        h2o_ostream_send_next(self, req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_ostream_send_next(self, req, &body, 1, H2O_SEND_STATE_FINAL);
}

/* Drops what says how the old body was framed or encoded, and its type. */
static void
clear_body_headers(h2o_req_t *req)
{
    static const h2o_token_t *const drop[] = {H2O_TOKEN_CONTENT_TYPE,
                                              H2O_TOKEN_CONTENT_ENCODING,
                                              H2O_TOKEN_CONTENT_LENGTH,
                                              H2O_TOKEN_TRANSFER_ENCODING};
    ssize_t i;

    for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
        while ((i = h2o_find_header(&req->res.headers, drop[k], -1)) != -1)
            h2o_delete_header(&req->res.headers, i);
    req->res.mime_attr = NULL;
}

static void
on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    const struct errordoc_set *set = ((struct doc_filter *)self)->set;
    const struct reqdata *rd;
    const struct doc *doc;
    struct doc_ostream *o;
    int status = req->res.status;

    if (status < STATUS_MIN || status > STATUS_MAX)
        goto next;
    doc = set->pages[status - STATUS_MIN].doc;
    if (doc == NULL && set->format != FORMAT_PROBLEM)
        goto next;
    rd = reqdata_find(req);
    if (rd != NULL && (rd->flags & RD_UPSTREAM_RESPONSE) != 0)
        goto next;
    clear_body_headers(req);
    if (doc != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, doc->type,
                       strlen(doc->type));
        req->res.content_length = doc->len; /* for HEAD too: what GET gets */
    } else {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/problem+json"));
    }
    o = (struct doc_ostream *)(void *)h2o_add_ostream(req, sizeof(*o), slot);
    o->super.do_send = doc_do_send;
    o->super.stop = doc_stop;
    o->doc = doc;
    memset(&o->more, 0, sizeof(o->more));
    o->more.cb = on_more;
    o->req = req;
    o->dlen = 0;
    o->dover = is_head(req);
    slot = &o->super.next;
next:
    h2o_setup_next_ostream(req, slot);
}

void
errordoc_register(h2o_pathconf_t *pc, const struct errordoc_set *set)
{
    struct doc_filter *f;
    int any = 0;

    if (set == NULL)
        return;
    for (size_t i = 0; i < NSTATUS && !any; i++)
        any = set->pages[i].doc != NULL;
    if (!any && set->format != FORMAT_PROBLEM)
        return; /* nothing to replace: no filter, no cost */
    f = (struct doc_filter *)(void *)h2o_create_filter(pc, sizeof(*f));
    f->super.on_setup_ostream = on_setup_ostream;
    f->set = set;
}
