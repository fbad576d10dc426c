/* The control socket, served by the master and used by `percore -s`. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"

#define CTL_ROOT_DIR "/run/percore"
#define CTL_WAIT_S 120             /* a reload waits for the new workers, bounded by the master */
#define CTL_READ_TIMEOUT_MS 10000  /* a client sends its line at once; a silent one goes */
#define CTL_ANSWER_MAX (1 << 20)   /* more than any real answer */

enum { DIR_MASTER, DIR_CLIENT };

/* ---- where: shared by both ends ---- */

static uint64_t
conf_hash(const char *conf_path)
{
    char real[PATH_MAX];
    const char *p = realpath(conf_path, real) != NULL ? real : conf_path;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h;
}

static int
ctl_dir(char *buf, size_t len)
{
    const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
    const char *tmp = getenv("TMPDIR");
    int n;

    if (rd != NULL && rd[0] == '/') /* systemd lists several with ':'; ours is the first */
        n = snprintf(buf, len, "%.*s", (int)strcspn(rd, ":"), rd);
    else if (geteuid() == 0)
        n = snprintf(buf, len, "%s", CTL_ROOT_DIR);
    else if (xdg != NULL && xdg[0] == '/')
        n = snprintf(buf, len, "%s/percore", xdg);
    else
        n = snprintf(buf, len, "%s/percore-%u", tmp != NULL && tmp[0] == '/' ? tmp : "/tmp",
                     (unsigned)geteuid());
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The socket's and the pidfile's paths for conf_path; -1 when they do not fit sun_path. */
static int
ctl_paths(const char *conf_path, char *dir, char *sock, char *pid, char *err, size_t errlen)
{
    unsigned long long h = (unsigned long long)conf_hash(conf_path);
    int n1, n2;

    if (ctl_dir(dir, CTL_PATH_MAX) == -1)
        goto toolong;
    n1 = snprintf(sock, CTL_PATH_MAX, "%s/%016llx.sock", dir, h);
    n2 = snprintf(pid, CTL_PATH_MAX, "%s/%016llx.pid", dir, h);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= CTL_PATH_MAX || (size_t)n2 >= CTL_PATH_MAX)
        goto toolong;
    return 0;
toolong:
    snprintf(err, errlen, "control socket path in '%s' is longer than a unix socket allows "
             "(%zu bytes)", dir, CTL_PATH_MAX - 1);
    return -1;
}

/* The directory must be a real directory that nobody but its owner may write, owned by
 * the master's user; a client also accepts root's, and root accepts any owner (root chose
 * the path: /run/percore or the unit's RuntimeDirectory=). */
static int
check_dir(const char *dir, int who, uid_t *owner, char *err, size_t errlen)
{
    uid_t me = geteuid();
    struct stat st;

    if (lstat(dir, &st) == -1) {
        snprintf(err, errlen, "control directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "control directory %s is not a directory", dir);
        return -1;
    }
    if (st.st_uid != me && (who == DIR_MASTER || (st.st_uid != 0 && me != 0))) {
        snprintf(err, errlen, "control directory %s belongs to uid %u, not to uid %u",
                 dir, (unsigned)st.st_uid, (unsigned)me);
        return -1;
    }
    if ((st.st_mode & 022) != 0) {
        snprintf(err, errlen, "control directory %s may be written by other users "
                 "(mode %04o); it must be private to uid %u", dir,
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        return -1;
    }
    if (owner != NULL)
        *owner = st.st_uid;
    return 0;
}

static void
unix_addr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, strlen(path) + 1); /* fits: ctl_paths checked */
}

static int
peer_cred(int fd, struct ucred *cred)
{
    socklen_t len = sizeof(*cred);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len);
}

static pid_t
read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long v;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    v = strtol(buf, NULL, 10);
    return v > 0 && v <= INT_MAX ? (pid_t)v : 0;
}

/* ---- the master's end ---- */

/* The lock says a master of this configuration lives; it goes with the process, so a
 * master that died leaves nothing that stops the next one. */
static int
lock_pidfile(struct ctl *c, char *err, size_t errlen)
{
    struct stat held, named;
    int fd;

    /* Retry when the file was unlinked by an exiting master between open and flock. */
    for (int tries = 0; tries < 3; tries++) {
        fd = open(c->pid_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd == -1) {
            snprintf(err, errlen, "%s: %s", c->pid_path, strerror(errno));
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
            int e = errno;
            pid_t pid = read_pid(fd);
            close(fd);
            if (e == EWOULDBLOCK)
                snprintf(err, errlen, "another percore (pid %d) is running with this "
                         "configuration: %s is locked", (int)pid, c->pid_path);
            else
                snprintf(err, errlen, "%s: flock: %s", c->pid_path, strerror(e));
            return -1;
        }
        if (fstat(fd, &held) == 0 && stat(c->pid_path, &named) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            (void)!ftruncate(fd, 0); /* no stale pid while this master starts */
            c->pidfd = fd;
            return 0;
        }
        close(fd);
    }
    snprintf(err, errlen, "%s: cannot lock it", c->pid_path);
    return -1;
}

/* The socket file is made 0600: only this user (and root) may connect. */
static int
bind_private(int fd, const struct sockaddr_un *sun)
{
    mode_t old = umask(0177);
    int r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int e = errno;

    umask(old);
    errno = e;
    return r;
}

/* A socket file at the path: a listener there (another process of this user) is an
 * error; one nobody listens on was left by a master that died, and goes. */
static int
remove_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
    struct ucred cred = {0};
    struct stat st;
    int fd;

    if (lstat(path, &st) == -1) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "control socket %s exists and is not a socket", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno == EAGAIN) {
        (void)peer_cred(fd, &cred);
        close(fd);
        snprintf(err, errlen, "control socket %s is in use by another process (pid %d, "
                 "uid %u)", path, (int)cred.pid, (unsigned)cred.uid);
        return -1;
    }
    if (errno != ECONNREFUSED) {
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    if (unlink(path) == -1 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove the stale control socket %s: %s", path,
                 strerror(errno));
        return -1;
    }
    log_info("removed the stale control socket %s", path);
    return 0;
}

static int
bind_socket(struct ctl *c, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    int r;

    unix_addr(c->sock_path, &sun);
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->lfd == -1) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    r = bind_private(c->lfd, &sun);
    if (r == -1 && errno == EADDRINUSE) {
        if (remove_stale(c->sock_path, &sun, err, errlen) == -1)
            return -1;
        r = bind_private(c->lfd, &sun);
    }
    if (r == -1) {
        snprintf(err, errlen, "control socket %s: bind: %s", c->sock_path, strerror(errno));
        return -1;
    }
    c->bound = 1;
    return 0;
}

int
ctl_open(struct ctl *c, const char *conf_path, char *err, size_t errlen)
{
    char dir[CTL_PATH_MAX];

    if (ctl_paths(conf_path, dir, c->sock_path, c->pid_path, err, errlen) == -1)
        return -1;
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the control directory %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    if (check_dir(dir, DIR_MASTER, NULL, err, errlen) == -1)
        return -1;
    if (lock_pidfile(c, err, errlen) == -1 || bind_socket(c, err, errlen) == -1) {
        ctl_close(c);
        return -1;
    }
    return 0;
}

int
ctl_start(struct ctl *c, char *err, size_t errlen)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

    /* The pid first: a client that gets through finds it. listen() here, in the master
     * itself, so that SO_PEERCRED gives clients this pid. */
    if (pwrite(c->pidfd, buf, (size_t)n, 0) != n) {
        snprintf(err, errlen, "%s: %s", c->pid_path, strerror(errno));
        return -1;
    }
    if (listen(c->lfd, 16) == -1) {
        snprintf(err, errlen, "control socket %s: listen: %s", c->sock_path, strerror(errno));
        return -1;
    }
    return 0;
}

void
ctl_reply(int cfd, const char *line)
{
    static char nl[] = "\n";
    size_t len = strlen(line);
    struct iovec iov[2] = {{(void *)line, len}, {nl, 1}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    int size = 2 * CTL_REPLY_MAX;

    /* A long text (the status of many upstream servers) goes in one piece: the socket's
     * buffer is made room for, as far as net.core.wmem_max allows. */
    if (len > 16 * 1024)
        (void)setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    (void)!sendmsg(cfd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

size_t
ctl_pollfds(const struct ctl *c, struct pollfd *pfd)
{
    size_t n = 0;

    pfd[n++] = (struct pollfd){.fd = c->lfd, .events = POLLIN};
    for (size_t i = 0; i < c->npending; i++)
        pfd[n++] = (struct pollfd){.fd = c->pending[i].fd, .events = POLLIN};
    return n;
}

/* Read what a client has sent. 1: its line is complete (NUL-terminated, without the
 * newline) in cl->buf; 0: wait for more; -1: drop it. */
static int
read_line(struct ctl_client *cl)
{
    size_t room = sizeof(cl->buf) - 1 - cl->len;
    ssize_t n = read(cl->fd, cl->buf + cl->len, room);
    char *nl;

    if (n == -1)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0)
        return -1; /* gone before its newline */
    nl = memchr(cl->buf + cl->len, '\n', (size_t)n);
    cl->len += (size_t)n;
    if (nl == NULL) {
        if (cl->len < sizeof(cl->buf) - 1)
            return 0;
        ctl_reply(cl->fd, "error: command line too long");
        return -1;
    }
    *nl = '\0';
    if (nl > cl->buf && nl[-1] == '\r')
        nl[-1] = '\0';
    return 1;
}

/* Hands a complete line to fn or closes the client; 1 when it is done with either. */
static int
serve_client(struct ctl_client *cl, ctl_cmd_fn *fn)
{
    int r = read_line(cl), fd = cl->fd;

    if (r == 0)
        return 0;
    cl->fd = -1; /* no longer pending, even while fn runs (a reload forks workers) */
    if (r == 1)
        fn(fd, cl->buf);
    else
        close(fd);
    return 1;
}

static void
compact(struct ctl *c)
{
    size_t k = 0;

    for (size_t i = 0; i < c->npending; i++)
        if (c->pending[i].fd != -1)
            c->pending[k++] = c->pending[i];
    c->npending = k;
}

/* Make room for one more client: the one that has waited longest goes. */
static void
evict_oldest(struct ctl *c)
{
    size_t old = 0;

    for (size_t i = 1; i < c->npending; i++)
        if (c->pending[i].deadline_ms < c->pending[old].deadline_ms)
            old = i;
    log_warnx("control socket: %d clients have not sent a command, dropping the oldest",
              CTL_PENDING_MAX);
    close(c->pending[old].fd);
    c->pending[old].fd = -1;
    compact(c);
}

/* Root and the master's own user only: the file's mode says the same, this says it
 * whatever the directory's. */
/* The parent of pid, from /proc/PID/stat (readable whatever the process), or -1. */
static pid_t
parent_of(pid_t pid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    long ppid;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold anything, ')' included. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %ld", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

/* Whether pid is this process's child, grandchild, ... (bounded walk). */
static int
descends_from_self(pid_t pid)
{
    pid_t self = getpid();

    for (int depth = 0; depth < 32 && pid > 1; depth++) {
        pid = parent_of(pid);
        if (pid == self)
            return 1;
    }
    return 0;
}

static int
client_allowed(int fd)
{
    struct ucred cred;

    if (peer_cred(fd, &cred) == -1)
        return 0;
    if (cred.uid != 0 && cred.uid != geteuid())
        return 0;
    /* Workers run as the master's user: one taken over must not reload or stop it. */
    return !descends_from_self(cred.pid);
}

static void
accept_clients(struct ctl *c, int64_t now, ctl_cmd_fn *fn)
{
    /* A bounded batch per wakeup; the rest wait in the backlog for the next turn. */
    for (int i = 0; i < CTL_PENDING_MAX; i++) {
        struct ctl_client *cl;
        /* cppcheck-suppress nullPointer ; accept(2) takes NULL addr and addrlen together
         * (cppcheck's gnu.cfg marks addrlen not-null) */
        int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd == -1)
            return;
        if (!client_allowed(fd)) {
            ctl_reply(fd, "error: permission denied");
            close(fd);
            continue;
        }
        if (c->npending == CTL_PENDING_MAX)
            evict_oldest(c);
        cl = &c->pending[c->npending++];
        *cl = (struct ctl_client){.fd = fd, .deadline_ms = now + CTL_READ_TIMEOUT_MS};
        /* Its line is usually there already. */
        if (serve_client(cl, fn))
            c->npending--;
    }
}

void
ctl_on_events(struct ctl *c, const struct pollfd *pfd, int64_t now, ctl_cmd_fn *fn)
{
    for (size_t i = 0; i < c->npending; i++) {
        const struct pollfd *p = &pfd[1 + i];
        if (p->fd == c->pending[i].fd && (p->revents & (POLLIN | POLLHUP | POLLERR)))
            (void)serve_client(&c->pending[i], fn);
    }
    compact(c);
    if (pfd[0].fd == c->lfd && (pfd[0].revents & POLLIN))
        accept_clients(c, now, fn);
}

int64_t
ctl_deadline(const struct ctl *c)
{
    int64_t d = INT64_MAX;

    for (size_t i = 0; i < c->npending; i++)
        if (c->pending[i].deadline_ms < d)
            d = c->pending[i].deadline_ms;
    return d;
}

void
ctl_expire(struct ctl *c, int64_t now)
{
    for (size_t i = 0; i < c->npending; i++) {
        if (c->pending[i].deadline_ms <= now) {
            ctl_reply(c->pending[i].fd, "error: no command received in time");
            close(c->pending[i].fd);
            c->pending[i].fd = -1;
        }
    }
    compact(c);
}

size_t
ctl_fds(const struct ctl *c, int *fds)
{
    size_t n = 0;

    if (c->lfd != -1)
        fds[n++] = c->lfd;
    if (c->pidfd != -1)
        fds[n++] = c->pidfd;
    for (size_t i = 0; i < c->npending; i++)
        if (c->pending[i].fd != -1)
            fds[n++] = c->pending[i].fd;
    return n;
}

void
ctl_close(struct ctl *c)
{
    for (size_t i = 0; i < c->npending; i++)
        close(c->pending[i].fd);
    c->npending = 0;
    /* The files go while the lock is still held, so no new master's files are removed. */
    if (c->lfd != -1) {
        if (c->bound)
            (void)unlink(c->sock_path);
        close(c->lfd);
        c->lfd = -1;
        c->bound = 0;
    }
    if (c->pidfd != -1) {
        (void)unlink(c->pid_path);
        close(c->pidfd);
        c->pidfd = -1;
    }
}

/* ---- the client's end ---- */

/* The peer must be the master named by the pidfile, running as this user, root, or the
 * owner of the private directory the socket is in. */
static int
check_master(int fd, uid_t dir_owner, const char *sock, const char *pidpath)
{
    struct ucred cred;
    pid_t want = 0;
    int pfd;

    if (peer_cred(fd, &cred) == -1) {
        fprintf(stderr, "percore: control socket %s: SO_PEERCRED: %s\n", sock, strerror(errno));
        return -1;
    }
    if (cred.uid != geteuid() && cred.uid != 0 && cred.uid != dir_owner) {
        fprintf(stderr, "percore: control socket %s is held by uid %u, not by percore's "
                "user; not using it\n", sock, (unsigned)cred.uid);
        return -1;
    }
    pfd = open(pidpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (pfd != -1) {
        want = read_pid(pfd);
        close(pfd);
    }
    if (want == 0 || cred.pid != want) {
        fprintf(stderr, "percore: control socket %s is held by pid %d, not by the master "
                "named in %s%s; not using it\n", sock, (int)cred.pid, pidpath,
                pfd == -1 ? " (missing)" : "");
        return -1;
    }
    return 0;
}

static int
ctl_connect(const char *conf_path)
{
    char dir[CTL_PATH_MAX], sock[CTL_PATH_MAX], pid[CTL_PATH_MAX], err[512];
    struct sockaddr_un sun;
    uid_t owner;
    int fd;

    if (ctl_paths(conf_path, dir, sock, pid, err, sizeof(err)) == -1 ||
        check_dir(dir, DIR_CLIENT, &owner, err, sizeof(err)) == -1) {
        fprintf(stderr, "percore: no running percore for '%s': %s\n", conf_path, err);
        return -1;
    }
    unix_addr(sock, &sun);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        fprintf(stderr, "percore: no running percore for '%s': control socket %s: %s\n",
                conf_path, sock, strerror(errno));
        goto fail;
    }
    if (check_master(fd, owner, sock, pid) == -1)
        goto fail;
    return fd;
fail:
    if (fd != -1)
        close(fd);
    return -1;
}

/* The last line is the verdict: "ok", "failed[: why]" or "error: why". */
static int
valid_verdict(const char *s)
{
    return strcmp(s, "ok") == 0 || strcmp(s, "failed") == 0 ||
           strncmp(s, "failed: ", 8) == 0 || strncmp(s, "error: ", 7) == 0;
}

/* Read the whole answer (until the master closes) into *out; -1 with a message. */
static int
read_answer(int fd, char **out, size_t *outlen)
{
    FILE *mem = open_memstream(out, outlen);
    char buf[4096];
    ssize_t n;

    if (mem == NULL) {
        fprintf(stderr, "percore: open_memstream: %s\n", strerror(errno));
        return -1;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0 && ftell(mem) < CTL_ANSWER_MAX)
        fwrite(buf, 1, (size_t)n, mem);
    if (n == -1)
        fprintf(stderr, "percore: no answer from the master: %s\n",
                errno == EAGAIN ? "timed out" : strerror(errno));
    else if (n > 0)
        fprintf(stderr, "percore: the master's answer is too long\n");
    fclose(mem);
    if (n != 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* Check the answer text[0..len) and cut its verdict off: *verdict points to it, and text
 * ends before it (NUL-terminated). -1 with a message when it is not a valid answer. */
static int
split_answer(char *text, size_t len, char **verdict)
{
    char *v;

    if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len) != NULL) {
        fprintf(stderr, "percore: %s from the master\n",
                len == 0 ? "no answer" : "not a valid answer");
        return -1;
    }
    text[len - 1] = '\0';
    v = strrchr(text, '\n');
    v = v != NULL ? v + 1 : text;
    if (!valid_verdict(v)) {
        fprintf(stderr, "percore: not a valid answer from the master: '%.80s'\n", v);
        return -1;
    }
    *verdict = v;
    return 0;
}

/* Lines before the verdict go to stdout after "ok", to stderr otherwise. */
static int
print_answer(char *text, size_t len)
{
    char *verdict;

    if (split_answer(text, len, &verdict) == -1)
        return 1;
    if (verdict > text)
        fprintf(strcmp(verdict, "ok") == 0 ? stdout : stderr, "%.*s",
                (int)(verdict - text), text);
    if (strcmp(verdict, "ok") == 0)
        return 0;
    fprintf(stderr, "percore: %s\n", verdict);
    return 1;
}

/* Send cmd to the master of conf_path and read its whole answer into *out (malloc'd). -1
 * with a message. */
static int
request(const char *conf_path, const char *cmd, char **out, size_t *outlen)
{
    struct timeval tv = {.tv_sec = CTL_WAIT_S};
    char line[CTL_LINE_MAX];
    int fd, n, r;

    /* A master that goes away mid-command is an error to report, not a signal to die of. */
    signal(SIGPIPE, SIG_IGN);
    fd = ctl_connect(conf_path);
    if (fd == -1)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = snprintf(line, sizeof(line), "%s\n", cmd);
    /* One write: the master reads a line, however it arrives, but one is all it needs. */
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        fprintf(stderr, "percore: control socket: send: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    r = read_answer(fd, out, outlen);
    close(fd);
    return r;
}

int
ctl_command(const char *conf_path, const char *cmd)
{
    char *out = NULL;
    size_t outlen = 0;
    int rc;

    if (strcmp(cmd, "reload") != 0 && strcmp(cmd, "status") != 0) {
        fprintf(stderr, "percore: -s: unknown command '%s' (expected 'reload', 'status' or "
                "'top')\n", cmd);
        return 1;
    }
    rc = request(conf_path, cmd, &out, &outlen) == -1 ? 1 : print_answer(out, outlen);
    free(out);
    return rc;
}

int
ctl_query(const char *conf_path, const char *cmd, char **text)
{
    char *out = NULL, *verdict;
    size_t outlen = 0;

    *text = NULL;
    if (request(conf_path, cmd, &out, &outlen) == -1 ||
        split_answer(out, outlen, &verdict) == -1)
        goto fail;
    if (strcmp(verdict, "ok") != 0) {
        fprintf(stderr, "percore: %s\n", verdict);
        goto fail;
    }
    *verdict = '\0'; /* the lines before it, their last newline included */
    *text = out;
    return 0;
fail:
    free(out);
    return -1;
}
