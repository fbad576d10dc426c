/* The HTTP/2 reset guard's frame walker (src/h2guard.c): what it counts, and when it trips,
 * for byte streams split anywhere. */
#include "../../src/h2guard.c"

#include <criterion/criterion.h>
#include <stdio.h>

#define MAX_RESETS 10

static h2o_context_t ctx;

/* A meter as h2guard_accept starts one, before the client preface. */
static struct h2meter
meter(void)
{
    struct h2meter m = {0};

    if (ctx.loop == NULL)
        ctx.loop = h2o_evloop_create();
    m.ctx = &ctx;
    m.max = MAX_RESETS;
    m.budget = m.max;
    m.cancels = m.max + MAX_STREAMS;
    m.refilled_at = h2o_now(ctx.loop);
    m.skip = PREFACE_LEN;
    m.window = DEFAULT_WINDOW;
    return m;
}

/* A byte stream under construction. */
struct bytes {
    uint8_t b[1 << 16];
    size_t n;
};

static void
put(struct bytes *s, const void *p, size_t len)
{
    cr_assert_leq(s->n + len, sizeof(s->b));
    memcpy(s->b + s->n, p, len);
    s->n += len;
}

static void
preface(struct bytes *s)
{
    put(s, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", PREFACE_LEN);
}

/* A frame header announcing len payload bytes, then the first n of payload. */
static void
frame_head(struct bytes *s, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid,
           const void *payload, size_t n)
{
    uint8_t h[FRAME_HEADER_LEN] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,
                                   type, flags, (uint8_t)(sid >> 24), (uint8_t)(sid >> 16),
                                   (uint8_t)(sid >> 8), (uint8_t)sid};

    put(s, h, sizeof(h));
    if (n > 0)
        put(s, payload, n);
}

static void
frame(struct bytes *s, uint8_t type, uint8_t flags, uint32_t sid, const void *payload,
      size_t len)
{
    frame_head(s, (uint32_t)len, type, flags, sid, payload, len);
}

static void
headers(struct bytes *s, uint32_t sid, uint8_t flags)
{
    static const uint8_t block[] = {0x82, 0x87, 0x84}; /* :method GET, :scheme, :path / */

    frame(s, FRAME_HEADERS, flags | 0x4 /* END_HEADERS */, sid, block, sizeof(block));
}

static void
rst(struct bytes *s, uint32_t sid)
{
    static const uint8_t cancel[4] = {0, 0, 0, 0x8};

    frame(s, FRAME_RST_STREAM, 0, sid, cancel, sizeof(cancel));
}

static void
window_update(struct bytes *s, uint32_t sid, uint32_t inc)
{
    uint8_t p[4] = {(uint8_t)(inc >> 24), (uint8_t)(inc >> 16), (uint8_t)(inc >> 8),
                    (uint8_t)inc};

    frame(s, FRAME_WINDOW_UPDATE, 0, sid, p, sizeof(p));
}

static void
setting(uint8_t *p, uint16_t id, uint32_t v)
{
    p[0] = (uint8_t)(id >> 8);
    p[1] = (uint8_t)id;
    p[2] = (uint8_t)(v >> 24);
    p[3] = (uint8_t)(v >> 16);
    p[4] = (uint8_t)(v >> 8);
    p[5] = (uint8_t)v;
}

static void
priority(struct bytes *s, uint32_t sid, uint32_t dep)
{
    uint8_t p[5] = {(uint8_t)(dep >> 24), (uint8_t)(dep >> 16), (uint8_t)(dep >> 8),
                    (uint8_t)dep, 15};

    frame(s, FRAME_PRIORITY, 0, sid, p, sizeof(p));
}

/* Walks s in pieces cut at cuts[0..ncuts) (increasing offsets); the walk's result. */
static int
walk_cut(struct h2meter *m, const struct bytes *s, const size_t *cuts, size_t ncuts)
{
    size_t at = 0;

    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : s->n;
        if (walk(m, s->b + at, end - at) == -1)
            return -1;
        at = end;
    }
    return 0;
}

static int
walk_all(struct h2meter *m, const struct bytes *s)
{
    return walk_cut(m, s, NULL, 0);
}

/* What a walk leaves in the meter that matters: cut into any pieces, a stream must leave
 * the same. */
static void
assert_same(const struct h2meter *a, const struct h2meter *b, const char *how)
{
    cr_assert_eq(a->resets, b->resets, "%s: resets", how);
    cr_assert_eq(a->budget, b->budget, "%s: budget", how);
    cr_assert_eq(a->precharged, b->precharged, "%s: precharged", how);
    cr_assert_eq(a->max_id, b->max_id, "%s: max_id", how);
    cr_assert_eq(a->idle_streams, b->idle_streams, "%s: idle_streams", how);
    cr_assert_eq(a->window, b->window, "%s: window", how);
    cr_assert_eq(a->wu_sum, b->wu_sum, "%s: wu_sum", how);
    cr_assert_eq(a->nbodies, b->nbodies, "%s: nbodies", how);
    cr_assert_eq(memcmp(a->bodies, b->bodies, sizeof(a->bodies)), 0, "%s: bodies", how);
    cr_assert_eq(a->violation, b->violation, "%s: violation", how);
    cr_assert_eq(a->skip, b->skip, "%s: skip", how);
    cr_assert_eq(a->hlen, b->hlen, "%s: hlen", how);
}

/* A stream of every frame type the guard reads, with a settings list, padded priority
 * headers, a body, trailers, resets and window updates. */
static void
mixed_stream(struct bytes *s)
{
    uint8_t set[2 * SETTING_LEN], body[300] = {0}, ping[8] = {1}, pri[6 + 3] = {0};

    preface(s);
    setting(set, 0x3, 100);
    setting(set + SETTING_LEN, SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20);
    frame(s, FRAME_SETTINGS, 0, 0, set, sizeof(set));
    frame(s, FRAME_SETTINGS, FLAG_END_STREAM /* ACK */, 0, NULL, 0);
    window_update(s, 0, 1 << 30);
    headers(s, 1, FLAG_END_STREAM);
    headers(s, 3, 0); /* a body follows */
    frame(s, FRAME_DATA, 0, 3, body, 100);
    frame(s, FRAME_DATA, FLAG_END_STREAM, 3, body, sizeof(body));
    frame(s, 0x6 /* PING */, 0, 0, ping, sizeof(ping));
    /* PADDED | PRIORITY: pad length 0, dependency 1, weight, block */
    pri[4] = 1;
    pri[5] = 16;
    frame(s, FRAME_HEADERS, FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM | 0x4, 5, pri,
          sizeof(pri));
    rst(s, 5);
    priority(s, 9, 0); /* an idle stream */
    headers(s, 7, 0);
    headers(s, 7, FLAG_END_STREAM); /* trailers */
    window_update(s, 1, 0);
    rst(s, 1);
    frame(s, FRAME_DATA, FLAG_END_STREAM, 1, body, 10); /* on a closed stream */
    headers(s, 11, FLAG_END_STREAM);
}

Test(h2guard, a_stream_walked_whole_counts_what_libh2o_resets)
{
    struct h2meter m = meter();
    struct bytes s = {0};

    mixed_stream(&s);
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_null(m.violation);
    /* RST 5, WINDOW_UPDATE 0 on 1, RST 1, DATA on closed 1 */
    cr_assert_eq(m.resets, 4);
    cr_assert_eq(m.budget, MAX_RESETS - 4);
    cr_assert_eq(m.precharged, 2, "libh2o counts the window update and the data itself");
    cr_assert_eq(m.window, 1 << 20, "the larger initial window was read");
    cr_assert_eq(m.max_id, 11);
    cr_assert_eq(m.nbodies, 0, "bodies ended by END_STREAM and trailers");
    cr_assert_eq(m.skip, 0);
    cr_assert_eq(m.hlen, 0);
}

Test(h2guard, any_cut_into_two_reads_leaves_the_same_count)
{
    struct h2meter whole = meter();
    struct bytes s = {0};

    mixed_stream(&s);
    cr_assert_eq(walk_all(&whole, &s), 0);
    for (size_t k = 0; k <= s.n; k++) {
        struct h2meter m = meter();
        char how[32];
        snprintf(how, sizeof(how), "cut at %zu", k);
        cr_assert_eq(walk_cut(&m, &s, &k, 1), 0, "%s", how);
        assert_same(&m, &whole, how);
    }
}

Test(h2guard, any_cut_into_three_reads_leaves_the_same_count)
{
    struct h2meter whole = meter();
    struct bytes s = {0};

    mixed_stream(&s);
    cr_assert_eq(walk_all(&whole, &s), 0);
    for (size_t i = 0; i <= s.n; i += 7) {
        for (size_t j = i; j <= s.n; j++) {
            struct h2meter m = meter();
            size_t cuts[2] = {i, j};
            cr_assert_eq(walk_cut(&m, &s, cuts, 2), 0);
            assert_same(&m, &whole, "three pieces");
        }
    }
}

Test(h2guard, byte_by_byte_leaves_the_same_count)
{
    struct h2meter whole = meter(), m = meter();
    struct bytes s = {0};

    mixed_stream(&s);
    cr_assert_eq(walk_all(&whole, &s), 0);
    for (size_t i = 0; i < s.n; i++) {
        cr_assert_eq(walk(&m, s.b + i, 1), 0);
        if (i + 1 < s.n && m.hlen != 0)
            cr_assert_lt(m.hlen, FRAME_HEADER_LEN, "a partial header waits for the rest");
    }
    assert_same(&m, &whole, "byte by byte");
}

Test(h2guard, rapid_reset_trips_at_the_first_request_past_the_budget)
{
    struct h2meter m = meter();
    struct bytes s = {0};
    size_t at;

    preface(&s);
    for (uint32_t sid = 1; sid < 2 * MAX_RESETS * 2; sid += 2) {
        headers(&s, sid, FLAG_END_STREAM);
        rst(&s, sid);
    }
    /* Walk pair by pair: the pairs the budget pays for pass, the next HEADERS trips. */
    cr_assert_eq(walk(&m, s.b, PREFACE_LEN), 0);
    at = PREFACE_LEN;
    for (int pair = 0; pair < MAX_RESETS; pair++) {
        size_t len = 2 * FRAME_HEADER_LEN + 3 + 4;
        cr_assert_eq(walk(&m, s.b + at, len), 0, "pair %d is within the budget", pair);
        at += len;
    }
    cr_assert_eq(m.resets, MAX_RESETS);
    cr_assert_eq(m.budget, 0);
    cr_assert_eq(walk(&m, s.b + at, s.n - at), -1, "a request the budget cannot cover");
    cr_assert_null(m.violation, "over the budget, not a protocol violation");
    cr_assert_eq(m.resets, MAX_RESETS, "the request that tripped was never charged");
}

Test(h2guard, a_reset_flood_without_requests_trips_when_it_overspends)
{
    struct h2meter m = meter();
    struct bytes s = {0};

    preface(&s);
    headers(&s, 1, 0);
    for (int i = 0; i <= MAX_RESETS; i++)
        rst(&s, 1);
    cr_assert_eq(walk_all(&m, &s), -1);
    cr_assert_eq(m.resets, MAX_RESETS + 1);
    cr_assert_lt(m.budget, 0);
}

Test(h2guard, the_budget_refills_with_time)
{
    struct h2meter m = meter();

    m.budget = 0;
    m.cancels = 0;
    ctx.loop->_now += H2GUARD_PERIOD_MS / 2;
    refill(&m);
    cr_assert_float_eq(m.budget, MAX_RESETS / 2.0, 1e-9);
    cr_assert_float_eq(m.cancels, MAX_RESETS / 2.0, 1e-9);
    ctx.loop->_now += 100 * H2GUARD_PERIOD_MS;
    refill(&m);
    cr_assert_eq(m.budget, MAX_RESETS, "never more than the budget");
    cr_assert_eq(m.cancels, MAX_RESETS + MAX_STREAMS);
}

Test(h2guard, oversized_frames_are_skipped_across_reads)
{
    struct h2meter m = meter();
    struct bytes s = {0}, tail = {0};
    static uint8_t chunk[1 << 14];
    uint32_t big = 0xffffff; /* the largest length a frame header can carry */
    size_t left = big;

    preface(&s);
    headers(&s, 1, 0);
    frame_head(&s, big, FRAME_DATA, 0, 1, NULL, 0);
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.skip, big);
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        /* The payload looks like frames: none of it may be read as one. */
        memset(chunk, 0x3, n);
        cr_assert_eq(walk(&m, chunk, n), 0);
        left -= n;
    }
    cr_assert_eq(m.skip, 0);
    cr_assert_eq(m.resets, 0, "payload bytes are never frames");
    rst(&tail, 1);
    cr_assert_eq(walk_all(&m, &tail), 0);
    cr_assert_eq(m.resets, 1, "the frame after it is read");
}

Test(h2guard, frames_too_short_for_their_fields_are_left_to_libh2o)
{
    struct h2meter m = meter();
    struct bytes s = {0};
    uint8_t two[2] = {0, 0};

    preface(&s);
    frame(&s, FRAME_WINDOW_UPDATE, 0, 1, two, sizeof(two)); /* 0 if it were read */
    frame(&s, FRAME_PRIORITY, 0, 3, two, sizeof(two));
    frame(&s, FRAME_SETTINGS, 0, 0, two, sizeof(two));
    frame(&s, FRAME_HEADERS, FLAG_PRIORITY | 0x4, 5, two, sizeof(two));
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.resets, 0);
    cr_assert_null(m.violation);
    cr_assert_eq(m.skip, 0);
    cr_assert_eq(m.hlen, 0);
}

Test(h2guard, a_partial_frame_header_waits_for_the_rest)
{
    struct h2meter m = meter();
    struct bytes s = {0};

    preface(&s);
    rst(&s, 1);
    cr_assert_eq(walk(&m, s.b, PREFACE_LEN + 5), 0);
    cr_assert_eq(m.hlen, 5);
    cr_assert_eq(m.resets, 0, "not a frame yet");
    cr_assert_eq(walk(&m, s.b + PREFACE_LEN + 5, 4), 0);
    cr_assert_eq(m.resets, 1, "charged once its header is whole");
    cr_assert_eq(m.skip, 4);
}

Test(h2guard, data_on_a_stream_that_sends_no_body_is_charged)
{
    struct h2meter m = meter();
    struct bytes s = {0};
    uint8_t body[4] = {0};

    preface(&s);
    headers(&s, 1, FLAG_END_STREAM);
    frame(&s, FRAME_DATA, 0, 1, body, sizeof(body));
    frame(&s, FRAME_DATA, 0, 99, body, sizeof(body)); /* never opened: a connection error */
    frame(&s, FRAME_DATA, 0, 0, body, sizeof(body));
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.resets, 1);
    cr_assert_eq(m.precharged, 1);
}

Test(h2guard, window_updates_are_charged_when_they_could_overflow_a_window)
{
    struct h2meter m = meter();
    struct bytes s = {0};
    uint32_t room = WINDOW_MAX - DEFAULT_WINDOW;

    preface(&s);
    headers(&s, 1, FLAG_END_STREAM);
    window_update(&s, 1, room);
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.resets, 0, "the window is exactly full");
    s.n = 0;
    window_update(&s, 1, 1);
    window_update(&s, 0, WINDOW_MAX); /* the connection's window is not a stream's */
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.resets, 1, "one more could overflow");
    cr_assert_eq(m.wu_sum, 0, "and the sum starts again");
    s.n = 0;
    window_update(&s, 1, 0x80000000u | 5); /* the reserved bit is not part of it */
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.wu_sum, 5);
}

Test(h2guard, protocol_violations_libh2o_closes_for_are_named)
{
    static const char *const want[] = {
        "HEADERS on a closed stream",
        "trailing HEADERS without END_STREAM",
        "a stream that depends on itself",
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct h2meter m = meter();
        struct bytes s = {0};
        preface(&s);
        switch (i) {
        case 0:
            headers(&s, 3, FLAG_END_STREAM);
            headers(&s, 1, FLAG_END_STREAM);
            break;
        case 1:
            headers(&s, 1, 0);
            headers(&s, 1, 0);
            break;
        case 2:
            priority(&s, 5, 5);
            break;
        }
        cr_assert_eq(walk_all(&m, &s), -1, "%s", want[i]);
        cr_assert_str_eq(m.violation, want[i]);
    }
}

Test(h2guard, priority_opens_idle_streams_headers_may_use_later)
{
    struct h2meter m = meter();
    struct bytes s = {0};

    preface(&s);
    priority(&s, 9, 0);
    headers(&s, 3, FLAG_END_STREAM);
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.max_id, 9);
    cr_assert(m.idle_streams);
    cr_assert_null(m.violation);
}

Test(h2guard, the_body_table_keeps_the_newest_streams)
{
    struct h2meter m = meter();
    struct bytes s = {0};

    preface(&s);
    for (uint32_t i = 0; i <= MAX_BODIES; i++)
        headers(&s, 2 * i + 1, 0);
    cr_assert_eq(walk_all(&m, &s), 0);
    cr_assert_eq(m.nbodies, MAX_BODIES);
    cr_assert_eq(body_find(&m, 1), -1, "the oldest made room");
    cr_assert_neq(body_find(&m, 2 * MAX_BODIES + 1), -1);
}
