/* Active health checks of upstream servers, run by the workers on their event loops, once
 * per instance: every worker has a timer per server, but only the worker holding the
 * server's lease (upstate.h) checks it. A check connects, sends
 * `GET PATH HTTP/1.1` with Host, `Connection: close` and `User-Agent: percore-health`
 * (over TLS, verified as requests are, for an https server), and reads the status line,
 * all within the check's timeout; its result goes to the
 * server's record, where fall and rise turn it down or up. A worker that dies loses its
 * leases (the master frees them), and another takes them over at its next tick. */
#ifndef PERCORE_UPPROBE_H
#define PERCORE_UPPROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "h2o_inc.h"

struct upstate_policy;
struct upresolve_slot;

struct upprobe_target {
    int idx;                     /* the server's record (upstate_register's index) */
    const struct sockaddr *addr; /* TCP over IPv4 or IPv6, or a unix socket */
    socklen_t addrlen;
    const char *host;                    /* the Host header's value */
    const struct upstate_policy *policy; /* its check part; no check.path: not checked */
    void *ssl_ctx; /* an https server's (SSL_CTX, its group's): checked over TLS */
    const char *tls_name; /* ... the name its certificate must have, sent by SNI */
    int proxy_protocol;   /* 1, 2: each check starts with a PROXY header (LOCAL, no client) */
    /* A host name the master follows (upresolve.h), or NULL: each check goes to one of its
     * addresses then, in turn, and to addr only while the name is not followed. */
    const struct upresolve_slot *rslot;
    uint64_t rid;
};

/* Worker, once, before its loop runs: check each target from now on (the first check at
 * the loop's first turn) whenever this worker holds its record's lease. Everything is
 * copied. -1 (errno EINVAL, nothing started) when a target is not valid: a path that does
 * not start with '/' or has a space or a control character, a host with a control
 * character, an address longer than a sockaddr_storage, an interval or a timeout not
 * above 0. */
int upprobe_start(h2o_loop_t *loop, const struct upprobe_target *targets, size_t n);
/* Stop checking (a draining worker): checks under way are dropped, the leases given up,
 * the timers gone, so the loop may be destroyed. No-op when not started. */
void upprobe_stop(void);

#endif
