/* The PROXY protocol (haproxy's proxy-protocol.txt), versions 1 and 2: a load balancer
 * that speaks it sends, before anything of the connection's own, the client's address.
 * As a receiver: the parser is pure (unit tests and the fuzzer drive it); the reader,
 * worker only, takes the header off an accepted connection on a `proxy_protocol` listen
 * before TLS or HTTP start. As a sender (an upstream group's `proxy_protocol`): the
 * writers (proxyproto_send.c), pure, make the header a connection to an upstream server
 * starts with. */
#ifndef PERCORE_PROXYPROTO_H
#define PERCORE_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "h2o_inc.h"

/* A version 1 header is at most 107 bytes, CRLF included. */
#define PROXYPROTO_V1_MAX 107
/* A version 2 header may declare up to 16 + 65535 bytes; percore takes at most this much
 * (addresses and TLVs as load balancers send them fit many times over), and closes a
 * connection that declares more. */
#define PROXYPROTO_MAX 4096

struct proxyproto_hdr {
    int version;   /* 1 or 2 */
    int has_addr;  /* 0: LOCAL, UNKNOWN, or no IP address (the connection's stands) */
    struct sockaddr_storage src, dst;
    socklen_t srclen, dstlen;
};

/* Parse the header at the start of buf[0..len) into *h. Returns its length (what to
 * consume), 0 when what is there is a valid beginning but the header is not complete yet,
 * or -1 when it is no header or a malformed one, with a reason in *why (static text).
 * Version 2 TLVs are checked for framing and skipped; a version 1 line must be exact (one
 * space between fields, addresses of the family it names, decimal ports up to 65535,
 * CRLF). Never reads past len. */
ssize_t proxyproto_parse(const void *buf, size_t len, struct proxyproto_hdr *h,
                         const char **why);

/* The most bytes proxyproto_write_v1 and proxyproto_write_v2 write: a version 1 line is
 * at most 107 bytes, a version 2 header without TLVs at most 52. */
#define PROXYPROTO_OUT_MAX PROXYPROTO_V1_MAX

/* The header for a connection relayed for a client at src that came to dst (each an
 * AF_INET or AF_INET6 address, or NULL), into buf, which holds PROXYPROTO_OUT_MAX bytes;
 * returns its length. An IPv4-mapped address is written as the IPv4 one; when one
 * address is IPv6 and the other IPv4, the IPv4 one is written as mapped IPv6 (one family
 * per header). Version 1: "PROXY TCP4 SRC DST SPORT DPORT\r\n" (TCP6 for IPv6), or
 * "PROXY UNKNOWN\r\n" when an address is missing or of another family (a unix socket).
 * Version 2: the PROXY command with the INET or INET6 addresses and no TLVs, or where
 * version 1 says UNKNOWN the LOCAL command with the UNSPEC family and no address. Either
 * way the receiver keeps the connection's own addresses when it is told none. */
size_t proxyproto_write_v1(const struct sockaddr *src, const struct sockaddr *dst, void *buf);
size_t proxyproto_write_v2(const struct sockaddr *src, const struct sockaddr *dst, void *buf);

/* ---- worker ---- */

/* What to do with sock once its header has been taken: continue with TLS or HTTP. */
typedef void proxyproto_done_fn(h2o_socket_t *sock, void *arg);

/* Read the PROXY header from sock, just accepted (its data is the reader's until done is
 * called), within the handshake timeout of ctx (the address's context). On success the header is
 * consumed from sock->input, whatever followed it stays there, the peer address libh2o
 * reports becomes the header's source (unless LOCAL or UNKNOWN), and done(sock, arg) is
 * called. On a malformed header, one above PROXYPROTO_MAX, a timeout or an error the
 * socket is closed, with a log line naming the peer (rate-limited). */
void proxyproto_read(h2o_socket_t *sock, h2o_context_t *ctx, proxyproto_done_fn *done,
                     void *arg);

/* Close sock, an accepted connection that is refused before its header is read (a peer
 * not in trusted_proxies), with a log line naming the peer (rate-limited). */
void proxyproto_close(h2o_socket_t *sock, const char *why);

#endif
