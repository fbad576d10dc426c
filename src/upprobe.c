/* Active health checks of upstream servers, on a worker's event loop, by the worker that
 * holds each server's lease. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heritage.h"
#include "log.h"
#include "phr.h"
#include "proxyproto.h"
#include "upprobe.h"
#include "upresolve.h"
#include "upstate.h"
#include "uptls.h"
#include "util.h"

#define STATUS_LINE_MAX 1024 /* longer: not an HTTP response worth reading on */

/* libh2o's timers have one duration per queue: one queue per distinct duration. */
struct queue {
    h2o_timeout_t t;
    uint64_t ms;
};

/* One server this worker may check. */
struct probe {
    struct upstate *u;
    struct upstate_policy pol; /* its check.path is not used: it is in req */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *req; /* the request, whole */
    size_t reqlen;
    h2o_timeout_t *every, *limit; /* the interval's queue, the timeout's */
    h2o_timeout_entry_t tick, deadline;
    h2o_socket_t *sock; /* while a check runs */
    int connected;
    void *ssl_ctx; /* https: the group's SSL_CTX, and the name to verify */
    char *tls_name;
    char pp[PROXYPROTO_OUT_MAX]; /* a PROXY header before TLS (else it starts req) */
    size_t pplen;
    const struct upresolve_slot *rslot; /* a followed host name's addresses, or NULL */
    uint64_t rid;
    struct upresolve_view view;
};

static struct {
    h2o_loop_t *loop;
    pid_t pid;
    struct probe *probes;
    size_t nprobes;
    struct queue *queues; /* room for all: libh2o keeps pointers to them */
    size_t nqueues;
    struct queue *first; /* 0 ms: the first ticks, at the loop's first turn */
} prober;

static h2o_timeout_t *
queue_for(uint64_t ms)
{
    struct queue *q;

    for (size_t i = 0; i < prober.nqueues; i++)
        if (prober.queues[i].ms == ms)
            return &prober.queues[i].t;
    q = &prober.queues[prober.nqueues++];
    q->ms = ms;
    h2o_timeout_init(prober.loop, &q->t, ms);
    return &q->t;
}

/* The lease outlives a tick by an interval and a check: its holder renews it at each tick,
 * and a holder that stops (hung; a dead one's the master frees) loses it. */
static int64_t
lease_ms(const struct probe *p)
{
    return 2 * p->pol.check.interval_ms + p->pol.check.timeout_ms;
}

static enum upstate_result
connect_result(int err)
{
    /* ENOENT: no socket at a unix path, as good as refused. */
    return err == ECONNREFUSED || err == ENOENT ? UPSTATE_CONNECT_REFUSED
                                                : UPSTATE_CONNECT_FAILED;
}

/* The check of p ended with r: its record learns it, unless this worker no longer holds
 * the lease or no config checks the server any more (a reload took the check away). */
static void
check_end(struct probe *p, enum upstate_result r, int detail)
{
    int64_t now = util_now_ms();

    if (p->sock != NULL) {
        h2o_socket_close(p->sock);
        p->sock = NULL;
    }
    if (h2o_timeout_is_linked(&p->deadline))
        h2o_timeout_unlink(&p->deadline);
    if (!(atomic_load(&p->u->flags) & UPSTATE_F_CHECKED) ||
        upstate_lease_holder(p->u, now) != prober.pid)
        return;
    upstate_check_report(p->u, &p->pol, r, detail, now);
}

/* The status of the response's status line in b: 1 with *status, 0 when the line is not
 * whole yet, -1 when it is not one. Only the line is parsed (headers may be many). */
static int
parse_status(const h2o_buffer_t *b, int *status)
{
    const char *nl = memchr(b->bytes, '\n', b->size), *msg;
    char line[STATUS_LINE_MAX + 2];
    struct phr_header h[1];
    size_t n, msg_len, nh = 0;
    int minor;

    if (nl == NULL)
        return b->size >= STATUS_LINE_MAX ? -1 : 0;
    n = (size_t)(nl - b->bytes) + 1;
    if (n > STATUS_LINE_MAX)
        return -1;
    memcpy(line, b->bytes, n);
    memcpy(line + n, "\r\n", 2); /* the end of a head with no headers */
    if (phr_parse_response(line, n + 2, &minor, status, &msg, &msg_len, h, &nh, 0) <= 0)
        return -1;
    return 1;
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
    struct probe *p = sock->data;
    int status = 0;

    switch (parse_status(sock->input, &status)) {
    case 1:
        if (status >= p->pol.check.status_min && status <= p->pol.check.status_max)
            check_end(p, UPSTATE_OK, status);
        else
            check_end(p, UPSTATE_STATUS, status);
        return;
    case -1:
        check_end(p, UPSTATE_INVALID, 0);
        return;
    }
    if (err != NULL)
        check_end(p, UPSTATE_CLOSED, 0);
}

static void
on_written(h2o_socket_t *sock, const char *err)
{
    /* A server that answers at once and closes may make the write fail: what it sent
     * counts. */
    if (err != NULL)
        on_read(sock, err);
}

/* Connected (and through TLS): the request goes, the status line is awaited. */
static void
send_check(struct probe *p)
{
    h2o_iovec_t req = h2o_iovec_init(p->req, p->reqlen);

    h2o_socket_read_start(p->sock, on_read);
    h2o_socket_write(p->sock, &req, 1, on_written);
}

static void
on_handshake(h2o_socket_t *sock, const char *err)
{
    struct probe *p = sock->data;

    if (err != NULL) {
        check_end(p, UPSTATE_TLS, 0);
        return;
    }
    send_check(p);
}

static void
on_header_written(h2o_socket_t *sock, const char *err)
{
    struct probe *p = sock->data;

    if (err != NULL) {
        check_end(p, UPSTATE_CLOSED, 0);
        return;
    }
    uptls_handshake(sock, p->ssl_ctx, p->tls_name, on_handshake);
}

static void
on_connect(h2o_socket_t *sock, const char *err)
{
    struct probe *p = sock->data;
    socklen_t len = sizeof(int);
    int soerr = 0;

    /* Made without libh2o's connect, whose error says no more than "connection failure":
     * the socket's own error tells refused from the rest. */
    if (getsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
        soerr = errno;
    if (soerr != 0 || err != NULL) {
        check_end(p, soerr != 0 ? connect_result(soerr) : UPSTATE_CONNECT_FAILED, soerr);
        return;
    }
    p->connected = 1;
    if (p->ssl_ctx != NULL && p->pplen > 0) {
        h2o_iovec_t hdr = h2o_iovec_init(p->pp, p->pplen);
        h2o_socket_write(sock, &hdr, 1, on_header_written);
    } else if (p->ssl_ctx != NULL) {
        uptls_handshake(sock, p->ssl_ctx, p->tls_name, on_handshake);
    } else {
        send_check(p);
    }
}

/* A followed host name's next address (the requests' own, as the pools take them) into
 * p->addr. */
static void
follow(struct probe *p)
{
    const union upresolve_addr *a;

    if (p->rslot == NULL)
        return;
    if (upresolve_read(p->rslot, p->rid, &p->view) == -1) {
        p->rslot = NULL; /* no longer followed: the address from load stays */
        return;
    }
    if (p->view.set.n == 0)
        return;
    a = &p->view.set.a[p->view.next++ % p->view.set.n];
    p->addrlen = upresolve_addrlen(a);
    memcpy(&p->addr, a, p->addrlen);
}

static void
check_start(struct probe *p)
{
    int fd, err;

    follow(p);
    fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        check_end(p, UPSTATE_CONNECT_FAILED, errno);
        return;
    }
    if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) == -1 && errno != EINPROGRESS) {
        err = errno;
        close(fd);
        check_end(p, connect_result(err), err);
        return;
    }
    p->connected = 0;
    p->sock = h2o_evloop_socket_create(prober.loop, fd, 0);
    p->sock->data = p;
    h2o_timeout_link(prober.loop, p->limit, &p->deadline);
    h2o_socket_notify_write(p->sock, on_connect);
}

static void
on_deadline(h2o_timeout_entry_t *entry)
{
    struct probe *p = H2O_STRUCT_FROM_MEMBER(struct probe, deadline, entry);

    check_end(p, p->connected ? UPSTATE_RESPONSE_TIMEOUT : UPSTATE_CONNECT_TIMEOUT, 0);
}

static void
on_tick(h2o_timeout_entry_t *entry)
{
    struct probe *p = H2O_STRUCT_FROM_MEMBER(struct probe, tick, entry);
    int64_t now = util_now_ms();

    h2o_timeout_link(prober.loop, p->every, &p->tick);
    /* A config being loaded may check a server the serving one does not, yet. */
    if (!(atomic_load(&p->u->flags) & UPSTATE_F_CHECKED)) {
        upstate_lease_drop(p->u, prober.pid);
        return;
    }
    if (!upstate_lease_take(p->u, prober.pid, now, lease_ms(p)) || p->sock != NULL)
        return; /* another worker's, or the last check still runs */
    check_start(p);
}

static int
has_ctl(const char *s, int space_too)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || (space_too && *s == ' '))
            return 1;
    return 0;
}

static int
target_ok(const struct upprobe_target *t)
{
    const struct upstate_policy *p = t->policy;

    if (p->check.path == NULL)
        return 1; /* skipped */
    return p->check.path[0] == '/' && !has_ctl(p->check.path, 1) && t->host != NULL &&
           !has_ctl(t->host, 0) && t->addrlen <= sizeof(struct sockaddr_storage) &&
           t->addrlen > 0 && p->check.interval_ms > 0 && p->check.timeout_ms > 0 &&
           t->idx >= 0 && t->idx < UPSTATE_MAX && (t->ssl_ctx == NULL || t->tls_name != NULL);
}

static void
add_probe(const struct upprobe_target *t)
{
    struct probe *p = &prober.probes[prober.nprobes++];
    size_t pre;
    char *get;

    p->u = upstate_get(t->idx);
    p->pol = *t->policy;
    memcpy(&p->addr, t->addr, t->addrlen);
    p->addrlen = t->addrlen;
    if (t->proxy_protocol != 0)
        p->pplen = t->proxy_protocol == 1 ? proxyproto_write_v1(NULL, NULL, p->pp)
                                          : proxyproto_write_v2(NULL, NULL, p->pp);
    get = xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                    "User-Agent: percore-health\r\n\r\n", t->policy->check.path, t->host);
    /* Without TLS, the header (binary for v2) is the request's start: one write. */
    pre = t->ssl_ctx == NULL ? p->pplen : 0;
    p->reqlen = pre + strlen(get);
    p->req = xmalloc(p->reqlen);
    memcpy(p->req, p->pp, pre);
    memcpy(p->req + pre, get, p->reqlen - pre);
    free(get);
    p->pol.check.path = NULL;
    p->ssl_ctx = t->ssl_ctx;
    p->tls_name = t->tls_name != NULL ? xstrdup(t->tls_name) : NULL;
    p->rslot = t->rslot;
    p->rid = t->rid;
    p->every = queue_for((uint64_t)p->pol.check.interval_ms);
    p->limit = queue_for((uint64_t)p->pol.check.timeout_ms);
    p->tick.cb = on_tick;
    p->deadline.cb = on_deadline;
    h2o_timeout_link(prober.loop, &prober.first->t, &p->tick);
}

int
upprobe_start(h2o_loop_t *loop, const struct upprobe_target *targets, size_t n)
{
    ASSERT_WORKER();
    assert(prober.loop == NULL); /* once */
    for (size_t i = 0; i < n; i++) {
        if (!target_ok(&targets[i])) {
            errno = EINVAL;
            return -1;
        }
    }
    prober.loop = loop;
    prober.pid = getpid();
    prober.probes = xcalloc(n > 0 ? n : 1, sizeof(*prober.probes));
    prober.queues = xcalloc(2 * n + 1, sizeof(*prober.queues));
    prober.first = &prober.queues[0];
    queue_for(0);
    for (size_t i = 0; i < n; i++)
        if (targets[i].policy->check.path != NULL)
            add_probe(&targets[i]);
    return 0;
}

void
upprobe_stop(void)
{
    if (prober.loop == NULL)
        return;
    for (size_t i = 0; i < prober.nprobes; i++) {
        struct probe *p = &prober.probes[i];
        if (h2o_timeout_is_linked(&p->tick))
            h2o_timeout_unlink(&p->tick);
        if (h2o_timeout_is_linked(&p->deadline))
            h2o_timeout_unlink(&p->deadline);
        if (p->sock != NULL)
            h2o_socket_close(p->sock);
        upstate_lease_drop(p->u, prober.pid);
        free(p->req);
        free(p->tls_name);
    }
    for (size_t i = 0; i < prober.nqueues; i++)
        h2o_timeout_dispose(prober.loop, &prober.queues[i].t);
    free(prober.probes);
    free(prober.queues);
    memset(&prober, 0, sizeof(prober));
}
