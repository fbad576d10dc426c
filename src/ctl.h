/* The control socket: how `percore -s reload` asks the running master to reload and waits
 * for the result. A unix socket "<hash>.sock", the hash being of the configuration file's
 * real path so that two instances never meet, in a directory that only percore's user may
 * write: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else /run/percore for root,
 * else $XDG_RUNTIME_DIR/percore, else ${TMPDIR:-/tmp}/percore-<uid>. Beside it
 * "<hash>.pid", locked for the master's whole life, names the process a client must find
 * behind the socket. Each end checks the other's credentials (SO_PEERCRED). */
#ifndef PERCORE_CTL_H
#define PERCORE_CTL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#define CTL_PENDING_MAX 16 /* clients accepted whose command line is not complete yet */
#define CTL_LINE_MAX 64    /* the longest command line, newline included */
#define CTL_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* An accepted client still sending its command line. */
struct ctl_client {
    int fd;
    size_t len;
    int64_t deadline_ms; /* dropped when its line is not complete by then */
    char buf[CTL_LINE_MAX];
};

/* The master's end; zero it and set lfd and pidfd to -1 before ctl_open. ctl_close
 * releases all of it. */
struct ctl {
    int lfd;   /* the listening socket */
    int pidfd; /* the pidfile, locked while this master lives */
    int bound; /* lfd made the socket file, so ctl_close removes it */
    char sock_path[CTL_PATH_MAX];
    char pid_path[CTL_PATH_MAX];
    struct ctl_client pending[CTL_PENDING_MAX];
    size_t npending;
};

/* A complete command line from client fd; the callee owns fd from then on. */
typedef void ctl_cmd_fn(int fd, const char *cmd);

/* Master, before detaching: take the pidfile's lock and bind the socket, replacing the
 * socket file of a master that died. -1 with a message in err when the directory is not
 * private, another master of this configuration runs, or another process listens there. */
int ctl_open(struct ctl *c, const char *conf_path, char *err, size_t errlen);
/* Master, in its final process: record its pid and listen. -1 with a message in err. */
int ctl_start(struct ctl *c, char *err, size_t errlen);
/* The fds to poll for reading, in this order: the listener, then each pending client.
 * Fills at most 1 + CTL_PENDING_MAX entries; returns how many. */
size_t ctl_pollfds(const struct ctl *c, struct pollfd *pfd);
/* Act on the poll results of the fds ctl_pollfds gave: read what clients sent, accept new
 * ones; never blocks. Calls fn for each complete command line. */
void ctl_on_events(struct ctl *c, const struct pollfd *pfd, int64_t now, ctl_cmd_fn *fn);
/* The earliest client deadline (INT64_MAX when none) and the drop of those past it. */
int64_t ctl_deadline(const struct ctl *c);
void ctl_expire(struct ctl *c, int64_t now);
/* The master's own fds here, for a worker to close; fds needs 2 + CTL_PENDING_MAX. */
size_t ctl_fds(const struct ctl *c, int *fds);
/* Close everything and remove the files this master made. */
void ctl_close(struct ctl *c);
/* The longest text one ctl_reply may send: it fits in a client socket's send buffer. */
#define CTL_REPLY_MAX (256 * 1024)
/* Send one line, or several joined by newlines (at most CTL_REPLY_MAX bytes), to a client
 * (a trailing newline is added), never blocking. */
void ctl_reply(int cfd, const char *line);

/* Client: send cmd to the master of conf_path and print its answer. Returns the exit
 * status: 0 when the answer ends in "ok", 1 on any failure, each with a message. */
int ctl_command(const char *conf_path, const char *cmd);
/* Client: send cmd to the master of conf_path. 0 with the lines of its answer before the
 * verdict "ok" in *text (malloc'd, NUL-terminated, each line ending in a newline; the
 * caller frees it); -1 after printing the failure (no master, another verdict). */
int ctl_query(const char *conf_path, const char *cmd, char **text);

#endif
