/* Upstream servers' shared state: one record per server of every upstream block, in a region
 * the master maps before its first fork and every worker of every generation shares. It
 * holds each server's health (the active checks' verdict and passive ejection), its
 * in-flight count and its counters for the metrics. Workers change records with atomics
 * only: there is no lock a worker could die holding.
 *
 * The master registers a key per server at each config load ("UPSTREAM server-url") and
 * gets the record's index, the same for the same key on every load, so health and counters
 * survive reloads. Workers reach a record by that index (kept in the conf tree), with no
 * look-up per request.
 *
 * Times are CLOCK_MONOTONIC milliseconds (util_now_ms()), the same clock in every process;
 * not libh2o's h2o_now(), which is wall-clock time. */
#ifndef PERCORE_UPSTATE_H
#define PERCORE_UPSTATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Records: room for the servers of the serving config and of one being loaded, each at
 * most UPSTATE_CONF_MAX, so any valid config can replace any other. */
#define UPSTATE_CONF_MAX 1024
#define UPSTATE_MAX (2 * UPSTATE_CONF_MAX)
#define UPSTATE_KEY_MAX 256 /* a key's length, its NUL included */
#define UPSTATE_BUCKETS 16
/* Worker slots (metrics.c's) whose in-flight requests are accounted per record: the
 * master's slot count for two generations and stragglers (2 * CONF_WORKERS_MAX + 64). */
#define UPSTATE_WORKER_SLOTS 1088
/* "Not measured", for upstate_report's times. */
#define UPSTATE_NONE UINT64_MAX

/* Time histograms' bucket upper bounds, in microseconds (+Inf is the count). */
extern const uint32_t upstate_bucket_us[UPSTATE_BUCKETS];

/* How one attempt at a server ended; also how one health check ended. */
enum upstate_result {
    UPSTATE_OK,               /* a response came (its status counted by class) */
    UPSTATE_ABORTED,          /* the client went away first: not held against the server */
    UPSTATE_CONNECT_REFUSED,  /* refused, or no socket at a unix path */
    UPSTATE_CONNECT_FAILED,   /* any other connect error (unreachable, ...) */
    UPSTATE_CONNECT_TIMEOUT,  /* not connected in time */
    UPSTATE_RESPONSE_TIMEOUT, /* connected, no response head in time */
    UPSTATE_CLOSED,           /* reset or closed before a response */
    UPSTATE_INVALID,          /* a response that is not HTTP/1.x */
    UPSTATE_TLS,              /* the TLS handshake or the verification failed */
    UPSTATE_STATUS,           /* a status retry_on names (a check: outside the range) */
    UPSTATE_RESULT_MAX
};
/* The results' names, as the metrics' kind label has them: "connect_refused" ... */
extern const char *const upstate_result_names[UPSTATE_RESULT_MAX];

struct upstate_policy {
    /* Passive ejection, nginx's semantics: max_fails failed attempts within fail_timeout
     * take the server out for fail_timeout; max_fails 0 never does. Once back, it is on
     * probation: one more failure within fail_timeout takes it out again, a success ends
     * the probation. */
    unsigned max_fails;
    int64_t fail_timeout_ms;
    /* Active checks: path NULL for none. `fall` failed checks in a row mark the server
     * down, `rise` passed ones up; a check passes on a status from status_min to
     * status_max, within timeout_ms of its start. */
    struct {
        const char *path;
        int64_t interval_ms, timeout_ms;
        unsigned fall, rise;
        int status_min, status_max;
    } check;
};

#define UPSTATE_DEFAULT_MAX_FAILS 1
#define UPSTATE_DEFAULT_FAIL_TIMEOUT_MS 10000
#define UPSTATE_DEFAULT_CHECK_INTERVAL_MS 5000
#define UPSTATE_DEFAULT_CHECK_TIMEOUT_MS 2000
#define UPSTATE_DEFAULT_FALL 3
#define UPSTATE_DEFAULT_RISE 2
#define UPSTATE_DEFAULT_STATUS_MIN 200
#define UPSTATE_DEFAULT_STATUS_MAX 399

/* The defaults, with no active checks. */
void upstate_policy_init(struct upstate_policy *p);

struct upstate_hist {
    _Atomic uint64_t buckets[UPSTATE_BUCKETS]; /* not cumulative; past the last: count only */
    _Atomic uint64_t count, sum_us;
};

/* Record flags, set by the master at each commit. */
#define UPSTATE_F_CURRENT 0x1 /* a server of the serving config */
#define UPSTATE_F_CHECKED 0x2 /* ... with active checks */

/* One server. Read by anyone; the key and flags written by the master only, the rest by
 * the workers that use it. */
struct upstate {
    char key[UPSTATE_KEY_MAX];
    _Atomic unsigned flags;

    /* Active checks: the verdict (down or not) and since when, the results in a row, the
     * last one (result << 32 | status or errno), and the lease of the one worker that
     * checks (pid << 42 | expiry). */
    _Atomic int down;
    _Atomic int64_t since_ms;
    _Atomic unsigned checks_ok, checks_failed;
    _Atomic uint64_t last_check;
    _Atomic uint64_t lease;

    /* Passive: the failures of the current window (start << 20 | count), the end of an
     * ejection and when it began, the result that caused it (result << 32 | status). */
    _Atomic uint64_t fails;
    _Atomic int64_t down_until_ms, ejected_ms;
    _Atomic uint64_t eject_cause;

    _Atomic int64_t in_flight;

    /* Counters. */
    _Atomic uint64_t requests;
    _Atomic uint64_t responses[5]; /* 1xx .. 5xx */
    _Atomic uint64_t errors[UPSTATE_RESULT_MAX];
    _Atomic uint64_t retries, ejections;
    struct upstate_hist connect, response;
} __attribute__((aligned(64)));

struct upstate_region;

/* ---- master ---- */

/* Map the region, once (a later call returns the same one); it is never unmapped, and
 * goes to each worker in its heritage. upstate_register maps it too if needed, so a config
 * may be loaded before. Fatal if it cannot be mapped. */
struct upstate_region *upstate_init(void);
/* Before a config load: the oldest generation of workers still running, whose records
 * must not go to new keys (they still write them). 0 (the start): none is given up. */
void upstate_set_oldest(unsigned gen);
/* At a config load: the index of key's record, made if new (state and counters zeroed);
 * checked: the config has active checks for it. The index is the same for the same key
 * on every load. -1 with errno ENAMETOOLONG when key is UPSTATE_KEY_MAX long or more,
 * E2BIG when this load has UPSTATE_CONF_MAX servers already, or ENOSPC when no record is
 * free: a record goes to a new key once no running generation's config has it. */
int upstate_register(const char *key, int checked);
/* The config loaded last (its registrations) serves now, as generation gen: its records
 * are the current ones (the metrics and `percore -s status` list them); a server whose
 * active checks are gone counts as up again. */
void upstate_commit(unsigned gen);
/* The config loaded last will not serve (a failed load or reload): its registrations are
 * forgotten, and their new records may be given to other keys. */
void upstate_discard(void);
/* A worker has exited (metrics slot, pid): its in-flight requests are no longer counted,
 * and its health-check leases are free at once. */
void upstate_worker_gone(int slot, pid_t pid);
/* One line on u for `percore -s status` into buf (without newline): its upstream and
 * server, up or down, since when (local time; wall_ms is the real-time clock in
 * milliseconds read with now_ms), why. */
void upstate_describe(const struct upstate *u, int64_t now_ms, int64_t wall_ms, char *buf,
                      size_t len);

/* upstate_describe's lines on every server of the serving config, joined by newlines (no
 * last one) into buf; those past len are left out, and a last line counts them. The
 * length, 0 when there is no server (buf is then ""). len must be 128 or more. */
size_t upstate_status_text(int64_t now_ms, int64_t wall_ms, char *buf, size_t len);

/* ---- workers ---- */

/* At start, before any use: the region it inherited, and its metrics slot (for its share
 * of the in-flight counts). */
void upstate_attach(struct upstate_region *r, int slot);

/* ---- any process ---- */

/* The record of index idx (from upstate_register), never NULL. */
struct upstate *upstate_get(int idx);
/* Record idx if it is a server of the serving config, else NULL; idx from 0 to UPSTATE_MAX. */
struct upstate *upstate_current(int idx);
/* u's key split at its first space into the upstream's name and the server's (which is ""
 * without a space); both point into buf. */
void upstate_names(const struct upstate *u, char *buf, size_t len, const char **upstream,
                   const char **server);

/* Whether u may be sent requests now: not down by its checks, not ejected. */
int upstate_usable(struct upstate *u, int64_t now_ms);
/* One attempt at u ended: counted (a request; its response's class when status > 0; the
 * error of a result other than OK and ABORTED; connect_us and response_us unless
 * UPSTATE_NONE, e.g. no connect on a kept-alive connection), and held for or against the
 * server by p's passive rules. The worker whose report ejects u or ends its probation logs
 * it, once. */
void upstate_report(struct upstate *u, const struct upstate_policy *p, enum upstate_result r,
                    uint64_t connect_us, uint64_t response_us, int status, int64_t now_ms);
/* An attempt sent to u that retries one that failed (on u or another server). */
void upstate_count_retry(struct upstate *u);
/* A request to u starts (the new count of requests in flight at u, all workers) or ends. */
int64_t upstate_inflight_inc(struct upstate *u);
void upstate_inflight_dec(struct upstate *u);

/* Active checks. The one process holding u's lease checks it: 1 if pid holds it now
 * (taken, because it was free or expired, or renewed) until now + ms, 0 if another does. */
int upstate_lease_take(struct upstate *u, pid_t pid, int64_t now_ms, int64_t ms);
/* The holder of u's lease (0: none, or it expired). */
pid_t upstate_lease_holder(struct upstate *u, int64_t now_ms);
/* Gives u's lease up if pid holds it. */
void upstate_lease_drop(struct upstate *u, pid_t pid);
/* A check of u ended with r (detail: the status, or the errno of a connect error): with
 * p's fall and rise, u goes down or up; the worker whose report flips it logs it, once. */
void upstate_check_report(struct upstate *u, const struct upstate_policy *p,
                          enum upstate_result r, int detail, int64_t now_ms);
/* Why a check failed, in words ("connection refused", "status 503", ...). */
void upstate_check_why(enum upstate_result r, int detail, char *buf, size_t len);

#endif
