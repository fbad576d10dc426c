/* The master's listening sockets: one reuseport group per address (a socket per worker
 * slot), kept in systemd's fd store so that a restart finds them open, or adopted from
 * socket activation (one socket that every worker polls). Runs in the master only; workers
 * inherit the groups at fork. */
#ifndef PERCORE_SOCKETS_H
#define PERCORE_SOCKETS_H

#include <stddef.h>

#include "conf.h"
#include "listener.h"

struct kept_fd;

/* Owned by the master (zero it before use); sockets_free releases all of it. */
struct sockets {
    struct listener *groups; /* every address of the serving config, and a reload's */
    size_t ngroups;
    struct kept_fd *kept; /* from the fd store, until a group claims them */
    size_t nkept;
    char **names; /* FileDescriptorName= of the activated sockets */
    size_t nnames;
};

/* Take the sockets systemd passed (socket activation and the fd store). Call once, before
 * the first config is loaded; exits with a message if one is not a listening TCP socket. */
void sockets_adopt(struct sockets *s);
/* The names that services may claim instead of `listen`, for conf_load; valid until
 * sockets_free. */
struct conf_sockets sockets_names(const struct sockets *s);

/* First start: open every address of c with nslots sockets, reusing those from the fd
 * store, and close what the store kept that c does not name. -1 with a message in err. */
int sockets_open(struct sockets *s, const struct conf *c, unsigned nslots, char *err,
                 size_t errlen);

/* A reload, in three steps: sockets_prepare makes sure every address of c has a group of
 * at least nslots sockets (-1 with a message in err); then either sockets_commit, once c
 * serves, closes the groups c does not name and shrinks the others to nslots, or
 * sockets_rollback, when the reload failed (also after a failed sockets_prepare), closes
 * the groups opened for c. Either leaves every group marked LISTENER_NAMED. */
int sockets_prepare(struct sockets *s, const struct conf *c, unsigned nslots, char *err,
                    size_t errlen);
void sockets_commit(struct sockets *s, unsigned nslots);
void sockets_rollback(struct sockets *s);

void sockets_free(struct sockets *s);

#endif
