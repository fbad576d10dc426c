/* The proxy's half of the builders harness (fuzz_builders.c): the header lines it writes
 * for a fuzzed request, from a translation unit of their own because hnd_proxy.c and
 * hnd_redirect.c share static names. */
#include "../../src/hnd_proxy.c"

#include "fuzz_builders.h"

static struct sockaddr_storage peer;
static socklen_t peer_len;

static socklen_t
get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    memcpy(sa, &peer, peer_len);
    return peer_len;
}

h2o_iovec_t
fuzz_forwarded(h2o_mem_pool_t *pool, h2o_iovec_t authority, int https, int version,
               const struct sockaddr *sa, socklen_t salen)
{
    static h2o_conn_callbacks_t cbs = {.get_peername = get_peername};
    static h2o_conn_t conn = {.callbacks = &cbs};
    static h2o_req_t req;
    struct headbuf b;

    assert(salen <= sizeof(peer));
    memcpy(&peer, sa, salen);
    peer_len = salen;
    memset(&req, 0, sizeof(req));
    req.conn = &conn;
    req.pool = *pool;
    req.authority = authority;
    req.input.authority = authority; /* the host the client named */
    req.scheme = https ? &H2O_URL_SCHEME_HTTPS : &H2O_URL_SCHEME_HTTP;
    req.version = version;
    b = (struct headbuf){NULL, 0, 0, &req.pool};
    put_forwarded(&b, &req);
    /* Allocated in req's copy of the pool: hand it back for the caller to clear. */
    *pool = req.pool;
    return h2o_iovec_init(b.p, b.len);
}
