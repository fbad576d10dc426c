/* The control socket, served by the master and used by `percore -s`. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"

#define CTL_WAIT_S 120 /* a reload waits for the new workers, bounded by the master */

/* "\0percore/<fnv1a-64 of the config's real path>" */
static socklen_t
ctl_addr(const char *conf_path, struct sockaddr_un *sun)
{
    char real[PATH_MAX];
    const char *p = realpath(conf_path, real) != NULL ? real : conf_path;
    uint64_t h = 0xcbf29ce484222325ULL;
    int n;

    for (; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "percore/%016llx",
                 (unsigned long long)h);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int
ctl_listen(const char *conf_path)
{
    struct sockaddr_un sun;
    socklen_t len = ctl_addr(conf_path, &sun);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd == -1)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sun, len) == -1 || listen(fd, 16) == -1)
        goto fail;
    return fd;
fail:
    log_warn("control socket for '%s' (percore -s will not work), ignoring", conf_path);
    if (fd != -1)
        close(fd);
    return -1;
}

int
ctl_accept(int lfd, char *cmd, size_t len)
{
    struct timeval tv = {.tv_sec = 1};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    ssize_t n;
    int fd;

    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1)
        return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == -1 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        ctl_reply(fd, "error: permission denied");
        close(fd);
        return -1;
    }
    /* Clients send their command at once; a silent one must not stall the master. */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = read(fd, cmd, len - 1);
    if (n <= 0) {
        close(fd);
        return -1;
    }
    cmd[n] = '\0';
    cmd[strcspn(cmd, "\r\n")] = '\0';
    return fd;
}

void
ctl_reply(int cfd, const char *line)
{
    size_t len = strlen(line);

    (void)!send(cfd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)!send(cfd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int
ctl_command(const char *conf_path, const char *cmd)
{
    struct sockaddr_un sun;
    socklen_t len = ctl_addr(conf_path, &sun);
    struct timeval tv = {.tv_sec = CTL_WAIT_S};
    char buf[4096], last[1024] = "";
    char *out = NULL;
    size_t have = 0, outlen = 0;
    FILE *mem;
    ssize_t n;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1 || connect(fd, (struct sockaddr *)&sun, len) == -1) {
        fprintf(stderr, "percore: no running percore for '%s': %s\n", conf_path,
                strerror(errno));
        return 1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* One send: the master reads the command once and may answer (a config error) and
     * close before a second write, which would then kill this process with SIGPIPE. */
    snprintf(buf, sizeof(buf), "%s\n", cmd);
    if (send(fd, buf, strlen(buf), MSG_NOSIGNAL) == -1) {
        fprintf(stderr, "percore: control socket: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    /* The last line is the verdict ("ok" or "failed"); the lines before it go to stdout
     * after a success and to stderr after a failure. */
    mem = open_memstream(&out, &outlen);
    if (mem == NULL) {
        close(fd);
        return 1;
    }
    while ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
        char *line = buf, *nl;
        have += (size_t)n;
        buf[have] = '\0';
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (last[0] != '\0')
                fprintf(mem, "%s\n", last);
            snprintf(last, sizeof(last), "%s", line);
            line = nl + 1;
        }
        have = strlen(line);
        memmove(buf, line, have + 1);
        if (have == sizeof(buf) - 1)
            have = 0;
    }
    close(fd);
    fclose(mem);
    if (last[0] == '\0') {
        fprintf(stderr, "percore: no answer from the master%s%s\n", n == -1 ? ": " : "",
                n == -1 ? strerror(errno) : "");
        free(out);
        return 1;
    }
    fputs(out, strcmp(last, "ok") == 0 ? stdout : stderr);
    if (strcmp(last, "ok") != 0)
        fprintf(stderr, "percore: %s\n", last);
    free(out);
    return strcmp(last, "ok") == 0 ? 0 : 1;
}
