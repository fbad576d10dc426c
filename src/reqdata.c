/* Per-request data beside h2o_req_t: a small open-addressing table from the request's
 * address to a record allocated in the request's pool, whose release takes it out again.
 * Only requests that need it (routing captures, a router answer, an upstream's response
 * under error documents, a request ID) pay for it. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "reqdata.h"
#include "util.h"

/* Slots: a power of two, kept at most half full. */
static struct reqdata **slots;
static size_t nslots, nused;

static size_t
slot_of(const h2o_req_t *req)
{
    uintptr_t h = (uintptr_t)req;

    h ^= h >> 17;
    h *= (uintptr_t)0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 7) & (nslots - 1);
}

static void
put(struct reqdata *rd)
{
    size_t i = slot_of(rd->req);

    while (slots[i] != NULL)
        i = (i + 1) & (nslots - 1);
    slots[i] = rd;
}

static void
grow(void)
{
    struct reqdata **old = slots;
    size_t n = nslots;

    nslots = nslots == 0 ? 256 : nslots * 2;
    slots = xcalloc(nslots, sizeof(*slots));
    for (size_t i = 0; i < n; i++)
        if (old[i] != NULL)
            put(old[i]);
    free(old);
}

struct reqdata *
reqdata_find(h2o_req_t *req)
{
    if (nused == 0)
        return NULL;
    for (size_t i = slot_of(req); slots[i] != NULL; i = (i + 1) & (nslots - 1))
        if (slots[i]->req == req)
            return slots[i];
    return NULL;
}

/* Backward-shift deletion keeps every probe run unbroken without tombstones. */
static void
on_dispose(void *p)
{
    struct reqdata *rd = p;
    size_t i = slot_of(rd->req), j;

    while (slots[i] != rd)
        i = (i + 1) & (nslots - 1);
    slots[i] = NULL;
    nused--;
    for (j = (i + 1) & (nslots - 1); slots[j] != NULL; j = (j + 1) & (nslots - 1)) {
        size_t home = slot_of(slots[j]->req);
        /* slots[j] may move to i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            slots[i] = slots[j];
            slots[j] = NULL;
            i = j;
        }
    }
}

struct reqdata *
reqdata_get(h2o_req_t *req)
{
    struct reqdata *rd = reqdata_find(req);

    if (rd != NULL)
        return rd;
    if ((nused + 1) * 2 > nslots)
        grow();
    rd = h2o_mem_alloc_shared(&req->pool, sizeof(*rd), on_dispose);
    memset(rd, 0, sizeof(*rd));
    rd->req = req;
    put(rd);
    nused++;
    return rd;
}

void
reqdata_mark_upstream(h2o_req_t *req)
{
    reqdata_get(req)->flags |= RD_UPSTREAM_RESPONSE;
}

/* xoshiro256** seeded once per process: request IDs need to be unique, not secret. */
static uint64_t rng[4];
static int rng_seeded;

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(void)
{
    uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;

    rng[2] ^= rng[0];
    rng[3] ^= rng[1];
    rng[1] ^= rng[2];
    rng[0] ^= rng[3];
    rng[2] ^= t;
    rng[3] = rotl(rng[3], 45);
    return r;
}

static void
rng_seed(void)
{
    if (getrandom(rng, sizeof(rng), 0) != (ssize_t)sizeof(rng))
        fatal("getrandom for request IDs");
    if ((rng[0] | rng[1] | rng[2] | rng[3]) == 0)
        rng[0] = 1;
    rng_seeded = 1;
}

uint64_t
reqdata_random(void)
{
    if (!rng_seeded)
        rng_seed();
    return rng_next();
}

const char *
reqdata_request_id(h2o_req_t *req)
{
    static const char hex[] = "0123456789abcdef";
    struct reqdata *rd = reqdata_get(req);
    uint64_t w[2];

    if (rd->request_id[0] != '\0')
        return rd->request_id;
    w[0] = reqdata_random();
    w[1] = reqdata_random();
    for (int i = 0; i < 32; i++)
        rd->request_id[i] = hex[(w[i / 16] >> (60 - 4 * (i % 16))) & 15];
    rd->request_id[32] = '\0';
    return rd->request_id;
}
