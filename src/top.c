/* `percore -s top`: asks the master for a snapshot of the shared region every second and
 * shows each worker's rates over that second. Run by the user's command, not by percore. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "status.h"
#include "top.h"

#define TOP_INTERVAL_MS 1000

static int
snapshot(const char *conf_path, struct status_snapshot *s)
{
    char *text;
    int r;

    memset(s, 0, sizeof(*s));
    if (ctl_query(conf_path, "top", &text) == -1)
        return -1;
    r = status_snapshot_parse(text, s);
    if (r == -1) {
        fprintf(stderr, "percore: not a valid answer from the master to 'top'\n");
        status_snapshot_free(s);
    }
    free(text);
    return r;
}

static const struct status_worker *
find_worker(const struct status_snapshot *s, pid_t pid)
{
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].pid == pid)
            return &s->workers[i];
    return NULL;
}

/* Workers by generation, then worker number. */
static int
by_gen_slot(const void *a_, const void *b_)
{
    const struct status_worker *a = a_, *b = b_;

    if (a->gen != b->gen)
        return a->gen < b->gen ? -1 : 1;
    return a->wslot < b->wslot ? -1 : a->wslot > b->wslot;
}

/* "1h02m03s" */
static void
fmt_uptime(int64_t ms, char *buf, size_t len)
{
    long long s = ms / 1000;

    if (s >= 86400)
        snprintf(buf, len, "%lldd%02lldh%02lldm", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    else if (s >= 3600)
        snprintf(buf, len, "%lldh%02lldm%02llds", s / 3600, s % 3600 / 60, s % 60);
    else
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
}

/* The loop lag's p99 over the second: from the buckets' growth; "-" without loop turns
 * counted in it. */
static void
fmt_lag(const struct status_worker *w, const struct status_worker *o, char *buf, size_t len)
{
    uint64_t d[METRICS_LAG_BUCKETS];
    double us;

    if (o == NULL || w->lag_count <= o->lag_count) {
        snprintf(buf, len, "-");
        return;
    }
    for (int k = 0; k < METRICS_LAG_BUCKETS; k++)
        d[k] = w->lag[k] >= o->lag[k] ? w->lag[k] - o->lag[k] : 0;
    us = status_quantile_us(d, metrics_lag_bucket_us, METRICS_LAG_BUCKETS,
                            w->lag_count - o->lag_count, 0.99);
    snprintf(buf, len, "%.2fms", us / 1e3);
}

/* A rate per second of a counter from o to w over dt_ms, into buf; "-" when the counter went
 * back or there is no earlier sample (a worker new in this second). */
static void
fmt_rate(uint64_t now, uint64_t before, int have, double scale, double dt_ms, char *buf,
         size_t len)
{
    if (!have || now < before || dt_ms <= 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f", (double)(now - before) * scale * 1000.0 / dt_ms);
}

static void
show(const struct status_snapshot *prev, struct status_snapshot *cur, int tty)
{
    double dt = (double)(cur->now_ms - prev->now_ms);
    uint64_t req = 0, req0 = 0, cpu = 0, cpu0 = 0, conns = 0;
    char up[32], rps[32], pcpu[32];

    qsort(cur->workers, cur->nworkers, sizeof(*cur->workers), by_gen_slot);
    for (size_t i = 0; i < cur->nworkers; i++) {
        const struct status_worker *w = &cur->workers[i];
        const struct status_worker *o = find_worker(prev, w->pid);
        conns += w->conns;
        if (o != NULL) { /* the totals' rates: workers present at both samples */
            req += w->requests;
            req0 += o->requests;
            cpu += w->cpu_ns;
            cpu0 += o->cpu_ns;
        }
    }
    fmt_uptime(cur->now_ms - cur->server.started_ms, up, sizeof(up));
    fmt_rate(req, req0, 1, 1, dt, rps, sizeof(rps));
    fmt_rate(cpu, cpu0, 1, 100 / 1e9, dt, pcpu, sizeof(pcpu));
    if (tty)
        fputs("\033[H\033[2J", stdout);
    printf("percore master %d, generation %u%s, up %s: %zu workers, %s req/s, %llu "
           "connections, CPU %s%%\n",
           (int)cur->server.pid, cur->server.gen, cur->server.stopping ? " (stopping)" : "", up,
           cur->nworkers, rps, (unsigned long long)conns, pcpu);
    printf("%6s %8s %5s %6s %9s %7s %10s\n", "WORKER", "PID", "GEN", "CPU%", "REQ/S", "CONNS",
           "LAG P99");
    for (size_t i = 0; i < cur->nworkers; i++) {
        const struct status_worker *w = &cur->workers[i];
        const struct status_worker *o = find_worker(prev, w->pid);
        char c[32], r[32], lag[32];

        fmt_rate(w->cpu_ns, o != NULL ? o->cpu_ns : 0, o != NULL, 100 / 1e9, dt, c, sizeof(c));
        fmt_rate(w->requests, o != NULL ? o->requests : 0, o != NULL, 1, dt, r, sizeof(r));
        fmt_lag(w, o, lag, sizeof(lag));
        printf("%6u %8d %5u %6s %9s %7llu %10s\n", w->wslot, (int)w->pid, w->gen, c, r,
               (unsigned long long)w->conns, lag);
    }
    fflush(stdout);
}

/* Sleep until the monotonic time *next (ms), then move it on by the interval. */
static void
wait_tick(struct timespec *next)
{
    next->tv_nsec += TOP_INTERVAL_MS % 1000 * 1000000L;
    next->tv_sec += TOP_INTERVAL_MS / 1000 + next->tv_nsec / 1000000000L;
    next->tv_nsec %= 1000000000L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR)
        ;
}

int
top_run(const char *conf_path, unsigned count)
{
    struct status_snapshot prev, cur;
    struct timespec next;
    int tty = isatty(STDOUT_FILENO);

    if (count == 0 && !tty)
        count = 1;
    /* Rates need two samples: the first snapshot shows the second after this one. */
    if (snapshot(conf_path, &prev) == -1)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (unsigned n = 0; count == 0 || n < count; n++) {
        wait_tick(&next);
        if (snapshot(conf_path, &cur) == -1) {
            status_snapshot_free(&prev);
            return 1;
        }
        if (n > 0 && !tty)
            putchar('\n');
        show(&prev, &cur, tty);
        status_snapshot_free(&prev);
        prev = cur;
    }
    status_snapshot_free(&prev);
    return 0;
}
