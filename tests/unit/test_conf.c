/* Config language: every directive, and bad inputs with their exact message and position. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "hnd.h"

/* As when percore runs outside systemd: no sockets passed. */
static const struct conf_sockets no_sockets = {NULL, 0, 1};

static struct conf *
load_ok(const char *text)
{
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", text, &no_sockets, &d);

    if (c == NULL)
        cr_assert_fail("unexpected error: %s", d.n ? d.msgs[0] : "(none)");
    conf_diag_clear(&d);
    return c;
}

/* The first diagnostic for text, which must fail to load. */
static char *
load_err(const char *text, size_t *count)
{
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", text, &no_sockets, &d);
    char *first;

    cr_assert_null(c, "config loaded but should have failed:\n%s", text);
    cr_assert_gt(d.n, 0);
    first = strdup(d.msgs[0]);
    if (count != NULL)
        *count = d.n;
    conf_diag_clear(&d);
    return first;
}

#define HELLO "service s { listen 127.0.0.1:8080; route / { respond 200; } }\n"

Test(conf, defaults)
{
    struct conf *c = load_ok(HELLO);

    cr_assert_eq(c->workers, 0);
    cr_assert_eq(c->cpu_affinity, 0);
    cr_assert_eq(c->shutdown_timeout_ms, 30000);
    cr_assert_eq(c->shutdown_delay_ms, 0);
    cr_assert_eq(c->max_connections, 16384);
    cr_assert_eq(c->services[0].max_body, 1024 * 1024);
    cr_assert_eq(c->services[0].send_timeout_ms, 60000);
    cr_assert_eq(c->nservices, 1);
    conf_free(c);
}

Test(conf, send_timeout_per_service)
{
    struct conf *c = load_ok("service a { listen 127.0.0.1:8080; send_timeout 1s;\n"
                             "    route / { respond 200; } }\n"
                             "service b { listen 127.0.0.1:8081; send_timeout 5m;\n"
                             "    route / { respond 200; } }\n"
                             "service c { listen 127.0.0.1:8082; route / { respond 200; } }\n");

    cr_assert_eq(c->services[0].send_timeout_ms, 1000);
    cr_assert_eq(c->services[1].send_timeout_ms, 300000);
    cr_assert_eq(c->services[2].send_timeout_ms, 60000);
    conf_free(c);
}

Test(conf, every_directive)
{
    struct conf *c = load_ok(
        "# a comment\n"
        "workers 3;\n"
        "cpu_affinity on;\n"
        "shutdown_timeout 1500ms;\n"
        "shutdown_delay 2s;\n"
        "service api {\n"
        "    listen 127.0.0.1:9001;   # trailing comment\n"
        "    listen [::1]:9001;\n"
        "    route /v1/ {\n"
        "        respond 201 \"made\\n\";\n"
        "        header X-A 'one';\n"
        "        header Cache-Control \"no-store\";\n"
        "    }\n"
        "    route / { respond 404; }\n"
        "}\n"
        "service other { listen 127.0.0.2:9001; route / { respond 204; } }\n");
    const struct conf_service *s = &c->services[0];

    cr_assert_eq(c->workers, 3);
    cr_assert_eq(c->cpu_affinity, 1);
    cr_assert_eq(c->shutdown_timeout_ms, 1500);
    cr_assert_eq(c->shutdown_delay_ms, 2000);
    cr_assert_eq(c->nservices, 2);
    cr_assert_str_eq(s->name, "api");
    cr_assert_eq(s->nlistens, 2);
    cr_assert_str_eq(s->listens[0].addr.text, "127.0.0.1:9001");
    cr_assert_str_eq(s->listens[1].addr.text, "[::1]:9001");
    cr_assert_eq(s->listens[1].pos.line, 8);
    cr_assert_eq(s->nroutes, 2);
    cr_assert_str_eq(s->routes[0].prefix, "/v1/");
    cr_assert_eq(s->routes[0].hnd, &hnd_respond_ops);
    cr_assert_eq(s->routes[0].nheaders, 2);
    cr_assert_str_eq(s->routes[0].headers[0].name, "X-A");
    cr_assert_str_eq(s->routes[0].headers[0].value, "one");
    cr_assert_str_eq(s->routes[0].headers[1].value, "no-store");
    cr_assert_str_eq(c->services[1].name, "other");
    conf_free(c);
}

Test(conf, workers_auto)
{
    struct conf *c = load_ok("workers auto;\n" HELLO);

    cr_assert_eq(c->workers, 0);
    conf_free(c);
}

Test(conf, cpu_affinity_off)
{
    struct conf *c = load_ok("cpu_affinity off;\n" HELLO);

    cr_assert_eq(c->cpu_affinity, 0);
    conf_free(c);
}

Test(conf, listen_forms)
{
    struct conf *c = load_ok("service s { listen *:8081; listen 8082; listen localhost:8083;"
                             " route / { respond 200; } }");
    const struct conf_service *s = &c->services[0];
    int seen_any4 = 0, seen_any6 = 0, seen_lo = 0;

    for (size_t i = 0; i < s->nlistens; i++) {
        seen_any4 += strcmp(s->listens[i].addr.text, "0.0.0.0:8081") == 0 ||
                     strcmp(s->listens[i].addr.text, "0.0.0.0:8082") == 0;
        seen_any6 += strcmp(s->listens[i].addr.text, "[::]:8081") == 0 ||
                     strcmp(s->listens[i].addr.text, "[::]:8082") == 0;
        seen_lo += strcmp(s->listens[i].addr.text, "127.0.0.1:8083") == 0;
    }
    cr_assert_eq(seen_any4, 2);
    cr_assert_eq(seen_any6, 2);
    cr_assert_eq(seen_lo, 1);
    conf_free(c);
}

Test(conf, string_escapes)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route / {"
                             " header X-E \"t\\tq\\\"b\\\\x\\x41\\$\"; respond 200; } }");

    cr_assert_str_eq(c->services[0].routes[0].headers[0].value, "t\tq\"b\\xA$");
    conf_free(c);
}

Test(conf, single_quotes_are_raw)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route / {"
                             " header X-E 'a\\nb'; respond 200; } }");

    cr_assert_str_eq(c->services[0].routes[0].headers[0].value, "a\\nb");
    conf_free(c);
}

Test(conf, include_glob)
{
    char path[256];
    struct conf_diag d = {0};
    struct conf *c;

    snprintf(path, sizeof(path), "%s/tests/unit/data/main.conf", getenv("TOP_SRCDIR"));
    c = conf_load(path, &no_sockets, &d);
    cr_assert_not_null(c, "%s", d.n ? d.msgs[0] : "");
    cr_assert_eq(c->workers, 2);
    cr_assert_eq(c->nservices, 2);
    /* Files come in sorted order. */
    cr_assert_str_eq(c->services[0].name, "a");
    cr_assert_str_eq(c->services[1].name, "b");
    cr_assert(strstr(c->services[1].pos.file, "include.d/b.conf") != NULL);
    conf_free(c);
}

Test(conf, include_glob_without_match_is_fine)
{
    struct conf *c = load_ok("include /nonexistent-dir-percore/*.conf;\n" HELLO);

    conf_free(c);
}

Test(conf, time_units)
{
    int64_t ms;

    cr_assert_eq(conf_parse_time_ms("250ms", &ms), 0);
    cr_assert_eq(ms, 250);
    cr_assert_eq(conf_parse_time_ms("30", &ms), 0);
    cr_assert_eq(ms, 30000);
    cr_assert_eq(conf_parse_time_ms("2m", &ms), 0);
    cr_assert_eq(ms, 120000);
    cr_assert_eq(conf_parse_time_ms("1h", &ms), 0);
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(conf_parse_time_ms("1x", &ms), -1);
    cr_assert_eq(conf_parse_time_ms("-1s", &ms), -1);
    cr_assert_eq(conf_parse_time_ms("", &ms), -1);
}

Test(conf, size_units)
{
    uint64_t b;

    cr_assert_eq(conf_parse_size("512", &b), 0);
    cr_assert_eq(b, 512);
    cr_assert_eq(conf_parse_size("4k", &b), 0);
    cr_assert_eq(b, 4096);
    cr_assert_eq(conf_parse_size("2m", &b), 0);
    cr_assert_eq(b, 2 * 1024 * 1024);
    cr_assert_eq(conf_parse_size("1g", &b), 0);
    cr_assert_eq(b, 1024 * 1024 * 1024);
    cr_assert_eq(conf_parse_size("1t", &b), -1);
}

Test(conf, errors_are_all_reported)
{
    size_t n = 0;
    char *first = load_err("wrokers 2;\ncpu_affinity maybe;\n" HELLO, &n);

    cr_assert_eq(n, 2);
    cr_assert_str_eq(first, "t.conf:1:1: unknown directive 'wrokers'; did you mean 'workers'?");
    free(first);
}

/* ---- bad inputs: text and the exact first diagnostic ---- */

struct bad {
    const char *text;
    const char *expect;
};

#define SVC_OPEN "service s {\n  listen 127.0.0.1:8080;\n"
#define SVC_ROUTE "  route / { respond 200; }\n"

static const struct bad bad_inputs[] = {
    /* lexical */
    {"workers \"2;\n", "t.conf:1:9: unterminated string"},
    {"workers '2;\n", "t.conf:1:9: unterminated string"},
    {"workers \"\\q\";\n", "t.conf:1:10: unknown escape sequence '\\q'"},
    {"workers \"\\x4\";\n", "t.conf:1:10: invalid escape '\\x': expected two hex digits"},
    {"workers \"\\x00\";\n", "t.conf:1:10: NUL byte ('\\x00') is not allowed in a string"},
    {"workers \x01;\n", "t.conf:1:9: unexpected character (byte 0x01)"},
    /* grammar */
    {"workers 2\n", "t.conf:2:1: expected ';' or '{' after 'workers', got end of file"},
    {"}\n", "t.conf:1:1: unexpected '}'"},
    {";\n", "t.conf:1:1: unexpected ';'"},
    {"{ }\n", "t.conf:1:1: unexpected '{'"},
    {"\"workers\" 2;\n", "t.conf:1:1: expected a directive name, got a quoted string"},
    {"service s {\n  listen 127.0.0.1:8080;\n",
     "t.conf:3:1: unexpected end of file, expected '}' to close 'service' opened at 1:1"},
    {SVC_OPEN "  route / { respond 200 }\n}\n",
     "t.conf:3:25: expected ';' or '{' after 'respond', got '}'"},
    {"include;\n", "t.conf:1:1: 'include' takes 1 argument"},
    {"include /nonexistent-percore.conf;\n",
     "t.conf:1:9: cannot read included file '/nonexistent-percore.conf': No such file or "
     "directory"},
    /* directives */
    {"wrokers 2;\n", "t.conf:1:1: unknown directive 'wrokers'; did you mean 'workers'?"},
    {"servise s { }\n", "t.conf:1:1: unknown directive 'servise'; did you mean 'service'?"},
    {"frobnicate;\n", "t.conf:1:1: unknown directive 'frobnicate'"},
    {"listen 127.0.0.1:80;\n",
     "t.conf:1:1: 'listen' is not allowed in the main context; it belongs in a service block"},
    {"service s { workers 2; }\n",
     "t.conf:1:13: 'workers' is not allowed in a service block; it belongs in the main context"},
    {SVC_OPEN "  respond 200;\n}\n",
     "t.conf:3:3: 'respond' is not allowed in a service block; it belongs in a route block"},
    {"workers;\n", "t.conf:1:1: wrong number of arguments for 'workers'; usage: workers "
                   "auto|NUMBER"},
    {"workers 1 2;\n", "t.conf:1:11: wrong number of arguments for 'workers'; usage: workers "
                       "auto|NUMBER"},
    {"workers 2 { }\n", "t.conf:1:1: 'workers' does not take a block; usage: workers "
                        "auto|NUMBER;"},
    {"service s;\n", "t.conf:1:1: 'service' needs a block; usage: service NAME { ... }"},
    {"workers 2;\nworkers 3;\n", "t.conf:2:1: duplicate 'workers' (first set at t.conf:1:1)"},
    {"workers 0;\n", "t.conf:1:9: invalid value '0' for 'workers': expected 'auto' or a number "
                     "from 1 to 512"},
    {"workers many;\n", "t.conf:1:9: invalid value 'many' for 'workers': expected 'auto' or a "
                        "number from 1 to 512"},
    {"workers 9999;\n", "t.conf:1:9: invalid value '9999' for 'workers': expected 'auto' or a "
                        "number from 1 to 512"},
    {"cpu_affinity yes;\n", "t.conf:1:14: invalid value 'yes' for 'cpu_affinity': expected 'on' "
                            "or 'off'"},
    {"shutdown_timeout 5 s;\n", "t.conf:1:20: wrong number of arguments for 'shutdown_timeout';"
                                " usage: shutdown_timeout TIME"},
    {"shutdown_timeout 5x;\n", "t.conf:1:18: invalid time '5x' for 'shutdown_timeout': expected"
                               " a number with unit ms, s, m or h, at most 24h"},
    {"shutdown_delay 25h;\n", "t.conf:1:16: invalid time '25h' for 'shutdown_delay': expected a "
                              "number with unit ms, s, m or h, at most 24h"},
    /* services */
    {"", "t.conf: no 'service' defined: nothing to serve"},
    {"service 1x { }\n", "t.conf:1:9: invalid service name '1x': use a letter followed by "
                         "letters, digits, '_', '-' or '.'"},
    {HELLO "service s { listen 127.0.0.1:9; route / { respond 200; } }\n",
     "t.conf:2:9: duplicate service 's' (first defined at t.conf:1:1)"},
    {"service s { route / { respond 200; } }\n",
     "t.conf:1:1: service 's' has no 'listen' and systemd passed no socket named 's'"},
    {"log syslog;\n", "t.conf:1:5: invalid value 'syslog' for 'log': expected 'journal', "
                      "'stderr' or an absolute file path"},
    {"worker_watchdog 500ms;\n", "t.conf:1:17: 'worker_watchdog' must be at least 1s, got "
                                 "'500ms'"},
    {"service s { listen 127.0.0.1:8080; }\n", "t.conf:1:1: service 's' has no 'route'"},
    {SVC_OPEN "  listen 127.0.0.1:0;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: invalid port '0' in '127.0.0.1:0': expected 1 to 65535"},
    {SVC_OPEN "  listen 127.0.0.1:http;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: invalid port 'http' in '127.0.0.1:http': expected 1 to 65535"},
    {SVC_OPEN "  listen ::1:80;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: invalid address '::1:80': write IPv6 addresses as '[::1:80]:PORT'"},
    {SVC_OPEN "  listen [::1]80;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: invalid address '[::1]80': expected '[IPv6]:PORT'"},
    {SVC_OPEN "  listen [nope]:80;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: invalid IPv6 address 'nope'"},
    {SVC_OPEN "  listen :80;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: invalid address ':80': empty host (use '*:80' for all)"},
    {SVC_OPEN "  listen 127.0.0.1:8080;\n" SVC_ROUTE "}\n",
     "t.conf:3:10: 127.0.0.1:8080 is already used by service 's' (listen 127.0.0.1:8080 at "
     "t.conf:2:10)"},
    {"service a { listen *:8080; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080; route / { respond 200; } }\n",
     "t.conf:2:20: 127.0.0.1:8080 is already used by service 'a' (listen 0.0.0.0:8080 at "
     "t.conf:1:20); services can share an address only when each listens on exactly it with "
     "'tls' and has a 'server_name'"},
    {"service a { listen 127.0.0.1:8080; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080; server_name b.example; route / { respond 200; } }\n",
     "t.conf:2:20: 127.0.0.1:8080 is already used by service 'a' (listen 127.0.0.1:8080 at "
     "t.conf:1:20); services can share an address only when each listens on exactly it with "
     "'tls' and has a 'server_name'"},
    {SVC_OPEN "  server_name exa_mple.com;\n" SVC_ROUTE "}\n",
     "t.conf:3:15: invalid server_name 'exa_mple.com': expected a host name such as "
     "'example.com' or '*.example.com'"},
    {SVC_OPEN "  server_name a..b;\n" SVC_ROUTE "}\n",
     "t.conf:3:15: invalid server_name 'a..b': expected a host name such as 'example.com' or "
     "'*.example.com'"},
    {SVC_OPEN "  server_name *;\n" SVC_ROUTE "}\n",
     "t.conf:3:15: invalid server_name '*': expected a host name such as 'example.com' or "
     "'*.example.com'"},
    /* routes */
    {SVC_OPEN "  route api { respond 200; }\n}\n",
     "t.conf:3:9: route prefix 'api' must start with '/'"},
    {SVC_OPEN "  route /a?b { respond 200; }\n}\n",
     "t.conf:3:9: route prefix '/a?b' must be a path, without '?' or '#'"},
    {SVC_OPEN SVC_ROUTE SVC_ROUTE "}\n",
     "t.conf:4:9: duplicate route '/' in service 's' (first at t.conf:3:3)"},
    {SVC_OPEN "  route / { }\n}\n", "t.conf:3:3: route '/' has no handler; add one of: respond, files, redirect, proxy, fastcgi, metrics, module"},
    {SVC_OPEN "  route / { respond 200; respond 201; }\n}\n",
     "t.conf:3:26: duplicate 'respond' (first set at t.conf:3:13)"},
    {SVC_OPEN "  route / { respond 200; module /x.so; }\n}\n",
     "t.conf:3:26: route '/' already has a handler ('respond' at 3:13); a route has exactly one"},
    {SVC_OPEN "  route / { respond; }\n}\n",
     "t.conf:3:13: wrong number of arguments for 'respond'; usage: respond STATUS [BODY]"},
    {SVC_OPEN "  route / { respond 99; }\n}\n",
     "t.conf:3:21: invalid status '99' for 'respond': expected 200 to 599"},
    {SVC_OPEN "  route / { respond 600; }\n}\n",
     "t.conf:3:21: invalid status '600' for 'respond': expected 200 to 599"},
    {SVC_OPEN "  route / { respond 204 \"x\"; }\n}\n",
     "t.conf:3:25: status 204 cannot have a body"},
    {SVC_OPEN "  route / { respond 200; header \"Bad Name\" x; }\n}\n",
     "t.conf:3:33: invalid header name 'Bad Name'"},
    {SVC_OPEN "  route / { respond 200; header Content-Length 5; }\n}\n",
     "t.conf:3:33: header 'Content-Length' is set by percore and cannot be configured"},
    {SVC_OPEN "  route / { respond 200; header X-A \"a\\r\\nB: c\"; }\n}\n",
     "t.conf:3:37: header value for 'X-A' contains a control character"},
    {SVC_OPEN "  route / { respond 200; header X-A; }\n}\n",
     "t.conf:3:26: wrong number of arguments for 'header'; usage: header NAME VALUE"},
    {SVC_OPEN "  route / { respond 200; header X-A a; header X-A b; }\n}\n",
     "t.conf:3:40: 'header' conflicts with an earlier line for header 'X-A'; use header_add "
     "to send it more than once"},
    {SVC_OPEN "  route / { respond 200; header_unset Server; }\n}\n",
     "t.conf:3:39: header 'Server' is set by percore and cannot be configured"},
    {SVC_OPEN "  route / { respond 200; compress maybe; }\n}\n",
     "t.conf:3:35: invalid value 'maybe' for 'compress': expected 'on' or 'off'"},
    {SVC_OPEN "  route / { redirect 200 https://x/; }\n}\n",
     "t.conf:3:22: invalid status '200' for 'redirect': expected 301, 302, 303, 307 or 308"},
    {SVC_OPEN "  route / { redirect 301 https://x/ sometimes; }\n}\n",
     "t.conf:3:37: unknown redirect option 'sometimes': expected 'exact'"},
    {SVC_OPEN "  route / { files /nonexistent-percore-root; }\n}\n",
     "t.conf:3:19: document root '/nonexistent-percore-root': No such file or directory"},
    {SVC_OPEN "  route / { files /etc/hostname; }\n}\n",
     "t.conf:3:19: document root '/etc/hostname' is not a directory"},
    {SVC_OPEN "  route / { files /tmp indexes; }\n}\n",
     "t.conf:3:24: unknown files option 'indexes': expected 'listing' or 'symlinks'"},
    {"max_connections 0;\n", "t.conf:1:17: invalid value '0' for 'max_connections': expected "
                              "a number from 1 to 1000000"},
    {SVC_OPEN "  max_body_size 2t;\n" SVC_ROUTE "}\n",
     "t.conf:3:17: invalid size '2t' for 'max_body_size': expected a number with unit k, m or "
     "g, at most 1g"},
    {SVC_OPEN "  tls_certificate cert.pem;\n" SVC_ROUTE "}\n",
     "t.conf:3:19: 'tls_certificate' needs an absolute path"},
    {SVC_OPEN "  tls_certificate /c.pem;\n  tls_key /k.pem;\n" SVC_ROUTE "}\n",
     "t.conf:3:3: service 's' has TLS files but no 'listen ... tls'"},
    {SVC_OPEN "  listen 127.0.0.1:8443 ssl;\n" SVC_ROUTE "}\n",
     "t.conf:3:25: unknown listen option 'ssl': expected 'tls' or 'http2'"},
    {SVC_OPEN "  listen 127.0.0.1:8443 tls tls;\n" SVC_ROUTE "}\n",
     "t.conf:3:29: listen option 'tls' given twice"},
    {SVC_OPEN "  listen 127.0.0.1:8443 http2;\n" SVC_ROUTE "}\n",
     "t.conf:3:25: 'http2' needs 'tls': percore serves HTTP/2 over TLS only (ALPN h2), not as "
     "cleartext h2c"},
    {"tls_ticket_rotation 500ms;\n" SVC_OPEN SVC_ROUTE "}\n",
     "t.conf:1:21: 'tls_ticket_rotation' must be at least 1s, got '500ms'"},
    {SVC_OPEN "  header_timeout 50ms;\n" SVC_ROUTE "}\n",
     "t.conf:3:18: 'header_timeout' must be at least 100ms, got '50ms'"},
    {SVC_OPEN "  idle_timeout forever;\n" SVC_ROUTE "}\n",
     "t.conf:3:16: invalid time 'forever' for 'idle_timeout': expected a number with unit "
     "ms, s, m or h, at most 24h"},
    {SVC_OPEN "  send_timeout 500ms;\n" SVC_ROUTE "}\n",
     "t.conf:3:16: 'send_timeout' must be at least 1s, got '500ms'"},
    {SVC_OPEN "  send_timeout 25h;\n" SVC_ROUTE "}\n",
     "t.conf:3:16: invalid time '25h' for 'send_timeout': expected a number with unit "
     "ms, s, m or h, at most 24h"},
    {"send_timeout 60s;\n" SVC_OPEN SVC_ROUTE "}\n",
     "t.conf:1:1: 'send_timeout' is not allowed in the main context; it belongs in a "
     "service block"},
    {SVC_OPEN "  route / { respond 200; send_timeout 5s; }\n}\n",
     "t.conf:3:26: 'send_timeout' is not allowed in a route block; it belongs in a service "
     "block"},
    {SVC_OPEN "  send_timeout 5s;\n  send_timeout 6s;\n" SVC_ROUTE "}\n",
     "t.conf:4:3: duplicate 'send_timeout' (first set at t.conf:3:3)"},
    {SVC_OPEN "  send_timout 5s;\n" SVC_ROUTE "}\n",
     "t.conf:3:3: unknown directive 'send_timout'; did you mean 'send_timeout'?"},
    {"handshake_timeout 5s;\n" SVC_OPEN SVC_ROUTE "}\n",
     "t.conf:1:1: 'handshake_timeout' is not allowed in the main context; it belongs in a "
     "service block"},
    {SVC_OPEN "  max_header_size 512;\n" SVC_ROUTE "}\n",
     "t.conf:3:19: invalid size '512' for 'max_header_size': expected 1k to 400k"},
    {SVC_OPEN "  http2 yes;\n" SVC_ROUTE "}\n",
     "t.conf:3:9: invalid value 'yes' for 'http2': expected 'on' or 'off'"},
    {SVC_OPEN "  http2 on;\n" SVC_ROUTE "}\n",
     "t.conf:3:3: 'http2 on' in service 's' needs a 'listen ... tls': percore serves HTTP/2 "
     "over TLS only"},
    {SVC_OPEN "  http2_max_resets 0;\n" SVC_ROUTE "}\n",
     "t.conf:3:20: invalid value '0' for 'http2_max_resets': expected a number from 1 to "
     "1000000"},
    {"http2_max_concurrent_requests 101;\n" SVC_OPEN SVC_ROUTE "}\n",
     "t.conf:1:31: invalid value '101' for 'http2_max_concurrent_requests': expected a number "
     "from 1 to 100"},
    {"service s { http2_max_concurrent_requests 4; route / { respond 200; } }\n",
     "t.conf:1:13: 'http2_max_concurrent_requests' is not allowed in a service block; it "
     "belongs in the main context"},
    {SVC_OPEN "  route / { proxy least_conn; }\n}\n",
     "t.conf:3:13: 'proxy' needs at least one upstream URL"},
    {SVC_OPEN "  route / { proxy unix:relative.sock; }\n}\n",
     "t.conf:3:19: invalid upstream 'unix:relative.sock': expected unix:/absolute/path"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1/ connect_timeout=0; }\n}\n",
     "t.conf:3:39: invalid proxy connect_timeout '0'"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1/ timeout=soon; }\n}\n",
     "t.conf:3:39: invalid proxy timeout 'soon'"},
    {SVC_OPEN "  route / { respond 200; hedaer X-A b; }\n}\n",
     "t.conf:3:26: unknown directive 'hedaer'; did you mean 'header'?"},
};

#define NBAD (sizeof(bad_inputs) / sizeof(bad_inputs[0]))

/* Criterion runs each test in a fresh process of a position-independent binary, so the
 * parameters are indices into bad_inputs rather than pointers. */
ParameterizedTestParameters(conf, bad_input)
{
    static size_t idx[NBAD];

    for (size_t i = 0; i < NBAD; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NBAD);
}

ParameterizedTest(size_t *i, conf, bad_input)
{
    const struct bad *b = &bad_inputs[*i];
    char *got = load_err(b->text, NULL);

    cr_assert_str_eq(got, b->expect, "input:\n%s\ngot:    %s\nwanted: %s", b->text, got,
                     b->expect);
    free(got);
}

Test(conf, include_error_names_included_file)
{
    char text[512];
    char *got;

    snprintf(text, sizeof(text), "include %s/tests/unit/data/bad/typo.conf;\n",
             getenv("TOP_SRCDIR"));
    got = load_err(text, NULL);
    cr_assert(strstr(got, "tests/unit/data/bad/typo.conf:2:5: unknown directive 'listn'; did "
                          "you mean 'listen'?") != NULL, "%s", got);
    free(got);
}

Test(conf, include_loop_is_caught)
{
    char text[512];
    char *got;

    snprintf(text, sizeof(text), "include %s/tests/unit/data/bad/loop.conf;\n",
             getenv("TOP_SRCDIR"));
    got = load_err(text, NULL);
    cr_assert(strstr(got, "includes nested deeper than 16 (a loop?)") != NULL, "%s", got);
    free(got);
}

Test(conf, missing_file)
{
    struct conf_diag d = {0};

    cr_assert_null(conf_load("/nonexistent/percore.conf", &no_sockets, &d));
    cr_assert_str_eq(d.msgs[0], "/nonexistent/percore.conf: cannot read config: No such file "
                                "or directory");
    conf_diag_clear(&d);
}

Test(conf, activated_socket_replaces_listen)
{
    static const char *const names[] = {"api"};
    struct conf_sockets socks = {names, 1, 1};
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", "service api { route / { respond 200; } }",
                                      &socks, &d);

    cr_assert_not_null(c, "%s", d.n ? d.msgs[0] : "");
    cr_assert_eq(c->services[0].nlistens, 0);
    conf_free(c);
}

Test(conf, unclaimed_activated_socket)
{
    static const char *const names[] = {"api", "web"};
    struct conf_sockets socks = {names, 2, 1};
    struct conf_diag d = {0};

    cr_assert_null(conf_load_string("t.conf", "service api { route / { respond 200; } }",
                                    &socks, &d));
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.msgs[0], "t.conf: systemd passed a socket named 'web' "
                                "(FileDescriptorName=) but no service has that name");
    conf_diag_clear(&d);
}

Test(conf, check_only_accepts_missing_listen)
{
    struct conf_sockets unknown = {NULL, 0, 0};
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", "service api { route / { respond 200; } }",
                                      &unknown, &d);

    cr_assert_not_null(c);
    conf_free(c);
}

Test(conf, log_and_worker_watchdog)
{
    struct conf *c = load_ok("log /var/log/percore.log;\nworker_watchdog 3s;\n" HELLO);

    cr_assert_eq(c->log_target, LOG_TARGET_FILE);
    cr_assert_str_eq(c->log_path, "/var/log/percore.log");
    cr_assert_eq(c->worker_watchdog_ms, 3000);
    conf_free(c);
}

Test(conf, log_journal)
{
    struct conf *c = load_ok("log journal;\n" HELLO);

    cr_assert_eq(c->log_target, LOG_TARGET_JOURNAL);
    conf_free(c);
}

Test(conf, header_set_add_unset_and_compress)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route / { respond 200;"
                             " header X-A a; header_add X-A b; header_unset Etag;"
                             " compress on; } }");
    const struct conf_route *r = &c->services[0].routes[0];

    cr_assert_eq(r->nheaders, 3);
    cr_assert_eq(r->headers[0].cmd, HDR_SET);
    cr_assert_eq(r->headers[1].cmd, HDR_ADD);
    cr_assert_eq(r->headers[2].cmd, HDR_UNSET);
    cr_assert_null(r->headers[2].value);
    cr_assert_eq(r->compress, 1);
    conf_free(c);
}

Test(conf, files_and_redirect)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route /f/ { files /tmp listing; }"
                             " route /r/ { redirect 308 https://example.com/ exact; } }");

    cr_assert_eq(c->services[0].routes[0].hnd, &hnd_files_ops);
    cr_assert_eq(c->services[0].routes[1].hnd, &hnd_redirect_ops);
    conf_free(c);
}
