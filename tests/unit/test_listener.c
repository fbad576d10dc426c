/* Listener addresses, the "already in use" probe, and reuseport groups. */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"

static struct listen_addr
one_addr(const char *spec)
{
    struct listen_addr *v, a;
    size_t n;
    char err[256];

    cr_assert_eq(listener_parse_addr(spec, &v, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 1);
    a = v[0];
    free(v);
    return a;
}

/* A loopback port nobody listens on, found by binding port 0. */
static unsigned
free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(listener, parse_ipv4)
{
    struct listen_addr a = one_addr("127.0.0.1:8080");

    cr_assert_str_eq(a.text, "127.0.0.1:8080");
    cr_assert_eq(a.ss.ss_family, AF_INET);
}

Test(listener, parse_ipv6)
{
    struct listen_addr a = one_addr("[::1]:443");

    cr_assert_str_eq(a.text, "[::1]:443");
    cr_assert_eq(a.ss.ss_family, AF_INET6);
}

Test(listener, parse_wildcard_gives_both_families)
{
    struct listen_addr *v;
    size_t n;
    char err[256];

    cr_assert_eq(listener_parse_addr("*:80", &v, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].text, "0.0.0.0:80");
    cr_assert_str_eq(v[1].text, "[::]:80");
    free(v);
}

Test(listener, overlap_rules)
{
    struct listen_addr any = one_addr("0.0.0.0:80"), lo = one_addr("127.0.0.1:80"),
                       lo2 = one_addr("127.0.0.2:80"), other = one_addr("127.0.0.1:81"),
                       six = one_addr("[::1]:80");

    cr_assert(listener_addr_overlaps(&any, &lo));
    cr_assert(listener_addr_overlaps(&lo, &lo));
    cr_assert_not(listener_addr_overlaps(&lo, &lo2));
    cr_assert_not(listener_addr_overlaps(&lo, &other));
    cr_assert_not(listener_addr_overlaps(&lo, &six));
}

Test(listener, group_of_reuseport_sockets)
{
    char spec[32], err[256];
    struct listener l = {0};

    snprintf(spec, sizeof(spec), "127.0.0.1:%u", free_port());
    l.addr = one_addr(spec);
    cr_assert_eq(listener_probe(&l.addr, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(listener_resize(&l, 3, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(l.nfds, 3);
    cr_assert_eq(listener_resize(&l, 1, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(l.nfds, 1);
    listener_close(&l);
}

Test(listener, probe_refuses_a_port_in_use)
{
    char spec[32], err[256], want[96];
    struct listener l = {0};

    snprintf(spec, sizeof(spec), "127.0.0.1:%u", free_port());
    l.addr = one_addr(spec);
    cr_assert_eq(listener_resize(&l, 2, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    /* A second instance must not silently join the reuseport group. */
    cr_assert_eq(listener_probe(&l.addr, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: address already in use", spec);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    listener_close(&l);
    cr_assert_eq(listener_probe(&l.addr, err, sizeof(err)), 0, "%s", err);
}

Test(listener, store_names_round_trip)
{
    struct listen_addr a4 = one_addr("127.0.0.1:8080"), a6 = one_addr("[::1]:443");
    char name[96], text[64];
    size_t slot;

    listener_store_name(&a4, 3, name, sizeof(name));
    cr_assert_str_eq(name, "L.127.0.0.1_8080.3");
    cr_assert_eq(listener_parse_store_name(name, text, sizeof(text), &slot), 0);
    cr_assert_str_eq(text, "127.0.0.1:8080");
    cr_assert_eq(slot, 3);
    listener_store_name(&a6, 0, name, sizeof(name));
    cr_assert_str_eq(name, "L.[__1]_443.0");
    cr_assert_eq(listener_parse_store_name(name, text, sizeof(text), &slot), 0);
    cr_assert_str_eq(text, "[::1]:443");
    cr_assert_eq(listener_parse_store_name("hello", text, sizeof(text), &slot), -1);
    cr_assert_eq(listener_parse_store_name("L.x.", text, sizeof(text), &slot), -1);
}

Test(listener, addr_of_a_listening_fd)
{
    char spec[32], err[256];
    struct listener l = {0};
    struct listen_addr got;

    snprintf(spec, sizeof(spec), "127.0.0.1:%u", free_port());
    l.addr = one_addr(spec);
    cr_assert_eq(listener_resize(&l, 1, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(listener_addr_of_fd(l.fds[0], &got), 0);
    cr_assert_str_eq(got.text, spec);
    cr_assert(listener_addr_equal(&got, &l.addr));
    cr_assert_eq(listener_addr_of_fd(0, &got), -1);
    listener_close(&l);
}
