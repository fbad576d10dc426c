/* The live view's common parts (src/status.c): JSON strings that stay valid whatever the
 * bytes, histogram quantiles, and the snapshot `percore -s top` gets from the master, read
 * back as it was written. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "status.h"

/* s[0..len) as status_json_str writes it (malloc'd). */
static char *
json(const char *s, size_t len)
{
    struct status_buf b;

    status_buf_init(&b, 4, 1 << 20);
    status_json_str(&b, s, len);
    return b.buf;
}

static void
expect_json(const char *in, size_t len, const char *want)
{
    char *got = json(in, len);

    cr_expect_str_eq(got, want, "input of %zu bytes", len);
    free(got);
}

#define EXPECT_JSON(in, want) expect_json(in, sizeof(in) - 1, want)

Test(status, json_plain_and_escaped)
{
    EXPECT_JSON("", "\"\"");
    EXPECT_JSON("= /api/", "\"= /api/\"");
    EXPECT_JSON("~ ^/a\"b\\c", "\"~ ^/a\\\"b\\\\c\"");
    EXPECT_JSON("a\nb\tc\x01\x1f\x7f", "\"a\\nb\\u0009c\\u0001\\u001f\\u007f\"");
    EXPECT_JSON("<script>&", "\"\\u003cscript\\u003e\\u0026\"");
    expect_json("a\0b", 3, "\"a\\u0000b\"");
}

Test(status, json_utf8_kept_invalid_replaced)
{
    EXPECT_JSON("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    EXPECT_JSON("\xff", "\"\\ufffd\"");
    EXPECT_JSON("\x80x", "\"\\ufffdx\"");              /* a stray continuation */
    EXPECT_JSON("\xc0\xaf", "\"\\ufffd\\ufffd\"");      /* overlong '/' */
    EXPECT_JSON("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""); /* overlong, 3 bytes */
    EXPECT_JSON("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* a surrogate */
    EXPECT_JSON("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* past U+10FFFF */
    EXPECT_JSON("\xe2\x82", "\"\\ufffd\\ufffd\"");      /* cut short at the end */
    EXPECT_JSON("\xe2\x82\"", "\"\\ufffd\\ufffd\\\"\""); /* cut short by a quote */
}

Test(status, buffer_drops_what_does_not_fit)
{
    struct status_buf b;

    status_buf_init(&b, 4, 8);
    status_printf(&b, "%s", "1234");
    status_printf(&b, "%s", "567890");
    cr_expect_str_eq(b.buf, "1234");
    cr_expect(b.truncated);
    status_buf_free(&b);
}

Test(status, quantiles)
{
    static const uint32_t bounds[] = {100, 200, 400};
    uint64_t none[] = {0, 0, 0}, one[] = {0, 10, 0}, spread[] = {50, 0, 50};

    cr_expect_eq(status_quantile_us(none, bounds, 3, 0, 0.5), -1);
    /* All in (100, 200]: the median halfway. */
    cr_expect_float_eq(status_quantile_us(one, bounds, 3, 10, 0.5), 150, 1e-9);
    cr_expect_float_eq(status_quantile_us(spread, bounds, 3, 100, 0.5), 100, 1e-9);
    cr_expect_float_eq(status_quantile_us(spread, bounds, 3, 100, 0.99), 396, 1e-9);
    /* Half past the last bound: the p99 is that bound. */
    cr_expect_float_eq(status_quantile_us(one, bounds, 3, 20, 0.99), 400, 1e-9);
}

Test(status, snapshot_round_trip)
{
    struct status_snapshot s = {0};
    struct status_buf b;
    struct metrics_slot *w;
    int i0, i1;

    metrics_init(4);
    metrics_set_generation(3);
    i0 = metrics_claim();
    i1 = metrics_claim();
    cr_assert(i0 >= 0 && i1 >= 0);
    w = metrics_slot(i1);
    w->pid = 4242;
    w->gen = 3;
    w->wslot = 1;
    atomic_store(&w->cpu_ns, 123456789);
    atomic_store(&w->c.requests, 77);
    atomic_store(&w->conns, 5);
    atomic_store(&w->c.lag_count, 9);
    atomic_store(&w->c.lag_buckets[2], 8);
    metrics_slot(i0)->pid = 0; /* claimed, then gone: not listed */
    status_buf_init(&b, 16, 1 << 20);
    status_snapshot_text(&b);
    cr_assert_eq(status_snapshot_parse(b.buf, &s), 0, "%s", b.buf);
    cr_expect_eq(s.server.pid, getpid());
    cr_expect_eq(s.server.gen, 3);
    cr_expect_eq(s.server.nslots, 4);
    cr_assert_eq(s.nworkers, 1);
    cr_expect_eq(s.workers[0].pid, 4242);
    cr_expect_eq(s.workers[0].wslot, 1);
    cr_expect_eq(s.workers[0].gen, 3);
    cr_expect_eq(s.workers[0].cpu_ns, 123456789);
    cr_expect_eq(s.workers[0].requests, 77);
    cr_expect_eq(s.workers[0].conns, 5);
    cr_expect_eq(s.workers[0].lag_count, 9);
    cr_expect_eq(s.workers[0].lag[2], 8);
    status_snapshot_free(&s);
    status_buf_free(&b);
}

Test(status, snapshot_parse_refuses_other_text)
{
    struct status_snapshot s = {0};

    cr_expect_eq(status_snapshot_parse("generation 1: 2/2 workers up", &s), -1);
    status_snapshot_free(&s);
    memset(&s, 0, sizeof(s));
    cr_expect_eq(status_snapshot_parse("top 1 2 3 4 0 8\nworker x\nworker 1 2 3", &s), -1);
    status_snapshot_free(&s);
    /* Only a last line cut short is left out. */
    memset(&s, 0, sizeof(s));
    cr_expect_eq(status_snapshot_parse("top 1 2 3 4 0 8\n"
                                       "worker 0 10 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
                                       "worker 1 11 1 0 0",
                                       &s),
                 0);
    cr_expect_eq(s.nworkers, 1);
    status_snapshot_free(&s);
}
