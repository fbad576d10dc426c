/* The client's address as percore believes it: the connection's peer (the PROXY header's
 * source on a `proxy_protocol` listen), or, when that peer is one of the service's
 * `trusted_proxies`, the address X-Forwarded-For names beyond the trusted hops.
 *
 * The networks are parsed by the master at load (conf.c) and matched by workers; the
 * parsing, matching and walking functions are pure, the request ones worker only. With no
 * service trusting any proxy, a request costs one branch more than getpeername. */
#ifndef PERCORE_CLIENTADDR_H
#define PERCORE_CLIENTADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "h2o_inc.h"

struct conf;
struct conf_service;

/* An IPv4 or IPv6 network (a lone address is a /32 or /128). An IPv4-mapped IPv6
 * network of /96 or longer is kept as the IPv4 one, and mapped addresses are matched as
 * IPv4, so a dual-stack socket's peers match the IPv4 networks. */
struct ipnet {
    sa_family_t family;    /* AF_INET or AF_INET6 */
    unsigned char bits;    /* prefix length */
    unsigned char addr[16]; /* network order; the first 4 for AF_INET; zero past bits */
};

/* At most this many networks in one block's `trusted_proxies` lines. */
#define CLIENTADDR_MAX_NETS 1024
/* X-Forwarded-For entries looked at per request, from the right: past this many trusted
 * ones the last is taken (a chain that long is no real one, and the walk stays bounded). */
#define CLIENTADDR_MAX_HOPS 64

/* Parse "10.0.0.0/8", "192.0.2.7", "2001:db8::/32" or "::1" into *net. -1 with a message
 * in err when it is no address, its prefix is too long for its family, or it has bits set
 * past its prefix (the message then suggests the network meant). */
int clientaddr_parse_net(const char *s, struct ipnet *net, char *err, size_t errlen);
/* The text of net as written back ("10.0.0.0/8", "::1/128"), in buf. */
const char *clientaddr_net_text(const struct ipnet *net, char *buf, size_t len);

/* Whether sa (AF_INET or AF_INET6; any other family never) is in one of nets[0..n). */
int clientaddr_match(const struct ipnet *nets, size_t n, const struct sockaddr *sa);

/* Parse one X-Forwarded-For entry ("192.0.2.1", "192.0.2.1:80", "2001:db8::1",
 * "[2001:db8::1]", "[2001:db8::1]:80"; blanks around it are ignored) into *ss (the port 0
 * when none is given); its length, or 0 when it is none of these. */
socklen_t clientaddr_parse_entry(const char *s, size_t len, struct sockaddr_storage *ss);

/* The walk over the X-Forwarded-For lines of headers (several lines make one list, in
 * order) from the right, for a request whose peer *ss (of *len) is in nets: each entry
 * in nets is a hop to look past; the first that is not becomes *ss, the client. An entry
 * that is no address ends the walk at the last trusted hop, so that neither "unknown"
 * nor garbage becomes the client; with every entry trusted, the leftmost is taken; and
 * the walk stops after CLIENTADDR_MAX_HOPS entries. Empty entries are skipped. Returns
 * the number of entries taken past the peer (0: *ss stays the peer). */
unsigned clientaddr_walk(const struct ipnet *nets, size_t n, const h2o_headers_t *headers,
                         struct sockaddr_storage *ss, socklen_t *len);

/* ---- worker ---- */

/* The service a request is served by (service_rt.c knows). */
typedef const struct conf_service *clientaddr_service_fn(h2o_req_t *req);

/* Turn the header walk on for this worker when a service of c trusts a proxy, finding a
 * request's service with service_of; until then clientaddr_get is getpeername. Called
 * once, as the worker sets up its services. */
void clientaddr_init(const struct conf *c, clientaddr_service_fn *service_of);

/* req's client address into *ss: its length, 0 when unknown (then *ss is unset). The
 * peer's port comes with the peer; an address from X-Forwarded-For has the port its entry
 * gave, else 0. The service is the one req was routed to (before routing, the address's
 * default). */
socklen_t clientaddr_get(h2o_req_t *req, struct sockaddr_storage *ss);

/* Whether req's peer (the PROXY header's source on a proxy_protocol listen) is one of its
 * service's trusted_proxies: what it says about earlier hops (X-Forwarded-For, Forwarded,
 * X-Real-IP, X-Forwarded-Proto and -Host) may be passed on; else a proxy must drop those
 * headers. */
int clientaddr_peer_trusted(h2o_req_t *req);

#endif
