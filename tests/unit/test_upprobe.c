/* Active health checks (src/upprobe.c) against servers on loopback and unix sockets, run
 * by an h2o loop in the test, as a worker runs them: what is sent, what each kind of
 * answer (200, 503, nothing, a close, not HTTP, a refusal) does to the server's record,
 * the lease, and the seccomp sandbox. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The prober's state is static: the tests look into it. */
#include "../../src/upprobe.c"

#include "conf.h"
#include "metrics.h"
#include "sandbox.h"

#define INTERVAL_MS 20
#define WAIT_MS 5000 /* every wait's bound: far more than any check needs, even on a busy machine */

static h2o_evloop_t *loop;

/* Runs the loop until cond holds or WAIT_MS have passed. */
#define WAIT_FOR(cond)                                                                     \
    do {                                                                                   \
        int64_t end_ = util_now_ms() + WAIT_MS;                                            \
        while (!(cond) && util_now_ms() < end_)                                            \
            h2o_evloop_run(loop, 10);                                                      \
    } while (0)

/* ---- servers ---- */

#define HELD_MAX 8

struct server {
    int fd; /* listening; or only bound, to refuse */
    h2o_socket_t *ls;
    const char *answer; /* NULL: says nothing; "": closes at once */
    int conns;
    int64_t first_ms; /* when it took its first connection */
    char got[2048];   /* what the first connection sent */
    size_t gotlen;
    int requests; /* heads read whole */
    h2o_socket_t *held[HELD_MAX];
    size_t nheld;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

static char tmpdir[64];

static void
unhold(struct server *s, h2o_socket_t *sock)
{
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->held[i] == sock) {
            s->held[i] = s->held[--s->nheld];
            return;
        }
    }
}

static void
on_srv_written(h2o_socket_t *sock, const char *err)
{
    h2o_socket_close(sock);
}

static void
on_srv_read(h2o_socket_t *sock, const char *err)
{
    struct server *s = sock->data;
    size_t n = sock->input->size;

    if (err != NULL) {
        unhold(s, sock);
        h2o_socket_close(sock);
        return;
    }
    if (s->conns == 1 && s->gotlen + n < sizeof(s->got)) {
        memcpy(s->got + s->gotlen, sock->input->bytes, n);
        s->gotlen += n;
    }
    h2o_buffer_consume(&sock->input, n);
    /* Every check's head is short: one read has it whole. */
    s->requests++;
    if (s->answer == NULL) {
        cr_assert_lt(s->nheld, HELD_MAX);
        s->held[s->nheld++] = sock; /* read on: a close is seen */
        return;
    }
    h2o_socket_read_stop(sock);
    h2o_iovec_t buf = h2o_iovec_init(s->answer, strlen(s->answer));
    h2o_socket_write(sock, &buf, 1, on_srv_written);
}

static void
on_srv_accept(h2o_socket_t *ls, const char *err)
{
    struct server *s = ls->data;
    h2o_socket_t *sock;

    while (err == NULL && (sock = h2o_evloop_socket_accept(ls)) != NULL) {
        if (s->conns++ == 0)
            s->first_ms = util_now_ms();
        if (s->answer != NULL && s->answer[0] == '\0') {
            h2o_socket_close(sock);
            continue;
        }
        sock->data = s;
        h2o_socket_read_start(sock, on_srv_read);
    }
}

static void
serve(struct server *s, const char *answer)
{
    s->answer = answer;
    cr_assert_eq(listen(s->fd, 16), 0);
    s->ls = h2o_evloop_socket_create(loop, s->fd, H2O_SOCKET_FLAG_DONT_READ);
    s->ls->data = s;
    h2o_socket_read_start(s->ls, on_srv_accept);
}

/* A TCP server on a free loopback port (the kernel's pick), answering answer; or, with
 * refuse, a port bound by no listener: connects to it are refused. */
static void
tcp_server(struct server *s, const char *answer, int refuse)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&s->addr;

    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(s->fd, -1);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->addrlen = sizeof(*sin);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)sin, s->addrlen), 0);
    cr_assert_eq(getsockname(s->fd, (struct sockaddr *)sin, &s->addrlen), 0);
    if (!refuse)
        serve(s, answer);
}

/* A unix socket server at tmpdir/name (with listen 0: the address only, no socket). */
static void
unix_server(struct server *s, const char *name, const char *answer, int listen_too)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&s->addr;

    memset(s, 0, sizeof(*s));
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", tmpdir, name);
    s->addrlen = sizeof(*sun);
    s->fd = -1;
    if (!listen_too)
        return;
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(s->fd, -1);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)sun, s->addrlen), 0);
    serve(s, answer);
}

static void
server_close(struct server *s)
{
    while (s->nheld > 0)
        h2o_socket_close(s->held[--s->nheld]);
    if (s->ls != NULL)
        h2o_socket_close(s->ls);
    else if (s->fd != -1)
        close(s->fd);
    s->ls = NULL;
    s->fd = -1;
}

/* ---- the record and the prober ---- */

static struct upstate *rec;
static struct upstate_policy pol;

/* A record for key, committed as the master does (checked or not), then this process is
 * a worker with a loop. */
static void
worker_with(const char *key, int checked)
{
    rec = upstate_get(upstate_register(key, checked));
    upstate_commit(1);
    process_role = ROLE_WORKER;
    loop = h2o_evloop_create();
}

static void
setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/percore-upprobe.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    upstate_policy_init(&pol);
    pol.check.path = "/healthz";
    pol.check.interval_ms = INTERVAL_MS;
    pol.check.timeout_ms = 1000;
    pol.check.fall = 2;
    pol.check.rise = 2;
}

static void
teardown(void)
{
    char cmd[128];

    upprobe_stop();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(upprobe, .init = setup, .fini = teardown);

static void
start(const struct server *s, const char *host)
{
    struct upprobe_target t = {
        .idx = (int)(rec - upstate_get(0)),
        .addr = (const struct sockaddr *)&s->addr,
        .addrlen = s->addrlen,
        .host = host,
        .policy = &pol,
    };

    cr_assert_eq(upprobe_start(loop, &t, 1), 0);
}

static enum upstate_result
last_result(void)
{
    return (enum upstate_result)(atomic_load(&rec->last_check) >> 32);
}

static int
last_detail(void)
{
    return (int)(uint32_t)atomic_load(&rec->last_check);
}

/* stderr, where the log goes, into a file until log_end; what was logged then. */
static char logpath[128];
static int saved_stderr = -1;

static void
log_begin(void)
{
    int fd;

    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_neq(fd, -1);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_neq(dup2(fd, STDERR_FILENO), -1);
    close(fd);
}

static char *
log_end(void)
{
    static char text[16 * 1024];
    FILE *f;
    size_t n;

    cr_assert_neq(dup2(saved_stderr, STDERR_FILENO), -1);
    close(saved_stderr);
    f = fopen(logpath, "r");
    cr_assert_not_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* ---- the tests ---- */

Test(upprobe, a_200_keeps_it_up_and_the_request_is_as_documented)
{
    struct server s;
    static const char want[] = "GET /healthz HTTP/1.1\r\nHost: app.test\r\n"
                               "Connection: close\r\nUser-Agent: percore-health\r\n\r\n";

    worker_with("api http://app.test", 1);
    tcp_server(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
    start(&s, "app.test");
    WAIT_FOR(atomic_load(&rec->checks_ok) >= 3);
    cr_assert_geq(atomic_load(&rec->checks_ok), 3);
    cr_assert_eq(last_result(), UPSTATE_OK);
    cr_assert_eq(last_detail(), 200);
    cr_assert(upstate_usable(rec, util_now_ms()));
    cr_assert_eq(s.gotlen, sizeof(want) - 1);
    cr_assert_eq(memcmp(s.got, want, s.gotlen), 0, "sent: '%.*s'", (int)s.gotlen, s.got);
    cr_assert_eq(upstate_lease_holder(rec, util_now_ms()), getpid());
    server_close(&s);
}

Test(upprobe, fall_503s_take_it_down_and_rise_200s_bring_it_back)
{
    struct server s;
    char *log;

    worker_with("api http://10.1.1.1:80", 1);
    tcp_server(&s, "HTTP/1.1 503 Service Unavailable\r\n\r\n", 0);
    log_begin();
    start(&s, "10.1.1.1");
    WAIT_FOR(atomic_load(&rec->down));
    cr_assert(atomic_load(&rec->down));
    cr_assert_eq(last_result(), UPSTATE_STATUS);
    cr_assert_eq(last_detail(), 503);
    cr_assert_geq(s.requests, 2, "fall is 2");
    s.answer = "HTTP/1.0 204 No Content\n\n";
    WAIT_FOR(!atomic_load(&rec->down));
    log = log_end();
    cr_assert_not(atomic_load(&rec->down));
    cr_assert_not_null(strstr(log, "upstream 'api' server 'http://10.1.1.1:80' is down: 2 "
                                   "health checks failed in a row (the last: status 503)\n"),
                       "%s", log);
    cr_assert_not_null(strstr(log, "upstream 'api' server 'http://10.1.1.1:80' is up: 2 "
                                   "health checks passed in a row (status 204)\n"),
                       "%s", log);
    server_close(&s);
}

Test(upprobe, a_server_that_says_nothing_times_out)
{
    struct server s;

    pol.check.timeout_ms = 150;
    pol.check.fall = 1;
    worker_with("api http://silent", 1);
    tcp_server(&s, NULL, 0);
    start(&s, "silent");
    WAIT_FOR(atomic_load(&rec->down));
    cr_assert(atomic_load(&rec->down));
    cr_assert_eq(last_result(), UPSTATE_RESPONSE_TIMEOUT);
    /* The loop's clock lags the real one by up to a turn: a little slack below. */
    cr_assert_geq(atomic_load(&rec->since_ms) - s.first_ms, 150 - 20,
                  "not before the timeout");
    WAIT_FOR(s.nheld == 0);
    cr_assert_eq(s.nheld, 0, "the check's connection was closed");
    server_close(&s);
}

Test(upprobe, a_refused_connect)
{
    struct server s;
    char *log;

    pol.check.fall = 1;
    worker_with("api http://refusing", 1);
    tcp_server(&s, NULL, 1);
    log_begin();
    start(&s, "refusing");
    WAIT_FOR(atomic_load(&rec->down));
    log = log_end();
    cr_assert(atomic_load(&rec->down));
    cr_assert_eq(last_result(), UPSTATE_CONNECT_REFUSED);
    cr_assert_not_null(strstr(log, "is down: 1 health check failed in a row (the last: "
                                   "connection refused)"), "%s", log);
    server_close(&s);
}

Test(upprobe, a_close_before_the_answer_and_an_answer_not_http)
{
    struct server s;

    pol.check.fall = 1;
    worker_with("api http://closing", 1);
    tcp_server(&s, "", 0);
    start(&s, "closing");
    WAIT_FOR(atomic_load(&rec->down));
    cr_assert_eq(last_result(), UPSTATE_CLOSED);
    server_close(&s);
    upprobe_stop();

    atomic_store(&rec->down, 0);
    tcp_server(&s, "SSH-2.0-OpenSSH_9.2\r\n", 0);
    start(&s, "closing");
    WAIT_FOR(atomic_load(&rec->down));
    cr_assert_eq(last_result(), UPSTATE_INVALID);
    server_close(&s);
}

Test(upprobe, unix_sockets)
{
    struct server s, missing;

    pol.check.fall = 1;
    worker_with("api unix:/app.sock", 1);
    unix_server(&s, "app.sock", "HTTP/1.1 200 OK\r\n\r\n", 1);
    start(&s, "localhost");
    WAIT_FOR(atomic_load(&rec->checks_ok) >= 1);
    cr_assert_geq(atomic_load(&rec->checks_ok), 1);
    cr_assert_eq(last_detail(), 200);
    server_close(&s);
    upprobe_stop();

    unix_server(&missing, "none.sock", NULL, 0);
    start(&missing, "localhost");
    WAIT_FOR(atomic_load(&rec->down));
    cr_assert(atomic_load(&rec->down));
    cr_assert_eq(last_result(), UPSTATE_CONNECT_REFUSED, "no socket there");
}

Test(upprobe, only_the_lease_holder_checks_and_another_takes_over)
{
    struct server s;
    pid_t other = getppid(); /* a live process: the worker that holds the lease */
    int64_t end, freed;

    pol.check.interval_ms = 50;
    worker_with("api http://leased", 1);
    tcp_server(&s, "HTTP/1.1 200 OK\r\n\r\n", 0);
    cr_assert(upstate_lease_take(rec, other, util_now_ms(), 60000));
    start(&s, "leased");
    /* About time itself: ten intervals without a check. */
    end = util_now_ms() + 10 * 50;
    while (util_now_ms() < end)
        h2o_evloop_run(loop, 10);
    cr_assert_eq(s.conns, 0, "the holder checks, not this worker");
    /* The holder died: the master frees its leases (the test plays the master). */
    process_role = ROLE_MASTER;
    upstate_worker_gone(-1, other);
    process_role = ROLE_WORKER;
    freed = util_now_ms();
    WAIT_FOR(s.requests >= 1);
    cr_assert_geq(s.requests, 1);
    cr_assert_lt(s.first_ms - freed, 1000, "at its next tick (50 ms), with room for a busy machine");
    cr_assert_eq(upstate_lease_holder(rec, util_now_ms()), getpid());
    server_close(&s);
}

Test(upprobe, no_checks_for_a_server_the_serving_config_does_not_check)
{
    struct server s;
    int64_t end;

    worker_with("api http://unchecked", 0);
    tcp_server(&s, "HTTP/1.1 200 OK\r\n\r\n", 0);
    start(&s, "unchecked");
    end = util_now_ms() + 10 * INTERVAL_MS;
    while (util_now_ms() < end)
        h2o_evloop_run(loop, 10);
    cr_assert_eq(s.conns, 0);
    cr_assert_eq(upstate_lease_holder(rec, util_now_ms()), 0);
    server_close(&s);
}

Test(upprobe, stop_gives_the_leases_up_and_ends_a_check_under_way)
{
    struct server s;

    pol.check.timeout_ms = 60000;
    worker_with("api http://slow", 1);
    tcp_server(&s, NULL, 0);
    start(&s, "slow");
    WAIT_FOR(s.nheld == 1);
    cr_assert_eq(s.nheld, 1);
    upprobe_stop();
    cr_assert_eq(upstate_lease_holder(rec, util_now_ms()), 0);
    cr_assert_eq(prober.loop, NULL);
    WAIT_FOR(s.nheld == 0);
    cr_assert_eq(s.nheld, 0, "its connection was closed");
    cr_assert_eq(atomic_load(&rec->checks_failed) + atomic_load(&rec->checks_ok), 0,
                 "no result from a dropped check");
    server_close(&s);
    h2o_evloop_run(loop, 0); /* frees the closed sockets */
}

Test(upprobe, targets_not_valid_are_refused)
{
    struct server s;
    struct upprobe_target t;

    worker_with("api http://x", 1);
    tcp_server(&s, NULL, 1);
    t = (struct upprobe_target){
        .addr = (struct sockaddr *)&s.addr, .addrlen = s.addrlen, .host = "x", .policy = &pol};
    t.idx = (int)(rec - upstate_get(0));
    pol.check.path = "healthz";
    cr_assert_eq(upprobe_start(loop, &t, 1), -1);
    cr_assert_eq(errno, EINVAL);
    pol.check.path = "/a b";
    cr_assert_eq(upprobe_start(loop, &t, 1), -1);
    pol.check.path = "/ok";
    t.host = "x\r\nEvil: 1";
    cr_assert_eq(upprobe_start(loop, &t, 1), -1);
    cr_assert_eq(prober.loop, NULL, "nothing started");
    /* TLS without the name to verify: refused. No path: valid, not checked. */
    t.host = "x";
    t.ssl_ctx = &t; /* never used: refused first */
    cr_assert_eq(upprobe_start(loop, &t, 1), -1);
    t.ssl_ctx = NULL;
    pol.check.path = NULL;
    cr_assert_eq(upprobe_start(loop, &t, 1), 0);
    cr_assert_eq(prober.nprobes, 0);
    server_close(&s);
}

/* In a worker's sandbox (a child process: the filter stays with it), a check connects,
 * writes, reads and closes; the child says how it went by its exit status. */
Test(upprobe, checks_run_in_the_sandbox)
{
    struct server ok, refusing;
    struct metrics_slot slot;
    struct conf c;
    char err[256];
    int status;
    pid_t pid;

    pol.check.fall = 1;
    worker_with("api http://sandboxed", 1);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        memset(&c, 0, sizeof(c));
        memset(&slot, 0, sizeof(slot));
        c.log_target = LOG_TARGET_STDERR;
        tcp_server(&ok, "HTTP/1.1 200 OK\r\n\r\n", 0);
        tcp_server(&refusing, NULL, 1);
        start(&ok, "sandboxed");
        if (sandbox_install(&c, &slot, err, sizeof(err)) == -1)
            _exit(3);
        WAIT_FOR(atomic_load(&rec->checks_ok) >= 2);
        if (atomic_load(&rec->checks_ok) < 2)
            _exit(4);
        upprobe_stop();
        start(&refusing, "sandboxed");
        WAIT_FOR(atomic_load(&rec->down));
        _exit(atomic_load(&rec->down) && last_result() == UPSTATE_CONNECT_REFUSED ? 0 : 5);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
}
