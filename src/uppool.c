/* A worker's connections to one upstream server (see uppool.h). libh2o 2.2.5's socket
 * pool exports a socket when it is returned and imports it again when it is taken (an
 * fcntl and an epoll_ctl each way); here an idle connection keeps its h2o socket and its
 * place in the loop, and is taken and given back by moving a list link. Connections
 * opened with a preamble (a PROXY header) are idle in a bucket by its hash as well, so
 * that finding one for a client looks at a few, not at every idle one. */
#include "config.h"

#include <assert.h>
#include <string.h>

#include "uppool.h"
#include "util.h"

/* Buckets of idle connections by preamble: for the 1024 idle ones upsel.c lets a pool
 * keep, 4 each on average. */
#define NBUCKETS 256

struct uppool {
    h2o_loop_t *loop;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h2o_timeout_t keepalive;
    h2o_linklist_t idle; /* struct upconn; the most recently used at the end */
    size_t nidle, max_idle;
    int rcvbuf;
    h2o_linklist_t *buckets; /* NBUCKETS; NULL until a connection with a preamble is idle */
    const struct upresolve_slot *rslot; /* followed name, or NULL */
    uint64_t rid;
    struct upresolve_view view;
};

/* FNV-1a: preambles differ in an address or a port, and spread over the buckets. */
static uint64_t
hash_bytes(const char *b, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static h2o_linklist_t *
bucket_of(struct uppool *p, uint64_t hash)
{
    return &p->buckets[hash % NBUCKETS];
}

/* The buckets, made when the first connection with a preamble is given back; any idle
 * ones already there go into theirs. */
static void
make_buckets(struct uppool *p)
{
    p->buckets = xcalloc(NBUCKETS, sizeof(*p->buckets));
    for (size_t i = 0; i < NBUCKETS; i++)
        h2o_linklist_init_anchor(&p->buckets[i]);
    for (h2o_linklist_t *l = p->idle.next; l != &p->idle; l = l->next) {
        struct upconn *c = H2O_STRUCT_FROM_MEMBER(struct upconn, link, l);
        h2o_linklist_insert(bucket_of(p, c->hash), &c->same);
    }
}

struct uppool *
uppool_new(h2o_loop_t *loop, const struct sockaddr *addr, socklen_t len, uint64_t keepalive_ms,
           size_t max_idle, int rcvbuf)
{
    struct uppool *p = xcalloc(1, sizeof(*p));

    p->loop = loop;
    memcpy(&p->addr, addr, len);
    p->addrlen = len;
    h2o_timeout_init(loop, &p->keepalive, keepalive_ms);
    h2o_linklist_init_anchor(&p->idle);
    p->max_idle = max_idle;
    p->rcvbuf = rcvbuf;
    return p;
}

static void
unlink_idle(struct upconn *c)
{
    h2o_linklist_unlink(&c->link);
    if (h2o_linklist_is_linked(&c->same))
        h2o_linklist_unlink(&c->same);
    h2o_timeout_unlink(&c->timer);
    c->pool->nidle--;
}

void
upconn_close(struct upconn *c)
{
    if (h2o_linklist_is_linked(&c->link))
        unlink_idle(c);
    h2o_timeout_unlink(&c->timer);
    h2o_socket_close(c->sock);
    free(c);
}

/* Anything from an idle connection (its close, or bytes no request asked for) ends it. */
static void
on_idle_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    upconn_close(sock->data);
}

static void
on_idle_timeout(h2o_timeout_entry_t *entry)
{
    upconn_close(H2O_STRUCT_FROM_MEMBER(struct upconn, timer, entry));
}

void
uppool_follow(struct uppool *p, const struct upresolve_slot *s, uint64_t id)
{
    p->rslot = s;
    p->rid = id;
}

/* Whether c may go on: connected to an address the name still has. */
static int
current(const struct uppool *p, const struct upconn *c)
{
    return p->rslot == NULL || upresolve_has(&p->view.set, &c->peer);
}

/* The name's addresses as last published (one atomic load when they did not change): after
 * a change, idle connections to an address left behind are closed (nginx and HAProxy drop
 * them too: the old address may be another service's by now). */
static void
refresh(struct uppool *p)
{
    h2o_linklist_t *l, *next;
    int rc;

    if (p->rslot == NULL)
        return;
    rc = upresolve_read(p->rslot, p->rid, &p->view);
    if (rc == -1) { /* an old generation's: the slot went to another name */
        p->rslot = NULL;
        return;
    }
    if (rc == 0)
        return;
    for (l = p->idle.next; l != &p->idle; l = next) {
        struct upconn *c = H2O_STRUCT_FROM_MEMBER(struct upconn, link, l);
        next = l->next;
        if (!current(p, c))
            upconn_close(c);
    }
}

struct upconn *
uppool_take_for(struct uppool *p, h2o_iovec_t preamble)
{
    struct upconn *c = NULL;
    h2o_linklist_t *anchor;

    refresh(p);
    if (p->buckets == NULL) {
        /* No connection with a preamble was ever idle here: no idle one has one. */
        if (preamble.len == 0 && !h2o_linklist_is_empty(&p->idle))
            c = H2O_STRUCT_FROM_MEMBER(struct upconn, link, p->idle.prev);
    } else {
        anchor = bucket_of(p, hash_bytes(preamble.base, preamble.len));
        for (h2o_linklist_t *l = anchor->prev; l != anchor && c == NULL; l = l->prev) {
            struct upconn *t = H2O_STRUCT_FROM_MEMBER(struct upconn, same, l);
            if (t->preamble_len == preamble.len &&
                (preamble.len == 0 || memcmp(t->preamble, preamble.base, preamble.len) == 0))
                c = t;
        }
    }
    if (c != NULL)
        unlink_idle(c);
    return c;
}

struct upconn *
uppool_take(struct uppool *p)
{
    return uppool_take_for(p, h2o_iovec_init(NULL, 0));
}

void
uppool_put(struct upconn *c)
{
    struct uppool *p = c->pool;

    refresh(p);
    if (!current(p, c)) {
        upconn_close(c);
        return;
    }
    if (p->nidle >= p->max_idle)
        upconn_close(H2O_STRUCT_FROM_MEMBER(struct upconn, link, p->idle.next));
    if (c->preamble_len != 0 && p->buckets == NULL)
        make_buckets(p);
    c->sock->data = c;
    h2o_socket_read_start(c->sock, on_idle_read);
    h2o_linklist_insert(&p->idle, &c->link);
    if (p->buckets != NULL)
        h2o_linklist_insert(bucket_of(p, c->hash), &c->same);
    c->timer.cb = on_idle_timeout;
    h2o_timeout_link(p->loop, &p->keepalive, &c->timer);
    p->nidle++;
}

static void
on_preamble_sent(h2o_socket_t *sock, const char *err)
{
    struct upconn *c = sock->data;

    c->cb(c, err, c->data);
}

static void
on_connect(h2o_socket_t *sock, const char *err)
{
    struct upconn *c = sock->data;
    h2o_iovec_t pre = h2o_iovec_init(c->preamble, c->preamble_len);

    /* Before anything of the caller's, a TLS handshake included: a PROXY header goes in
     * clear. The caller's connect timeout runs on until cb. */
    if (err == NULL && pre.len != 0) {
        h2o_socket_write(sock, &pre, 1, on_preamble_sent);
        return;
    }
    c->cb(c, err, c->data);
}

struct upconn *
uppool_connect(struct uppool *p, upconn_cb cb, void *data)
{
    return uppool_connect_for(p, h2o_iovec_init(NULL, 0), cb, data);
}

struct upconn *
uppool_connect_for(struct uppool *p, h2o_iovec_t preamble, upconn_cb cb, void *data)
{
    struct upconn *c;
    const struct sockaddr *sa = (const struct sockaddr *)&p->addr;
    socklen_t len = p->addrlen;

    assert(preamble.len <= UPPOOL_PREAMBLE_MAX);
    c = xcalloc(1, sizeof(*c));
    refresh(p);
    if (p->rslot != NULL && p->view.set.n > 0) {
        c->peer = p->view.set.a[p->view.next++ % p->view.set.n];
        sa = &c->peer.sa;
        len = upresolve_addrlen(&c->peer);
    }
    c->sock = h2o_socket_connect(p->loop, (struct sockaddr *)sa, len, on_connect);
    if (c->sock == NULL) {
        free(c);
        return NULL;
    }
    /* libh2o reads all a socket holds at once: its receive buffer bounds what one read
     * brings past a response's read-ahead limit. */
    if (p->rcvbuf > 0)
        (void)setsockopt(h2o_socket_get_fd(c->sock), SOL_SOCKET, SO_RCVBUF, &p->rcvbuf,
                         sizeof(p->rcvbuf));
    c->sock->data = c;
    c->pool = p;
    c->cb = cb;
    c->data = data;
    if (preamble.len != 0)
        memcpy(c->preamble, preamble.base, preamble.len);
    c->preamble_len = preamble.len;
    c->hash = hash_bytes(preamble.base, preamble.len);
    return c;
}
