/* Upstream servers named by a host name, followed while percore runs. The master resolves
 * each name again and again (c-ares, in its poll loop: it never blocks there), as often as
 * the answer's TTL says, from 1 s up to the server's `resolve=` bound, and publishes the
 * addresses in a region shared with the workers; a worker reads them, without a system call,
 * when it takes or opens a connection. A failed lookup keeps the last addresses. */
#ifndef PERCORE_UPRESOLVE_H
#define PERCORE_UPRESOLVE_H

#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UPRESOLVE_NAMES_MAX 256   /* names followed at once, over every loaded config */
#define UPRESOLVE_ADDRS_MAX 8     /* addresses kept per name; more are left out */
#define UPRESOLVE_MIN_MS 1000     /* no name is looked up more often */
#define UPRESOLVE_DEFAULT_MS 10000 /* `resolve=`'s default: the longest wait, whatever the TTL */
#define UPRESOLVE_FDS_MAX 16      /* sockets c-ares may hold (ARES_GETSOCK_MAXNUM) */

union upresolve_addr {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
};

/* A name's addresses, sorted, without repeats; unused entries are zero. */
struct upresolve_set {
    unsigned n;
    union upresolve_addr a[UPRESOLVE_ADDRS_MAX];
};

/* One name's place in the shared region. */
struct upresolve_slot;

/* ---- master: the names (at load) ---- */

/* Follow host (port as text) for a server whose address at load was first (its family is
 * the one followed), looked up again at most bound_ms after the last time. Servers asking
 * for the same host, port and family share one slot, looked up as often as the least bound
 * of them asks; asking again (a reload) makes it looked up at once. Returns the slot, with
 * *id its holder's mark for upresolve_read and upresolve_release; NULL (logged) when no
 * slot is left: the server keeps first. */
struct upresolve_slot *upresolve_acquire(const char *host, const char *port,
                                         const struct sockaddr *first, int64_t bound_ms,
                                         uint64_t *id);
/* A server of a freed config (which asked for bound_ms) no longer follows its name. A slot no server follows is looked
 * up no more, and may go to another name later (the workers still reading it then see it is
 * no longer theirs). */
void upresolve_release(struct upresolve_slot *s, uint64_t id, int64_t bound_ms);

/* ---- master: the lookups (its poll loop) ---- */

/* The c-ares sockets to poll into pfd (room for UPRESOLVE_FDS_MAX); how many. */
nfds_t upresolve_pollfds(struct pollfd *pfd);
/* After poll: read the answers on those sockets (pfd as filled, with revents), expire
 * lookups that timed out and start those that are due. Publishes what changed. */
void upresolve_run(const struct pollfd *pfd, nfds_t n, int64_t now_ms);
/* When upresolve_run is due next (a lookup to start or to time out); INT64_MAX if never. */
int64_t upresolve_deadline(int64_t now_ms);
/* The sockets c-ares holds, into fds (room for UPRESOLVE_FDS_MAX), for a new worker to
 * close; how many. */
size_t upresolve_fds(int *fds);
/* Master, at exit: end the lookups and free the resolver. */
void upresolve_fini(void);

/* ---- worker ---- */

/* A worker's copy of one name's addresses. Zeroed before first use. */
struct upresolve_view {
    uint64_t seq;  /* the slot's version copied */
    unsigned next; /* round robin over the addresses, for new connections */
    struct upresolve_set set;
};

/* Bring v up to date with slot s (holder id): 1 when the addresses changed (also on the first
 * read), 0 when not (one atomic load), -1 when s is no longer id's (the name is not followed:
 * use the address from load). */
int upresolve_read(const struct upresolve_slot *s, uint64_t id, struct upresolve_view *v);
/* Whether a is one of set's addresses. */
int upresolve_has(const struct upresolve_set *set, const union upresolve_addr *a);
/* The length of a's sockaddr. */
socklen_t upresolve_addrlen(const union upresolve_addr *a);

#endif
