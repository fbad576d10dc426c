/* Choosing a server of an upstream group (see upsel.h).
 *
 * Round robin is nginx's smooth weighted round robin: each pick adds every candidate's
 * weight to its running score, takes the highest and takes the total off it, so weights
 * 5:1:1 give a b a c a a a, not a a a a a b c. The hash is a ring of 100 points per unit
 * of weight, so a server that leaves moves only the keys that were its own. The retry
 * budget counts requests and retries over ten one-second buckets: retries may be at most
 * retry_budget percent of the requests, and at least RETRY_FLOOR, so a quiet group may
 * still retry. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "upstate.h"
#include "upsel.h"
#include "uppool.h"
#include "util.h"

#define RING_POINTS 100 /* per unit of weight */
#define BUDGET_SLOTS 10 /* seconds */
#define RETRY_FLOOR 10  /* retries a window always allows */
/* A queue's head tries again this often while it waits: other workers' requests free
 * room too, and they cannot wake this one. */
#define QUEUE_POLL_MS 5

struct server_rt {
    struct uppool *pool;
    struct upstate *state; /* shared by every worker: health, in flight, counters */
    int64_t cur;           /* smooth round robin score */
};

struct ring_point {
    uint64_t hash;
    size_t server;
};

struct upsel {
    const struct conf_upstream *g;
    struct server_rt *srv;
    size_t next; /* least_conn's tie breaker */
    struct ring_point *ring;
    size_t nring;
    struct {
        int64_t sec;
        uint64_t requests, retries;
    } budget[BUDGET_SLOTS];
    struct upsel *link; /* this worker's selectors */
    /* Requests waiting for room (upsel_waiter), with their timeout, the poll while any
     * waits, and a turn at once when a request of this worker ends. */
    h2o_linklist_t waiting;
    size_t nwaiting;
    h2o_timeout_t queue_timeout, poll, soon;
    h2o_timeout_entry_t poll_entry, soon_entry;
    h2o_loop_t *loop;
};

static struct upsel *selectors;

/* FNV-1a, then a mixer: FNV alone leaves neighbouring keys on neighbouring points. */
static uint64_t
hash_bytes(const char *p, size_t len, uint64_t h)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static int
point_cmp(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;

    return (x->hash > y->hash) - (x->hash < y->hash);
}

/* Points of a server are hashes of its URL and the point's number: the same in every
 * worker and across reloads. */
static void
build_ring(struct upsel *s)
{
    const struct conf_upstream *g = s->g;
    size_t n = 0;
    char buf[32];

    for (size_t i = 0; i < g->nservers; i++)
        s->nring += (size_t)g->servers[i].weight * RING_POINTS;
    s->ring = xreallocarray(NULL, s->nring, sizeof(*s->ring));
    for (size_t i = 0; i < g->nservers; i++) {
        const char *url = g->servers[i].url;
        uint64_t base = hash_bytes(url, strlen(url), 14695981039346656037ULL);
        for (unsigned k = 0; k < g->servers[i].weight * RING_POINTS; k++) {
            int len = snprintf(buf, sizeof(buf), "#%u", k);
            s->ring[n].hash = hash_bytes(buf, (size_t)len, base);
            s->ring[n++].server = i;
        }
    }
    qsort(s->ring, s->nring, sizeof(*s->ring), point_cmp);
}

/* A connection's receive buffer: the group's read-ahead, from 64 KiB to 1 MiB (the
 * kernel doubles it), so a slow client's response holds about that much, not what
 * autotuning lets a socket gather. */
static int
rcvbuf_for(uint64_t buffer_size)
{
    return buffer_size < 65536 ? 65536 : buffer_size > 1048576 ? 1048576 : (int)buffer_size;
}

/* The waiters take their turns in order until one finds no room; the poll goes on while
 * any is left. */
static void
serve_queue(struct upsel *s)
{
    while (!h2o_linklist_is_empty(&s->waiting)) {
        struct upsel_waiter *w =
            H2O_STRUCT_FROM_MEMBER(struct upsel_waiter, link, s->waiting.next);
        if (w->on_turn(w) != 0)
            break;
    }
    if (s->nwaiting > 0 && !h2o_timeout_is_linked(&s->poll_entry))
        h2o_timeout_link(s->loop, &s->poll, &s->poll_entry);
}

static void
on_poll(h2o_timeout_entry_t *e)
{
    serve_queue(H2O_STRUCT_FROM_MEMBER(struct upsel, poll_entry, e));
}

static void
on_soon(h2o_timeout_entry_t *e)
{
    serve_queue(H2O_STRUCT_FROM_MEMBER(struct upsel, soon_entry, e));
}

static void
on_queue_timeout(h2o_timeout_entry_t *e)
{
    struct upsel_waiter *w = H2O_STRUCT_FROM_MEMBER(struct upsel_waiter, timer, e);

    upsel_unwait(w);
    w->on_timeout(w);
}

int
upsel_wait(struct upsel *s, struct upsel_waiter *w)
{
    if (s->nwaiting >= s->g->queue)
        return -1;
    w->sel = s;
    h2o_linklist_insert(&s->waiting, &w->link);
    s->nwaiting++;
    w->timer.cb = on_queue_timeout;
    h2o_timeout_link(s->loop, &s->queue_timeout, &w->timer);
    if (!h2o_timeout_is_linked(&s->poll_entry))
        h2o_timeout_link(s->loop, &s->poll, &s->poll_entry);
    return 0;
}

void
upsel_unwait(struct upsel_waiter *w)
{
    if (!h2o_linklist_is_linked(&w->link))
        return;
    h2o_linklist_unlink(&w->link);
    h2o_timeout_unlink(&w->timer);
    w->sel->nwaiting--;
}

struct upsel *
upsel_get(const struct conf_upstream *g, h2o_loop_t *loop)
{
    struct upsel *s;

    for (s = selectors; s != NULL; s = s->link)
        if (s->g == g)
            return s;
    s = xcalloc(1, sizeof(*s));
    s->g = g;
    s->srv = xcalloc(g->nservers, sizeof(*s->srv));
    for (size_t i = 0; i < g->nservers; i++) {
        s->srv[i].pool = uppool_new(loop, (const struct sockaddr *)&g->servers[i].ss,
                                    g->servers[i].sslen, (uint64_t)g->keepalive_ms, 1024,
                                    rcvbuf_for(g->buffer_size));
        s->srv[i].state = upstate_get(g->servers[i].state);
        uppool_follow(s->srv[i].pool, g->servers[i].rslot, g->servers[i].rid);
    }
    if (g->balance == BALANCE_HASH)
        build_ring(s);
    s->loop = loop;
    h2o_linklist_init_anchor(&s->waiting);
    h2o_timeout_init(loop, &s->queue_timeout, (uint64_t)g->queue_timeout_ms);
    h2o_timeout_init(loop, &s->poll, QUEUE_POLL_MS);
    h2o_timeout_init(loop, &s->soon, 0);
    s->poll_entry.cb = on_poll;
    s->soon_entry.cb = on_soon;
    s->link = selectors;
    selectors = s;
    return s;
}

const struct conf_upstream *
upsel_group(const struct upsel *s)
{
    return s->g;
}

struct uppool *
upsel_pool(struct upsel *s, size_t i)
{
    return s->srv[i].pool;
}

/* Requests in flight at server i, from every worker. */
static uint64_t
in_flight(const struct upsel *s, size_t i)
{
    int64_t n = atomic_load_explicit(&s->srv[i].state->in_flight, memory_order_relaxed);

    return n > 0 ? (uint64_t)n : 0;
}

/* Not tried yet, below its max_inflight, and (live_only) neither down by its health checks
 * nor taken out after failures. */
static int
usable(const struct upsel *s, size_t i, int64_t now, const uint8_t *tried, int live_only)
{
    unsigned max = s->g->servers[i].max_inflight;

    return !tried[i] && (max == 0 || in_flight(s, i) < max) &&
           (!live_only || upstate_usable(s->srv[i].state, now));
}

static size_t
pick_round_robin(struct upsel *s, int64_t now, const uint8_t *tried, int live_only)
{
    size_t best = SIZE_MAX;
    int64_t total = 0;

    for (size_t i = 0; i < s->g->nservers; i++) {
        if (!usable(s, i, now, tried, live_only))
            continue;
        s->srv[i].cur += s->g->servers[i].weight;
        total += s->g->servers[i].weight;
        if (best == SIZE_MAX || s->srv[i].cur > s->srv[best].cur)
            best = i;
    }
    if (best != SIZE_MAX)
        s->srv[best].cur -= total;
    return best;
}

/* Fewest requests in flight for its weight; ties go round. */
static size_t
pick_least_conn(struct upsel *s, int64_t now, const uint8_t *tried, int live_only)
{
    size_t n = s->g->nservers, best = SIZE_MAX;

    for (size_t k = 0; k < n; k++) {
        size_t i = (s->next + k) % n;
        if (!usable(s, i, now, tried, live_only))
            continue;
        if (best == SIZE_MAX || in_flight(s, i) * s->g->servers[best].weight <
                                    in_flight(s, best) * s->g->servers[i].weight)
            best = i;
    }
    if (best != SIZE_MAX)
        s->next = (best + 1) % n;
    return best;
}

/* The first point at or after the key's hash whose server may be used. */
static size_t
pick_hash(struct upsel *s, int64_t now, const uint8_t *tried, int live_only, h2o_iovec_t key)
{
    uint64_t h = hash_bytes(key.base, key.len, 14695981039346656037ULL);
    size_t lo = 0, hi = s->nring;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < s->nring; k++) {
        size_t i = s->ring[(lo + k) % s->nring].server;
        if (usable(s, i, now, tried, live_only))
            return i;
    }
    return SIZE_MAX;
}

static size_t
pick_by(struct upsel *s, int64_t now, const uint8_t *tried, int live_only, h2o_iovec_t key)
{
    switch (s->g->balance) {
    case BALANCE_LEAST_CONN: return pick_least_conn(s, now, tried, live_only);
    case BALANCE_HASH: return pick_hash(s, now, tried, live_only, key);
    default: return pick_round_robin(s, now, tried, live_only);
    }
}

size_t
upsel_pick(struct upsel *s, int64_t now_ms, const uint8_t *tried, h2o_iovec_t key)
{
    size_t i = pick_by(s, now_ms, tried, 1, key);

    if (i != SIZE_MAX)
        return i;
    /* A live server not tried yet is full: the request waits for its room rather than go
     * to one that is down. */
    for (size_t k = 0; k < s->g->nservers; k++)
        if (!tried[k] && upstate_usable(s->srv[k].state, now_ms))
            return SIZE_MAX;
    /* None is live: try the others anyway, one may be back. */
    return pick_by(s, now_ms, tried, 0, key);
}

int
upsel_claim(struct upsel *s, size_t i)
{
    unsigned max = s->g->servers[i].max_inflight;

    if (upstate_inflight_inc(s->srv[i].state) <= (int64_t)max || max == 0)
        return 0;
    upstate_inflight_dec(s->srv[i].state);
    return -1;
}

void
upsel_release(struct upsel *s, size_t i)
{
    upstate_inflight_dec(s->srv[i].state);
    /* Not now: this may run while a request is being freed. */
    if (s->nwaiting > 0 && !h2o_timeout_is_linked(&s->soon_entry))
        h2o_timeout_link(s->loop, &s->soon, &s->soon_entry);
}

struct upstate *
upsel_state(struct upsel *s, size_t i)
{
    return s->srv[i].state;
}

/* The budget's bucket for now, emptied when it held an older second. */
static size_t
bucket(struct upsel *s, int64_t now_ms)
{
    int64_t sec = now_ms / 1000;
    size_t b = (size_t)(sec % BUDGET_SLOTS);

    if (s->budget[b].sec != sec) {
        s->budget[b].sec = sec;
        s->budget[b].requests = 0;
        s->budget[b].retries = 0;
    }
    return b;
}

void
upsel_count_request(struct upsel *s, int64_t now_ms)
{
    s->budget[bucket(s, now_ms)].requests++;
}

int
upsel_take_retry(struct upsel *s, int64_t now_ms)
{
    size_t b = bucket(s, now_ms);
    int64_t sec = now_ms / 1000;
    uint64_t requests = 0, retries = 0, allowed;

    for (size_t k = 0; k < BUDGET_SLOTS; k++) {
        if (sec - s->budget[k].sec >= BUDGET_SLOTS)
            continue;
        requests += s->budget[k].requests;
        retries += s->budget[k].retries;
    }
    allowed = requests * s->g->retry_budget / 100;
    if (allowed < RETRY_FLOOR)
        allowed = RETRY_FLOOR;
    if (retries >= allowed)
        return 0;
    s->budget[b].retries++;
    return 1;
}
