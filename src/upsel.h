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
 * tried) nor at its max_inflight, by the group's balance (key: the hash value; only for
 * BALANCE_HASH): a live one; when no live one is left untried, one that is down. SIZE_MAX
 * when none is left, or when the live ones left are all at their max_inflight. */
size_t upsel_pick(struct upsel *s, int64_t now_ms, const uint8_t *tried, h2o_iovec_t key);

/* A request to server i starts: 0 when it is counted in flight (every worker's requests
 * count), -1 when that would take the server past its max_inflight (nothing counted). */
int upsel_claim(struct upsel *s, size_t i);
/* ... and ends. */
void upsel_release(struct upsel *s, size_t i);
/* Server i's shared record, for what its attempts report (upstate_report). */
struct upstate *upsel_state(struct upsel *s, size_t i);

/* A request waiting for a server of the group: every one it may use was at its
 * max_inflight. The queue is per worker, first in first out, bounded by the group's
 * `queue` (its length and how long one waits). */
struct upsel_waiter {
    /* A server may have room: 0 when the waiter took one (it has left the queue), -1 when
     * none had room (it stays, and so do those behind it). */
    int (*on_turn)(struct upsel_waiter *w);
    /* It waited the group's queue timeout: it has left the queue. */
    void (*on_timeout)(struct upsel_waiter *w);
    /* private */
    struct upsel *sel;
    h2o_linklist_t link;
    h2o_timeout_entry_t timer;
};

/* Queue w (its callbacks set): -1 when the group's queue is full or it has none. */
int upsel_wait(struct upsel *s, struct upsel_waiter *w);
/* w leaves its queue; a no-op when not in one. */
void upsel_unwait(struct upsel_waiter *w);

/* A client request to the group, counted toward the budget. */
void upsel_count_request(struct upsel *s, int64_t now_ms);
/* Whether one more retry fits the budget (it is then counted). */
int upsel_take_retry(struct upsel *s, int64_t now_ms);

#endif
