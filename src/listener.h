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

/* Where a group stands while a config is applied (see sockets.c). */
enum listener_mark {
    LISTENER_UNNAMED, /* the config being applied does not name it: closed if it commits */
    LISTENER_NAMED,   /* named by the config being applied, or by the serving one */
    LISTENER_OPENED,  /* opened for the config being applied: closed again if it fails */
};

/* A reuseport group: nfds sockets bound to one address, fds[i] polled by worker slot i.
 * Owned by the master for its whole life, so no socket closes under a reload or crash. */
struct listener {
    struct listen_addr addr;
    int *fds;
    size_t nfds;
    enum listener_mark mark;
    int activated; /* passed by systemd: one socket that every worker polls */
    char *owner;   /* name of the service it serves */
};

/* Where a worker slot polls l: its own socket, or the one shared activated socket. */
static inline int
listener_fd_for_slot(const struct listener *l, size_t slot)
{
    return l->activated ? l->fds[0] : l->fds[slot];
}

/* Fills a with the local address of a listening socket fd; -1 if it is not one. */
int listener_addr_of_fd(int fd, struct listen_addr *a);
/* The fd store name of slot `slot` of a group on a ("L.127.0.0.1_8080.0"; ':' is not
 * allowed in FDNAME=), and the reverse; -1 if name is not one of ours. */
void listener_store_name(const struct listen_addr *a, size_t slot, char *buf, size_t len);
int listener_parse_store_name(const char *name, char *addrtext, size_t len, size_t *slot);

/* Fail with a message if another process already listens on addr (a same-uid process with
 * SO_REUSEPORT would otherwise silently share the port). */
int listener_probe(const struct listen_addr *addr, char *err, size_t errlen);
/* A socket kept from an earlier run for (addr, slot), or -1 to open a new one; arg is the
 * one given to listener_resize. */
typedef int listener_take_fn(void *arg, const struct listen_addr *a, size_t slot);
/* Grow or shrink the group to nslots sockets, taking kept ones from take (may be NULL)
 * before opening new ones; -1 with a message in err (the sockets opened so far stay). */
int listener_resize(struct listener *l, size_t nslots, listener_take_fn *take, void *arg,
                    char *err, size_t errlen);
void listener_close(struct listener *l);

#endif
