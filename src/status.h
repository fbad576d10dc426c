/* The live view's common parts, for the status handler (workers), the master's answer to
 * `percore -s top` and the client that shows it: a growing text buffer with JSON strings,
 * quantiles of the shared region's histograms, and the snapshot the master sends to top. */
#ifndef PERCORE_STATUS_H
#define PERCORE_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "metrics.h"

/* A text grown as written; buf is malloc'd (status_buf_new), NUL-terminated, and the
 * caller frees it. Past max bytes, what would not fit is dropped whole and truncated set. */
struct status_buf {
    char *buf;
    size_t len, cap, max;
    int truncated;
};

void status_buf_init(struct status_buf *b, size_t start, size_t max);
void status_buf_free(struct status_buf *b);
void status_printf(struct status_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s[0..len) as a JSON string, quotes included: '"', '\\' and every control byte escaped,
 * '<', '>' and '&' too (so that the text is inert in HTML), and each byte that is not part
 * of valid UTF-8 (a stray continuation, an overlong form, a surrogate, past U+10FFFF) as
 * U+FFFD: the document parses whatever the bytes. */
void status_json_str(struct status_buf *b, const char *s, size_t len);

/* The q-quantile (0 < q < 1), in microseconds, of a histogram of n buckets: counts[i] the
 * observations up to bounds_us[i] (not cumulative), total all of them, those past the last
 * bound included. Linear within the bucket, as Prometheus' histogram_quantile; one past the
 * last bound gives that bound. -1 when total is 0. */
double status_quantile_us(const uint64_t *counts, const uint32_t *bounds_us, size_t n,
                          uint64_t total, double q);

/* ---- `percore -s top` ---- */

/* One worker in a snapshot. */
struct status_worker {
    unsigned wslot, gen;
    pid_t pid;
    uint64_t cpu_ns, requests, conns;
    int64_t beat_age_ms;
    uint64_t lag_count;
    uint64_t lag[METRICS_LAG_BUCKETS];
};

/* What the master sends for `top`: when (CLOCK_MONOTONIC), the server, its workers. */
struct status_snapshot {
    int64_t now_ms;
    struct metrics_server server;
    size_t nworkers;
    struct status_worker *workers; /* malloc'd; status_snapshot_free */
};

/* Master: the snapshot's text (one "top" line, then one "worker" line per live slot, in
 * slot order) into b. */
void status_snapshot_text(struct status_buf *b);
/* Client: parse that text into s (zero it first). -1 when it is not a snapshot. */
int status_snapshot_parse(const char *text, struct status_snapshot *s);
void status_snapshot_free(struct status_snapshot *s);

#endif
