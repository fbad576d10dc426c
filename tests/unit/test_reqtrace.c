/* Request IDs and W3C trace context (src/reqtrace.c): traceparent and tracestate as they
 * are taken or refused, request IDs a trusted proxy may pass, percore's own traceparent;
 * and `request_id` and `tracing` as the config loader takes or refuses them. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "conf.h"
#include "conf_load.h"
#include "reqtrace.h"

static int
parse(const char *s, struct reqtrace *t)
{
    memset(t, 0, sizeof(*t));
    return reqtrace_parse_traceparent(h2o_iovec_init(s, strlen(s)), t);
}

Test(traceparent, valid_ones_are_read)
{
    struct reqtrace t;
    char hex[33];

    cr_assert_eq(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &t), 0);
    reqtrace_hex(t.trace_id, 16, hex);
    cr_assert_str_eq(hex, "0af7651916cd43dd8448eb211c80319c");
    reqtrace_hex(t.parent_id, 8, hex);
    cr_assert_str_eq(hex, "b7ad6b7169203331");
    cr_assert_eq(t.flags, 1);
    cr_assert_eq(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", &t), 0);
    cr_assert_eq(t.flags, 0);
    /* Flags other than sampled are not passed on. */
    cr_assert_eq(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff", &t), 0);
    cr_assert_eq(t.flags, 1);
    /* A later version is read as 00, fields after it left. */
    cr_assert_eq(parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &t), 0);
    cr_assert_eq(parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-next", &t),
                 0);
}

Test(traceparent, every_malformed_spelling_is_refused)
{
    static const char *const bad[] = {
        "",
        "00",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",       /* short */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",     /* 00 with more */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",      /* version ff */
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",      /* uppercase */
        "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0A",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",      /* zero trace */
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",      /* zero parent */
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",      /* not hex */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333 -01",
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",      /* separators */
        "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01",
        "0x-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",     /* later, no '-' */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1\x00",
    };
    struct reqtrace t;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(parse(bad[i], &t), -1, "taken: %s", bad[i]);
}

Test(traceparent, percore_writes_its_own)
{
    struct reqtrace t;
    uint8_t span[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char out[REQTRACE_TRACEPARENT_LEN + 1];

    cr_assert_eq(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &t), 0);
    reqtrace_traceparent(&t, span, out);
    cr_assert_str_eq(out, "00-0af7651916cd43dd8448eb211c80319c-0102030405060708-01");
    t.flags = 0;
    reqtrace_traceparent(&t, span, out);
    cr_assert_str_eq(out, "00-0af7651916cd43dd8448eb211c80319c-0102030405060708-00");
    /* What it writes it reads back. */
    cr_assert_eq(parse(out, &t), 0);
}

Test(traceparent, new_spans_differ_and_are_not_zero)
{
    uint8_t a[8], b[8], zero[8] = {0};

    reqtrace_new_span(a);
    reqtrace_new_span(b);
    cr_assert_neq(memcmp(a, b, 8), 0);
    cr_assert_neq(memcmp(a, zero, 8), 0);
}

static int
tracestate(const char *s)
{
    return reqtrace_valid_tracestate(h2o_iovec_init(s, strlen(s)));
}

Test(tracestate, lists)
{
    char big[600], many[400];

    cr_assert(tracestate("congo=t61rcWkgMzE"));
    cr_assert(tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    cr_assert(tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,"));
    cr_assert(tracestate("fw529a3039@dt=Zm9vYmFy,a*b/c_d-e=1"));
    cr_assert_not(tracestate(""));
    cr_assert_not(tracestate("novalue"));
    cr_assert_not(tracestate("=v"));
    cr_assert_not(tracestate("k="));
    cr_assert_not(tracestate("Upper=1"));
    cr_assert_not(tracestate("k=a=b"));
    cr_assert_not(tracestate("k=\x01"));
    cr_assert_not(tracestate("k=\xff"));
    cr_assert_not(tracestate("k=a\r\nx=1"));
    memset(big, 'a', sizeof(big));
    memcpy(big, "k=", 2);
    big[sizeof(big) - 1] = '\0';
    cr_assert_not(tracestate(big), "over 512 bytes");
    /* 33 members */
    many[0] = '\0';
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sk%d=v", i ? "," : "", i);
    cr_assert_not(tracestate(many), "33 members");
}

static int
reqid(const char *s)
{
    return reqtrace_valid_request_id(h2o_iovec_init(s, strlen(s)));
}

Test(request_id, what_a_trusted_proxy_may_pass)
{
    char big[REQTRACE_ID_MAX + 2];

    cr_assert(reqid("5f1c0e6a-1b7e-4c4e-9a1e-0c7f3a3a9d21"));
    cr_assert(reqid("a"));
    cr_assert(reqid("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"));
    cr_assert_not(reqid(""));
    cr_assert_not(reqid("has space"));
    cr_assert_not(reqid("quote\""));
    cr_assert_not(reqid("back\\slash"));
    cr_assert_not(reqid("tab\t"));
    cr_assert_not(reqid("\x7f"));
    cr_assert_not(reqid("caf\xc3\xa9"));
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_not(reqid(big), "longer than REQTRACE_ID_MAX");
    big[REQTRACE_ID_MAX] = '\0';
    cr_assert(reqid(big));
}

/* ---- the config ---- */

#define SVC(extra) "service a { listen 127.0.0.1:1; " extra " route / { respond 200; } }\n"

Test(config, request_id_inherits_and_overrides)
{
    struct conf *c = load_ok("request_id on header=X-Trace-Me;\n" SVC("")
                             "service b { listen 127.0.0.1:2; request_id off; "
                             "route / { respond 200; } }\n"
                             "service d { listen 127.0.0.1:3; request_id on; "
                             "route / { respond 200; } }\n");

    cr_assert_eq(c->services[0].reqid.on, 1);
    cr_assert_str_eq(c->services[0].reqid.header, "x-trace-me");
    cr_assert_eq(c->services[1].reqid.on, 0);
    cr_assert_eq(c->services[2].reqid.on, 1);
    cr_assert_str_eq(c->services[2].reqid.header, "x-request-id");
    conf_free(c);
    c = load_ok(SVC(""));
    cr_assert_eq(c->services[0].reqid.on, 0, "off unless asked for");
    cr_assert_eq(c->tracing.on, 0);
    conf_free(c);
}

Test(config, request_id_errors)
{
    load_err("request_id yes;\n" SVC(""),
             "t.conf:1:12: request_id takes on or off, not 'yes'; usage: request_id on|off "
             "[header=NAME]");
    load_err("request_id on hdr=X;\n" SVC(""),
             "t.conf:1:15: unknown request_id option 'hdr=X'; usage: request_id on|off "
             "[header=NAME]");
    load_err("request_id on header=a:b;\n" SVC(""),
             "t.conf:1:15: request_id header 'a:b' is no header name");
    load_err("request_id on header=;\n" SVC(""),
             "t.conf:1:15: request_id header '' is no header name");
    /* The ID replaces the request's lines of the name and is set on the response: a
     * framing header would go out twice (two Content-Length lines), the Host or a header
     * percore writes would be lost or doubled. */
    static const char *const managed[] = {"Content-Length", "transfer-encoding", "Host",
                                          "connection", "TE", "upgrade", "traceparent",
                                          "Tracestate", "x-forwarded-for", "X-Forwarded-Proto",
                                          "forwarded", "via", "date", "server", "set-cookie"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
        char text[256], want[256];
        snprintf(text, sizeof(text), "request_id on header=%s;\n" SVC(""), managed[i]);
        snprintf(want, sizeof(want), "t.conf:1:15: request_id header '%s' is managed by "
                 "percore and the protocol; it cannot carry the request ID", managed[i]);
        load_err(text, want);
    }
    load_err(SVC("request_id on header=Content-Length;"),
             "t.conf:1:47: request_id header 'Content-Length' is managed by percore and the "
             "protocol; it cannot carry the request ID");
}

Test(config, tracing_block)
{
    struct conf *c = load_ok("tracing {\n otlp_endpoint http://127.0.0.1:4318;\n sample 5%;\n"
                             " service_name edge;\n accept_parent trusted;\n}\n" SVC(""));

    cr_assert_eq(c->tracing.on, 1);
    cr_assert_str_eq(c->tracing.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
    cr_assert_float_eq(c->tracing.sample, 0.05, 1e-9);
    cr_assert_str_eq(c->tracing.service_name, "edge");
    cr_assert_eq(c->tracing.accept, TRACE_ACCEPT_TRUSTED);
    cr_assert_eq(c->tracing.span_queue, CONF_DEFAULT_SPAN_QUEUE);
    conf_free(c);
    c = load_ok("tracing { }\n" SVC(""));
    cr_assert_eq(c->tracing.on, 1);
    cr_assert_null(c->tracing.otlp_endpoint, "propagation only");
    cr_assert_float_eq(c->tracing.sample, 1.0, 1e-9);
    cr_assert_str_eq(c->tracing.service_name, "percore");
    conf_free(c);
    c = load_ok("tracing { otlp_endpoint http://localhost:4318/otlp/v1/traces; sample 0; }\n"
                SVC(""));
    cr_assert_str_eq(c->tracing.otlp_endpoint, "http://localhost:4318/otlp/v1/traces");
    cr_assert_float_eq(c->tracing.sample, 0.0, 1e-9);
    conf_free(c);
}

Test(config, tracing_errors)
{
    load_err("tracing { sample 1.5; }\n" SVC(""),
             "t.conf:1:18: sample takes a ratio from 0 to 1 or a percentage, not '1.5'; usage: "
             "sample RATIO|PERCENT%");
    load_err("tracing { sample -0; }\n" SVC(""),
             "t.conf:1:18: sample takes a ratio from 0 to 1 or a percentage, not '-0'; usage: "
             "sample RATIO|PERCENT%");
    load_err("tracing { sample 101%; }\n" SVC(""),
             "t.conf:1:18: sample takes a ratio from 0 to 1 or a percentage, not '101%'; usage: "
             "sample RATIO|PERCENT%");
    load_err("tracing { sample nan; }\n" SVC(""),
             "t.conf:1:18: sample takes a ratio from 0 to 1 or a percentage, not 'nan'; usage: "
             "sample RATIO|PERCENT%");
    load_err("tracing { otlp_endpoint https://c:4318; }\n" SVC(""),
             "t.conf:1:25: otlp_endpoint must be an http:// URL; usage: otlp_endpoint "
             "http://HOST:PORT/PATH");
    load_err("tracing { otlp_endpoint http://c:4318?x; }\n" SVC(""),
             "t.conf:1:25: otlp_endpoint 'http://c:4318?x' has no host or a query; usage: "
             "otlp_endpoint http://HOST:PORT/PATH");
    load_err("tracing { otlp_endpoint http:///v1; }\n" SVC(""),
             "t.conf:1:25: otlp_endpoint 'http:///v1' has no host or a query; usage: "
             "otlp_endpoint http://HOST:PORT/PATH");
    load_err("tracing { span_queue 10; span_batch 20; }\n" SVC(""),
             "t.conf:1:1: span_batch 20 is larger than span_queue 10");
    load_err("tracing { accept_parent some; }\n" SVC(""),
             "t.conf:1:25: invalid value 'some' for 'accept_parent': expected 'any', 'trusted' or "
             "'none'");
    load_err("tracing { listen 127.0.0.1:1; }\n" SVC(""),
             "t.conf:1:11: 'listen' is not allowed in the tracing block; it belongs in a service "
             "block");
    load_err(SVC("sample 1;"),
             "t.conf:1:33: 'sample' is not allowed in a service block; it belongs in the tracing "
             "block");
    load_err("tracing { }\ntracing { }\n" SVC(""),
             "t.conf:2:1: duplicate 'tracing' (first set at t.conf:1:1)");
}
