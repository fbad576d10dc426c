/* Listening sockets: address parsing, and the master's reuseport groups (one socket per
 * worker slot per address). */
#ifndef PERCORE_LISTENER_H
#define PERCORE_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

#define LISTEN_ADDR_TEXT 64

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[LISTEN_ADDR_TEXT]; /* "127.0.0.1:8080", "[::1]:8080" */
};

/* Parse "IP:PORT", "[IPv6]:PORT", "*:PORT", "PORT" or "HOST:PORT" into one or more addresses
 * (*out, malloc'ed, owned by the caller). "*" and a bare port mean both 0.0.0.0 and [::].
 * On error returns -1 with a message in err. */
int listener_parse_addr(const char *spec, struct listen_addr **out, size_t *n, char *err,
                        size_t errlen);
/* Nonzero when binding a and b at once would clash (same address, or a wildcard and a
 * specific address of the same family and port). */
int listener_addr_overlaps(const struct listen_addr *a, const struct listen_addr *b);
int listener_addr_equal(const struct listen_addr *a, const struct listen_addr *b);

/* A reuseport group: nfds sockets bound to one address, fds[i] polled by worker slot i.
 * Owned by the master for its whole life, so no socket closes under a reload or crash. */
struct listener {
    struct listen_addr addr;
    int *fds;
    size_t nfds;
    int used; /* mark for reload: still named by the config being applied */
};

/* Fail with a message if another process already listens on addr (a same-uid process with
 * SO_REUSEPORT would otherwise silently share the port). */
int listener_probe(const struct listen_addr *addr, char *err, size_t errlen);
/* Grow or shrink the group to nslots sockets; -1 with a message in err (group unchanged
 * in size for the sockets that could not be opened). */
int listener_resize(struct listener *l, size_t nslots, char *err, size_t errlen);
void listener_close(struct listener *l);

#endif
