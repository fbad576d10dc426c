/* Upstream host names followed at run time (src/upresolve.c): address sets, TTL and bounds,
 * the shared slots as a worker reads them (changes, a slot given to another name), a
 * failure said once, a lookup through c-ares of "localhost" (answered from /etc/hosts or,
 * by RFC 6761, as the loopback: no query leaves the machine), and the `resolve=` server
 * option (src/upstream.c). */
#include "../../src/upresolve.c"

#include <criterion/criterion.h>

#include "upstream.h"

#define WAIT_MS 20000

static struct sockaddr_in
v4(const char *ip, unsigned port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    cr_assert_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static union upresolve_addr
addr4(const char *ip, unsigned port)
{
    union upresolve_addr a;

    memset(&a, 0, sizeof(a));
    a.sin = v4(ip, port);
    return a;
}

/* Whether set holds ip:port. */
static int
has(const struct upresolve_set *set, const char *ip, unsigned port)
{
    union upresolve_addr a = addr4(ip, port);

    return upresolve_has(set, &a);
}

static void
add4(struct upresolve_set *set, const char *ip)
{
    struct sockaddr_in sin = v4(ip, 80);

    set_add(set, (const struct sockaddr *)&sin, sizeof(sin));
}

static struct upresolve_slot *
acquire4(const char *host, const char *ip, int64_t bound, uint64_t *id)
{
    struct sockaddr_in sin = v4(ip, 80);

    return upresolve_acquire(host, "80", (const struct sockaddr *)&sin, bound, id);
}

/* ---- sets ---- */

Test(set, sorted_without_repeats_in_any_order)
{
    struct upresolve_set a, b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    add4(&a, "10.0.0.3");
    add4(&a, "10.0.0.1");
    add4(&a, "10.0.0.3");
    add4(&a, "10.0.0.2");
    add4(&b, "10.0.0.2");
    add4(&b, "10.0.0.1");
    add4(&b, "10.0.0.3");
    cr_assert_eq(a.n, 3);
    cr_assert(memcmp(&a, &b, sizeof(a)) == 0);
    cr_assert(has(&a, "10.0.0.2", 80));
    cr_assert(!has(&a, "10.0.0.2", 81));
    cr_assert(!has(&a, "10.0.0.4", 80));
}

Test(set, keeps_the_least_eight)
{
    struct upresolve_set set;
    char ip[32];

    memset(&set, 0, sizeof(set));
    for (int i = 12; i >= 1; i--) {
        snprintf(ip, sizeof(ip), "10.0.0.%d", i);
        add4(&set, ip);
    }
    cr_assert_eq(set.n, UPRESOLVE_ADDRS_MAX);
    cr_assert(has(&set, "10.0.0.1", 80));
    cr_assert(has(&set, "10.0.0.8", 80));
    cr_assert(!has(&set, "10.0.0.9", 80));
}

Test(set, an_answer_gives_its_family_and_least_ttl)
{
    struct sockaddr_in a = v4("10.0.0.2", 80), b = v4("10.0.0.1", 80);
    struct sockaddr_in6 c = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
    struct ares_addrinfo_node nb = {.ai_ttl = 30, .ai_family = AF_INET,
                                    .ai_addrlen = sizeof(b), .ai_addr = (struct sockaddr *)&b};
    struct ares_addrinfo_node nc = {.ai_ttl = 1, .ai_family = AF_INET6, .ai_addrlen = sizeof(c),
                                    .ai_addr = (struct sockaddr *)&c, .ai_next = &nb};
    struct ares_addrinfo_node na = {.ai_ttl = 60, .ai_family = AF_INET,
                                    .ai_addrlen = sizeof(a), .ai_addr = (struct sockaddr *)&a,
                                    .ai_next = &nc};
    struct ares_addrinfo_cname cn = {.ttl = 45};
    struct ares_addrinfo res = {.nodes = &na};
    struct upresolve_set set;

    cr_assert_eq(collect(&res, AF_INET, &set), 30); /* the AAAA's TTL is not ours */
    cr_assert_eq(set.n, 2);
    cr_assert_eq(set.a[0].sin.sin_addr.s_addr, b.sin_addr.s_addr);
    nb.ai_ttl = 3600;
    res.cnames = &cn;
    cr_assert_eq(collect(&res, AF_INET, &set), 45);
}

/* ---- when to look again ---- */

Test(schedule, ttl_within_a_second_and_the_bound)
{
    cr_assert_eq(wait_ms(0, 10000), 1000); /* /etc/hosts */
    cr_assert_eq(wait_ms(5, 10000), 5000);
    cr_assert_eq(wait_ms(300, 10000), 10000);
    cr_assert_eq(wait_ms(300, 3600000), 300000);
}

Test(schedule, the_least_bound_of_the_servers_counts)
{
    struct name n;

    memset(&n, 0, sizeof(n));
    add_bound(&n, 10000);
    add_bound(&n, 2000);
    add_bound(&n, 2000);
    cr_assert_eq(bound_ms(&n), 2000);
    remove_bound(&n, 2000);
    cr_assert_eq(bound_ms(&n), 2000);
    remove_bound(&n, 2000);
    cr_assert_eq(bound_ms(&n), 10000); /* a reload that raised it */
    for (int64_t ms = 20000; ms <= 60000; ms += 10000)
        add_bound(&n, ms);
    add_bound(&n, 1000); /* every place taken: folded into the least, lowered */
    cr_assert_eq(bound_ms(&n), 1000);
}

/* ---- slots ---- */

Test(slot, a_worker_sees_the_load_address_then_changes)
{
    struct upresolve_view v;
    struct upresolve_set set;
    uint64_t id;
    struct upresolve_slot *s = acquire4("app.test", "10.0.0.1", 10000, &id);

    memset(&v, 0, sizeof(v));
    cr_assert_not_null(s);
    cr_assert_eq(upresolve_read(s, id, &v), 1);
    cr_assert_eq(v.set.n, 1);
    cr_assert(has(&v.set, "10.0.0.1", 80));
    cr_assert_eq(upresolve_read(s, id, &v), 0);

    memset(&set, 0, sizeof(set));
    add4(&set, "10.0.0.2");
    add4(&set, "10.0.0.3");
    answered(&names[s - slots], &set, 0, 1000);
    cr_assert_eq(names[s - slots].next_ms, 2000);
    cr_assert_eq(upresolve_read(s, id, &v), 1);
    cr_assert_eq(v.set.n, 2);
    cr_assert(!has(&v.set, "10.0.0.1", 80));
    /* The same answer again publishes nothing. */
    answered(&names[s - slots], &set, 0, 2000);
    cr_assert_eq(upresolve_read(s, id, &v), 0);
}

Test(slot, servers_of_one_name_share_it)
{
    uint64_t id1, id2, id3;
    struct upresolve_slot *a = acquire4("app.test", "10.0.0.1", 10000, &id1);
    struct upresolve_slot *b = acquire4("app.test", "10.0.0.1", 2000, &id2);
    struct upresolve_slot *c = acquire4("other.test", "10.0.0.1", 2000, &id3);

    cr_assert_eq(a, b);
    cr_assert_eq(id1, id2);
    cr_assert_neq(a, c);
    cr_assert_eq(names[a - slots].refs, 2);
    cr_assert_eq(bound_ms(&names[a - slots]), 2000);
    upresolve_release(b, id2, 2000);
    cr_assert_eq(bound_ms(&names[a - slots]), 10000);
}

Test(slot, given_to_another_name_the_old_holder_sees_it)
{
    struct upresolve_view v;
    uint64_t id, other;
    char host[32];
    struct upresolve_slot *s = acquire4("old.test", "10.0.0.1", 10000, &id), *t;

    memset(&v, 0, sizeof(v));
    cr_assert_eq(upresolve_read(s, id, &v), 1);
    for (int i = 1; i < UPRESOLVE_NAMES_MAX; i++) {
        snprintf(host, sizeof(host), "n%d.test", i);
        cr_assert_not_null(acquire4(host, "10.0.0.2", 10000, &other));
    }
    cr_assert_null(acquire4("full.test", "10.0.0.2", 10000, &other)); /* logged */
    upresolve_release(s, id, 10000);
    /* Still readable by its holder until given away: an old generation's workers. */
    cr_assert_eq(upresolve_read(s, id, &v), 0);
    t = acquire4("new.test", "10.0.0.3", 10000, &other);
    cr_assert_eq(t, s);
    cr_assert_neq(other, id);
    cr_assert_eq(upresolve_read(s, id, &v), -1);
    cr_assert_eq(upresolve_read(s, other, &v), 1);
}

Test(slot, a_failure_keeps_the_addresses_and_is_said_once)
{
    struct upresolve_view v;
    uint64_t id;
    struct upresolve_slot *s = acquire4("app.test", "10.0.0.1", 5000, &id);
    struct name *n = &names[s - slots];

    memset(&v, 0, sizeof(v));
    cr_assert_eq(upresolve_read(s, id, &v), 1);
    n->busy = 1;
    on_answer(n, ARES_ENOTFOUND, 0, NULL);
    cr_assert(n->failing);
    cr_assert(!n->busy);
    cr_assert_geq(n->next_ms, util_now_ms() + 4000);
    on_answer(n, ARES_ETIMEOUT, 0, NULL);
    cr_assert(n->failing);
    cr_assert_eq(upresolve_read(s, id, &v), 0);
    cr_assert_eq(v.set.n, 1);
}

/* ---- through c-ares ---- */

Test(lookup, localhost_through_the_master_loop)
{
    struct upresolve_view v;
    struct pollfd pfd[UPRESOLVE_FDS_MAX];
    struct sockaddr_in first = v4("127.0.0.9", 8080);
    uint64_t id;
    struct upresolve_slot *s = upresolve_acquire("localhost", "8080",
                                                 (const struct sockaddr *)&first, 10000, &id);
    int64_t end = util_now_ms() + WAIT_MS;
    int rc = 0;

    memset(&v, 0, sizeof(v));
    cr_assert_eq(upresolve_read(s, id, &v), 1);
    while (util_now_ms() < end) {
        int64_t now = util_now_ms(), dl = upresolve_deadline(now);
        nfds_t n = upresolve_pollfds(pfd);
        (void)poll(pfd, n, dl <= now ? 0 : (int)(dl - now > 100 ? 100 : dl - now));
        upresolve_run(pfd, n, util_now_ms());
        rc = upresolve_read(s, id, &v);
        if (rc == 1)
            break;
    }
    cr_assert_eq(rc, 1);
    cr_assert(has(&v.set, "127.0.0.1", 8080));
    cr_assert(!has(&v.set, "127.0.0.9", 8080));
    /* The next lookup waits at least a second (a hosts entry has no TTL). */
    cr_assert_geq(upresolve_deadline(util_now_ms()), util_now_ms() + 500);
    upresolve_fini();
}

/* ---- the server option ---- */

Test(option, resolve_words)
{
    struct conf_upstream *g = upstream_new("g", NULL, 0);
    char err[300];

    cr_assert_eq(upstream_add_server(g, "http://localhost:8080", NULL, 0, err, sizeof(err)), 0);
    cr_assert_eq(g->servers[0].resolve_ms, UPRESOLVE_DEFAULT_MS);
    cr_assert_eq(upstream_server_option(g, "resolve=3s", err, sizeof(err)), 1);
    cr_assert_eq(g->servers[0].resolve_ms, 3000);
    cr_assert_eq(upstream_server_option(g, "resolve=500ms", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "invalid resolve '500ms': expected a time from 1s to 24h, or off");
    cr_assert_eq(upstream_server_option(g, "resolve=often", err, sizeof(err)), -1);
    cr_assert_eq(upstream_server_option(g, "resolve=off", err, sizeof(err)), 1);
    cr_assert_eq(g->servers[0].resolve_ms, 0);
    cr_assert_eq(upstream_add_server(g, "http://127.0.0.1:8080", NULL, 0, err, sizeof(err)), 0);
    cr_assert_eq(g->servers[1].resolve_ms, 0);
    cr_assert_eq(upstream_server_option(g, "resolve=5s", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "server 'http://127.0.0.1:8080' has an address, not a host name: "
                          "resolve= does not apply");
    upstream_free(g);
}

Test(option, finish_follows_names_and_free_gives_them_up)
{
    struct conf_upstream *g = upstream_new("g", NULL, 0);
    char err[300];
    struct name *n;

    cr_assert_eq(upstream_add_server(g, "http://localhost:8080", NULL, 0, err, sizeof(err)), 0);
    cr_assert_eq(upstream_add_server(g, "http://localhost:8081", NULL, 0, err, sizeof(err)), 0);
    cr_assert_eq(upstream_server_option(g, "resolve=off", err, sizeof(err)), 1);
    cr_assert_eq(upstream_add_server(g, "http://127.0.0.1:8082", NULL, 0, err, sizeof(err)), 0);
    cr_assert_eq(upstream_finish(g, err, sizeof(err)), 0);
    cr_assert_not_null(g->servers[0].rslot);
    cr_assert_null(g->servers[1].rslot);
    cr_assert_null(g->servers[2].rslot);
    n = &names[g->servers[0].rslot - slots];
    cr_assert_str_eq(n->host, "localhost");
    cr_assert_str_eq(n->port, "8080");
    cr_assert_eq(n->refs, 1);
    upstream_free(g);
    cr_assert_eq(n->refs, 0);
}
