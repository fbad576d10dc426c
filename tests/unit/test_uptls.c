/* TLS toward upstreams (src/uptls.c): client contexts made from files, and handshakes run
 * from an h2o event loop against `openssl s_server -www` on a free loopback port, with a
 * CA, a server certificate (upstream.test and 127.0.0.1) and a client certificate made
 * here. The server runs per test and is stopped by its pid (and dies with the test). */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "heritage.h"
#include "sandbox.h"
#include "uptls.h"

#define WAIT_MS 20000 /* the bound of every wait: generous for a loaded machine */

static char dir[] = "/tmp/percore-uptls.XXXXXX";
static pid_t server = -1;
static int port;
static h2o_evloop_t *loop;

/* ---- files and the server ---- */

static const char *
path(const char *name)
{
    static char buf[4][256];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    cr_assert_lt(n, (int)sizeof(cmd));
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void
write_file(const char *name, const char *text)
{
    FILE *f = fopen(path(name), "w");

    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* A CA, another CA, the server's certificate for upstream.test and 127.0.0.1 (signed by
 * the CA), a client certificate (likewise). */
static void
make_certs(void)
{
#define NEWKEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    write_file("srv.ext", "subjectAltName=DNS:upstream.test,IP:127.0.0.1\n");
    run("cd %s && openssl req -x509 " NEWKEY " -days 2 -subj /CN=uptls-ca -keyout ca.key "
        "-out ca.pem >/dev/null 2>&1",
        dir);
    run("cd %s && openssl req -x509 " NEWKEY " -days 2 -subj /CN=other-ca -keyout other.key "
        "-out other.pem >/dev/null 2>&1",
        dir);
    run("cd %s && openssl req " NEWKEY " -subj /CN=upstream.test -keyout srv.key -out srv.csr "
        ">/dev/null 2>&1 && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
        "-set_serial 2 -days 2 -extfile srv.ext -out srv.pem >/dev/null 2>&1",
        dir);
    run("cd %s && openssl req " NEWKEY " -subj /CN=percore-client -keyout cli.key -out cli.csr "
        ">/dev/null 2>&1 && openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key "
        "-set_serial 3 -days 2 -out cli.pem >/dev/null 2>&1",
        dir);
#undef NEWKEY
}

static int
free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_neq(fd, -1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* Whether something listens on 127.0.0.1:p: the kernel's table, so that the server sees
 * no probe connection. */
static int
listening(int p)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[256];
    unsigned addr, lport, state;
    int found = 0;

    cr_assert_not_null(f);
    while (!found && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, " %*u: %8X:%4X %*8X:%*4X %2X", &addr, &lport, &state) == 3)
            found = addr == htonl(INADDR_LOOPBACK) && (int)lport == p && state == 0x0A;
    fclose(f);
    return found;
}

static long
ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Starts s_server -www with the server certificate, ALPN http/1.1 and the extra arguments
 * (NULL-terminated), on a free port; returns once it listens. A port taken between the
 * check and the bind makes the server exit: then another port. */
static void
start_server(const char *extra, ...)
{
    const char *argv[32] = {"openssl", "s_server", "-accept", NULL,     "-cert", "srv.pem",
                            "-key",    "srv.key",  "-www",    "-quiet", "-alpn", "http/1.1"};
    size_t argc = 12;
    char accept[32];
    va_list ap;

    va_start(ap, extra);
    for (const char *a = extra; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    for (int attempt = 0; attempt < 5; attempt++) {
        struct timespec t0;
        int status;
        port = free_port();
        snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
        argv[3] = accept;
        server = fork();
        cr_assert_neq(server, -1);
        if (server == 0) {
            int null = open("/dev/null", O_RDWR);
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a crashed test leaves no server */
            dup2(null, 0), dup2(null, 1), dup2(null, 2);
            if (chdir(dir) == 0)
                execvp(argv[0], (char *const *)argv);
            _exit(127);
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (!listening(port) && waitpid(server, &status, WNOHANG) == 0 &&
               ms_since(&t0) < WAIT_MS)
            usleep(10000);
        if (listening(port))
            return;
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        server = -1;
    }
    cr_assert_fail("openssl s_server did not listen");
}

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in a worker */
    unsetenv("SSL_CERT_FILE");
    cr_assert_not_null(mkdtemp(dir));
    make_certs();
    loop = h2o_evloop_create();
}

static void
teardown(void)
{
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    run("rm -rf %s", dir);
}

/* ---- contexts and connections ---- */

/* A context of these settings (files by name in the test's directory); asserts it is
 * made. */
static SSL_CTX *
ctx_of(const char *ca, const char *cert, const char *key, int verify)
{
    struct uptls_conf c = {0};
    char err[512];
    SSL_CTX *ctx;

    c.ca_file = ca != NULL ? strdup(path(ca)) : NULL;
    c.cert_file = cert != NULL ? strdup(path(cert)) : NULL;
    c.key_file = key != NULL ? strdup(path(key)) : NULL;
    c.verify = verify;
    ctx = uptls_ctx_new(&c, err, sizeof(err));
    uptls_conf_free(&c);
    cr_assert_not_null(ctx, "context: %s", err);
    return ctx;
}

/* The error a context of these settings is refused with. */
static const char *
ctx_error(struct uptls_conf *c)
{
    static char err[512];
    SSL_CTX *ctx = uptls_ctx_new(c, err, sizeof(err));

    cr_assert_null(ctx, "no context");
    return err;
}

struct result {
    const char *name;
    SSL_CTX *ctx;
    int request; /* send GET / and read the answer */
    int done;
    char err[512];    /* of the handshake */
    char io_err[128]; /* of the request, once the handshake succeeded */
    int reused;
    char alpn[16];
    char status[64]; /* the answer's first line */
};

static void
finish(h2o_socket_t *sock, struct result *r)
{
    h2o_socket_close(sock);
    r->done = 1;
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
    struct result *r = sock->data;
    const char *eol = memmem(sock->input->bytes, sock->input->size, "\r\n", 2);

    /* The first line tells; s_server then waits for the client to close. */
    if (eol != NULL)
        snprintf(r->status, sizeof(r->status), "%.*s", (int)(eol - sock->input->bytes),
                 sock->input->bytes);
    else if (err != NULL)
        snprintf(r->io_err, sizeof(r->io_err), "%s", err);
    else
        return;
    finish(sock, r);
}

static void
on_written(h2o_socket_t *sock, const char *err)
{
    struct result *r = sock->data;

    if (err != NULL) {
        snprintf(r->io_err, sizeof(r->io_err), "%s", err);
        finish(sock, r);
        return;
    }
    h2o_socket_read_start(sock, on_read);
}

static void
on_handshake(h2o_socket_t *sock, const char *err)
{
    static h2o_iovec_t req = {(char *)"GET / HTTP/1.0\r\n\r\n", 18};
    struct result *r = sock->data;
    h2o_iovec_t proto;

    if (err != NULL) {
        snprintf(r->err, sizeof(r->err), "%s", err);
        finish(sock, r);
        return;
    }
    r->reused = h2o_socket_get_ssl_session_reused(sock);
    proto = h2o_socket_ssl_get_selected_protocol(sock);
    snprintf(r->alpn, sizeof(r->alpn), "%.*s", (int)proto.len, proto.base);
    if (!r->request) {
        finish(sock, r);
        return;
    }
    h2o_socket_write(sock, &req, 1, on_written);
}

static void
on_connect(h2o_socket_t *sock, const char *err)
{
    struct result *r = sock->data;

    if (err != NULL) {
        snprintf(r->err, sizeof(r->err), "connect: %s", err);
        finish(sock, r);
        return;
    }
    process_role = ROLE_WORKER;
    uptls_handshake(sock, r->ctx, r->name, on_handshake);
    process_role = ROLE_MASTER;
}

/* One connection to the server: the handshake toward name, then, if request, GET /.
 * Asserts nothing (a sandboxed child calls it too): r.done tells whether it ended. */
static struct result
dial(SSL_CTX *ctx, const char *name, int request)
{
    struct result r = {.name = name, .ctx = ctx, .request = request};
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timespec t0;
    h2o_socket_t *sock = h2o_socket_connect(loop, (struct sockaddr *)&sin, sizeof(sin), on_connect);

    if (sock == NULL)
        return r;
    sock->data = &r;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!r.done && ms_since(&t0) < WAIT_MS)
        h2o_evloop_run(loop, 50);
    return r;
}

static struct result
connect_to(SSL_CTX *ctx, const char *name, int request)
{
    struct result r = dial(ctx, name, request);

    cr_assert(r.done, "the connection to %s ended", name);
    return r;
}

/* A handshake and a request that must succeed; the result. */
static struct result
ok(SSL_CTX *ctx, const char *name)
{
    struct result r = connect_to(ctx, name, 1);

    cr_assert_str_empty(r.err, "handshake toward %s: %s", name, r.err);
    cr_assert_str_eq(r.status, "HTTP/1.0 200 ok", "the answer, toward %s (%s)", name, r.io_err);
    return r;
}

/* A handshake that must fail; its error. */
static struct result
refused(SSL_CTX *ctx, const char *name)
{
    struct result r = connect_to(ctx, name, 1);

    cr_assert_str_not_empty(r.err, "handshake toward %s refused", name);
    cr_assert_str_empty(r.status);
    return r;
}

TestSuite(uptls, .init = setup, .fini = teardown);

/* ---- verification ---- */

Test(uptls, the_right_ca_and_name_are_accepted_with_alpn_http_1_1)
{
    SSL_CTX *ctx = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    struct result r;

    start_server(NULL);
    r = ok(ctx, "upstream.test");
    cr_assert_str_eq(r.alpn, "http/1.1");
    ok(ctx, "UPSTREAM.test");
    ok(ctx, "upstream.test.");
    ok(ctx, "127.0.0.1");
    uptls_ctx_free(ctx);
}

Test(uptls, another_ca_is_refused_naming_the_verify_error)
{
    SSL_CTX *ctx = ctx_of("other.pem", NULL, NULL, UPTLS_VERIFY_ON);
    struct result r;

    start_server(NULL);
    r = refused(ctx, "upstream.test");
    cr_assert_str_eq(r.err, "certificate verify failed: unable to get local issuer certificate");
    uptls_ctx_free(ctx);
}

/* libh2o alone lets this pass under TLS 1.3: it checks the name only in some paths. */
Test(uptls, another_name_is_refused_naming_the_certificate_s_names)
{
    SSL_CTX *ctx = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    struct result r;

    start_server(NULL);
    r = refused(ctx, "other.test");
    cr_assert_str_eq(r.err, "certificate is for upstream.test, 127.0.0.1, not 'other.test'");
    r = refused(ctx, "127.0.0.2");
    cr_assert_str_eq(r.err, "certificate is for upstream.test, 127.0.0.1, not '127.0.0.2'");
    r = refused(ctx, "x.upstream.test");
    cr_assert_str_eq(r.err, "certificate is for upstream.test, 127.0.0.1, not 'x.upstream.test'");
    uptls_ctx_free(ctx);
}

/* Under TLS 1.2 libh2o checks names itself, without IP addresses, and cannot be told not
 * to: its verdict is not the one that counts. */
Test(uptls, tls_1_2_addresses_names_and_verify_off)
{
    SSL_CTX *ctx = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    SSL_CTX *off = ctx_of("other.pem", NULL, NULL, UPTLS_VERIFY_OFF);
    struct result r;

    start_server("-tls1_2", NULL);
    ok(ctx, "upstream.test");
    ok(ctx, "127.0.0.1");
    r = refused(ctx, "other.test");
    cr_assert_str_eq(r.err, "certificate is for upstream.test, 127.0.0.1, not 'other.test'");
    ok(off, "other.test");
    ok(off, "127.0.0.2");
    uptls_ctx_free(ctx);
    uptls_ctx_free(off);
}

Test(uptls, verify_off_accepts_any_ca_and_name)
{
    SSL_CTX *ctx = ctx_of("other.pem", NULL, NULL, UPTLS_VERIFY_OFF);

    start_server(NULL);
    ok(ctx, "upstream.test");
    ok(ctx, "other.test");
    uptls_ctx_free(ctx);
}

/* The server knows upstream.test only and refuses any other name it is sent: an address
 * sent as SNI (as libh2o alone does) would be refused. */
Test(uptls, sni_is_the_name_and_never_an_address)
{
    SSL_CTX *ctx = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    SSL_CTX *off = ctx_of(NULL, NULL, NULL, UPTLS_VERIFY_OFF);
    struct result r;

    start_server("-servername", "upstream.test", "-servername_fatal", "-cert2", "srv.pem", "-key2",
                 "srv.key", NULL);
    ok(ctx, "upstream.test");
    ok(ctx, "127.0.0.1");
    r = refused(off, "other.test");
    cr_assert_str_eq(r.err, "TLS handshake failed: tlsv1 unrecognized name");
    uptls_ctx_free(ctx);
    uptls_ctx_free(off);
}

Test(uptls, the_system_cas_without_tls_ca)
{
    struct uptls_conf c = {0};
    char want[512];
    SSL_CTX *ctx;

    start_server(NULL);
    /* OpenSSL's way to name the system's CA file; this one trusts our CA. */
    setenv("SSL_CERT_FILE", path("ca.pem"), 1);
    ctx = ctx_of(NULL, NULL, NULL, UPTLS_VERIFY_UNSET);
    ok(ctx, "upstream.test");
    uptls_ctx_free(ctx);
    setenv("SSL_CERT_FILE", path("none.pem"), 1);
    snprintf(want, sizeof(want),
             "%s: No such file or directory (the system's CAs, as no tls_ca is given)",
             path("none.pem"));
    cr_assert_str_eq(ctx_error(&c), want);
}

/* ---- client certificates ---- */

Test(uptls, a_client_certificate_the_server_demands)
{
    SSL_CTX *with = ctx_of("ca.pem", "cli.pem", "cli.key", UPTLS_VERIFY_UNSET);
    SSL_CTX *without = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    struct result r;

    start_server("-Verify", "1", "-CAfile", "ca.pem", NULL);
    ok(with, "upstream.test");
    /* TLS 1.3: the client's handshake ends before the server's verdict; the request
     * fails. */
    r = connect_to(without, "upstream.test", 1);
    cr_assert_str_empty(r.status);
    cr_assert(r.err[0] != '\0' || r.io_err[0] != '\0');
    uptls_ctx_free(with);
    uptls_ctx_free(without);
}

Test(uptls, a_client_certificate_the_server_demands_tls_1_2)
{
    SSL_CTX *with = ctx_of("ca.pem", "cli.pem", "cli.key", UPTLS_VERIFY_UNSET);
    SSL_CTX *without = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    struct result r;

    start_server("-tls1_2", "-Verify", "1", "-CAfile", "ca.pem", NULL);
    ok(with, "upstream.test");
    r = refused(without, "upstream.test");
    cr_assert_str_eq(r.err, "TLS handshake failed: sslv3 alert handshake failure");
    uptls_ctx_free(with);
    uptls_ctx_free(without);
}

/* ---- resumption ---- */

static void
resumes(void)
{
    SSL_CTX *ctx = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    SSL_CTX *other = ctx_of("ca.pem", NULL, NULL, UPTLS_VERIFY_UNSET);
    struct result r;

    r = ok(ctx, "upstream.test");
    cr_assert_eq(r.reused, 0, "a first connection is a full handshake");
    r = ok(ctx, "upstream.test");
    cr_assert_eq(r.reused, 1, "the second connection resumes");
    r = ok(ctx, "upstream.test");
    cr_assert_eq(r.reused, 1, "and the next");
    r = ok(ctx, "127.0.0.1");
    cr_assert_eq(r.reused, 0, "another name has its own sessions");
    r = ok(other, "upstream.test");
    cr_assert_eq(r.reused, 0, "another upstream's context has its own sessions");
    /* A session verified for one name is never offered toward another. */
    r = refused(ctx, "other.test");
    cr_assert_str_eq(r.err, "certificate is for upstream.test, 127.0.0.1, not 'other.test'");
    uptls_ctx_free(ctx);
    uptls_ctx_free(other);
}

Test(uptls, the_second_connection_resumes)
{
    start_server(NULL);
    resumes();
}

Test(uptls, the_second_connection_resumes_tls_1_2)
{
    start_server("-tls1_2", NULL);
    resumes();
}

/* ---- in a worker ---- */

/* A sandboxed worker handshakes, with its client certificate, and resumes, with what the
 * master read at load: the files are gone by then. In a child, which the sandbox would
 * not let the test's clean-up run in. */
Test(uptls, a_sandboxed_worker_needs_no_file)
{
    SSL_CTX *ctx = ctx_of("ca.pem", "cli.pem", "cli.key", UPTLS_VERIFY_UNSET);
    int status;
    pid_t pid;

    start_server("-Verify", "1", "-CAfile", "ca.pem", NULL);
    cr_assert_eq(rename(path("ca.pem"), path("ca.gone")), 0);
    cr_assert_eq(rename(path("cli.pem"), path("cli.gone")), 0);
    cr_assert_eq(rename(path("cli.key"), path("cli.key.gone")), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct conf c = {0};
        char err[256];
        struct result a, b;
        process_role = ROLE_WORKER;
        if (sandbox_install(&c, NULL, err, sizeof(err)) == -1)
            _exit(2);
        a = dial(ctx, "upstream.test", 1);
        b = dial(ctx, "upstream.test", 1);
        if (strcmp(a.status, "HTTP/1.0 200 ok") != 0 || strcmp(b.status, "HTTP/1.0 200 ok") != 0)
            _exit(3);
        _exit(b.reused == 1 ? 0 : 4);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the worker: %s %d (2: no sandbox, 3: no answer, 4: not resumed)",
              WIFEXITED(status) ? "exit" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    uptls_ctx_free(ctx);
}

/* ---- contexts refused ---- */

Test(uptls, files_are_checked_at_load)
{
    struct uptls_conf c = {0};
    char want[512];

    c.ca_file = strdup(path("missing.pem"));
    snprintf(want, sizeof(want), "%s: No such file or directory", path("missing.pem"));
    cr_assert_str_eq(ctx_error(&c), want);
    uptls_conf_free(&c);

    write_file("junk.pem", "not a certificate\n");
    c.ca_file = strdup(path("junk.pem"));
    cr_assert(strncmp(ctx_error(&c), path("junk.pem"), strlen(path("junk.pem"))) == 0,
              "the error names the file: %s", ctx_error(&c));
    uptls_conf_free(&c);

    c.cert_file = strdup(path("cli.pem"));
    cr_assert_str_eq(ctx_error(&c), "tls_certificate needs tls_key");
    c.key_file = strdup(path("other.key"));
    snprintf(want, sizeof(want), "%s: ", path("other.key"));
    cr_assert(strncmp(ctx_error(&c), want, strlen(want)) == 0 &&
                  strstr(ctx_error(&c), "key values mismatch") != NULL,
              "a key that is not the certificate's: %s", ctx_error(&c));
    uptls_conf_free(&c);

    c.key_file = strdup(path("cli.key"));
    cr_assert_str_eq(ctx_error(&c), "tls_key needs tls_certificate");
    uptls_conf_free(&c);
}

/* ---- directives ---- */

Test(uptls, directives)
{
    struct uptls_conf c = {0};
    char err[256] = "";

    cr_assert_eq(uptls_conf_set(&c, "tls_ca", "/etc/ca.pem", err, sizeof(err)), 0);
    cr_assert_eq(uptls_conf_set(&c, "tls_certificate", "c.pem", err, sizeof(err)), 0);
    cr_assert_eq(uptls_conf_set(&c, "tls_key", "k.pem", err, sizeof(err)), 0);
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "api.internal", err, sizeof(err)), 0);
    cr_assert_eq(uptls_conf_set(&c, "tls_verify", "off", err, sizeof(err)), 0);
    cr_assert_str_eq(c.ca_file, "/etc/ca.pem");
    cr_assert_str_eq(c.cert_file, "c.pem");
    cr_assert_str_eq(c.key_file, "k.pem");
    cr_assert_str_eq(c.name, "api.internal");
    cr_assert_eq(c.verify, UPTLS_VERIFY_OFF);

    cr_assert_eq(uptls_conf_set(&c, "tls_ca", "/x.pem", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "'tls_ca' given twice");
    cr_assert_eq(uptls_conf_set(&c, "tls_verify", "on", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "'tls_verify' given twice");
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "b.internal", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "'tls_name' given twice");
    snprintf(err, sizeof(err), "untouched");
    cr_assert_eq(uptls_conf_set(&c, "server", "http://a", err, sizeof(err)), 1);
    cr_assert_str_eq(err, "untouched");
    uptls_conf_free(&c);
    cr_assert_null(c.ca_file);
    cr_assert_eq(c.verify, UPTLS_VERIFY_UNSET);

    cr_assert_eq(uptls_conf_set(&c, "tls_verify", "yes", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "tls_verify 'yes': expected on or off");
    cr_assert_eq(uptls_conf_set(&c, "tls_ca", "", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "'tls_ca' needs a file");
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "a b", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "tls_name 'a b': not a host name or IP address");
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "a..b", err, sizeof(err)), -1);
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "[api.internal]", err, sizeof(err)), -1);
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "[10.0.0.1]", err, sizeof(err)), -1);
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "", err, sizeof(err)), -1);
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "[::1]", err, sizeof(err)), 0);
    uptls_conf_free(&c);
    cr_assert_eq(uptls_conf_set(&c, "tls_name", "10.0.0.1", err, sizeof(err)), 0);
    uptls_conf_free(&c);
}
