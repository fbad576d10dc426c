/* The client's address (src/clientaddr.c): trusted networks as written and as matched,
 * X-Forwarded-For entries, the walk past trusted proxies; and `trusted_proxies` and
 * `listen ... proxy_protocol` as the config loader takes or refuses them. */
#include "config.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "clientaddr.h"
#include "conf.h"
#include "conf_load.h"
#include "util.h"

static struct ipnet
net(const char *s)
{
    struct ipnet n;
    char err[256] = "";

    cr_assert_eq(clientaddr_parse_net(s, &n, err, sizeof(err)), 0, "%s: %s", s, err);
    return n;
}

static const char *
net_err(const char *s)
{
    static char err[256];
    struct ipnet n;

    err[0] = '\0';
    cr_assert_eq(clientaddr_parse_net(s, &n, err, sizeof(err)), -1, "%s taken", s);
    return err;
}

static struct sockaddr_storage
sa(const char *s)
{
    struct sockaddr_storage ss;

    cr_assert_neq(clientaddr_parse_entry(s, strlen(s), &ss), 0, "%s", s);
    return ss;
}

static const char *
text(const struct sockaddr_storage *ss)
{
    static char buf[80];
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port;

    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof(a));
        port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
        snprintf(buf, sizeof(buf), "%s:%u", a, port);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof(a));
        port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
        snprintf(buf, sizeof(buf), "[%s]:%u", a, port);
    }
    return buf;
}

/* ---- networks ---- */

Test(net, forms)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"10.0.0.0/8", "10.0.0.0/8"},
        {"192.0.2.7", "192.0.2.7/32"},
        {"0.0.0.0/0", "0.0.0.0/0"},
        {"172.16.0.0/12", "172.16.0.0/12"},
        {"2001:db8::/32", "2001:db8::/32"},
        {"::1", "::1/128"},
        {"::/0", "::/0"},
        {"fd00::/8", "fd00::/8"},
        /* mapped IPv4 networks are the IPv4 ones */
        {"::ffff:10.0.0.0/104", "10.0.0.0/8"},
        {"::ffff:192.0.2.7", "192.0.2.7/32"},
    };
    char buf[64];

    for (size_t i = 0; i < NELEMS(cases); i++) {
        struct ipnet n = net(cases[i].in);
        cr_assert_str_eq(clientaddr_net_text(&n, buf, sizeof(buf)), cases[i].out, "%s",
                         cases[i].in);
    }
}

Test(net, refused_with_reasons)
{
    cr_assert_str_eq(net_err("10.1.2.3/8"),
                     "'10.1.2.3/8' has bits set past its /8 prefix; did you mean 10.0.0.0/8?");
    cr_assert_str_eq(net_err("2001:db8::1/32"), "'2001:db8::1/32' has bits set past its /32 "
                                                "prefix; did you mean 2001:db8::/32?");
    cr_assert_str_eq(net_err("192.0.2.129/25"), "'192.0.2.129/25' has bits set past its /25 "
                                                "prefix; did you mean 192.0.2.128/25?");
    cr_assert_str_eq(net_err("10.0.0.0/33"), "invalid prefix length in '10.0.0.0/33': "
                                             "expected /0 to /32 for an IPv4 address");
    cr_assert_str_eq(net_err("fd00::/129"), "invalid prefix length in 'fd00::/129': "
                                            "expected /0 to /128 for an IPv6 address");
    cr_assert_str_eq(net_err("example.com"), "invalid address 'example.com': expected an IPv4 "
                                             "or IPv6 address, or a network such as "
                                             "10.0.0.0/8 or fd00::/8");
    static const char *const bad[] = {"",          "/8",        "10.0.0.0/",  "10.0.0.0/08",
                                      "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "10.0.0/8",
                                      "[::1]",     "::1/ 64",   "1.2.3.4.5",  "010.0.0.0/8",
                                      "10.0.0.0/1000", "*"};
    for (size_t i = 0; i < NELEMS(bad); i++)
        net_err(bad[i]);
}

Test(net, matching)
{
    struct ipnet nets[] = {net("10.0.0.0/8"), net("192.0.2.6/31"), net("2001:db8::/126"),
                           net("::ffff:198.51.100.0/120")};
    static const struct {
        const char *addr;
        int in;
    } cases[] = {
        {"10.0.0.0", 1},     {"10.255.255.255", 1}, {"11.0.0.0", 0},     {"9.255.255.255", 0},
        {"192.0.2.6", 1},    {"192.0.2.7", 1},      {"192.0.2.5", 0},    {"192.0.2.8", 0},
        {"2001:db8::3", 1},  {"2001:db8::4", 0},    {"2001:db9::", 0},   {"::ffff:10.1.2.3", 1},
        {"::ffff:11.1.2.3", 0}, {"198.51.100.77", 1}, {"::a00:1", 0},    {"::1", 0},
    };

    for (size_t i = 0; i < NELEMS(cases); i++) {
        struct sockaddr_storage ss = sa(cases[i].addr);
        cr_assert_eq(clientaddr_match(nets, NELEMS(nets), (struct sockaddr *)&ss), cases[i].in,
                     "%s", cases[i].addr);
    }
}

Test(net, edges)
{
    struct ipnet all4 = net("0.0.0.0/0"), all6 = net("::/0"), one = net("203.0.113.9");
    struct sockaddr_storage v4 = sa("203.0.113.9"), v6 = sa("2001:db8::9");
    struct sockaddr_storage unix_ss = {.ss_family = AF_UNIX};

    cr_assert(clientaddr_match(&all4, 1, (struct sockaddr *)&v4));
    cr_assert_not(clientaddr_match(&all4, 1, (struct sockaddr *)&v6));
    cr_assert(clientaddr_match(&all6, 1, (struct sockaddr *)&v6));
    cr_assert_not(clientaddr_match(&all6, 1, (struct sockaddr *)&v4));
    cr_assert(clientaddr_match(&one, 1, (struct sockaddr *)&v4));
    cr_assert_not(clientaddr_match(&all4, 1, (struct sockaddr *)&unix_ss));
    cr_assert_not(clientaddr_match(NULL, 0, (struct sockaddr *)&v4));
}

/* ---- X-Forwarded-For entries ---- */

Test(entry, forms)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"192.0.2.1", "192.0.2.1:0"},         {" 192.0.2.1\t", "192.0.2.1:0"},
        {"192.0.2.1:8080", "192.0.2.1:8080"}, {"2001:db8::1", "[2001:db8::1]:0"},
        {"[2001:db8::1]", "[2001:db8::1]:0"}, {"[2001:db8::1]:443", "[2001:db8::1]:443"},
        {"::ffff:192.0.2.1", "[::ffff:192.0.2.1]:0"},
    };
    static const char *const bad[] = {
        "",           "unknown",         "_hidden",          "192.0.2.1:",  "192.0.2.1:65536",
        "192.0.2.1:x", "192.0.2.1:01",   "[192.0.2.1]",      "[2001:db8::1", "2001:db8::1]",
        "[::1]x",     "[::1]:",         "example.com",      "192.0.2",     "1.2.3.4 5.6.7.8",
        "for=1.2.3.4", "\"192.0.2.1\"",  "192.0.2.1:80:80",
    };
    struct sockaddr_storage ss;

    for (size_t i = 0; i < NELEMS(ok); i++) {
        cr_assert_neq(clientaddr_parse_entry(ok[i].in, strlen(ok[i].in), &ss), 0, "%s",
                      ok[i].in);
        cr_assert_str_eq(text(&ss), ok[i].out, "%s", ok[i].in);
    }
    for (size_t i = 0; i < NELEMS(bad); i++)
        cr_assert_eq(clientaddr_parse_entry(bad[i], strlen(bad[i]), &ss), 0, "%s", bad[i]);
    /* The length given bounds it: no terminating NUL is looked for. */
    cr_assert_neq(clientaddr_parse_entry("10.0.0.1junk", 8, &ss), 0);
    cr_assert_str_eq(text(&ss), "10.0.0.1:0");
}

/* ---- the walk ---- */

static h2o_mem_pool_t pool;

static void
pool_init(void)
{
    h2o_mem_init_pool(&pool);
}

static void
pool_fini(void)
{
    h2o_mem_clear_pool(&pool);
}

/* The client the walk finds behind peer, with X-Forwarded-For lines xff[0..n) (NULL ends
 * them), trusting 10.0.0.0/8 and 2001:db8:f::/48. */
static const char *
walk(const char *peer, const char *const *xff, unsigned *taken)
{
    static const char *const trusted[] = {"10.0.0.0/8", "2001:db8:f::/48"};
    struct ipnet nets[NELEMS(trusted)];
    h2o_headers_t hs = {NULL, 0, 0};
    struct sockaddr_storage ss = sa(peer);
    socklen_t len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                            : sizeof(struct sockaddr_in6);
    unsigned n;

    for (size_t i = 0; i < NELEMS(trusted); i++)
        nets[i] = net(trusted[i]);
    h2o_add_header(&pool, &hs, H2O_TOKEN_USER_AGENT, NULL, H2O_STRLIT("x"));
    for (size_t i = 0; xff[i] != NULL; i++) {
        h2o_add_header(&pool, &hs, H2O_TOKEN_X_FORWARDED_FOR, NULL, xff[i], strlen(xff[i]));
        h2o_add_header(&pool, &hs, H2O_TOKEN_ACCEPT, NULL, H2O_STRLIT("*/*"));
    }
    n = clientaddr_walk(nets, NELEMS(nets), &hs, &ss, &len);
    if (taken != NULL)
        *taken = n;
    cr_assert_eq(len, ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6));
    return text(&ss);
}

#define XFF(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(walk, right_to_left_past_trusted, .init = pool_init, .fini = pool_fini)
{
    unsigned taken;

    cr_assert_str_eq(walk("10.0.0.1", XFF("203.0.113.5"), &taken), "203.0.113.5:0");
    cr_assert_eq(taken, 1);
    /* What the client wrote itself, left of the first untrusted hop, is not believed. */
    cr_assert_str_eq(walk("10.0.0.1", XFF("198.51.100.1, 203.0.113.5, 10.1.1.1"), &taken),
                     "203.0.113.5:0");
    cr_assert_eq(taken, 2);
    cr_assert_str_eq(walk("10.0.0.1", XFF("1.1.1.1,203.0.113.5,10.1.1.1,10.2.2.2"), NULL),
                     "203.0.113.5:0");
    /* Every hop trusted: the leftmost is as far as is known. */
    cr_assert_str_eq(walk("10.0.0.1", XFF("10.2.2.2, 10.1.1.1"), &taken), "10.2.2.2:0");
    cr_assert_eq(taken, 2);
    /* A port and IPv6, trusted and not. */
    cr_assert_str_eq(walk("10.0.0.1", XFF("[2001:db8::5]:443, [2001:db8:f::1]"), NULL),
                     "[2001:db8::5]:443");
    cr_assert_str_eq(walk("2001:db8:f::9", XFF("192.0.2.1:5555"), NULL), "192.0.2.1:5555");
    cr_assert_str_eq(walk("10.0.0.1", XFF("::ffff:10.1.1.1, ::ffff:192.0.2.44"), NULL),
                     "[::ffff:192.0.2.44]:0");
}

Test(walk, several_lines_are_one_list, .init = pool_init, .fini = pool_fini)
{
    cr_assert_str_eq(walk("10.0.0.1", XFF("1.1.1.1", "10.9.9.9, 2.2.2.2"), NULL), "2.2.2.2:0");
    cr_assert_str_eq(walk("10.0.0.1", XFF("1.1.1.1", "10.9.9.9"), NULL), "1.1.1.1:0");
    cr_assert_str_eq(walk("10.0.0.1", XFF("1.1.1.1, 10.8.8.8", "10.9.9.9"), NULL), "1.1.1.1:0");
}

Test(walk, garbage_stops_at_the_last_trusted_hop, .init = pool_init, .fini = pool_fini)
{
    unsigned taken;

    cr_assert_str_eq(walk("10.0.0.1", XFF("203.0.113.5, unknown, 10.1.1.1"), &taken),
                     "10.1.1.1:0");
    cr_assert_eq(taken, 1);
    cr_assert_str_eq(walk("10.0.0.1", XFF("garbage"), &taken), "10.0.0.1:0");
    cr_assert_eq(taken, 0);
    cr_assert_str_eq(walk("10.0.0.1", XFF("1.2.3.4", "x"), &taken), "10.0.0.1:0");
    cr_assert_str_eq(walk("10.0.0.1", XFF("1.2.3.4 5.6.7.8"), NULL), "10.0.0.1:0");
}

Test(walk, empty_entries_are_skipped, .init = pool_init, .fini = pool_fini)
{
    cr_assert_str_eq(walk("10.0.0.1", XFF("203.0.113.5,, ,10.1.1.1,"), NULL), "203.0.113.5:0");
    cr_assert_str_eq(walk("10.0.0.1", XFF(""), NULL), "10.0.0.1:0");
    cr_assert_str_eq(walk("10.0.0.1", XFF(",,,"), NULL), "10.0.0.1:0");
}

Test(walk, no_header_keeps_the_peer, .init = pool_init, .fini = pool_fini)
{
    unsigned taken;
    const char *const none[] = {NULL};

    cr_assert_str_eq(walk("10.0.0.1", none, &taken), "10.0.0.1:0");
    cr_assert_eq(taken, 0);
}

/* A chain of trusted hops longer than CLIENTADDR_MAX_HOPS ends at the last one looked at:
 * the walk is bounded however long the header. */
Test(walk, bounded, .init = pool_init, .fini = pool_fini)
{
    char *chain = xstrdup("192.0.2.99");
    char want[32];
    unsigned taken;

    for (int i = 0; i < 3 * CLIENTADDR_MAX_HOPS; i++) {
        char *t = xasprintf("%s, 10.0.%d.%d", chain, i / 250, i % 250 + 1);
        free(chain);
        chain = t;
    }
    /* From the right, the first hop looked at is the last one added. */
    int last = 3 * CLIENTADDR_MAX_HOPS - CLIENTADDR_MAX_HOPS;
    snprintf(want, sizeof(want), "10.0.%d.%d:0", last / 250, last % 250 + 1);
    cr_assert_str_eq(walk("10.0.0.1", XFF(chain), &taken), want);
    cr_assert_eq(taken, CLIENTADDR_MAX_HOPS);
    free(chain);
}

/* ---- the config ---- */

static const char *
nets_text(const struct conf_trusted *t)
{
    static char buf[512];
    char one[64];
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < t->n; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? " " : "",
                                clientaddr_net_text(&t->nets[i], one, sizeof(one)));
    return buf;
}

#define ROUTE " route / { respond 200; } "

Test(conf, main_is_the_default_and_a_service_replaces_it)
{
    struct conf *c = load_ok("trusted_proxies 10.0.0.0/8 192.0.2.1;\n"
                             "trusted_proxies fd00::/8;\n"
                             "service a { listen 127.0.0.1:8080;" ROUTE "}\n"
                             "service b { listen 127.0.0.1:8081; trusted_proxies ::1;" ROUTE
                             "}\n"
                             "service c { listen 127.0.0.1:8082; trusted_proxies off;" ROUTE
                             "}\n");

    cr_assert_str_eq(nets_text(&c->trusted), "10.0.0.0/8 192.0.2.1/32 fd00::/8");
    cr_assert_str_eq(nets_text(&c->services[0].trusted), "10.0.0.0/8 192.0.2.1/32 fd00::/8");
    cr_assert_str_eq(nets_text(&c->services[1].trusted), "::1/128");
    cr_assert_eq(c->services[2].trusted.n, 0);
    conf_free(c);
}

/* The main context's line may come after the services. */
Test(conf, main_after_the_services)
{
    struct conf *c = load_ok("service a { listen 127.0.0.1:8080 proxy_protocol;" ROUTE "}\n"
                             "trusted_proxies 127.0.0.1;\n");

    cr_assert_str_eq(nets_text(&c->services[0].trusted), "127.0.0.1/32");
    cr_assert(c->services[0].listens[0].proxy_protocol);
    conf_free(c);
}

Test(conf, proxy_protocol_listens)
{
    struct conf *c = load_ok("trusted_proxies 10.0.0.0/8;\n"
                             "service a { listen 127.0.0.1:8080 proxy_protocol default;\n"
                             "  listen 127.0.0.1:8081;" ROUTE "}\n"
                             "service b { listen 127.0.0.1:8080 proxy_protocol;\n"
                             "  server_name b.test;" ROUTE "}\n");

    cr_assert(c->services[0].listens[0].proxy_protocol);
    cr_assert(c->services[0].listens[0].dflt);
    cr_assert_not(c->services[0].listens[1].proxy_protocol);
    cr_assert(c->services[1].listens[0].proxy_protocol);
    conf_free(c);
}

Test(conf, errors_at_their_place)
{
    load_err("trusted_proxies 10.0.0.0/8 10.1.2.3/8;\nservice a { listen 127.0.0.1:8080;" ROUTE
             "}\n",
             "t.conf:1:28: trusted_proxies: '10.1.2.3/8' has bits set past its /8 prefix; did "
             "you mean 10.0.0.0/8?");
    load_err("service a { listen 127.0.0.1:8080;\n  trusted_proxies localhost;" ROUTE "}\n",
             "t.conf:2:19: trusted_proxies: invalid address 'localhost': expected an IPv4 or "
             "IPv6 address, or a network such as 10.0.0.0/8 or fd00::/8");
    load_err("trusted_proxies off 10.0.0.0/8;\nservice a { listen 127.0.0.1:8080;" ROUTE "}\n",
             "t.conf:1:21: 'trusted_proxies off' takes no networks");
    load_err("trusted_proxies 10.0.0.0/8;\ntrusted_proxies off;\n"
             "service a { listen 127.0.0.1:8080;" ROUTE "}\n",
             "t.conf:2:1: 'trusted_proxies off' stands alone in a block (first trusted_proxies "
             "at t.conf:1:1)");
    load_err("trusted_proxies off;\ntrusted_proxies 10.0.0.0/8;\n"
             "service a { listen 127.0.0.1:8080;" ROUTE "}\n",
             "t.conf:2:1: 'trusted_proxies off' stands alone in a block (first trusted_proxies "
             "at t.conf:1:1)");
    load_err("trusted_proxies;\nservice a { listen 127.0.0.1:8080;" ROUTE "}\n",
             "t.conf:1:1: wrong number of arguments for 'trusted_proxies'; usage: "
             "trusted_proxies off|NETWORK...");
    load_err("service a { listen 127.0.0.1:8080; route / { trusted_proxies ::1; respond 200; "
             "} }\n",
             "t.conf:1:46: 'trusted_proxies' is not allowed in a route block; it belongs in the "
             "main context");
}

Test(conf, proxy_protocol_needs_trusted_proxies)
{
    load_err("service a {\n  listen 127.0.0.1:8080 proxy_protocol;" ROUTE "}\n",
             "t.conf:2:10: listen 127.0.0.1:8080 proxy_protocol in service 'a' needs "
             "trusted_proxies (in the service or the main context): only those peers may send "
             "a PROXY header");
    load_err("trusted_proxies 10.0.0.0/8;\nservice a {\n  trusted_proxies off;\n"
             "  listen 127.0.0.1:8080 proxy_protocol;" ROUTE "}\n",
             "t.conf:4:10: listen 127.0.0.1:8080 proxy_protocol in service 'a' needs "
             "trusted_proxies (in the service or the main context): only those peers may send "
             "a PROXY header");
}

Test(conf, listen_option_errors)
{
    load_err("trusted_proxies ::1;\nservice a { listen 127.0.0.1:8080 proxy_protocol "
             "proxy_protocol;" ROUTE "}\n",
             "t.conf:2:50: listen option 'proxy_protocol' given twice");
    load_err("service a { listen 127.0.0.1:8080 proxy;" ROUTE "}\n",
             "t.conf:1:35: unknown listen option 'proxy': expected 'tls', 'http2', 'default' "
             "or 'proxy_protocol'");
    /* Services sharing an address agree on it, as on tls. */
    load_err("trusted_proxies ::1;\n"
             "service a { listen 127.0.0.1:8080 proxy_protocol;" ROUTE "}\n"
             "service b { listen 127.0.0.1:8080; server_name b.test;" ROUTE "}\n",
             "t.conf:3:20: 127.0.0.1:8080 is already used by service 'a' (listen 127.0.0.1:8080 "
             "at t.conf:2:20); services sharing an address must all use 'proxy_protocol' or "
             "none");
}

Test(conf, too_many_networks)
{
    char *text = xstrdup("trusted_proxies");

    for (int i = 0; i < CLIENTADDR_MAX_NETS + 1; i++) {
        char *t = xasprintf("%s 10.%d.%d.0/24", text, i / 256, i % 256);
        free(text);
        text = t;
    }
    char *full = xasprintf("%s;\nservice a { listen 127.0.0.1:8080;" ROUTE "}\n", text);
    load_err(full, "t.conf:1:1: too many trusted_proxies networks in one block (at most 1024)");
    free(full);
    free(text);
}
