/* Upstream host names followed while percore runs (see upresolve.h): the master's lookups
 * with c-ares, and the shared slots the workers read.
 *
 * c-ares rather than getaddrinfo: it runs in the master's own poll loop, with no thread
 * (getaddrinfo_a's would share the master with every fork) and no helper process, and its
 * answers carry their TTL. It reads /etc/hosts at each lookup and follows nsswitch.conf's
 * order of files and DNS, but no other NSS source: a name only such a source knows (mDNS,
 * LDAP) resolves at load (getaddrinfo) and is then reported as failing, keeping that address.
 *
 * Each slot is a seqlock: the master makes the version odd, writes, makes it even; a worker
 * copies the words and keeps the copy only if the version was even and the same before and
 * after. Its first word names the holder, so a worker of an old generation whose name has
 * been given up (and the slot given to another) sees it is no longer its own. */
#include "config.h"

#include <ares.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "conf.h"
#include "heritage.h"
#include "log.h"
#include "upresolve.h"
#include "util.h"

#define SET_WORDS ((sizeof(struct upresolve_set) + 7) / 8)
#define READ_TRIES 64 /* a worker's tries while the master writes: it keeps its copy then */
#define LOOKUP_TIMEOUT_MS 2000
#define LOOKUP_TRIES 2
#define RESOLV_CONF "/etc/resolv.conf"
#define BOUNDS_MAX 4 /* distinct resolve= bounds counted per name */

struct upresolve_slot {
    _Atomic uint64_t seq;                  /* odd while the master writes */
    _Atomic uint64_t words[1 + SET_WORDS]; /* the holder's id, then a struct upresolve_set */
};

/* The master's own record of a slot (same index). */
struct name {
    char host[256];
    char port[8];
    int family;
    struct {
        int64_t ms;
        unsigned refs;
    } bounds[BOUNDS_MAX]; /* the `resolve=` of the servers that follow it: the least counts */
    unsigned refs;        /* servers of loaded configs that follow it */
    uint64_t id;         /* the holder's mark; 0: never used */
    int64_t next_ms;     /* the next lookup */
    int64_t released_ms; /* when refs fell to 0: the longest unused slot goes first */
    int busy;            /* a lookup is under way */
    int failing;         /* the last lookup failed (said once in the log) */
    struct upresolve_set cur; /* as published */
};

static struct upresolve_slot *slots; /* the shared region, mapped at the first name */
static struct name names[UPRESOLVE_NAMES_MAX];
static uint64_t last_id;
static ares_channel channel;
static int channel_failed;   /* said once in the log */
static struct stat resolv_st; /* resolv.conf as the channel read it */

/* ---- the shared slots ---- */

static int
map_region(void)
{
    void *p;

    if (slots != NULL)
        return 0;
    p = mmap(NULL, UPRESOLVE_NAMES_MAX * sizeof(*slots), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_warn("mmap of the upstream address slots");
        return -1;
    }
    slots = p;
    return 0;
}

static void
publish(struct upresolve_slot *s, uint64_t id, const struct upresolve_set *set)
{
    uint64_t w[1 + SET_WORDS] = {id};
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

    memcpy(&w[1], set, sizeof(*set));
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < NELEMS(w); i++)
        atomic_store_explicit(&s->words[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

int
upresolve_read(const struct upresolve_slot *s, uint64_t id, struct upresolve_view *v)
{
    uint64_t w[1 + SET_WORDS], seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    struct upresolve_set set;
    int changed;

    if (seq == v->seq)
        return 0;
    for (int tries = 0;; tries++) {
        if (tries == READ_TRIES)
            return 0;
        if ((seq & 1) == 0) {
            for (size_t i = 0; i < NELEMS(w); i++)
                w[i] = atomic_load_explicit(&s->words[i], memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&s->seq, memory_order_relaxed) == seq)
                break;
        }
        seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    }
    if (w[0] != id)
        return -1;
    memcpy(&set, &w[1], sizeof(set));
    changed = set.n != v->set.n || memcmp(set.a, v->set.a, sizeof(set.a)) != 0;
    v->set = set;
    v->seq = seq;
    return changed;
}

socklen_t
upresolve_addrlen(const union upresolve_addr *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof(a->sin6) : sizeof(a->sin);
}

int
upresolve_has(const struct upresolve_set *set, const union upresolve_addr *a)
{
    for (unsigned i = 0; i < set->n; i++)
        if (memcmp(&set->a[i], a, sizeof(*a)) == 0)
            return 1;
    return 0;
}

/* ---- sets ---- */

/* Put sa (len bytes) into set, in order, once; when the set is full, the greatest is left
 * out: the same answer in any order gives the same set. */
static void
set_add(struct upresolve_set *set, const struct sockaddr *sa, size_t len)
{
    union upresolve_addr a;
    unsigned i = 0;
    int cmp = 1;

    if (len > sizeof(a))
        return;
    memset(&a, 0, sizeof(a));
    memcpy(&a, sa, len);
    while (i < set->n && (cmp = memcmp(&a, &set->a[i], sizeof(a))) > 0)
        i++;
    if ((i < set->n && cmp == 0) || i == UPRESOLVE_ADDRS_MAX)
        return;
    if (set->n == UPRESOLVE_ADDRS_MAX)
        set->n--;
    memmove(&set->a[i + 1], &set->a[i], (set->n - i) * sizeof(a));
    set->a[i] = a;
    set->n++;
}

/* The addresses of family in an answer into set (emptied first), and the smallest TTL of
 * them and of the CNAMEs that led to them, in seconds (0 for /etc/hosts' names). */
static int
collect(const struct ares_addrinfo *res, int family, struct upresolve_set *set)
{
    int ttl = INT_MAX;

    memset(set, 0, sizeof(*set));
    for (const struct ares_addrinfo_node *n = res->nodes; n != NULL; n = n->ai_next) {
        if (n->ai_family != family || n->ai_addr == NULL)
            continue;
        set_add(set, n->ai_addr, n->ai_addrlen);
        if (n->ai_ttl < ttl)
            ttl = n->ai_ttl;
    }
    for (const struct ares_addrinfo_cname *c = res->cnames; c != NULL; c = c->next)
        if (c->ttl < ttl)
            ttl = c->ttl;
    return ttl < 0 ? 0 : ttl;
}

/* The least `resolve=` of the servers that follow n (a config's servers may ask for other
 * bounds than the next config's, and both are loaded during a reload). */
static int64_t
bound_ms(const struct name *n)
{
    int64_t ms = CONF_TIME_MAX_MS;

    for (int i = 0; i < BOUNDS_MAX; i++)
        if (n->bounds[i].refs > 0 && n->bounds[i].ms < ms)
            ms = n->bounds[i].ms;
    return ms;
}

/* The place of ms among n's bounds, or -1. */
static int
find_bound(const struct name *n, int64_t ms)
{
    for (int i = 0; i < BOUNDS_MAX; i++)
        if (n->bounds[i].refs > 0 && n->bounds[i].ms == ms)
            return i;
    return -1;
}

/* The place of the least bound (-1 if none). */
static int
least_bound(const struct name *n)
{
    int least = -1;

    for (int i = 0; i < BOUNDS_MAX; i++)
        if (n->bounds[i].refs > 0 && (least == -1 || n->bounds[i].ms < n->bounds[least].ms))
            least = i;
    return least;
}

/* One more server asks for ms. With every place taken, it is counted with the least bound,
 * lowered to ms if need be: n is then looked up more often than asked, never less. */
static void
add_bound(struct name *n, int64_t ms)
{
    int at = find_bound(n, ms);

    for (int i = 0; at == -1 && i < BOUNDS_MAX; i++)
        if (n->bounds[i].refs == 0) {
            at = i;
            n->bounds[i].ms = ms;
        }
    if (at == -1) {
        at = least_bound(n);
        if (ms < n->bounds[at].ms)
            n->bounds[at].ms = ms;
    }
    n->bounds[at].refs++;
}

/* One server asking for ms less (counted with the least when it was folded in there). */
static void
remove_bound(struct name *n, int64_t ms)
{
    int at = find_bound(n, ms);

    if (at == -1)
        at = least_bound(n);
    if (at != -1)
        n->bounds[at].refs--;
}

/* The next lookup's wait: the TTL, within 1 s and the name's bound. */
static int64_t
wait_ms(int ttl, int64_t bound)
{
    int64_t ms = (int64_t)ttl * 1000;

    return ms < UPRESOLVE_MIN_MS ? UPRESOLVE_MIN_MS : ms > bound ? bound : ms;
}

/* "10.0.0.1:80, [::1]:80" */
static void
set_text(const struct upresolve_set *set, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    size_t off = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < set->n && off < len; i++) {
        const union upresolve_addr *a = &set->a[i];
        int six = a->sa.sa_family == AF_INET6;
        int w;
        if (inet_ntop(a->sa.sa_family, six ? (const void *)&a->sin6.sin6_addr
                                            : (const void *)&a->sin.sin_addr,
                      ip, sizeof(ip)) == NULL)
            snprintf(ip, sizeof(ip), "?");
        w = snprintf(buf + off, len - off, "%s%s%s%s:%u", i > 0 ? ", " : "", six ? "[" : "",
                     ip, six ? "]" : "", ntohs(six ? a->sin6.sin6_port : a->sin.sin_port));
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/* ---- names ---- */

/* A slot for a new name: one never used, else the one given up longest ago (not while its
 * last lookup is out: the answer would land in the new name's slot). -1 if none. */
static int
free_slot(void)
{
    int best = -1;

    for (int i = 0; i < UPRESOLVE_NAMES_MAX; i++) {
        if (names[i].id == 0)
            return i;
        if (names[i].refs == 0 && !names[i].busy &&
            (best == -1 || names[i].released_ms < names[best].released_ms))
            best = i;
    }
    return best;
}

struct upresolve_slot *
upresolve_acquire(const char *host, const char *port, const struct sockaddr *first,
                  int64_t bound_ms, uint64_t *id)
{
    struct name *n;
    int i;

    ASSERT_MASTER(); /* the slots' only writer */
    if (map_region() == -1)
        return NULL;
    for (i = 0; i < UPRESOLVE_NAMES_MAX; i++) {
        n = &names[i];
        if (n->id != 0 && n->family == first->sa_family && strcmp(n->host, host) == 0 &&
            strcmp(n->port, port) == 0) {
            n->refs++;
            add_bound(n, bound_ms);
            n->next_ms = 0;
            *id = n->id;
            return &slots[i];
        }
    }
    i = free_slot();
    if (i == -1 || strlen(host) >= sizeof(n->host) || strlen(port) >= sizeof(n->port)) {
        log_warnx("upstream host '%s' is not looked up again: %d names are followed already, "
                  "its address from load stays", host, UPRESOLVE_NAMES_MAX);
        return NULL;
    }
    n = &names[i];
    memset(n, 0, sizeof(*n));
    memcpy(n->host, host, strlen(host) + 1);
    memcpy(n->port, port, strlen(port) + 1);
    n->family = first->sa_family;
    add_bound(n, bound_ms);
    n->refs = 1;
    n->id = ++last_id;
    set_add(&n->cur, first, first->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in));
    publish(&slots[i], n->id, &n->cur);
    *id = n->id;
    return &slots[i];
}

void
upresolve_release(struct upresolve_slot *s, uint64_t id, int64_t bound_ms)
{
    struct name *n;

    ASSERT_MASTER();
    if (s == NULL)
        return;
    n = &names[s - slots];
    if (n->id != id || n->refs == 0)
        return;
    remove_bound(n, bound_ms);
    if (--n->refs == 0)
        n->released_ms = util_now_ms();
}

/* ---- lookups ---- */

/* ares_getsock's bits for socket i: c-ares' own macros shift a signed 1 into the sign bit
 * for the sixteenth socket. */
static int
sock_events(int bits, int i)
{
    unsigned b = (unsigned)bits;

    return (b & (1u << i) ? POLLIN : 0) | (b & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0);
}

static void
answered(struct name *n, const struct upresolve_set *set, int ttl, int64_t now)
{
    char text[400];

    if (n->failing) {
        log_info("upstream host '%s' resolves again", n->host);
        n->failing = 0;
    }
    if (set->n != n->cur.n || memcmp(set->a, n->cur.a, sizeof(set->a)) != 0) {
        set_text(set, text, sizeof(text));
        log_info("upstream host '%s' now resolves to %s", n->host, text);
        n->cur = *set;
        publish(&slots[n - names], n->id, set);
    }
    n->next_ms = now + wait_ms(ttl, bound_ms(n));
}

static void
failed(struct name *n, const char *why, int64_t now)
{
    char text[400];

    if (!n->failing) {
        set_text(&n->cur, text, sizeof(text));
        log_warnx("cannot resolve upstream host '%s': %s; keeping %s", n->host, why, text);
        n->failing = 1;
    } else {
        log_debug("upstream host '%s' still does not resolve: %s", n->host, why);
    }
    n->next_ms = now + bound_ms(n);
}

static void
on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct name *n = arg;
    struct upresolve_set set;
    int ttl = 0;

    (void)timeouts;
    if (status == ARES_EDESTRUCTION) /* upresolve_fini */
        return;
    n->busy = 0;
    if (status == ARES_SUCCESS && res != NULL) {
        ttl = collect(res, n->family, &set);
        if (set.n == 0)
            status = ARES_ENODATA;
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
    if (status != ARES_SUCCESS)
        failed(n, status == ARES_ENODATA ? "no address of its family"
                                         : ares_strerror(status), util_now_ms());
    else
        answered(n, &set, ttl, util_now_ms());
}

static int
busy_count(void)
{
    int k = 0;

    for (int i = 0; i < UPRESOLVE_NAMES_MAX; i++)
        k += names[i].busy;
    return k;
}

/* The channel, made at the first lookup, and again when resolv.conf changed (c-ares reads it
 * only then) and no lookup is out. -1 (said once) when it cannot be made. */
static int
open_channel(void)
{
    struct ares_options o = {.timeout = LOOKUP_TIMEOUT_MS, .tries = LOOKUP_TRIES};
    struct stat st;
    int rc;

    memset(&st, 0, sizeof(st));
    (void)stat(RESOLV_CONF, &st);
    if (channel != NULL && busy_count() == 0 &&
        (st.st_ino != resolv_st.st_ino || st.st_dev != resolv_st.st_dev ||
         st.st_mtim.tv_sec != resolv_st.st_mtim.tv_sec ||
         st.st_mtim.tv_nsec != resolv_st.st_mtim.tv_nsec)) {
        log_info("%s changed: reading it again", RESOLV_CONF);
        ares_destroy(channel);
        channel = NULL;
    }
    if (channel != NULL)
        return 0;
    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc == ARES_SUCCESS) {
        rc = ares_init_options(&channel, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
        if (rc != ARES_SUCCESS)
            ares_library_cleanup();
    }
    if (rc != ARES_SUCCESS) {
        channel = NULL;
        if (!channel_failed)
            log_warnx("cannot start the resolver: %s; upstream hosts keep their addresses",
                      ares_strerror(rc));
        channel_failed = 1;
        return -1;
    }
    channel_failed = 0;
    resolv_st = st;
    return 0;
}

static void
start_due(int64_t now)
{
    struct ares_addrinfo_hints hints = {.ai_flags = ARES_AI_NUMERICSERV | ARES_AI_NOSORT};
    int opened = 0;

    for (int i = 0; i < UPRESOLVE_NAMES_MAX; i++) {
        struct name *n = &names[i];
        if (n->refs == 0 || n->busy || n->next_ms > now)
            continue;
        if (!opened && open_channel() == -1) {
            n->next_ms = now + bound_ms(n);
            continue;
        }
        opened = 1;
        n->busy = 1; /* before the call: a name in /etc/hosts is answered within it */
        hints.ai_family = n->family;
        ares_getaddrinfo(channel, n->host, n->port, &hints, on_answer, n);
    }
}

nfds_t
upresolve_pollfds(struct pollfd *pfd)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    nfds_t k = 0;
    int bits;

    if (channel == NULL)
        return 0;
    bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM && i < UPRESOLVE_FDS_MAX; i++) {
        short ev = (short)sock_events(bits, i);
        if (ev != 0)
            pfd[k++] = (struct pollfd){.fd = socks[i], .events = ev};
    }
    return k;
}

void
upresolve_run(const struct pollfd *pfd, nfds_t n, int64_t now_ms)
{
    if (channel != NULL) {
        for (nfds_t i = 0; i < n; i++) {
            if (pfd[i].revents == 0)
                continue;
            ares_process_fd(channel,
                            pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd
                                                                          : ARES_SOCKET_BAD,
                            pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
        }
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
    }
    start_due(now_ms);
}

int64_t
upresolve_deadline(int64_t now_ms)
{
    int64_t next = INT64_MAX;
    struct timeval tv, *t;

    for (int i = 0; i < UPRESOLVE_NAMES_MAX; i++)
        if (names[i].refs > 0 && !names[i].busy && names[i].next_ms < next)
            next = names[i].next_ms;
    if (channel != NULL) {
        t = ares_timeout(channel, NULL, &tv);
        if (t != NULL && now_ms + t->tv_sec * 1000 + (t->tv_usec + 999) / 1000 < next)
            next = now_ms + t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
    }
    return next;
}

size_t
upresolve_fds(int *fds)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    size_t k = 0;
    int bits;

    if (channel == NULL)
        return 0;
    bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM && i < UPRESOLVE_FDS_MAX; i++)
        if (sock_events(bits, i) != 0)
            fds[k++] = socks[i];
    return k;
}

void
upresolve_fini(void)
{
    if (channel == NULL)
        return;
    ares_destroy(channel); /* lookups under way end with ARES_EDESTRUCTION */
    channel = NULL;
    ares_library_cleanup();
    for (int i = 0; i < UPRESOLVE_NAMES_MAX; i++)
        names[i].busy = 0;
}
