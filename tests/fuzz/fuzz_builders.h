/* What the builders harness's proxy unit (fuzz_builders_proxy.c) offers its main unit. */
#ifndef PERCORE_FUZZ_BUILDERS_H
#define PERCORE_FUZZ_BUILDERS_H

#include <sys/socket.h>

#include "h2o_inc.h"

/* The Forwarded, X-Forwarded-For, -Proto, -Host and Via lines the proxy writes into a
 * request head for authority, from the peer sa ("name: value\r\n" each), allocated from
 * pool. */
h2o_iovec_t fuzz_forwarded(h2o_mem_pool_t *pool, h2o_iovec_t authority, int https,
                           int version, const struct sockaddr *sa, socklen_t salen);

#endif
