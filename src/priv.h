/* Workers' privileges: the master checks at start and reload that `user` can be honoured;
 * each worker, once set up, drops to it. */
#ifndef PERCORE_PRIV_H
#define PERCORE_PRIV_H

#include <stddef.h>

struct conf;

/* Master: 0 when workers can become c's user (percore is root, or already runs as that
 * user and group), else -1 with the reason in err. */
int priv_check(const struct conf *c, char *err, size_t errlen);
/* Worker: drop to c's user, group and no supplementary groups, with no capabilities and
 * no_new_privs. 0, or -1 with the reason in err; nothing to do without `user` or when
 * already that user. */
int priv_drop(const struct conf *c, char *err, size_t errlen);

#endif
