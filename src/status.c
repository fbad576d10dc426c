/* The live view's common parts: run by workers (the status handler), the master (its answer
 * to `percore -s top`) and the `percore -s top` client. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "util.h"

/* ---- text ---- */

void
status_buf_init(struct status_buf *b, size_t start, size_t max)
{
    *b = (struct status_buf){xmalloc(start), 0, start, max, 0};
    b->buf[0] = '\0';
}

void
status_buf_free(struct status_buf *b)
{
    free(b->buf);
    b->buf = NULL;
}

void
status_printf(struct status_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->buf[b->len] = '\0'; /* what vsnprintf wrote past it is not kept */
        if (b->cap >= b->max) {
            b->truncated = 1;
            return;
        }
        b->cap *= 2;
        b->buf = xreallocarray(b->buf, b->cap, 1);
    }
}

/* The length of the valid UTF-8 sequence at p (left bytes there), 0 if there is none:
 * Unicode's table of well-formed byte sequences (3.9, table 3-7). */
static size_t
utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0; /* no overlong form */
    else if (p[0] == 0xed)
        hi = 0x9f; /* no surrogate */
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f; /* up to U+10FFFF */
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

void
status_json_str(struct status_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    status_printf(b, "\"");
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            status_printf(b, "\\ufffd");
            i++;
        } else if (n > 1) {
            status_printf(b, "%.*s", (int)n, s + i);
            i += n;
        } else {
            unsigned char c = p[i++];
            if (c == '"' || c == '\\')
                status_printf(b, "\\%c", c);
            else if (c == '\n')
                status_printf(b, "\\n");
            else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&')
                status_printf(b, "\\u%04x", c);
            else
                status_printf(b, "%c", c);
        }
    }
    status_printf(b, "\"");
}

/* ---- histograms ---- */

double
status_quantile_us(const uint64_t *counts, const uint32_t *bounds_us, size_t n, uint64_t total,
                   double q)
{
    double rank = q * (double)total, cum = 0;

    if (total == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        double lower = i == 0 ? 0 : bounds_us[i - 1];
        if (counts[i] > 0 && cum + (double)counts[i] >= rank)
            return lower + (bounds_us[i] - lower) * (rank - cum) / (double)counts[i];
        cum += (double)counts[i];
    }
    return bounds_us[n - 1];
}

/* ---- `percore -s top` ---- */

/* The answer's lines, which only percore itself reads (the client of the same build):
 *   top NOW_MS MASTER_PID GEN STARTED_MS STOPPING NSLOTS
 *   worker WSLOT PID GEN CPU_NS REQUESTS CONNS BEAT_AGE_MS LAG_COUNT LAG0 .. LAG11 */
void
status_snapshot_text(struct status_buf *b)
{
    struct metrics_server srv;
    int64_t now = util_now_ms();

    metrics_server(&srv);
    status_printf(b, "top %lld %d %u %lld %d %u", (long long)now, (int)srv.pid, srv.gen,
                  (long long)srv.started_ms, srv.stopping, srv.nslots);
    for (unsigned i = 0; i < srv.nslots; i++) {
        struct metrics_slot *s = metrics_slot((int)i);
        pid_t pid = s->pid;

        if (pid <= 0)
            continue;
        status_printf(b, "\nworker %u %d %u %llu %llu %llu %lld %llu", s->wslot, (int)pid,
                      s->gen, (unsigned long long)atomic_load(&s->cpu_ns),
                      (unsigned long long)atomic_load(&s->c.requests),
                      (unsigned long long)atomic_load(&s->conns),
                      (long long)(now - atomic_load(&s->heartbeat_ms)),
                      (unsigned long long)atomic_load(&s->c.lag_count));
        for (int k = 0; k < METRICS_LAG_BUCKETS; k++)
            status_printf(b, " %llu", (unsigned long long)atomic_load(&s->c.lag_buckets[k]));
    }
}

static int
parse_worker(const char *line, struct status_worker *w)
{
    unsigned long long cpu, req, conns, lagn;
    long long age;
    int pid, off = 0;

    if (sscanf(line, "worker %u %d %u %llu %llu %llu %lld %llu%n", &w->wslot, &pid, &w->gen,
               &cpu, &req, &conns, &age, &lagn, &off) != 8)
        return -1;
    *w = (struct status_worker){w->wslot, w->gen, pid, cpu, req, conns, age, lagn, {0}};
    line += off;
    for (int k = 0; k < METRICS_LAG_BUCKETS; k++) {
        unsigned long long v;
        if (sscanf(line, " %llu%n", &v, &off) != 1)
            return -1;
        w->lag[k] = v;
        line += off;
    }
    return 0;
}

int
status_snapshot_parse(const char *text, struct status_snapshot *s)
{
    long long now, started;
    int pid;
    const char *line, *nl;

    if (sscanf(text, "top %lld %d %u %lld %d %u", &now, &pid, &s->server.gen, &started,
               &s->server.stopping, &s->server.nslots) != 6)
        return -1;
    s->now_ms = now;
    s->server.pid = pid;
    s->server.started_ms = started;
    for (line = strchr(text, '\n'); line != NULL; line = nl) {
        nl = strchr(++line, '\n');
        s->workers = xreallocarray(s->workers, s->nworkers + 1, sizeof(*s->workers));
        /* Only the last line can be cut short (an answer that outgrew the reply). */
        if (parse_worker(line, &s->workers[s->nworkers]) == -1)
            return nl == NULL ? 0 : -1;
        s->nworkers++;
    }
    return 0;
}

void
status_snapshot_free(struct status_snapshot *s)
{
    free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
}
