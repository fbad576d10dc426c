/* Choosing a server of an upstream group, in a worker: the group's connection pools, the
 * servers that may be sent requests (their health, shared by every worker: upstate.h),
 * round robin by weight, least requests in flight or a consistent hash, and the retry
 * budget (per worker). One per group and
 * worker, shared by every route that proxies to the group. */
#ifndef PERCORE_UPSEL_H
#define PERCORE_UPSEL_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "h2o_inc.h"

struct upsel;
struct uppool;
struct upstate;

/* The group's selector in this worker, made on first use. */
struct upsel *upsel_get(const struct conf_upstream *g, h2o_loop_t *loop);
const struct conf_upstream *upsel_group(const struct upsel *s);
struct uppool *upsel_pool(struct upsel *s, size_t i);

/* The server for a request's next attempt: not one of tried[] (a byte per server, 1 when
 * tried) nor at its max_inflight, a live one when any is left, by the group's balance
 * (key: the hash value; only for BALANCE_HASH). SIZE_MAX when none is left. */
size_t upsel_pick(struct upsel *s, int64_t now_ms, const uint8_t *tried, h2o_iovec_t key);

/* A request to server i starts: 0 when it is counted in flight (every worker's requests
 * count), -1 when that would take the server past its max_inflight (nothing counted). */
int upsel_claim(struct upsel *s, size_t i);
/* ... and ends. */
void upsel_release(struct upsel *s, size_t i);
/* Server i's shared record, for what its attempts report (upstate_report). */
struct upstate *upsel_state(struct upsel *s, size_t i);

/* A client request to the group, counted toward the budget. */
void upsel_count_request(struct upsel *s, int64_t now_ms);
/* Whether one more retry fits the budget (it is then counted). */
int upsel_take_retry(struct upsel *s, int64_t now_ms);

#endif
