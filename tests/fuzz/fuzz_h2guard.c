/* libFuzzer harness for the HTTP/2 reset guard's frame walker (src/h2guard.c), run by
 * `make fuzz`: the walker, fed the fuzzed stream whole and cut at fuzz-chosen places, must
 * agree with a reference model written here, which reads the whole stream frame by frame
 * and keeps its own counts.
 *
 * Input: byte 0 sets http2_max_resets (1 to 64), bytes 1-4 say where to cut the stream
 * into three reads, the rest is what follows the client preface. */
#include "../../src/h2guard.c"

#include <stdio.h>

#define REF_MAX_STREAMS 4096

/* The reference: what the guard is documented to count (see h2guard.c's comments), read
 * from whole frames. */
struct ref {
    unsigned resets, precharged, max;
    long budget; /* whole tokens: the walker is never refilled here */
    uint32_t max_id, window;
    int idle;
    uint64_t wu_sum;
    uint32_t bodies[REF_MAX_STREAMS]; /* streams sending a body, oldest first */
    unsigned nbodies;
    int tripped;
    const char *violation;
};

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int
ref_has_body(const struct ref *r, uint32_t sid)
{
    for (unsigned i = 0; i < r->nbodies; i++)
        if (r->bodies[i] == sid)
            return 1;
    return 0;
}

static void
ref_drop_body(struct ref *r, uint32_t sid)
{
    for (unsigned i = 0; i < r->nbodies; i++) {
        if (r->bodies[i] == sid) {
            memmove(&r->bodies[i], &r->bodies[i + 1], (r->nbodies - i - 1) * sizeof(uint32_t));
            r->nbodies--;
            return;
        }
    }
}

/* The guard keeps MAX_BODIES streams; a new one beyond that replaces the lowest id. */
static void
ref_add_body(struct ref *r, uint32_t sid)
{
    unsigned low = 0;

    if (r->nbodies < MAX_BODIES) {
        r->bodies[r->nbodies++] = sid;
        return;
    }
    for (unsigned i = 1; i < r->nbodies; i++)
        if (r->bodies[i] < r->bodies[low])
            low = i;
    memmove(&r->bodies[low], &r->bodies[low + 1], (r->nbodies - low - 1) * sizeof(uint32_t));
    r->bodies[r->nbodies - 1] = sid;
}

/* A stream reset libh2o will make: one token; over the budget trips. */
static void
ref_reset(struct ref *r, int counted_by_h2o)
{
    r->resets++;
    r->budget--;
    if (counted_by_h2o)
        r->precharged++;
    if (r->budget < 0)
        r->tripped = 1;
}

/* A request is about to run: only with a token left to pay for its reset. */
static void
ref_request(struct ref *r)
{
    if (r->budget < 1)
        r->tripped = 1;
}

static void
ref_violation(struct ref *r, const char *why)
{
    r->violation = why;
    r->tripped = 1;
}

/* The frame's header is whole; avail payload bytes of its len are in the stream. */
static void
ref_frame(struct ref *r, const uint8_t *h, const uint8_t *pl, uint32_t avail)
{
    uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    uint8_t type = h[3], flags = h[4];
    uint32_t sid = be32(h + 5) & 0x7fffffffu, off, dep;
    int es = flags & 0x1;

    switch (type) {
    case 0x0: /* DATA */
        if (sid == 0 || sid > r->max_id)
            return;
        if (!ref_has_body(r, sid)) {
            ref_reset(r, 1);
        } else if (es) {
            ref_drop_body(r, sid);
            ref_request(r);
        }
        return;
    case 0x1: /* HEADERS */
        if (sid == 0 || sid % 2 == 0) {
            /* a connection error: nothing to count */
        } else if (sid <= r->max_id && ref_has_body(r, sid)) {
            if (!es) {
                ref_violation(r, "trailing HEADERS without END_STREAM");
                return;
            }
            ref_drop_body(r, sid);
            ref_request(r);
        } else if (sid <= r->max_id && !r->idle) {
            ref_violation(r, "HEADERS on a closed stream");
            return;
        } else {
            if (sid > r->max_id)
                r->max_id = sid;
            if (!es)
                ref_add_body(r, sid);
            ref_request(r);
        }
        if (r->tripped || (flags & 0x20) == 0)
            return;
        off = (flags & 0x8) ? 1 : 0;
        if (len < off + 5 || avail < off + 5)
            return;
        dep = be32(pl + off) & 0x7fffffffu;
        if (dep == sid && sid != 0)
            ref_violation(r, "a stream that depends on itself");
        return;
    case 0x2: /* PRIORITY */
        if (len < 5 || avail < 5)
            return;
        dep = be32(pl) & 0x7fffffffu;
        if (dep == sid && sid != 0) {
            ref_violation(r, "a stream that depends on itself");
            return;
        }
        if (sid > r->max_id && sid % 2 == 1) {
            r->max_id = sid;
            r->idle = 1;
        }
        return;
    case 0x3: /* RST_STREAM */
        ref_drop_body(r, sid);
        ref_reset(r, 0);
        return;
    case 0x4: /* SETTINGS */
        if (sid != 0 || es)
            return;
        for (off = 0; off + 6 <= len && off + 6 <= avail; off += 6) {
            uint32_t v = be32(pl + off + 2);
            if (pl[off] == 0 && pl[off + 1] == 0x4 && v > r->window && v <= 0x7fffffffu)
                r->window = v;
        }
        return;
    case 0x8: /* WINDOW_UPDATE */
        if (len < 4 || avail < 4 || sid == 0)
            return;
        if ((be32(pl) & 0x7fffffffu) == 0) {
            ref_drop_body(r, sid);
            ref_reset(r, 1);
            return;
        }
        r->wu_sum += be32(pl) & 0x7fffffffu;
        if (r->wu_sum > 0x7fffffffu - r->window) {
            r->wu_sum = 0;
            ref_reset(r, 1);
        }
        return;
    }
}

static void
ref_run(struct ref *r, const uint8_t *p, size_t n)
{
    size_t at = 0;

    while (!r->tripped && n - at >= FRAME_HEADER_LEN) {
        const uint8_t *h = p + at;
        uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        size_t avail = n - at - FRAME_HEADER_LEN;
        ref_frame(r, h, h + FRAME_HEADER_LEN, avail < len ? (uint32_t)avail : len);
        at += FRAME_HEADER_LEN + (size_t)len;
        if (at > n)
            break;
    }
}

static h2o_context_t ctx;

static void
meter_init(struct h2meter *m, unsigned max)
{
    memset(m, 0, sizeof(*m));
    m->ctx = &ctx;
    m->max = max;
    m->budget = max;
    m->cancels = max + MAX_STREAMS;
    m->skip = PREFACE_LEN;
    m->window = DEFAULT_WINDOW;
}

/* The walker over s cut at a <= b; its result. */
static int
walk3(struct h2meter *m, const uint8_t *s, size_t n, size_t a, size_t b)
{
    if (walk(m, s, a) == -1 || walk(m, s + a, b - a) == -1 || walk(m, s + b, n - b) == -1)
        return -1;
    return 0;
}

static void
same_meter(const struct h2meter *a, const struct h2meter *b)
{
    assert(a->resets == b->resets && a->budget == b->budget);
    assert(a->precharged == b->precharged && a->max_id == b->max_id);
    assert(a->idle_streams == b->idle_streams && a->window == b->window);
    assert(a->wu_sum == b->wu_sum && a->nbodies == b->nbodies);
    assert(memcmp(a->bodies, b->bodies, sizeof(a->bodies)) == 0);
    assert(a->violation == b->violation);
}

/* The walker's streams with a body, as a set, against the model's. */
static void
same_bodies(const struct h2meter *m, const struct ref *r)
{
    assert(m->nbodies == r->nbodies);
    for (unsigned i = 0; i < m->nbodies; i++)
        assert(ref_has_body(r, m->bodies[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[PREFACE_LEN + (1 << 20)];
    static struct h2meter whole, cut;
    static struct ref r;
    unsigned max;
    size_t n, a, b, t;
    int rc_whole, rc_cut;

    if (size < 5 || size - 5 > sizeof(buf) - PREFACE_LEN)
        return -1;
    if (ctx.loop == NULL)
        ctx.loop = h2o_evloop_create();
    max = 1 + data[0] % 64;
    memcpy(buf, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", PREFACE_LEN);
    memcpy(buf + PREFACE_LEN, data + 5, size - 5);
    n = PREFACE_LEN + size - 5;
    a = ((size_t)data[1] << 8 | data[2]) % (n + 1);
    b = ((size_t)data[3] << 8 | data[4]) % (n + 1);
    if (a > b) {
        t = a;
        a = b;
        b = t;
    }

    meter_init(&whole, max);
    rc_whole = walk(&whole, buf, n);
    meter_init(&cut, max);
    rc_cut = walk3(&cut, buf, n, a, b);
    assert(rc_whole == rc_cut);
    same_meter(&whole, &cut);

    memset(&r, 0, sizeof(r));
    r.max = max;
    r.budget = max;
    r.window = DEFAULT_WINDOW;
    ref_run(&r, buf + PREFACE_LEN, n - PREFACE_LEN);
    if ((rc_whole == -1) != r.tripped) {
        fprintf(stderr, "walker %d, model %s\n", rc_whole, r.tripped ? "tripped" : "passed");
        abort();
    }
    assert(whole.resets == r.resets && whole.precharged == r.precharged);
    assert(whole.budget == (double)r.budget);
    assert(whole.max_id == r.max_id && whole.idle_streams == r.idle);
    assert(whole.window == r.window && whole.wu_sum == r.wu_sum);
    assert((whole.violation == NULL) == (r.violation == NULL));
    assert(whole.violation == NULL || strcmp(whole.violation, r.violation) == 0);
    same_bodies(&whole, &r);
    return 0;
}
