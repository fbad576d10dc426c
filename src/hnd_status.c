/* The status handler, run by workers: a JSON document on the whole instance (the server,
 * every worker of every generation, services, routes, request latency, upstream servers
 * and their health), all read from the shared regions (metrics.c, upstate.c) so that any
 * worker answers for all; and an HTML dashboard, with no external asset, that fetches the
 * JSON every second and shows it as tables. The JSON's schema is in percore.conf(5).
 *
 * Off the request path: nothing here runs unless a request reaches a `status` route, and
 * the counters it reads are those the workers keep anyway. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "h2o_inc.h"
#include "hnd.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "upstate.h"
#include "util.h"

#define JSON_START (16 * 1024)
#define JSON_MAX (64 * 1024 * 1024) /* far more than 2048 upstream servers need */

/* ---- the dashboard ---- */

/* The page's style and script: the Content-Security-Policy allows exactly these two by
 * their SHA-256 (made at load), so that no other inline code could ever run. */
static const char page_style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}"
    "h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em}"
    "table{border-collapse:collapse;background:#fff}"
    "th,td{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}"
    "th{background:#eee;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.down td{background:#fdd}tr.ejected td{background:#fed}tr.old td{color:#888}"
    "#error{color:#b00;font-weight:600}#updated{color:#777}";

static const char page_script[] =
    "'use strict';\n"
    "(() => {\n"
    "const url = location.pathname + '?format=json';\n"
    "let prev = null;\n"
    "const $ = (id) => document.getElementById(id);\n"
    "const num = (v, d) => v === null || v === undefined || !isFinite(v) ? '-' : v.toFixed(d);\n"
    "const secs = (s) => s === null || s === undefined ? '-' : s < 0.001 ? (s * 1e6).toFixed(0) "
    "+ ' us' : s < 1 ? (s * 1e3).toFixed(2) + ' ms' : s.toFixed(2) + ' s';\n"
    "const when = (t) => t === null ? '-' : new Date(t * 1000).toLocaleString();\n"
    "function uptime(s) {\n"
    "  s = Math.floor(s);\n"
    "  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % "
    "3600 / 60);\n"
    "  return (d ? d + 'd ' : '') + h + 'h ' + m + 'm ' + s % 60 + 's';\n"
    "}\n"
    "/* Rows are built with textContent only: names come from the config, never as HTML. */\n"
    "function row(cells, cls, attrs) {\n"
    "  const tr = document.createElement('tr');\n"
    "  for (const c of cells) {\n"
    "    const td = document.createElement('td');\n"
    "    td.textContent = String(c);\n"
    "    if (typeof c === 'number' || /^[0-9.-]+( [a-z%/]+)?$/.test(String(c)))\n"
    "      td.className = 'n';\n"
    "    tr.appendChild(td);\n"
    "  }\n"
    "  if (cls) tr.className = cls;\n"
    "  for (const k in attrs || {}) tr.setAttribute('data-' + k, String(attrs[k]));\n"
    "  return tr;\n"
    "}\n"
    "function fill(id, rows) {\n"
    "  $(id).tBodies[0].replaceChildren(...rows);\n"
    "}\n"
    "function byKey(list, key) {\n"
    "  const m = new Map();\n"
    "  for (const x of list || []) m.set(key(x), x);\n"
    "  return m;\n"
    "}\n"
    "/* A rate from the previous fetch: the JSON has counters only, and its clock. */\n"
    "function rate(cur, old, dt) {\n"
    "  return old === undefined || dt <= 0 || cur < old ? null : (cur - old) / dt;\n"
    "}\n"
    "function quantile(counts, bounds, total, q) {\n"
    "  if (total <= 0) return null;\n"
    "  const rank = q * total;\n"
    "  let cum = 0;\n"
    "  for (let i = 0; i < counts.length; i++) {\n"
    "    const lo = i ? bounds[i - 1] : 0;\n"
    "    if (counts[i] > 0 && cum + counts[i] >= rank) return lo + (bounds[i] - lo) * (rank - "
    "cum) / counts[i];\n"
    "    cum += counts[i];\n"
    "  }\n"
    "  return bounds[bounds.length - 1];\n"
    "}\n"
    "const sum = (a) => a.reduce((x, y) => x + y, 0);\n"
    "const diff = (a, b) => a.map((x, i) => x - (b ? b[i] : 0));\n"
    "function render(s) {\n"
    "  const dt = prev ? (s.monotonic_ms - prev.monotonic_ms) / 1000 : 0;\n"
    "  const srv = s.server, t = s.totals;\n"
    "  $('summary').textContent = 'percore ' + srv.version + ', master pid ' + srv.pid + ', "
    "generation ' + srv.generation + ', up ' + uptime(srv.uptime_seconds) + (srv.stopping ? ', "
    "stopping' : '') + '; ' + t.workers + ' workers, ' + t.connections + ' connections, ' + "
    "t.requests + ' requests, ' + num(rate(t.requests, prev && prev.totals.requests, dt), 1) + "
    "' req/s';\n"
    "  $('updated').textContent = 'updated ' + new Date(s.time * 1000).toLocaleTimeString() + "
    "' by worker pid ' + srv.answered_by;\n"
    "  const pw = byKey(prev && prev.workers, (w) => w.pid);\n"
    "  const lagb = s.loop_lag_bounds_seconds;\n"
    "  const workers = s.workers.slice().sort((a, b) => a.generation - b.generation || a.slot - "
    "b.slot);\n"
    "  fill('workers', workers.map((w) => {\n"
    "    const o = pw.get(w.pid), l = w.loop_lag;\n"
    "    let p99 = l.p99_seconds;\n"
    "    if (o && l.turns > o.loop_lag.turns) {\n"
    "      const d = diff(l.buckets, o.loop_lag.buckets);\n"
    "      p99 = quantile(d, lagb, l.turns - o.loop_lag.turns, 0.99);\n"
    "    }\n"
    "    const cpu = o ? rate(w.cpu_seconds, o.cpu_seconds, dt) : null;\n"
    "    return row([w.slot, w.pid, w.generation, num(cpu === null ? null : cpu * 100, 1), "
    "num(w.cpu_seconds, 2), w.requests, num(o ? rate(w.requests, o.requests, dt) : null, 1), "
    "w.connections, w.heartbeat_age_ms + ' ms', secs(l.p50_seconds), secs(p99)], "
    "w.generation === srv.generation ? '' : 'old', {pid: w.pid});\n"
    "  }));\n"
    "  const lat = s.latency, pl = prev && prev.latency;\n"
    "  const dn = pl ? lat.count - pl.count : 0, dc = pl ? diff(lat.bucket_counts, "
    "pl.bucket_counts) : null;\n"
    "  fill('latency', [row([lat.count, secs(lat.count ? lat.sum_seconds / lat.count : null), "
    "secs(lat.p50_seconds), secs(lat.p90_seconds), secs(lat.p99_seconds), dn > 0 ? "
    "secs(quantile(dc, lat.bounds_seconds, dn, 0.5)) : '-', dn > 0 ? secs(quantile(dc, "
    "lat.bounds_seconds, dn, 0.99)) : '-'])]);\n"
    "  const ps = byKey(prev && prev.services, (x) => x.name);\n"
    "  fill('services', s.services.map((x) => {\n"
    "    const o = ps.get(x.name), c = x.by_class;\n"
    "    return row([x.name, x.requests, num(rate(x.requests, o && o.requests, dt), 1), "
    "c['1xx'], c['2xx'], c['3xx'], c['4xx'], c['5xx']], '', {service: x.name});\n"
    "  }));\n"
    "  const pr = byKey(prev && prev.routes, (x) => x.service + ' ' + x.route);\n"
    "  fill('routes', s.routes.map((x) => {\n"
    "    const o = pr.get(x.service + ' ' + x.route);\n"
    "    const cpu = rate(x.cpu_seconds, o && o.cpu_seconds, dt);\n"
    "    return row([x.service, x.route, x.requests, num(rate(x.requests, o && o.requests, dt), "
    "1), num(x.cpu_seconds, 3), num(cpu === null ? null : cpu * 100, 1)]);\n"
    "  }));\n"
    "  const pu = byKey(prev && prev.upstreams, (x) => x.upstream + ' ' + x.server);\n"
    "  fill('upstreams', s.upstreams.map((x) => {\n"
    "    const o = pu.get(x.upstream + ' ' + x.server), r = x.responses;\n"
    "    return row([x.upstream, x.server, x.state, when(x.since), x.why === null ? '' : x.why, "
    "x.in_flight, x.requests, num(rate(x.requests, o && o.requests, dt), 1), r['2xx'], "
    "r['3xx'], r['4xx'], r['5xx'], sum(Object.values(x.errors)), x.retries, x.ejections], "
    "x.state, {upstream: x.upstream, server: x.server});\n"
    "  }));\n"
    "}\n"
    "function tick() {\n"
    "  fetch(url, {cache: 'no-store'}).then((r) => {\n"
    "    if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "    return r.json();\n"
    "  }).then((s) => {\n"
    "    render(s);\n"
    "    prev = s;\n"
    "    $('error').hidden = true;\n"
    "  }, (e) => {\n"
    "    $('error').textContent = 'cannot fetch ' + url + ': ' + e.message;\n"
    "    $('error').hidden = false;\n"
    "  }).finally(() => setTimeout(tick, 1000));\n"
    "}\n"
    "tick();\n"
    "})();\n";

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width\">"
    "<meta name=\"referrer\" content=\"no-referrer\">"
    "<title>percore status</title><style>";
static const char page_body[] =
    "</style></head><body>\n"
    "<h1>percore status</h1><p id=\"summary\">loading&hellip;</p>"
    "<p id=\"error\" hidden></p><p id=\"updated\"></p>\n"
    "<h2>Workers</h2><table id=\"workers\"><thead><tr><th>worker</th><th>pid</th>"
    "<th>generation</th><th>CPU %</th><th>CPU s</th><th>requests</th><th>req/s</th>"
    "<th>connections</th><th>heartbeat</th><th>loop lag p50</th><th>loop lag p99</th></tr>"
    "</thead><tbody></tbody></table>\n"
    "<h2>Request latency</h2><table id=\"latency\"><thead><tr><th>requests</th><th>mean</th>"
    "<th>p50</th><th>p90</th><th>p99</th><th>p50 now</th><th>p99 now</th></tr></thead>"
    "<tbody></tbody></table>\n"
    "<h2>Services</h2><table id=\"services\"><thead><tr><th>service</th><th>requests</th>"
    "<th>req/s</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr></thead>"
    "<tbody></tbody></table>\n"
    "<h2>Routes</h2><table id=\"routes\"><thead><tr><th>service</th><th>route</th>"
    "<th>requests</th><th>req/s</th><th>CPU s</th><th>CPU %</th></tr></thead>"
    "<tbody></tbody></table>\n"
    "<h2>Upstream servers</h2><table id=\"upstreams\"><thead><tr><th>upstream</th>"
    "<th>server</th><th>state</th><th>since</th><th>why</th><th>in flight</th>"
    "<th>requests</th><th>req/s</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th>"
    "<th>errors</th><th>retries</th><th>ejections</th></tr></thead><tbody></tbody></table>\n"
    "<script>";
static const char page_tail[] = "</script>\n</body></html>\n";

/* The handler's config: the dashboard, made at load, and its Content-Security-Policy. */
struct status_conf {
    char *page;
    size_t page_len;
    char *csp;
};

/* "'sha256-BASE64'" of s, as a CSP source expression, into buf (64 bytes or more). */
static void
csp_hash(const char *s, char *buf, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE], b64[48]; /* 44 for 32 bytes */
    unsigned mdlen = 0;

    if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        fatalx("status: cannot hash the dashboard's script");
    EVP_EncodeBlock(b64, md, (int)mdlen);
    snprintf(buf, len, "'sha256-%s'", (const char *)b64);
}

/* ---- the JSON document ---- */

static void
put_seconds_or_null(struct status_buf *b, const char *key, double us)
{
    if (us < 0)
        status_printf(b, "\"%s\":null", key);
    else
        status_printf(b, "\"%s\":%.6f", key, us / 1e6);
}

static void
put_server(struct status_buf *b, int64_t now_ms)
{
    struct metrics_server srv;
    struct timespec wall;

    metrics_server(&srv);
    clock_gettime(CLOCK_REALTIME, &wall);
    status_printf(b, "\"schema\":1,\"time\":%lld.%03ld,\"monotonic_ms\":%lld,"
                  "\"server\":{\"version\":\"%s\",\"pid\":%d,\"uptime_seconds\":%.3f,"
                  "\"generation\":%u,\"stopping\":%s,\"answered_by\":%d},",
                  (long long)wall.tv_sec, wall.tv_nsec / 1000000, (long long)now_ms,
                  PACKAGE_VERSION, (int)srv.pid, (double)(now_ms - srv.started_ms) / 1e3,
                  srv.gen, srv.stopping ? "true" : "false", (int)getpid());
}

static void
put_u64_array(struct status_buf *b, const _Atomic uint64_t *v, size_t n)
{
    status_printf(b, "[");
    for (size_t i = 0; i < n; i++)
        status_printf(b, "%s%llu", i ? "," : "",
                      (unsigned long long)atomic_load_explicit(&v[i], memory_order_relaxed));
    status_printf(b, "]");
}

static void
put_bounds(struct status_buf *b, const uint32_t *bounds_us, size_t n)
{
    status_printf(b, "[");
    for (size_t i = 0; i < n; i++)
        status_printf(b, "%s%g", i ? "," : "", bounds_us[i] / 1e6);
    status_printf(b, "]");
}

static void
put_latency(struct status_buf *b, const struct metrics_counts *c)
{
    uint64_t counts[METRICS_BUCKETS];

    for (int i = 0; i < METRICS_BUCKETS; i++)
        counts[i] = c->buckets[i];
    status_printf(b, "\"latency\":{\"count\":%llu,\"sum_seconds\":%.6f,",
                  (unsigned long long)c->requests, (double)c->duration_us / 1e6);
    put_seconds_or_null(b, "p50_seconds", status_quantile_us(counts, metrics_bucket_us,
                                                             METRICS_BUCKETS, c->requests, 0.5));
    status_printf(b, ",");
    put_seconds_or_null(b, "p90_seconds", status_quantile_us(counts, metrics_bucket_us,
                                                             METRICS_BUCKETS, c->requests, 0.9));
    status_printf(b, ",");
    put_seconds_or_null(b, "p99_seconds", status_quantile_us(counts, metrics_bucket_us,
                                                             METRICS_BUCKETS, c->requests, 0.99));
    status_printf(b, ",\"bounds_seconds\":");
    put_bounds(b, metrics_bucket_us, METRICS_BUCKETS);
    status_printf(b, ",\"bucket_counts\":");
    put_u64_array(b, c->buckets, METRICS_BUCKETS);
    status_printf(b, "},\"loop_lag_bounds_seconds\":");
    put_bounds(b, metrics_lag_bucket_us, METRICS_LAG_BUCKETS);
    status_printf(b, ",");
}

static void
put_worker(struct status_buf *b, struct metrics_slot *s, pid_t pid, int64_t now_ms)
{
    uint64_t lag[METRICS_LAG_BUCKETS], turns = atomic_load(&s->c.lag_count);
    int64_t beat = atomic_load(&s->heartbeat_ms);

    for (int i = 0; i < METRICS_LAG_BUCKETS; i++)
        lag[i] = atomic_load_explicit(&s->c.lag_buckets[i], memory_order_relaxed);
    status_printf(b, "{\"slot\":%u,\"pid\":%d,\"generation\":%u,\"cpu_seconds\":%.6f,"
                  "\"requests\":%llu,\"connections\":%llu,\"heartbeat_age_ms\":%lld,"
                  "\"loop_lag\":{\"turns\":%llu,\"sum_seconds\":%.6f,",
                  s->wslot, (int)pid, s->gen, (double)atomic_load(&s->cpu_ns) / 1e9,
                  (unsigned long long)atomic_load(&s->c.requests),
                  (unsigned long long)atomic_load(&s->conns),
                  (long long)(beat > 0 ? now_ms - beat : -1), (unsigned long long)turns,
                  (double)atomic_load(&s->c.lag_sum_us) / 1e6);
    put_seconds_or_null(b, "p50_seconds", status_quantile_us(lag, metrics_lag_bucket_us,
                                                             METRICS_LAG_BUCKETS, turns, 0.5));
    status_printf(b, ",");
    put_seconds_or_null(b, "p99_seconds", status_quantile_us(lag, metrics_lag_bucket_us,
                                                             METRICS_LAG_BUCKETS, turns, 0.99));
    status_printf(b, ",\"buckets\":");
    put_u64_array(b, s->c.lag_buckets, METRICS_LAG_BUCKETS);
    status_printf(b, "}}");
}

static void
put_workers(struct status_buf *b, int64_t now_ms)
{
    struct metrics_server srv;
    int first = 1;

    metrics_server(&srv);
    status_printf(b, "\"workers\":[");
    for (unsigned i = 0; i < srv.nslots; i++) {
        struct metrics_slot *s = metrics_slot((int)i);
        pid_t pid = s->pid; /* 0: free, -1: being forked */

        if (pid <= 0)
            continue;
        status_printf(b, "%s", first ? "" : ",");
        put_worker(b, s, pid, now_ms);
        first = 0;
    }
    status_printf(b, "],");
}

static void
put_classes(struct status_buf *b, const char *key, const uint64_t *v)
{
    status_printf(b, "\"%s\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu}",
                  key, (unsigned long long)v[0], (unsigned long long)v[1],
                  (unsigned long long)v[2], (unsigned long long)v[3], (unsigned long long)v[4]);
}

static void
put_services(struct status_buf *b, const struct metrics_counts *c)
{
    const char *name;

    status_printf(b, "\"services\":[");
    for (int i = 0; (name = metrics_service_name(i)) != NULL; i++) {
        uint64_t v[METRICS_CLASSES], total = 0;
        for (int k = 0; k < METRICS_CLASSES; k++)
            total += v[k] = c->by_class[i][k];
        status_printf(b, "%s{\"name\":", i ? "," : "");
        status_json_str(b, name, strlen(name));
        status_printf(b, ",\"requests\":%llu,", (unsigned long long)total);
        put_classes(b, "by_class", v);
        status_printf(b, "}");
    }
    status_printf(b, "],\"routes\":[");
    for (int i = 0; i < METRICS_MAX_ROUTES; i++) {
        const char *svc, *label;
        if (metrics_route_name(i, &svc, &label) == -1)
            break;
        status_printf(b, "%s{\"service\":", i ? "," : "");
        status_json_str(b, svc, strlen(svc));
        status_printf(b, ",\"route\":");
        status_json_str(b, label, strlen(label));
        status_printf(b, ",\"requests\":%llu,\"cpu_seconds\":%.6f}",
                      (unsigned long long)c->route_requests[i],
                      (double)c->route_cpu_ns[i] / 1e9);
    }
    status_printf(b, "],");
}

/* The wall-clock time of monotonic time t, in seconds, or null for 0 (never). */
static void
put_when(struct status_buf *b, const char *key, int64_t t, int64_t now_ms, double wall)
{
    if (t <= 0)
        status_printf(b, ",\"%s\":null", key);
    else
        status_printf(b, ",\"%s\":%.3f", key, wall - (double)(now_ms - t) / 1e3);
}

static void
put_upstream(struct status_buf *b, struct upstate *u, int64_t now_ms, double wall)
{
    char names[UPSTATE_KEY_MAX], why[64];
    const char *up, *srv, *state;
    int64_t until = atomic_load(&u->down_until_ms), since = atomic_load(&u->since_ms);
    int64_t inflight = atomic_load(&u->in_flight);
    uint64_t last = atomic_load(&u->last_check), cause = atomic_load(&u->eject_cause);
    uint64_t v[5];

    upstate_names(u, names, sizeof(names), &up, &srv);
    why[0] = '\0';
    if (atomic_load(&u->down)) {
        state = "down";
        upstate_check_why((enum upstate_result)(last >> 32), (int)(uint32_t)last, why,
                          sizeof(why));
    } else if (until > now_ms) {
        state = "ejected";
        since = atomic_load(&u->ejected_ms);
        upstate_check_why((enum upstate_result)(cause >> 32), (int)(uint32_t)cause, why,
                          sizeof(why));
    } else {
        state = "up";
        since = until > since ? until : since;
        until = 0;
    }
    status_printf(b, "{\"upstream\":");
    status_json_str(b, up, strlen(up));
    status_printf(b, ",\"server\":");
    status_json_str(b, srv, strlen(srv));
    status_printf(b, ",\"up\":%s,\"state\":\"%s\",\"checked\":%s",
                  upstate_usable(u, now_ms) ? "true" : "false", state,
                  atomic_load(&u->flags) & UPSTATE_F_CHECKED ? "true" : "false");
    put_when(b, "since", since, now_ms, wall);
    put_when(b, "until", until > now_ms ? until : 0, now_ms, wall);
    status_printf(b, ",\"why\":");
    if (why[0] != '\0')
        status_json_str(b, why, strlen(why));
    else
        status_printf(b, "null");
    for (int k = 0; k < 5; k++)
        v[k] = atomic_load(&u->responses[k]);
    status_printf(b, ",\"in_flight\":%lld,\"requests\":%llu,",
                  (long long)(inflight > 0 ? inflight : 0),
                  (unsigned long long)atomic_load(&u->requests));
    put_classes(b, "responses", v);
    status_printf(b, ",\"errors\":{");
    for (int k = UPSTATE_CONNECT_REFUSED; k < UPSTATE_RESULT_MAX; k++)
        status_printf(b, "%s\"%s\":%llu", k > UPSTATE_CONNECT_REFUSED ? "," : "",
                      upstate_result_names[k], (unsigned long long)atomic_load(&u->errors[k]));
    status_printf(b, "},\"retries\":%llu,\"ejections\":%llu}",
                  (unsigned long long)atomic_load(&u->retries),
                  (unsigned long long)atomic_load(&u->ejections));
}

static void
put_upstreams(struct status_buf *b, int64_t now_ms)
{
    struct timespec ts;
    double wall;
    int first = 1;

    clock_gettime(CLOCK_REALTIME, &ts);
    wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    status_printf(b, "\"upstreams\":[");
    for (int i = 0; i < UPSTATE_MAX; i++) {
        struct upstate *u = upstate_current(i);
        if (u == NULL)
            continue;
        status_printf(b, "%s", first ? "" : ",");
        put_upstream(b, u, now_ms, wall);
        first = 0;
    }
    status_printf(b, "]");
}

/* The document, into b. */
static void
status_json(struct status_buf *b)
{
    struct metrics_counts *c = xmalloc(sizeof(*c));
    struct metrics_totals t;
    int64_t now = util_now_ms();

    metrics_sum(&t, c);
    status_printf(b, "{");
    put_server(b, now);
    status_printf(b, "\"totals\":{\"requests\":%llu,\"connections\":%llu,\"workers\":%u,"
                  "\"body_bytes\":%llu},",
                  (unsigned long long)t.requests, (unsigned long long)t.conns, t.workers,
                  (unsigned long long)c->body_bytes);
    put_latency(b, c);
    put_workers(b, now);
    put_services(b, c);
    put_upstreams(b, now);
    status_printf(b, "}\n");
    free(c);
}

/* ---- requests ---- */

/* JSON for "?format=json" (or an Accept that names application/json and not text/html, as
 * a script's would), the dashboard otherwise ("?format=html" forces it). */
static int
wants_json(h2o_req_t *req)
{
    ssize_t i;

    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            size_t n = (size_t)((amp != NULL ? amp : end) - q);
            if (h2o_memis(q, n, H2O_STRLIT("format=json")))
                return 1;
            if (h2o_memis(q, n, H2O_STRLIT("format=html")))
                return 0;
            q += n + 1;
        }
    }
    i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        return h2o_strstr(v.base, v.len, H2O_STRLIT("application/json")) != SIZE_MAX &&
               h2o_strstr(v.base, v.len, H2O_STRLIT("text/html")) == SIZE_MAX;
    }
    return 0;
}

static void
add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                          strlen(value));
}

struct status_handler {
    h2o_handler_t super;
    const struct status_conf *conf;
};

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    const struct status_conf *conf = ((struct status_handler *)self)->conf;
    struct status_buf b;
    char *body;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        h2o_send_error_405(req, hnd_reason(405), "method not allowed\n",
                           H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    req->res.status = 200;
    req->res.reason = hnd_reason(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept"));
    add_header(req, "x-content-type-options", "nosniff");
    if (wants_json(req)) {
        status_buf_init(&b, JSON_START, JSON_MAX);
        status_json(&b);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        body = h2o_mem_alloc_pool(&req->pool, b.len > 0 ? b.len : 1);
        memcpy(body, b.buf, b.len);
        req->res.content_length = b.len;
        status_buf_free(&b);
        hnd_send_body(req, body, req->res.content_length);
        return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/html; charset=utf-8"));
    add_header(req, "content-security-policy", conf->csp);
    add_header(req, "x-frame-options", "DENY");
    add_header(req, "referrer-policy", "no-referrer");
    req->res.content_length = conf->page_len;
    hnd_send_body(req, conf->page, conf->page_len);
    return 0;
}

static int
status_parse(const struct conf_node *n, void **out, struct conf_diag *diag)
{
    struct status_conf *c = xcalloc(1, sizeof(*c));
    char script[64], style[64];

    csp_hash(page_script, script, sizeof(script));
    csp_hash(page_style, style, sizeof(style));
    /* Nothing but the page's own script and style, and the fetch of its JSON. */
    c->csp = xasprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
                       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                       script, style);
    c->page = xasprintf("%s%s%s%s%s", page_head, page_style, page_body, page_script, page_tail);
    c->page_len = strlen(c->page);
    *out = c;
    return 0;
}

static void
status_free(void *p)
{
    struct status_conf *c = p;

    if (c == NULL)
        return;
    free(c->csp);
    free(c->page);
    free(c);
}

static void
status_setup(struct st_h2o_pathconf_t *pc, const void *hconf)
{
    struct status_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));

    h->super.on_req = on_req;
    h->conf = hconf;
}

const struct hnd_ops hnd_status_ops = {
    .name = "status",
    .min_args = 0,
    .max_args = 0,
    .usage = "status",
    .parse = status_parse,
    .setup = status_setup,
    .free_conf = status_free,
};
