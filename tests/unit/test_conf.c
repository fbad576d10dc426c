/* Config language: every directive, and bad inputs with their exact message and position. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "hnd.h"
#include "regex.h"
#include "tmpl.h"
#include "util.h"

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

/* Without `user`, workers keep the master's ids. */
Test(conf, user_default)
{
    struct conf *c = load_ok(HELLO);

    cr_assert_null(c->user);
    cr_assert_eq(c->group_set, 0);
    conf_free(c);
}

/* A user name: its uid and primary group, resolved at load. */
Test(conf, user_name)
{
    struct passwd *pw = getpwnam("nobody");
    struct conf *c;

    cr_assert_not_null(pw);
    c = load_ok("user nobody;\n" HELLO);
    cr_assert_str_eq(c->user, "nobody");
    cr_assert_eq(c->uid, pw->pw_uid);
    cr_assert_eq(c->gid, pw->pw_gid);
    conf_free(c);
}

/* `group` overrides the primary group, before or after `user`, by name or number. */
Test(conf, user_group)
{
    struct group *gr = getgrnam("root");
    struct conf *c;

    cr_assert_not_null(gr);
    c = load_ok("group root;\nuser nobody;\n" HELLO);
    cr_assert_eq(c->gid, gr->gr_gid);
    cr_assert_eq(c->group_set, 1);
    conf_free(c);
    c = load_ok("user nobody;\ngroup 4243;\n" HELLO);
    cr_assert_eq(c->gid, 4243);
    conf_free(c);
}

/* Numeric ids need no passwd entry when `group` gives the gid. */
Test(conf, user_numeric)
{
    struct conf *c = load_ok("user 4242424;\ngroup 4242425;\n" HELLO);

    cr_assert_str_eq(c->user, "4242424");
    cr_assert_eq(c->uid, 4242424);
    cr_assert_eq(c->gid, 4242425);
    conf_free(c);
    c = load_ok("user 0;\n" HELLO);
    cr_assert_eq(c->uid, 0);
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
                             " header X-E \"t\\tq\\\"b\\\\x\\x41\\$\\$\"; respond 200; } }");

    /* "$$" is the templates' '$'. */
    cr_assert_str_eq(c->services[0].routes[0].headers[0].value, "t\tq\"b\\xA$$");
    cr_assert_str_eq(tmpl_literal(c->services[0].routes[0].headers[0].tvalue), "t\tq\"b\\xA$");
    conf_free(c);
}

Test(conf, braced_variable_in_a_word)
{
    /* "${host}" stays in its word; a '{' after a regex's '$' still opens the block. */
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route ~ ^/a${"
                             " header X-A ${host}x; respond 200; } }");

    cr_assert_str_eq(c->services[0].routes[0].prefix, "^/a$");
    cr_assert_str_eq(c->services[0].routes[0].headers[0].value, "${host}x");
    cr_assert(tmpl_has_vars(c->services[0].routes[0].headers[0].tvalue));
    conf_free(c);
}

Test(conf, single_quotes_are_raw)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route / {"
                             " header X-E 'a\\nb'; respond 200; } }");

    cr_assert_str_eq(c->services[0].routes[0].headers[0].value, "a\\nb");
    conf_free(c);
}

Test(conf, route_match_kinds)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1;\n"
                             " route ~* ^/A { respond 200; }\n"
                             " route ~ ^/(b)/(c)$ { respond 200; }\n"
                             " route = /x { respond 200; }\n"
                             " route /p/ { respond 200; } }\n");
    const struct conf_route *r = c->services[0].routes;

    cr_assert_eq(c->services[0].nroutes, 4);
    cr_assert_eq(r[0].match, MATCH_REGEX);
    cr_assert_not_null(r[0].re);
    cr_assert(r[0].re->caseless);
    cr_assert_str_eq(r[0].prefix, "^/A");
    cr_assert_eq(r[1].match, MATCH_REGEX);
    cr_assert_not(r[1].re->caseless);
    cr_assert_eq(r[1].re->ncaptures, 2);
    cr_assert_eq(r[2].match, MATCH_EXACT);
    cr_assert_null(r[2].re);
    cr_assert_str_eq(r[2].prefix, "/x");
    cr_assert_eq(r[3].match, MATCH_PREFIX);
    cr_assert_str_eq(r[3].prefix, "/p/");
    conf_free(c);
}

Test(conf, route_methods_and_conditions)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route /api/ {\n"
                             " methods GET POST;\n"
                             " match_header X-Canary 1;\n"
                             " match_header X-Any;\n"
                             " match_header User-Agent ~^curl/;\n"
                             " match_arg Debug;\n"
                             " match_arg v \"~x\";\n"
                             " respond 200; } }\n");
    const struct conf_route *r = &c->services[0].routes[0];

    cr_assert_eq(r->nmethods, 2);
    cr_assert_str_eq(r->methods[0], "GET");
    cr_assert_str_eq(r->methods[1], "POST");
    cr_assert_eq(r->nconds, 5);
    cr_assert_eq(r->conds[0].kind, COND_HEADER);
    cr_assert_str_eq(r->conds[0].name, "x-canary");
    cr_assert_str_eq(r->conds[0].value, "1");
    cr_assert_null(r->conds[0].re);
    cr_assert_str_eq(r->conds[1].name, "x-any");
    cr_assert_null(r->conds[1].value);
    cr_assert_null(r->conds[1].re);
    cr_assert_str_eq(r->conds[2].name, "user-agent");
    cr_assert_null(r->conds[2].value);
    cr_assert_not_null(r->conds[2].re);
    cr_assert_str_eq(r->conds[2].re->src, "^curl/");
    /* Argument names keep their case; a quoted "~x" is a value, not a regex. */
    cr_assert_eq(r->conds[3].kind, COND_ARG);
    cr_assert_str_eq(r->conds[3].name, "Debug");
    cr_assert_null(r->conds[3].value);
    cr_assert_str_eq(r->conds[4].value, "~x");
    cr_assert_null(r->conds[4].re);
    conf_free(c);
}

Test(conf, rewrites_and_request_headers)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1;\n"
                             " rewrite ^/old/(.*)$ /new/$1 permanent;\n"
                             " rewrite ^/a$ /b;\n"
                             " proxy_header X-Request-Id $request_id;\n"
                             " route ~ ^/api/v(\\d+)/ {\n"
                             "  rewrite ^/api/v1/(.*)$ /api/v2/$1 last;\n"
                             "  rewrite ^/x$ http://example.com/;\n"
                             "  rewrite ^/y$ /z break;\n"
                             "  rewrite ^/r$ /s redirect;\n"
                             "  proxy_header X-Client $remote_addr;\n"
                             "  proxy_header_unset Cookie;\n"
                             "  proxy http://127.0.0.1:9/v$1; } }\n");
    const struct conf_service *s = &c->services[0];
    const struct conf_route *r = &s->routes[0];

    cr_assert_eq(s->nrewrites, 2);
    cr_assert_eq(s->rewrites[0].flag, RW_PERMANENT);
    cr_assert_eq(s->rewrites[0].re->ncaptures, 1);
    cr_assert_eq(s->rewrites[1].flag, RW_NEXT);
    cr_assert_eq(r->nrewrites, 4);
    cr_assert_eq(r->rewrites[0].flag, RW_LAST);
    cr_assert_eq(r->rewrites[1].flag, RW_NEXT);
    cr_assert_eq(r->rewrites[2].flag, RW_BREAK);
    cr_assert_eq(r->rewrites[3].flag, RW_REDIRECT);
    cr_assert_eq(s->nreqheaders, 1);
    cr_assert_str_eq(s->reqheaders[0].name, "x-request-id");
    cr_assert_not_null(s->reqheaders[0].value);
    cr_assert_eq(r->nreqheaders, 2);
    cr_assert_str_eq(r->reqheaders[0].name, "x-client");
    cr_assert_not_null(r->reqheaders[0].value);
    cr_assert_str_eq(r->reqheaders[1].name, "cookie");
    cr_assert_null(r->reqheaders[1].value);
    conf_free(c);
}

Test(conf, shared_plain_address)
{
    struct conf *c = load_ok(
        "service a { listen 127.0.0.1:8080; server_name a.example; route / { respond 200; } }\n"
        "service b { listen 127.0.0.1:8080; server_name *.b.example; route / { respond 200; } }\n"
        "service c { listen 127.0.0.1:8080 default; route / { respond 200; } }\n"
        "service d { listen 127.0.0.1:8081; route / { respond 200; } }\n");

    cr_assert(c->services[0].shared);
    cr_assert(c->services[1].shared);
    cr_assert(c->services[2].shared);
    cr_assert_not(c->services[3].shared);
    cr_assert_not(c->services[0].listens[0].dflt);
    cr_assert(c->services[2].listens[0].dflt);
    cr_assert_str_eq(c->services[1].server_names[0], "*.b.example");
    conf_free(c);
}

Test(conf, error_documents_merge)
{
    struct conf *c = load_ok("service s { listen 127.0.0.1:1;\n"
                             " error_format problem+json;\n"
                             " error_page 502 503 respond \"down\\n\";\n"
                             " route /a/ { error_page 404 respond gone; respond 200; }\n"
                             " route /b/ { respond 200; } }\n"
                             "service t { listen 127.0.0.1:2;\n"
                             " route /a/ { error_format text; respond 200; }\n"
                             " route /b/ { respond 200; } }\n");
    const struct conf_service *s = &c->services[0], *t = &c->services[1];

    cr_assert_not_null(s->errors);
    cr_assert_not_null(s->routes[0].errors);
    cr_assert_not_null(s->routes[1].errors);
    cr_assert_null(t->errors);
    cr_assert_not_null(t->routes[0].errors);
    cr_assert_null(t->routes[1].errors);
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

    cr_assert_eq(conf_parse_time_ms("250ms", 0, &ms), 0);
    cr_assert_eq(ms, 250);
    cr_assert_eq(conf_parse_time_ms("30", 0, &ms), 0);
    cr_assert_eq(ms, 30000);
    cr_assert_eq(conf_parse_time_ms("2m", 0, &ms), 0);
    cr_assert_eq(ms, 120000);
    cr_assert_eq(conf_parse_time_ms("1h", 0, &ms), 0);
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(conf_parse_time_ms("1x", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("-1s", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("", 0, &ms), -1);
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
#define HELLO_SVC "service s { listen 127.0.0.1:8080; route / { respond 200; } }\n"
/* What an unknown variable's message lists. */
#define KNOWN_VARS                                                                            \
    "(known: $host $scheme $request_uri $uri $args $arg_NAME $http_NAME $remote_addr "          \
    "$remote_port $server_addr $server_port $service $route $request_id $1..$9)"

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
    {"slow_turn fast;\n", "t.conf:1:11: invalid time 'fast' for 'slow_turn': expected a number "
                        "with unit ms, s, m or h, at most 24h"},
    {"slow_turn 0ms;\n", "t.conf:1:11: 'slow_turn' must be at least 1ms, got '0ms'"},
    {"slow_turn on;\n", "t.conf:1:11: invalid time 'on' for 'slow_turn': expected a number "
                      "with unit ms, s, m or h, at most 24h"},
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
     "t.conf:1:20); services can share an address only when each listens on exactly it"},
    {"service a { listen 127.0.0.1:8080; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080; route / { respond 200; } }\n",
     "t.conf:2:20: service 'b' shares 127.0.0.1:8080 with service 'a' but has no 'server_name' "
     "to be picked by; give it one, or make it the address's 'default'"},
    {SVC_OPEN "  server_name exa_mple.com;\n" SVC_ROUTE "}\n",
     "t.conf:3:15: invalid server_name 'exa_mple.com': expected a host name such as "
     "'example.com' or '*.example.com'"},
    {SVC_OPEN "  server_name a..b;\n" SVC_ROUTE "}\n",
     "t.conf:3:15: invalid server_name 'a..b': expected a host name such as 'example.com' or "
     "'*.example.com'"},
    {SVC_OPEN "  server_name *;\n" SVC_ROUTE "}\n",
     "t.conf:3:15: invalid server_name '*': expected a host name such as 'example.com' or "
     "'*.example.com'"},
    /* access logs */
    {SVC_OPEN "  access_log /tmp/a.log fields=status,bogus,path;\n" SVC_ROUTE "}\n",
     "t.conf:3:39: unknown access_log field 'bogus'; known fields: time, request_id, trace_id, "
     "client, service, route, method, path, protocol, host, status, bytes, duration, "
     "upstream_addr, upstream_status, upstream_connect_time, upstream_header_time, "
     "upstream_time, upstream_attempts, user_agent, referer, error"},
    {SVC_OPEN "  access_log journal \"fields=,status\";\n" SVC_ROUTE "}\n",
     "t.conf:3:30: unknown access_log field ''; known fields: time, request_id, trace_id, "
     "client, service, route, method, path, protocol, host, status, bytes, duration, "
     "upstream_addr, upstream_status, upstream_connect_time, upstream_header_time, "
     "upstream_time, upstream_attempts, user_agent, referer, error"},
    {SVC_OPEN "  access_log /tmp/a.log fields=status,status;\n" SVC_ROUTE "}\n",
     "t.conf:3:39: access_log field 'status' is named twice"},
    {SVC_OPEN "  access_log /tmp/a.log format=xml;\n" SVC_ROUTE "}\n",
     "t.conf:3:25: unknown access_log format 'xml': expected combined or json"},
    {SVC_OPEN "  access_log /tmp/a.log format=combined fields=status;\n" SVC_ROUTE "}\n",
     "t.conf:3:41: the combined format's fields are fixed: fields= needs format=json"},
    {SVC_OPEN "  access_log journal format=json;\n" SVC_ROUTE "}\n",
     "t.conf:3:22: 'access_log journal' takes no format: its entries have a field per value "
     "(fields= picks them)"},
    {SVC_OPEN "  access_log off fields=status;\n" SVC_ROUTE "}\n",
     "t.conf:3:18: 'access_log off' takes no options"},
    {SVC_OPEN "  access_log /tmp/a.log colour=on;\n" SVC_ROUTE "}\n",
     "t.conf:3:25: unknown or repeated access_log option 'colour=on'; usage: access_log "
     "/PATH|journal|off [format=combined|json] [fields=NAME,...]"},
    {SVC_OPEN "  access_log /tmp/a.log format=json format=json;\n" SVC_ROUTE "}\n",
     "t.conf:3:37: unknown or repeated access_log option 'format=json'; usage: access_log "
     "/PATH|journal|off [format=combined|json] [fields=NAME,...]"},
    {SVC_OPEN "  access_log a.log;\n" SVC_ROUTE "}\n",
     "t.conf:3:14: 'access_log' needs an absolute path, 'journal' or 'off'"},
    /* routes */
    {SVC_OPEN "  route api { respond 200; }\n}\n",
     "t.conf:3:9: route prefix 'api' must start with '/'"},
    {SVC_OPEN "  route /a?b { respond 200; }\n}\n",
     "t.conf:3:9: route prefix '/a?b' must be a path, without '?' or '#'"},
    {SVC_OPEN SVC_ROUTE SVC_ROUTE "}\n",
     "t.conf:4:9: duplicate route '/' in service 's' (first at t.conf:3:3)"},
    {SVC_OPEN "  route / { }\n}\n", "t.conf:3:3: route '/' has no handler; add one of: respond, files, redirect, proxy, fastcgi, metrics, health, status, module"},
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
    {SVC_OPEN "  route / { redirect 301 https:example.com; }\n}\n",
     "t.conf:3:26: redirect target 'https:example.com' is not /PATH, //HOST/PATH or "
     "SCHEME://HOST/PATH (add 'exact' for others)"},
    {SVC_OPEN "  route / { redirect 302 mailto:a@b.example; }\n}\n",
     "t.conf:3:26: redirect target 'mailto:a@b.example' is not /PATH, //HOST/PATH or "
     "SCHEME://HOST/PATH (add 'exact' for others)"},
    {SVC_OPEN "  route / { redirect 301 https://x/?a=1; }\n}\n",
     "t.conf:3:26: redirect target 'https://x/?a=1' has a query or fragment (add 'exact', "
     "or drop them)"},
    {SVC_OPEN "  route / { redirect 301 '\\\\x/'; }\n}\n",
     "t.conf:3:26: redirect target '\\\\x/' has a '\\'"},
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
     "t.conf:3:25: unknown listen option 'ssl': expected 'tls', 'http2', "
     "'default' or 'proxy_protocol'"},
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
     "t.conf:3:39: invalid proxy connect_timeout '0': expected a time from 1ms to 24h"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1/ timeout=soon; }\n}\n",
     "t.conf:3:39: invalid proxy timeout 'soon': expected a time from 1ms to 24h"},
    {SVC_OPEN "  route / { respond 200; hedaer X-A b; }\n}\n",
     "t.conf:3:26: unknown directive 'hedaer'; did you mean 'header'?"},
    /* route patterns */
    {SVC_OPEN "  route ~ ^/(a { respond 200; }\n}\n",
     "t.conf:3:11: invalid regex '^/(a': missing closing parenthesis (at offset 4)"},
    {SVC_OPEN "  route ~* ^/(a { respond 200; }\n}\n",
     "t.conf:3:12: invalid regex '^/(a': missing closing parenthesis (at offset 4)"},
    {SVC_OPEN "  route ~ ^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)$ { respond 200; }\n}\n",
     "t.conf:3:11: invalid regex '^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)$': 10 capture groups, at "
     "most 9 may be used ($1..$9) (at offset 0)"},
    {SVC_OPEN "  route ^ /x { respond 200; }\n}\n",
     "t.conf:3:9: unknown route operator '^': expected '=' (exact path), '~' (regex) or '~*' "
     "(regex, any case) before the pattern"},
    {SVC_OPEN "  route = { respond 200; }\n}\n", "t.conf:3:9: route '=' needs a pattern after it"},
    {SVC_OPEN "  route ~* { respond 200; }\n}\n",
     "t.conf:3:9: route '~*' needs a pattern after it"},
    {SVC_OPEN "  route = api { respond 200; }\n}\n",
     "t.conf:3:11: route path 'api' must start with '/'"},
    {SVC_OPEN "  route = /x { respond 200; }\n  route = /x { respond 201; }\n}\n",
     "t.conf:4:11: duplicate route '= /x' in service 's' (first at t.conf:3:3)"},
    {SVC_OPEN "  route ~ ^/a { respond 200; }\n  route ~ ^/a { respond 201; }\n}\n",
     "t.conf:4:11: duplicate route '~ ^/a' in service 's' (first at t.conf:3:3)"},
    {SVC_OPEN "  route = /x { respond 200; }\n  route = /x { methods GET; respond 201; }\n}\n",
     "t.conf:4:11: duplicate route '= /x' in service 's' (first at t.conf:3:3), which has no "
     "condition and takes every request this one would"},
    {SVC_OPEN "  route /x { respond 200; }\n  route /x { match_header X-A; respond 201; }\n}\n",
     "t.conf:4:9: duplicate route '/x' in service 's' (first at t.conf:3:3), which has no "
     "condition and takes every request this one would"},
    /* rewrites */
    {SVC_OPEN "  rewrite ^/(a /b;\n" SVC_ROUTE "}\n",
     "t.conf:3:11: invalid regex '^/(a': missing closing parenthesis (at offset 4)"},
    {SVC_OPEN "  route / { respond 200; rewrite ^/(a /b; }\n}\n",
     "t.conf:3:34: invalid regex '^/(a': missing closing parenthesis (at offset 4)"},
    {SVC_OPEN "  route / { respond 200; rewrite ^/a /b sometimes; }\n}\n",
     "t.conf:3:41: unknown rewrite flag 'sometimes': expected 'last', 'break', 'redirect' or "
     "'permanent'"},
    {SVC_OPEN "  rewrite ^/a /b break;\n" SVC_ROUTE "}\n",
     "t.conf:3:18: 'break' keeps the route, and a service's rewrite comes before one is "
     "chosen: use 'last' here"},
    {SVC_OPEN "  rewrite ^/(a) /$2;\n" SVC_ROUTE "}\n",
     "t.conf:3:17: '$2' refers to group 2 but the regex has 1 group (in '/$2' at offset 1)"},
    /* variables */
    {SVC_OPEN "  route / { respond 200; header X-A $nope; }\n}\n",
     "t.conf:3:37: unknown variable '$nope' " KNOWN_VARS " (in '$nope' at offset 0)"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1; proxy_header X-A $nope; }\n}\n",
     "t.conf:3:56: unknown variable '$nope' " KNOWN_VARS " (in '$nope' at offset 0)"},
    {SVC_OPEN "  route / { redirect 301 https://$nope/; }\n}\n",
     "t.conf:3:26: unknown variable '$nope' " KNOWN_VARS " (in 'https://$nope/' at offset 8)"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1/$nope; }\n}\n",
     "t.conf:3:19: unknown variable '$nope' " KNOWN_VARS
     " (in upstream 'http://127.0.0.1:1/$nope', path offset 1)"},
    {SVC_OPEN "  rewrite ^/(.*)$ /$nope;\n" SVC_ROUTE "}\n",
     "t.conf:3:19: unknown variable '$nope' " KNOWN_VARS " (in '/$nope' at offset 1)"},
    {SVC_OPEN "  route / { respond 200; header X-A \"${host\"; }\n}\n",
     "t.conf:3:37: '${' without a name and a closing '}' (in '${host' at offset 0)"},
    {SVC_OPEN "  route ~ ^/(a)$ { respond 200; header X-A $2; }\n}\n",
     "t.conf:3:44: '$2' refers to group 2 but the regex has 1 group (in '$2' at offset 0)"},
    {SVC_OPEN "  route ~ ^/(a)$ { proxy http://127.0.0.1:1/x/$2; }\n}\n",
     "t.conf:3:26: '$2' refers to group 2 but the regex has 1 group (in upstream "
     "'http://127.0.0.1:1/x/$2', path offset 3)"},
    {SVC_OPEN "  route /a/ { respond 200; header X-A $1; }\n}\n",
     "t.conf:3:39: '$1' refers to a regex group, but no regex with groups is in scope here "
     "(in '$1' at offset 0)"},
    /* conditions and methods */
    {SVC_OPEN "  route / { respond 200; match_header X ~(; }\n}\n",
     "t.conf:3:41: invalid regex '(': missing closing parenthesis (at offset 1)"},
    {SVC_OPEN "  route / { respond 200; match_arg a=b; }\n}\n",
     "t.conf:3:36: invalid query argument name 'a=b'"},
    {SVC_OPEN "  route / { respond 200; methods get; }\n}\n",
     "t.conf:3:34: method 'get' has lowercase letters; methods are case-sensitive and the "
     "standard ones uppercase"},
    {SVC_OPEN "  route / { respond 200; methods GET POST GET; }\n}\n",
     "t.conf:3:43: method 'GET' listed twice"},
    /* request headers */
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1; proxy_header Host x; }\n}\n",
     "t.conf:3:52: request header 'Host' is managed by percore and the protocol; it cannot be "
     "configured"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1; proxy_header X-A a; proxy_header x-a b; }\n"
              "}\n",
     "t.conf:3:59: request header 'x-a' is already set in this block (at t.conf:3:39)"},
    {SVC_OPEN "  proxy_header X-A a;\n  proxy_header X-A b;\n" SVC_ROUTE "}\n",
     "t.conf:4:3: request header 'X-A' is already set in this block (at t.conf:3:3)"},
    {SVC_OPEN "  route / { proxy http://127.0.0.1:1; proxy_header_unset \"Bad Name\"; }\n}\n",
     "t.conf:3:58: invalid header name 'Bad Name'"},
    /* error documents */
    {SVC_OPEN "  error_page 399 respond x;\n" SVC_ROUTE "}\n",
     "t.conf:3:14: invalid status '399' for 'error_page': expected 400 to 599"},
    {SVC_OPEN "  error_format xml;\n" SVC_ROUTE "}\n",
     "t.conf:3:16: invalid value 'xml' for 'error_format': expected 'text' or 'problem+json'"},
    /* shared addresses */
    {"service a { listen 127.0.0.1:8080; server_name a.example; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080; server_name b.example a.example; route / { respond "
     "200; } }\n",
     "t.conf:2:36: server_name 'a.example' of service 'b' is also a server_name of service 'a' "
     "on 127.0.0.1:8080"},
    {"service a { listen 127.0.0.1:8080 default; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080 default; route / { respond 200; } }\n",
     "t.conf:2:20: a second 'default' for 127.0.0.1:8080 (service 'a' is its default)"},
    {"service a { listen 127.0.0.1:8080; server_name a.example; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080; route / { respond 200; } }\n",
     "t.conf:2:20: service 'b' shares 127.0.0.1:8080 with service 'a' but has no 'server_name' "
     "to be picked by; give it one, or make it the address's 'default'"},
    {"service a { listen 127.0.0.1:8080; server_name a.example; route / { respond 200; } }\n"
     "service b { listen 127.0.0.1:8080 tls; server_name b.example; tls_certificate /c.pem; "
     "tls_key /k.pem; route / { respond 200; } }\n",
     "t.conf:2:20: 127.0.0.1:8080 is already used by service 'a' (listen 127.0.0.1:8080 at "
     "t.conf:1:20); services sharing an address must all use 'tls' or none"},
    /* user and group: resolved at load */
    {"user percore-no-such-user;\n" HELLO_SVC,
     "t.conf:1:6: unknown user 'percore-no-such-user'"},
    {"user nobody;\ngroup percore-no-such-group;\n" HELLO_SVC,
     "t.conf:2:7: unknown group 'percore-no-such-group'"},
    {"group 0;\n" HELLO_SVC, "t.conf:1:7: 'group' needs 'user'"},
    {"user 4242424;\n" HELLO_SVC, "t.conf:1:6: user 4242424 has no passwd entry: set 'group' too"},
    {"user nobody;\nuser root;\n" HELLO_SVC,
     "t.conf:2:1: duplicate 'user' (first set at t.conf:1:1)"},
    {"user;\n" HELLO_SVC,
     "t.conf:1:1: wrong number of arguments for 'user'; usage: user NAME|UID"},
    {"service s { user nobody; listen 127.0.0.1:8080; route / { respond 200; } }\n",
     "t.conf:1:13: 'user' is not allowed in a service block; it belongs in the main context"},
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
    cr_assert(strstr(got, "bad/loop.conf:1:9: include loop: '") != NULL, "%s", got);
    cr_assert(strstr(got, "bad/loop.conf' is already being read") != NULL, "%s", got);
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

Test(conf, slow_turn_off_and_on)
{
    struct conf *c = load_ok("slow_turn off;\n" HELLO);

    cr_assert_eq(c->slow_turn_ms, 0);
    conf_free(c);
    c = load_ok("slow_turn 50ms;\n" HELLO);
    cr_assert_eq(c->slow_turn_ms, 50);
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

/* ---- hostile configs: bounded, refused with a position, never a crash or a hang ---- */

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Every message is one line: no control byte survives into a log or a terminal. */
static void
assert_one_line(const struct conf_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        for (const unsigned char *p = (const unsigned char *)d->msgs[i]; *p != '\0'; p++)
            cr_assert(*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in: %s", *p, d->msgs[i]);
}

/* Load text or path (whichever is set); the first message must hold want, every message
 * must be one line. */
static void
expect_err(const char *text, const char *path, const char *want)
{
    struct conf_diag d = {0};
    struct conf *c = text != NULL ? conf_load_string("t.conf", text, &no_sockets, &d)
                                  : conf_load(path, &no_sockets, &d);

    cr_assert_null(c, "config loaded but should have failed (%s)", want);
    cr_assert_gt(d.n, 0);
    cr_assert(strstr(d.msgs[0], want) != NULL, "got:    %s\nwanted: ...%s...", d.msgs[0],
              want);
    assert_one_line(&d);
    conf_diag_clear(&d);
}

/* A buffer of a prefix, n copies of unit, and a suffix. */
static char *
repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
    size_t lp = strlen(prefix), lu = strlen(unit), ls = strlen(suffix);
    char *s = malloc(lp + lu * n + ls + 1), *o = s;

    cr_assert_not_null(s);
    memcpy(o, prefix, lp);
    o += lp;
    for (size_t i = 0; i < n; i++, o += lu)
        memcpy(o, unit, lu);
    memcpy(o, suffix, ls + 1);
    return s;
}

static char tmpdir[64];

static void
make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/percore-conf.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void
rm_tmpdir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* Write text (len bytes, or strlen) to tmpdir/name; returns the path, owned by the test. */
static char *
put_file(const char *name, const char *text, size_t len)
{
    char *path;
    FILE *f;

    cr_assert(asprintf(&path, "%s/%s", tmpdir, name) != -1);
    f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(text, 1, len ? len : strlen(text), f), len ? len : strlen(text));
    fclose(f);
    return path;
}

Test(hostile, deep_nesting_is_refused_at_the_brace)
{
    static const char *const opens[] = {"a {", "a{", "x y z {\n", "service s { route / {"};
    char *text;

    for (size_t i = 0; i < NELEMS(opens); i++) {
        text = repeat("", opens[i], 50000, "");
        expect_err(text, NULL, "blocks nested deeper than 16");
        free(text);
    }
    /* 17 levels are refused at the 17th brace, 16 are not a nesting error. */
    text = repeat("", "a {\n", 17, "");
    expect_err(text, NULL, "t.conf:17:3: blocks nested deeper than 16");
    free(text);
    text = repeat("", "a {\n", 16, "");
    expect_err(text, NULL, "t.conf:17:1: unexpected end of file, expected '}'");
    free(text);
}

Test(hostile, nesting_counts_across_includes, .init = make_tmpdir, .fini = rm_tmpdir)
{
    char *inner = repeat("", "b {\n", 8, ""), *outer = repeat("", "a {\n", 9, ""), *text;

    /* 9 blocks here and 8 in the included file: the 17th brace is refused. */
    free(put_file("inner.conf", inner, 0));
    cr_assert(asprintf(&text, "%sinclude %s/inner.conf;\n", outer, tmpdir) != -1);
    expect_err(text, NULL, "inner.conf:8:3: blocks nested deeper than 16");
    free(text);
    free(outer);
    free(inner);
}

Test(hostile, include_patterns_with_many_slashes)
{
    static const char *const units[] = {"/", "*/", "a/", "?/", "[a]/", "./", "../"};
    char *text;

    for (size_t i = 0; i < NELEMS(units); i++) {
        text = repeat("include \"/", units[i], 3000, "x.conf\";\n");
        expect_err(text, NULL, "t.conf:1:9: include pattern '/");
        free(text);
        text = repeat("include /", units[i], 100, "x.conf;\n");
        expect_err(text, NULL, "has more than 64 '/'");
        free(text);
    }
    text = repeat("include /", "a", 5000, ".conf;\n");
    expect_err(text, NULL, "is longer than 4095 bytes");
    free(text);
    expect_err("include /tmp/*/*/*.conf;\n", NULL,
               "t.conf:1:9: include pattern '/tmp/*/*/*.conf' has wildcards in more than 2 path "
               "components");
    expect_err("include /?/[ab]c/x*;\n", NULL, "has wildcards in more than 2 path components");
}

Test(hostile, include_depth_and_loops, .init = make_tmpdir, .fini = rm_tmpdir)
{
    char name[32], body[64], *top, *p;

    /* A chain of 9 includes: the 9th is one too deep. */
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof(name), "d%d.conf", i);
        snprintf(body, sizeof(body), "\n\ninclude d%d.conf;\n", i + 1);
        free(put_file(name, body, 0));
    }
    free(put_file("d9.conf", "workers 2;\n", 0));
    top = put_file("top.conf", "include d0.conf;\n", 0);
    expect_err(NULL, top, "d7.conf:3:1: includes nested deeper than 8 at 'd8.conf'");
    free(top);

    /* Loops however the file is named: itself, through a symlink, through another file. */
    free(put_file("self.conf", "include self.conf;\n", 0));
    cr_assert(asprintf(&p, "%s/link.conf", tmpdir) != -1);
    cr_assert_eq(symlink("viasym.conf", p), 0);
    free(p);
    free(put_file("viasym.conf", "workers 2;\ninclude link.conf;\n", 0));
    free(put_file("ping.conf", "include pong.conf;\n", 0));
    free(put_file("pong.conf", "include ./ping.conf;\n", 0));
    top = put_file("l1.conf", "include self.conf;\n", 0);
    expect_err(NULL, top, "self.conf:1:9: include loop: '");
    free(top);
    top = put_file("l2.conf", "include viasym.conf;\n", 0);
    expect_err(NULL, top, "viasym.conf:2:9: include loop: '");
    free(top);
    top = put_file("l3.conf", "include ping.conf;\n", 0);
    expect_err(NULL, top, "pong.conf:1:9: include loop: '");
    free(top);

    /* The same file twice (not a loop) is read twice: its settings are duplicates. */
    free(put_file("w.conf", "workers 2;\n", 0));
    cr_assert(asprintf(&p, "%s/w-link.conf", tmpdir) != -1);
    cr_assert_eq(symlink("w.conf", p), 0);
    free(p);
    top = put_file("twice.conf", "include w.conf;\ninclude w-link.conf;\n", 0);
    expect_err(NULL, top, "w-link.conf:1:1: duplicate 'workers' (first set at ");
    free(top);
}

/* Only regular files are read: a FIFO would block the master's loop. */
Test(hostile, only_regular_files, .init = make_tmpdir, .fini = rm_tmpdir, .timeout = 10)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char *fifo, *sock, *text;
    int fd;

    cr_assert(asprintf(&fifo, "%s/fifo.conf", tmpdir) != -1);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert(asprintf(&sock, "%s/sock.conf", tmpdir) != -1);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);

    cr_assert(asprintf(&text, "include %s;\n", fifo) != -1);
    expect_err(text, NULL, "t.conf:1:9: cannot read included file '");
    expect_err(text, NULL, "fifo.conf': a FIFO");
    free(text);
    cr_assert(asprintf(&text, "workers 2;\ninclude %s/*.conf;\n", tmpdir) != -1);
    expect_err(text, NULL, "t.conf:2:9: cannot read included file '");
    free(text);
    cr_assert(asprintf(&text, "include %s;\n", sock) != -1);
    expect_err(text, NULL, "sock.conf': a socket");
    free(text);
    expect_err("include /dev/null;\n", NULL, "t.conf:1:9: cannot read included file "
                                             "'/dev/null': a device");
    expect_err("include /dev/zero;\n", NULL, "'/dev/zero': a device");
    expect_err("include /tmp;\n", NULL, "'/tmp': a directory");
    expect_err(NULL, fifo, "fifo.conf: cannot read config: a FIFO");
    expect_err(NULL, "/dev/stdin", "/dev/stdin: cannot read config: ");
    expect_err(NULL, tmpdir, ": cannot read config: a directory");
    close(fd);
    free(fifo);
    free(sock);
}

Test(hostile, sizes_and_counts_are_bounded, .init = make_tmpdir, .fini = rm_tmpdir)
{
    char *text, *big, *p;
    int fd;

    text = repeat("workers ", "9", 70000, ";\n");
    expect_err(text, NULL, "t.conf:1:9: word longer than 65536 bytes");
    free(text);
    text = repeat("workers \"", "9", 70000, "\";\n");
    expect_err(text, NULL, "t.conf:1:9: string longer than 65536 bytes");
    free(text);
    text = repeat("workers '", "\\n", 40000, "';\n");
    expect_err(text, NULL, "t.conf:1:9: string longer than 65536 bytes");
    free(text);
    text = repeat("", "a ", 100001, ";\n");
    expect_err(text, NULL, "t.conf:1:200001: more than 100000 words in the configuration");
    free(text);
    text = repeat("", "a;", 100001, "\n");
    expect_err(text, NULL, "t.conf:1:200001: more than 100000 words in the configuration");
    free(text);

    /* A file over 16 MiB, and 64 MiB in all from one 15 MiB file read 5 times. */
    cr_assert(asprintf(&big, "%s/big.conf", tmpdir) != -1);
    fd = open(big, O_WRONLY | O_CREAT, 0600);
    cr_assert_eq(ftruncate(fd, 16 * 1024 * 1024 + 1), 0);
    close(fd);
    expect_err(NULL, big, "big.conf: cannot read config: larger than 16 MiB");
    text = malloc(15 * 1024 * 1024);
    memset(text, ' ', 15 * 1024 * 1024);
    free(put_file("big.conf", text, 15 * 1024 * 1024));
    free(text);
    text = repeat("", "include big.conf;\n", 5, "");
    p = put_file("five.conf", text, 0);
    expect_err(NULL, p, "five.conf:5:9: cannot read included file '");
    expect_err(NULL, p, "big.conf': more than 64 MiB read in all");
    free(p);
    free(text);
    free(big);
}

Test(hostile, file_count_is_bounded, .init = make_tmpdir, .fini = rm_tmpdir)
{
    char name[32], *p;

    for (int i = 0; i < 1001; i++) {
        snprintf(name, sizeof(name), "f%04d.conf", i);
        free(put_file(name, "\n", 0));
    }
    p = put_file("all.main", "include *.conf;\n", 0);
    expect_err(NULL, p, "all.main:1:9: cannot read included file '");
    expect_err(NULL, p, "f0999.conf': more than 1000 files read");
    free(p);
}

/* Bytes that must stay inside a message: NUL, control bytes, unterminated quotes at EOF. */
Test(hostile, odd_bytes, .init = make_tmpdir, .fini = rm_tmpdir)
{
    char *p;

    p = put_file("nul1.conf", "workers 2;\0\n", 12);
    expect_err(NULL, p, "nul1.conf:1:11: NUL byte in file");
    free(p);
    p = put_file("nul2.conf", "workers \"2\0\";\n", 14);
    expect_err(NULL, p, "nul2.conf:1:11: NUL byte in string");
    free(p);
    p = put_file("nul3.conf", "wor\0kers 2;\n", 12);
    expect_err(NULL, p, "nul3.conf:1:4: NUL byte in file");
    free(p);
    p = put_file("bad\nname\x1b.conf", "workers x;\n", 0);
    expect_err(NULL, p, "/bad\\nname\\x1b.conf:1:9: invalid value 'x' for 'workers'");
    free(p);

    expect_err("workers \"2", NULL, "t.conf:1:9: unterminated string");
    expect_err("workers '2", NULL, "t.conf:1:9: unterminated string");
    expect_err("workers \"2\\", NULL, "t.conf:1:11: unterminated escape sequence");
    expect_err("workers \"\\x4", NULL, "t.conf:1:10: invalid escape '\\x': expected two hex");
    expect_err("workers \"2\n3\";\n" HELLO, NULL,
               "t.conf:1:9: invalid value '2\\n3' for 'workers'");
    expect_err("workers '2\r\n\t3\x1b';\n" HELLO, NULL,
               "t.conf:1:9: invalid value '2\\r\\n\\t3\\x1b' for 'workers'");
    expect_err("service \"a\nb\" { }\n", NULL, "t.conf:1:9: invalid service name 'a\\nb'");
    expect_err("include \"/nonexistent\n/x\x7f.conf\";\n", NULL,
               "cannot read included file '/nonexistent\\n/x\\x7f.conf'");
    expect_err(SVC_OPEN "  route / { redirect 301 \"/a\nb\"; }\n}\n", NULL,
               "t.conf:3:26: invalid redirect target '/a\\nb'");
    expect_err(SVC_OPEN "  route / { respond '2\n0'; }\n}\n", NULL,
               "t.conf:3:21: invalid status '2\\n0' for 'respond'");
}

Test(hostile, huge_numbers)
{
    expect_err("workers 99999999999999999999999999999999;\n" HELLO, NULL,
               "t.conf:1:9: invalid value '99999999999999999999999999999999' for 'workers'");
    expect_err("max_connections 18446744073709551617;\n" HELLO, NULL,
               "t.conf:1:17: invalid value '18446744073709551617' for 'max_connections'");
    expect_err("http2_max_concurrent_requests 4294967297;\n" HELLO, NULL,
               "t.conf:1:31: invalid value '4294967297'");
    expect_err(SVC_OPEN "  route / { proxy http://127.0.0.1:4294967377/; }\n}\n", NULL,
               "t.conf:3:19: invalid upstream 'http://127.0.0.1:4294967377/'");
    expect_err(SVC_OPEN "  route / { proxy http://127.0.0.1:65536/; }\n}\n", NULL,
               "t.conf:3:19: invalid upstream");
    expect_err(SVC_OPEN "  route / { proxy http://127.0.0.1:80x/; }\n}\n", NULL,
               "t.conf:3:19: invalid upstream");
    expect_err(SVC_OPEN "  route / { fastcgi 127.0.0.1:4294967377; }\n}\n", NULL,
               "t.conf:3:21: invalid FastCGI address '127.0.0.1:4294967377'");
    expect_err(SVC_OPEN "  route / { fastcgi 127.0.0.1:-80; }\n}\n", NULL,
               "t.conf:3:21: invalid FastCGI address");
}

/* Every time is at most 24h and every size has its bound, named in the error. */
static const struct bad out_of_range[] = {
    {"proxy http://127.0.0.1:1/ timeout=600000h", "invalid proxy timeout '600000h': expected a "
                                                  "time from 1ms to 24h"},
    {"proxy http://127.0.0.1:1/ timeout=25h", "invalid proxy timeout '25h'"},
    {"proxy http://127.0.0.1:1/ timeout=86400001ms", "invalid proxy timeout '86400001ms'"},
    {"proxy http://127.0.0.1:1/ timeout=1441m", "invalid proxy timeout '1441m'"},
    {"proxy http://127.0.0.1:1/ timeout=86401", "invalid proxy timeout '86401'"},
    {"proxy http://127.0.0.1:1/ timeout=9223372036854775807h", "invalid proxy timeout"},
    {"proxy http://127.0.0.1:1/ timeout=99999999999999999999999999ms", "invalid proxy timeout"},
    {"proxy http://127.0.0.1:1/ connect_timeout=600000h",
     "invalid proxy connect_timeout '600000h': expected a time from 1ms to 24h"},
    {"proxy http://127.0.0.1:1/ connect_timeout=2562047788015215h",
     "invalid proxy connect_timeout"},
    {"fastcgi unix:/run/x.sock timeout=600000h",
     "invalid FastCGI timeout '600000h': expected a time from 1ms to 24h"},
    {"fastcgi unix:/run/x.sock timeout=9223372036854775808ms", "invalid FastCGI timeout"},
};

ParameterizedTestParameters(hostile, handler_times)
{
    static size_t idx[NELEMS(out_of_range)];

    for (size_t i = 0; i < NELEMS(out_of_range); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NELEMS(out_of_range));
}

ParameterizedTest(size_t *i, hostile, handler_times)
{
    char *text;

    cr_assert(asprintf(&text, SVC_OPEN "  route / { %s; }\n}\n", out_of_range[*i].text) != -1);
    expect_err(text, NULL, out_of_range[*i].expect);
    free(text);
}

Test(hostile, directive_times_and_sizes)
{
    static const char *const times[] = {"shutdown_timeout", "shutdown_delay", "worker_watchdog",
                                        "tls_ticket_rotation", "slow_turn"};
    static const char *const svc_times[] = {"header_timeout", "idle_timeout",
                                            "handshake_timeout"};
    static const char *const big[] = {"25h", "600000h", "86400001ms", "1441m", "86401",
                                      "9223372036854775807h", "99999999999999999999999s"};
    char *text;

    for (size_t t = 0; t < NELEMS(times); t++) {
        for (size_t b = 0; b < NELEMS(big); b++) {
            cr_assert(asprintf(&text, "%s %s;\n" HELLO, times[t], big[b]) != -1);
            expect_err(text, NULL, "at most 24h");
            free(text);
        }
    }
    for (size_t t = 0; t < NELEMS(svc_times); t++) {
        cr_assert(asprintf(&text, SVC_OPEN "  %s 600000h;\n" SVC_ROUTE "}\n", svc_times[t]) != -1);
        expect_err(text, NULL, "at most 24h");
        free(text);
    }
    expect_err(SVC_OPEN "  max_body_size 2g;\n" SVC_ROUTE "}\n", NULL,
               "t.conf:3:17: invalid size '2g' for 'max_body_size': expected a number with "
               "unit k, m or g, at most 1g");
    expect_err(SVC_OPEN "  max_body_size 17179869184g;\n" SVC_ROUTE "}\n", NULL, "at most 1g");
    expect_err(SVC_OPEN "  max_body_size 9223372036854775807k;\n" SVC_ROUTE "}\n", NULL,
               "at most 1g");
    expect_err(SVC_OPEN "  max_body_size 99999999999999999999999;\n" SVC_ROUTE "}\n", NULL,
               "at most 1g");
    expect_err(SVC_OPEN "  max_header_size 1g;\n" SVC_ROUTE "}\n", NULL, "expected 1k to 400k");
    expect_err(SVC_OPEN "  max_header_size 18014398509481984k;\n" SVC_ROUTE "}\n", NULL,
               "expected 1k to 400k");
}

Test(hostile, time_and_size_bounds)
{
    int64_t ms;
    uint64_t b;

    cr_assert_eq(conf_parse_time_ms("24h", 0, &ms), 0);
    cr_assert_eq(ms, 86400000);
    cr_assert_eq(conf_parse_time_ms("86400000ms", 0, &ms), 0);
    cr_assert_eq(conf_parse_time_ms("86400001ms", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("25h", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("1441m", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("9223372036854775807", 0, &ms), -1);
    cr_assert_eq(conf_parse_size("8589934591g", &b), 0);
    cr_assert_eq(conf_parse_size("8589934592g", &b), -1);
    cr_assert_eq(conf_parse_size("9007199254740992k", &b), -1);
    cr_assert_eq(conf_parse_size("9223372036854775808", &b), -1);
    cr_assert_eq(util_parse_port("65535"), 65535);
    cr_assert_eq(util_parse_port("65536"), -1);
    cr_assert_eq(util_parse_port("4294967377"), -1);
    cr_assert_eq(util_parse_port("0"), -1);
    cr_assert_eq(util_parse_port("+80"), -1);
    cr_assert_eq(util_parse_port(""), -1);
}

Test(hostile, errors_are_capped)
{
    char *text = repeat("", "wrokers 2;\n", 500, "");
    struct conf_diag d = {0};

    cr_assert_null(conf_load_string("t.conf", text, &no_sockets, &d));
    cr_assert_eq(d.n, 101);
    cr_assert_str_eq(d.msgs[100], "more than 100 errors; the rest are not shown");
    conf_diag_clear(&d);
    free(text);
    /* Long unknown names get no costly suggestion, and the message stays short. */
    text = repeat("", "x", 60000, ";\n");
    expect_err(text, NULL, "t.conf:1:1: unknown directive 'xxxxxxxx");
    free(text);
}

/* access_log's forms: the path alone is combined, fields= alone JSON, the journal has its
 * own form; fields keep the order written. */
Test(conf, access_log_forms)
{
    struct conf *c = load_ok(
        "service a { listen 127.0.0.1:8080; access_log /dev/null; route / { respond 200; } }\n"
        "service b { listen 127.0.0.1:8081; access_log /dev/null format=json;\n"
        "  route / { respond 200; } }\n"
        "service d { listen 127.0.0.1:8082; access_log /dev/null fields=status,path,time;\n"
        "  route / { respond 200; } }\n"
        "service e { listen 127.0.0.1:8083; access_log journal fields=route;\n"
        "  route / { respond 200; } }\n"
        "service f { listen 127.0.0.1:8084; access_log off; route / { respond 200; } }\n");

    cr_assert_eq(c->nservices, 5);
    cr_expect_eq(c->services[0].access_log.format, ACCESSLOG_COMBINED);
    cr_expect_str_eq(c->services[0].access_log.path, "/dev/null");
    cr_expect_eq(c->services[1].access_log.format, ACCESSLOG_JSON);
    cr_expect_eq(c->services[1].access_log.nfields, 0);
    cr_expect_eq(c->services[2].access_log.format, ACCESSLOG_JSON);
    cr_assert_eq(c->services[2].access_log.nfields, 3);
    cr_expect_eq(c->services[2].access_log.fields[0], ALF_STATUS);
    cr_expect_eq(c->services[2].access_log.fields[1], ALF_PATH);
    cr_expect_eq(c->services[2].access_log.fields[2], ALF_TIME);
    cr_expect_eq(c->services[3].access_log.format, ACCESSLOG_JOURNAL);
    cr_expect_null(c->services[3].access_log.path);
    cr_expect_eq(c->services[3].access_log.nfields, 1);
    cr_expect_eq(c->services[4].access_log.format, ACCESSLOG_OFF);
    conf_free(c);
}

/* Files a directive names are checked without opening them: a FIFO would block the load. */
Test(hostile, named_files_must_be_regular, .init = make_tmpdir, .fini = rm_tmpdir,
     .timeout = 10)
{
    char *fifo, *text;

    cr_assert(asprintf(&fifo, "%s/fifo", tmpdir) != -1);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert(asprintf(&text, SVC_OPEN "  access_log %s;\n" SVC_ROUTE "}\n", fifo) != -1);
    expect_err(text, NULL, "t.conf:3:14: access log ");
    expect_err(text, NULL, "/fifo is a FIFO, not a regular file");
    free(text);
    cr_assert(asprintf(&text, "service s {\n  listen 127.0.0.1:8443 tls;\n  tls_certificate %s;\n"
                              "  tls_key %s;\n" SVC_ROUTE "}\n", fifo, fifo) != -1);
    expect_err(text, NULL, "t.conf:3:19: 'tls_certificate' ");
    free(text);
    cr_assert(asprintf(&text, SVC_OPEN "  route / { module %s; }\n}\n", fifo) != -1);
    expect_err(text, NULL, "t.conf:3:20: module ");
    free(text);
    cr_assert(asprintf(&text, "log %s;\n" HELLO, fifo) != -1);
    expect_err(text, NULL, "t.conf:1:5: log ");
    free(text);
    cr_assert(asprintf(&text, SVC_OPEN "  tls_key %s;\n" SVC_ROUTE "}\n", tmpdir) != -1);
    expect_err(text, NULL, "is a directory, not a regular file");
    free(text);
    expect_err(SVC_OPEN "  route / { module /dev/zero; }\n}\n", NULL,
               "t.conf:3:20: module /dev/zero is a device, not a regular file");
    free(fifo);
}

/* ---- the directive table: a row here for each row there with a generic setter ---- */

#include <dirent.h>
#include <stddef.h>

enum where { W_MAIN, W_SERVICE, W_ROUTE, W_HANDLER /* a route without a handler */ };
enum vtype { V_INT, V_UNSIGNED, V_U64, V_I64 };

/* A directive, its field and its bounds: the least and greatest values taken (as written
 * and as stored), the values just outside them (NULL: none) and their messages after
 * "t.conf:LINE:COL: ". */
struct dir_case {
    const char *name;
    enum where where;
    size_t off;
    enum vtype type;
    const char *usage;
    const char *lo, *hi;
    int64_t lo_val, hi_val;
    const char *below, *below_msg;
    const char *above, *above_msg;
};

#define MAIN_F(f, t) W_MAIN, offsetof(struct conf, f), t
#define SVC_F(f, t) W_SERVICE, offsetof(struct conf_service, f), t
#define ROUTE_F(f, t) W_ROUTE, offsetof(struct conf_route, f), t
#define TIME_MSG(v, n) "invalid time '" v "' for '" n "': expected a number with unit ms, s, " \
                       "m or h, at most 24h"
#define TIME_ROW(n, where, lo, lo_val, below, min)                                            \
    {n, where, n " TIME", lo, "24h", lo_val, 86400000, below,                                 \
     "'" n "' must be at least " min ", got '" below "'", "86400001ms",                      \
     TIME_MSG("86400001ms", n)}
/* A time with no least value but 0. */
#define TIME_ROW0(n, where, lo)                                                               \
    {n, where, n " TIME", lo, "24h", 0, 86400000, NULL, NULL, "86400001ms",                   \
     TIME_MSG("86400001ms", n)}
#define FLAG_ROW(n, where)                                                                    \
    {n, where, n " on|off", "off", "on", 0, 1, "yes",                                         \
     "invalid value 'yes' for '" n "': expected 'on' or 'off'", NULL, NULL}
#define NUM_MSG(v, n, alt, max) "invalid value '" v "' for '" n "': expected " alt "a number " \
                                "from 1 to " max

static const struct dir_case dir_cases[] = {
    FLAG_ROW("compress", ROUTE_F(compress, V_INT)),
    FLAG_ROW("cpu_affinity", MAIN_F(cpu_affinity, V_INT)),
    TIME_ROW("handshake_timeout", SVC_F(handshake_timeout_ms, V_I64), "100ms", 100, "99ms",
             "100ms"),
    TIME_ROW("header_timeout", SVC_F(header_timeout_ms, V_I64), "100ms", 100, "99ms", "100ms"),
    /* `http2 on` needs a tls listen: its own test. */
    {"http2", SVC_F(http2, V_INT), "http2 on|off", "off", NULL, 0, 0, "yes",
     "invalid value 'yes' for 'http2': expected 'on' or 'off'", NULL, NULL},
    {"http2_max_concurrent_requests", MAIN_F(http2_max_requests, V_UNSIGNED),
     "http2_max_concurrent_requests NUMBER", "1", "100", 1, 100, "0",
     NUM_MSG("0", "http2_max_concurrent_requests", "", "100"), "101",
     NUM_MSG("101", "http2_max_concurrent_requests", "", "100")},
    {"http2_max_resets", SVC_F(http2_max_resets, V_UNSIGNED), "http2_max_resets NUMBER", "1",
     "1000000", 1, 1000000, "0", NUM_MSG("0", "http2_max_resets", "", "1000000"), "1000001",
     NUM_MSG("1000001", "http2_max_resets", "", "1000000")},
    TIME_ROW("idle_timeout", SVC_F(idle_timeout_ms, V_I64), "100ms", 100, "99ms", "100ms"),
    {"max_body_size", SVC_F(max_body, V_U64), "max_body_size SIZE", "0", "1g", 0,
     1024 * 1024 * 1024, NULL, NULL, "1073741825",
     "invalid size '1073741825' for 'max_body_size': expected a number with unit k, m or g, "
     "at most 1g"},
    {"max_connections", MAIN_F(max_connections, V_UNSIGNED), "max_connections NUMBER", "1",
     "1000000", 1, 1000000, "0", NUM_MSG("0", "max_connections", "", "1000000"), "1000001",
     NUM_MSG("1000001", "max_connections", "", "1000000")},
    {"max_header_size", SVC_F(max_header_size, V_U64), "max_header_size SIZE", "1k", "400k",
     1024, 400 * 1024, "1023", "invalid size '1023' for 'max_header_size': expected 1k to 400k",
     "409601", "invalid size '409601' for 'max_header_size': expected 1k to 400k"},
    TIME_ROW("send_timeout", SVC_F(send_timeout_ms, V_I64), "1s", 1000, "999ms", "1s"),
    TIME_ROW0("shutdown_delay", MAIN_F(shutdown_delay_ms, V_I64), "0"),
    TIME_ROW0("shutdown_timeout", MAIN_F(shutdown_timeout_ms, V_I64), "0ms"),
    /* "off" (0) is its own test. */
    {"slow_turn", MAIN_F(slow_turn_ms, V_I64), "slow_turn TIME|off", "1ms", "24h", 1, 86400000,
     "0", "'slow_turn' must be at least 1ms, got '0'", "86400001ms",
     TIME_MSG("86400001ms", "slow_turn")},
    TIME_ROW("tls_ticket_rotation", MAIN_F(tls_ticket_rotation_ms, V_I64), "1s", 1000, "999ms",
             "1s"),
    FLAG_ROW("worker_sandbox", MAIN_F(worker_sandbox, V_INT)),
    TIME_ROW("worker_watchdog", MAIN_F(worker_watchdog_ms, V_I64), "1000ms", 1000, "999ms", "1s"),
    {"workers", MAIN_F(workers, V_UNSIGNED), "workers auto|NUMBER", "1", "512", 1, 512, "0",
     NUM_MSG("0", "workers", "'auto' or ", "512"), "513",
     NUM_MSG("513", "workers", "'auto' or ", "512")},
};

/* stmt (without its ';') placed in a context of a config that is good without it; *line and
 * *col get where stmt starts. */
static char *
place(enum where at, const char *stmt, int *line, int *col)
{
    char *text;

    switch (at) {
    case W_MAIN:
        *line = 1, *col = 1;
        cr_assert(asprintf(&text, "%s;\n" HELLO, stmt) != -1);
        break;
    case W_SERVICE:
        *line = 3, *col = 3;
        cr_assert(asprintf(&text, SVC_OPEN "  %s;\n" SVC_ROUTE "}\n", stmt) != -1);
        break;
    case W_ROUTE:
        *line = 3, *col = 26;
        cr_assert(asprintf(&text, SVC_OPEN "  route / { respond 200; %s; }\n}\n", stmt) != -1);
        break;
    default:
        *line = 3, *col = 13;
        cr_assert(asprintf(&text, SVC_OPEN "  route / { %s; }\n}\n", stmt) != -1);
    }
    return text;
}

static int64_t
field_value(const struct conf *c, const struct dir_case *dc)
{
    const char *obj = dc->where == W_MAIN      ? (const char *)c
                      : dc->where == W_SERVICE ? (const char *)&c->services[0]
                                               : (const char *)&c->services[0].routes[0];

    switch (dc->type) {
    case V_INT: return *(const int *)(obj + dc->off);
    case V_UNSIGNED: return *(const unsigned *)(obj + dc->off);
    case V_U64: return (int64_t) * (const uint64_t *)(obj + dc->off);
    default: return *(const int64_t *)(obj + dc->off);
    }
}

/* The directive with value v in its own context: loads, and stores want. */
static void
expect_value(const struct dir_case *dc, const char *v, int64_t want)
{
    char *stmt, *text;
    int line, col;
    struct conf *c;

    cr_assert(asprintf(&stmt, "%s %s", dc->name, v) != -1);
    text = place(dc->where, stmt, &line, &col);
    c = load_ok(text);
    cr_assert_eq(field_value(c, dc), want, "%s: got %lld, wanted %lld", stmt,
                 (long long)field_value(c, dc), (long long)want);
    conf_free(c);
    free(text);
    free(stmt);
}

/* stmt placed at `at` fails with "t.conf:line:(col + shift): msg". */
static void
expect_placed_err(enum where at, const char *stmt, int shift, const char *msg)
{
    char *text = NULL, *want, *got;
    int line, col;

    text = place(at, stmt, &line, &col);
    cr_assert(asprintf(&want, "t.conf:%d:%d: %s", line, col + shift, msg) != -1);
    got = load_err(text, NULL);
    cr_assert_str_eq(got, want, "input:\n%s", text);
    free(got);
    free(want);
    free(text);
}

ParameterizedTestParameters(table, generic_directive)
{
    static size_t idx[NELEMS(dir_cases)];

    for (size_t i = 0; i < NELEMS(dir_cases); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NELEMS(dir_cases));
}

ParameterizedTest(size_t *i, table, generic_directive)
{
    static const char *const ctx[] = {"the main context", "a service block", "a route block"};
    const struct dir_case *dc = &dir_cases[*i];
    int vcol = (int)strlen(dc->name) + 1; /* the value's column, from the directive's */
    enum where other = dc->where == W_MAIN ? W_SERVICE : dc->where == W_SERVICE ? W_MAIN
                                                                               : W_SERVICE;
    char *stmt, *msg;

    /* Each bound is taken. */
    expect_value(dc, dc->lo, dc->lo_val);
    if (dc->hi != NULL)
        expect_value(dc, dc->hi, dc->hi_val);
    /* Just past each bound is refused at the value, with the message of the row. */
    if (dc->below != NULL) {
        cr_assert(asprintf(&stmt, "%s %s", dc->name, dc->below) != -1);
        expect_placed_err(dc->where, stmt, vcol, dc->below_msg);
        free(stmt);
    }
    if (dc->above != NULL) {
        cr_assert(asprintf(&stmt, "%s %s", dc->name, dc->above) != -1);
        expect_placed_err(dc->where, stmt, vcol, dc->above_msg);
        free(stmt);
    }
    /* Another context is refused, naming the right one. */
    cr_assert(asprintf(&stmt, "%s %s", dc->name, dc->lo) != -1);
    cr_assert(asprintf(&msg, "'%s' is not allowed in %s; it belongs in %s", dc->name,
                       ctx[other], ctx[dc->where]) != -1);
    expect_placed_err(other, stmt, 0, msg);
    free(msg);
    /* Twice in one block is refused at the second. */
    free(stmt);
    cr_assert(asprintf(&stmt, "%s %s; %s %s", dc->name, dc->lo, dc->name, dc->lo) != -1);
    cr_assert(asprintf(&msg, "duplicate '%s' (first set at t.conf:%d:%d)", dc->name,
                       dc->where == W_MAIN ? 1 : 3, dc->where == W_MAIN ? 1
                                                    : dc->where == W_SERVICE ? 3 : 26) != -1);
    expect_placed_err(dc->where, stmt, vcol + (int)strlen(dc->lo) + 2, msg);
    free(msg);
    free(stmt);
    /* No argument, and two: refused with the usage, at the directive and at the extra one. */
    cr_assert(asprintf(&msg, "wrong number of arguments for '%s'; usage: %s", dc->name,
                       dc->usage) != -1);
    expect_placed_err(dc->where, dc->name, 0, msg);
    cr_assert(asprintf(&stmt, "%s %s %s", dc->name, dc->lo, dc->lo) != -1);
    expect_placed_err(dc->where, stmt, vcol + (int)strlen(dc->lo) + 1, msg);
    free(stmt);
    free(msg);
}

/* Each row's default, when the directive is not given. */
static const struct {
    const char *name;
    int64_t dflt;
} dir_defaults[] = {
    {"compress", 0},
    {"cpu_affinity", 0},
    {"handshake_timeout", 10000},
    {"header_timeout", 10000},
    {"http2", 0},
    {"http2_max_concurrent_requests", 100},
    {"http2_max_resets", 100},
    {"idle_timeout", 10000},
    {"max_body_size", 1024 * 1024},
    {"max_connections", 16384},
    {"max_header_size", 32 * 1024},
    {"send_timeout", 60000},
    {"shutdown_delay", 0},
    {"shutdown_timeout", 30000},
    {"slow_turn", 100},
    {"tls_ticket_rotation", 3600 * 1000},
    {"worker_sandbox", 1},
    {"worker_watchdog", 10000},
    {"workers", 0},
};

Test(table, defaults)
{
    struct conf *c = load_ok(HELLO);

    cr_assert_eq(NELEMS(dir_defaults), NELEMS(dir_cases));
    for (size_t i = 0; i < NELEMS(dir_cases); i++) {
        cr_assert_str_eq(dir_defaults[i].name, dir_cases[i].name);
        cr_assert_eq(field_value(c, &dir_cases[i]), dir_defaults[i].dflt, "%s: %lld",
                     dir_cases[i].name, (long long)field_value(c, &dir_cases[i]));
    }
    conf_free(c);
}

Test(table, http2_on_with_tls_listen)
{
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", "service s { listen 127.0.0.1:8443 tls; http2 on;"
                                      " route / { respond 200; } }", &no_sockets, &d);

    /* No certificate here: the error is about the files, past the http2 check. */
    cr_assert_null(c);
    cr_assert(strstr(d.msgs[0], "listens with tls but lacks 'tls_certificate'") != NULL, "%s",
              d.msgs[0]);
    conf_diag_clear(&d);
}

/* ---- handlers: their hnd_ops is the one statement of their argument count ---- */

static const struct hnd_ops *const handlers[] = {
    &hnd_respond_ops, &hnd_files_ops,   &hnd_redirect_ops, &hnd_proxy_ops,
    &hnd_fastcgi_ops, &hnd_metrics_ops, &hnd_health_ops,   &hnd_module_ops,
};

/* A statement of handler h with n arguments "a". */
static char *
handler_stmt(const struct hnd_ops *h, int n)
{
    char *s = strdup(h->name);

    for (int i = 0; i < n; i++) {
        char *t;
        cr_assert(asprintf(&t, "%s a", s) != -1);
        free(s);
        s = t;
    }
    return s;
}

Test(table, handler_argument_counts)
{
    for (size_t i = 0; i < NELEMS(handlers); i++) {
        const struct hnd_ops *h = handlers[i];
        char *stmt, *msg;
        cr_assert(asprintf(&msg, "wrong number of arguments for '%s'; usage: %s", h->name,
                           h->usage) != -1);
        if (h->min_args > 0) {
            stmt = handler_stmt(h, h->min_args - 1);
            expect_placed_err(W_HANDLER, stmt, 0, msg);
            free(stmt);
        }
        cr_assert_geq(h->max_args, h->min_args);
        stmt = handler_stmt(h, h->max_args + 1);
        /* At the first argument too many: after the name and max_args "a"s. */
        expect_placed_err(W_HANDLER, stmt, (int)strlen(h->name) + 1 + 2 * h->max_args, msg);
        free(stmt);
        free(msg);
    }
}

Test(table, handler_messages)
{
    expect_err(SVC_OPEN "  route / { metrics all; }\n}\n", NULL,
               "t.conf:3:21: wrong number of arguments for 'metrics'; usage: metrics");
    expect_err(SVC_OPEN "  route / { redirect 301; }\n}\n", NULL,
               "t.conf:3:13: wrong number of arguments for 'redirect'; usage: redirect STATUS "
               "URL [exact]");
    expect_err(SVC_OPEN "  route / { files /tmp listing symlinks more; }\n}\n", NULL,
               "t.conf:3:41: wrong number of arguments for 'files'; usage: files /ROOT "
               "[listing] [symlinks]");
    expect_err(SVC_OPEN "  route / { fastcgi unix:/run/x.sock timeout=0; }\n}\n", NULL,
               "t.conf:3:38: invalid FastCGI timeout '0': expected a time from 1ms to 24h");
}

/* The files root is the config's, opened at load: freeing the config closes it. */
static int
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    cr_assert_not_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

Test(table, files_root_is_opened_at_load_and_closed_by_free)
{
    int before = open_fds();
    struct conf *c = load_ok("service s { listen 127.0.0.1:1; route /a/ { files /tmp; }"
                             " route /b/ { files /; } }");

    cr_assert_eq(open_fds(), before + 2);
    conf_free(c);
    cr_assert_eq(open_fds(), before);
}

/* ---- the one port, time and reason-phrase helpers ---- */

Test(helpers, port)
{
    static const struct {
        const char *s;
        int port;
    } cases[] = {
        {"1", 1},     {"80", 80},   {"080", 80},   {"000080", 80}, {"65535", 65535},
        {"0", -1},    {"65536", -1}, {"99999", -1}, {"", -1},      {"+80", -1},
        {"-1", -1},   {" 80", -1},  {"80 ", -1},   {"0x50", -1},   {"8o", -1},
        {"4294967377", -1},         {"18446744073709551697", -1},
    };

    for (size_t i = 0; i < NELEMS(cases); i++)
        cr_assert_eq(util_parse_port(cases[i].s), cases[i].port, "'%s'", cases[i].s);
}

Test(helpers, time_bounds)
{
    int64_t ms = -1;

    cr_assert_eq(conf_parse_time_ms("99ms", 100, &ms), -2);
    cr_assert_eq(ms, 99);
    cr_assert_eq(conf_parse_time_ms("100ms", 100, &ms), 0);
    cr_assert_eq(ms, 100);
    cr_assert_eq(conf_parse_time_ms("0", 1, &ms), -2);
    cr_assert_eq(conf_parse_time_ms("1", 1, &ms), 0);
    cr_assert_eq(ms, 1000);
    cr_assert_eq(conf_parse_time_ms("1S", 0, &ms), 0);
    cr_assert_eq(ms, 1000);
    cr_assert_eq(conf_parse_time_ms("24h", 86400000, &ms), 0);
    cr_assert_eq(conf_parse_time_ms("86400001ms", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("25h", 1000, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("1.5s", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("1 s", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("s", 0, &ms), -1);
    cr_assert_eq(conf_parse_time_ms("1k", 0, &ms), -1);
}

Test(helpers, reason_phrases)
{
    cr_assert_str_eq(hnd_reason(200), "OK");
    cr_assert_str_eq(hnd_reason(206), "Partial Content");
    cr_assert_str_eq(hnd_reason(304), "Not Modified");
    cr_assert_str_eq(hnd_reason(308), "Permanent Redirect");
    cr_assert_str_eq(hnd_reason(404), "Not Found");
    cr_assert_str_eq(hnd_reason(504), "Gateway Timeout");
    cr_assert_str_eq(hnd_reason(299), "OK");
    cr_assert_str_eq(hnd_reason(399), "Redirect");
    cr_assert_str_eq(hnd_reason(499), "Client Error");
    cr_assert_str_eq(hnd_reason(599), "Server Error");
}

Test(helpers, handler_names)
{
    cr_assert_str_eq(hnd_names(), "respond, files, redirect, proxy, fastcgi, metrics, health, status, module");
    cr_assert_str_eq(hnd_names(), "respond, files, redirect, proxy, fastcgi, metrics, health, status, module");
}

/* Equal hashes keep the order they were added in, across growth. */
Test(helpers, hmap)
{
    struct util_hmap m = {0};
    size_t e, k = 0;

    cr_assert_eq(util_hmap_first(&m, 7), SIZE_MAX);
    for (size_t i = 0; i < 1000; i++)
        util_hmap_add(&m, i % 3 == 0 ? 7 : 1000 + i, i, 2 * i);
    for (e = util_hmap_first(&m, 7); e != SIZE_MAX; e = util_hmap_next(&m, e), k += 3) {
        cr_assert_eq(m.ents[e].a, k);
        cr_assert_eq(m.ents[e].b, 2 * k);
    }
    cr_assert_eq(k, 1002);
    e = util_hmap_first(&m, 1500);
    cr_assert_eq(m.ents[e].a, 500);
    cr_assert_eq(util_hmap_next(&m, e), SIZE_MAX);
    cr_assert_eq(util_hmap_first(&m, 1501), SIZE_MAX);
    cr_assert_eq(util_hash_str("a"), util_hash_str("a"));
    cr_assert_neq(util_hash_str("a"), util_hash_str("b"));
    util_hmap_clear(&m);
    cr_assert_eq(util_hmap_first(&m, 7), SIZE_MAX);
}

/* Many routes, services and listens: each duplicate is still found, at its position. */
Test(table, duplicates_among_many)
{
    size_t n = 3000, len = 0, cap = n * 128 + 256;
    char *text = malloc(cap);

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "service s%zu { listen 127.0.0.1:%zu;"
                                " route /%zu { respond 200; } route /x { respond 200; } }\n",
                                i, 10000 + i, i);
    snprintf(text + len, cap - len, "service s7 { listen 127.0.0.1:10005; route /a { respond "
             "200; } route /a { respond 200; } }\n");
    expect_err(text, NULL, "t.conf:3001:9: duplicate service 's7' (first defined at t.conf:8:1)");
    snprintf(text + len, cap - len, "service z { listen 127.0.0.1:10005 tls; route /a { "
             "respond 200; } route /a { respond 200; } }\n");
    expect_err(text, NULL, "t.conf:3001:20: 127.0.0.1:10005 is already used by service 's5' "
               "(listen 127.0.0.1:10005 at t.conf:6:21); services sharing an address must all "
               "use 'tls' or none");
    snprintf(text + len, cap - len, "service z { listen 127.0.0.1:9999; route /a { respond "
             "200; } route /a { respond 200; } }\n");
    expect_err(text, NULL, "t.conf:3001:68: duplicate route '/a' in service 'z' (first at "
               "t.conf:3001:36)");
    free(text);
}

/* ---- span export (the tracing block's otlp_endpoint and queue) ---- */

Test(tracing, otlp_endpoint_parsed_and_resolved)
{
    struct conf *c = load_ok("tracing { otlp_endpoint http://127.0.0.1:4318; span_queue 100;\n"
                             "    span_batch 100; export_interval 250ms; }\n" HELLO);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->tracing.otlp_ss;

    cr_assert_str_eq(c->tracing.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
    cr_assert_str_eq(c->tracing.otlp_authority, "127.0.0.1:4318");
    cr_assert_str_eq(c->tracing.otlp_path, "/v1/traces");
    cr_assert_eq(sin->sin_family, AF_INET);
    cr_assert_eq(ntohs(sin->sin_port), 4318);
    cr_assert_eq(c->tracing.span_queue, 100);
    cr_assert_eq(c->tracing.span_batch, 100);
    cr_assert_eq(c->tracing.export_interval_ms, 250);
    cr_assert_eq(c->tracing.export_timeout_ms, 5000);
    cr_assert_str_eq(c->tracing.service_name, "percore");
    conf_free(c);

    c = load_ok("tracing { otlp_endpoint http://[::1]/otlp/traces; service_name api; }\n" HELLO);
    cr_assert_eq(c->tracing.otlp_ss.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((const struct sockaddr_in6 *)&c->tracing.otlp_ss)->sin6_port), 80);
    cr_assert_str_eq(c->tracing.otlp_authority, "[::1]");
    cr_assert_str_eq(c->tracing.otlp_path, "/otlp/traces");
    cr_assert_str_eq(c->tracing.service_name, "api");
    conf_free(c);

    c = load_ok("tracing { otlp_endpoint http://localhost:4318/v1/traces; }\n" HELLO);
    cr_assert_neq(c->tracing.otlp_sslen, 0);
    conf_free(c);
}

static const struct bad bad_tracing[] = {
    {"tracing { otlp_endpoint https://127.0.0.1:4318; }\n",
     "t.conf:1:25: otlp_endpoint must be an http:// URL; usage: otlp_endpoint "
     "http://HOST:PORT/PATH"},
    {"tracing { otlp_endpoint http://:4318/v1/traces; }\n",
     "t.conf:1:25: otlp_endpoint 'http://:4318/v1/traces' has a bad host or port"},
    {"tracing { otlp_endpoint http://127.0.0.1:99999; }\n",
     "t.conf:1:25: otlp_endpoint 'http://127.0.0.1:99999' has a bad host or port"},
    {"tracing { otlp_endpoint http://127.0.0.1:; }\n",
     "t.conf:1:25: otlp_endpoint 'http://127.0.0.1:' has a bad host or port"},
    {"tracing { otlp_endpoint http://[::1:4318/; }\n",
     "t.conf:1:25: otlp_endpoint 'http://[::1:4318/' has a bad IPv6 address"},
    {"tracing { otlp_endpoint http://127.0.0.1/x?y=1; }\n",
     "t.conf:1:25: otlp_endpoint 'http://127.0.0.1/x?y=1' has no host or a query"},
    {"tracing { otlp_endpoint http://no-such-host.invalid:4318; }\n",
     "t.conf:1:25: otlp_endpoint: cannot resolve 'no-such-host.invalid'"},
    {"tracing { otlp_endpoint http://127.0.0.1:4318; span_queue 10; span_batch 20; }\n",
     "t.conf:1:1: span_batch 20 is larger than span_queue 10"},
    {"tracing { otlp_endpoint http://127.0.0.1:4318/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "; }\n",
     "t.conf:1:25: otlp_endpoint is longer than 512 bytes"},
    {"tracing { span_queue 0; }\n",
     "t.conf:1:22: invalid value '0' for 'span_queue': expected a number from 1 to 1048576"},
    {"tracing { export_timeout 1ms; }\n",
     "t.conf:1:26: 'export_timeout' must be at least 10ms, got '1ms'"},
    {"service_name x;\n", "t.conf:1:1: 'service_name' is not allowed in the main context; it "
                          "belongs in the tracing block"},
};

ParameterizedTestParameters(tracing, bad_export_settings)
{
    static size_t idx[NELEMS(bad_tracing)];

    for (size_t i = 0; i < NELEMS(bad_tracing); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, NELEMS(bad_tracing));
}

ParameterizedTest(size_t *i, tracing, bad_export_settings)
{
    char text[1024];

    snprintf(text, sizeof(text), "%s%s", bad_tracing[*i].text, HELLO);
    expect_err(text, NULL, bad_tracing[*i].expect);
}
