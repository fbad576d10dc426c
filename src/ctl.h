/* The control socket: how `percore -s reload` asks the running master to reload and waits
 * for the result. An abstract unix socket named after the config file's real path, so
 * it needs no directory and vanishes with the master; only root or the master's own user
 * may use it. */
#ifndef PERCORE_CTL_H
#define PERCORE_CTL_H

/* Master: listen for commands; returns the fd, or -1 (logged; percore runs without it). */
int ctl_listen(const char *conf_path);
/* Master: accept one client and read its command line ("reload", "status") into cmd.
 * Returns the client fd, or -1 for a client that is refused or silent. */
int ctl_accept(int lfd, char *cmd, size_t len);
/* Master: send one line to a client (a trailing newline is added). */
void ctl_reply(int cfd, const char *line);

/* Client: send cmd to the master of conf_path, print its answer; exit status 0 when the
 * last line starts with "ok", 1 otherwise. */
int ctl_command(const char *conf_path, const char *cmd);

#endif
