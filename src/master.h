/* The master process: owns the listeners, forks one worker per slot, respawns, reloads and
 * stops them, and speaks to systemd. It never serves a request itself. */
#ifndef PERCORE_MASTER_H
#define PERCORE_MASTER_H

#include "conf.h"

struct master_opts {
    const char *conf_path;
    unsigned workers_override; /* -w N, 0 = take the config's */
};

/* Take the sockets systemd passed (socket activation and the fd store); fills socks with
 * the names that services may claim. Call once, before loading the config. */
void master_adopt_sockets(struct conf_sockets *socks);
/* Open every listener of conf and the control socket; exits with a message on failure
 * (before any fork). */
void master_open_listeners(struct conf *conf, const struct master_opts *opts);
/* Serve until stopped; takes ownership of conf. Returns the exit status. */
int master_run(struct conf *conf, const struct master_opts *opts);

#endif
