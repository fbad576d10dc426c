/* The loaded configuration: an immutable tree built by the master and inherited by workers. */
#ifndef PERCORE_CONF_H
#define PERCORE_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "accesslog.h"
#include "conf_parse.h"
#include "listener.h"
#include "log.h"
#include "upstate.h"

struct hnd_ops;
struct regex;
struct tmpl;
struct errordoc_set;
struct uptls_conf;
struct ipnet;
struct upresolve_slot;

enum conf_header_cmd { HDR_SET, HDR_ADD, HDR_UNSET };

struct conf_header {
    enum conf_header_cmd cmd;
    char *name;
    char *value;        /* NULL for HDR_UNSET */
    struct tmpl *tvalue; /* value compiled (variables); NULL for HDR_UNSET */
};

/* How a route's pattern matches the request's decoded, normalised path. */
enum conf_match { MATCH_PREFIX, MATCH_EXACT, MATCH_REGEX };

enum conf_cond_kind { COND_HEADER, COND_ARG };

/* `match_header NAME [VALUE|~REGEX]`, `match_arg NAME [VALUE|~REGEX]`: present, equal, or
 * matching. */
struct conf_cond {
    enum conf_cond_kind kind;
    char *name;       /* header: lowercase; argument: as written */
    char *value;      /* NULL: present is enough */
    struct regex *re; /* the value was ~REGEX: it must match instead */
    struct conf_pos pos;
};

/* `rewrite REGEX REPLACEMENT [FLAG]`. */
enum conf_rewrite_flag { RW_NEXT, RW_LAST, RW_BREAK, RW_REDIRECT, RW_PERMANENT };

struct conf_rewrite {
    struct regex *re;
    struct tmpl *repl; /* $1..$9: re's captures */
    enum conf_rewrite_flag flag;
    struct conf_pos pos;
};

/* `proxy_header NAME VALUE` / `proxy_header_unset NAME`: a request header as the handler
 * (and so the upstream) gets it, replacing what the client sent under that name. */
struct conf_reqheader {
    char *name;         /* lowercase */
    struct tmpl *value; /* NULL: removed */
    struct conf_pos pos;
};

struct conf_route {
    char *prefix; /* the pattern as written: a prefix, an exact path or a regex */
    enum conf_match match;
    struct regex *re; /* MATCH_REGEX */
    struct conf_pos pos;
    char **methods; /* `methods`: uppercase tokens; none: any */
    size_t nmethods;
    struct conf_cond *conds;
    size_t nconds;
    struct conf_rewrite *rewrites;
    size_t nrewrites;
    struct conf_reqheader *reqheaders; /* applied after the service's */
    size_t nreqheaders;
    struct errordoc_set *errors; /* its own over the service's; NULL: none */
    const struct hnd_ops *hnd;
    void *hnd_conf; /* owned, freed by hnd->free_conf */
    struct conf_pos hnd_pos;
    struct conf_header *headers;
    size_t nheaders;
    int compress; /* gzip text responses for clients that accept it */
};

/* How a group picks the server for a request. */
enum conf_balance { BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN, BALANCE_HASH };

/* What a failed attempt may be retried on (`retry_on`). */
enum {
    RETRY_ERROR = 1,   /* no connection, or closed before any response byte */
    RETRY_TIMEOUT = 2, /* no response head in time */
    RETRY_500 = 4,
    RETRY_502 = 8,
    RETRY_503 = 16,
    RETRY_504 = 32,
    RETRY_429 = 64,
};

/* One server of an upstream group: http://HOST[:PORT][/PATH] or unix:/PATH, its address
 * resolved at load. */
struct conf_upserver {
    char *url; /* as configured, for logs and metrics */
    struct conf_pos pos;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char *authority;    /* Host: sent to it unless preserve_host */
    char *path;         /* prefix the request's path suffix is appended to */
    struct tmpl *tpath; /* the path has variables: expanded instead, no suffix added */
    unsigned weight;    /* `weight=N`, 1 by default */
    unsigned max_inflight; /* `max_inflight=N`: requests at once across workers; 0: any */
    int tls;            /* https:// */
    char *host;         /* the URL's host: the TLS name unless tls_name */
    int state;          /* its record in the shared region (upstate_register) */
    int64_t resolve_ms; /* `resolve=`: host looked up again at most this long after; 0: never */
    struct upresolve_slot *rslot; /* its addresses as the master follows them (upresolve.h) */
    uint64_t rid;                 /* and its mark in that slot */
};

/* An upstream group: `upstream NAME { server ...; }`, or the servers written on a `proxy`
 * line (a group of its own, named after them). */
struct conf_upstream {
    char *name;
    struct conf_pos pos;
    int anonymous;
    struct conf_upserver *servers;
    size_t nservers;
    enum conf_balance balance;
    struct tmpl *hash_key; /* BALANCE_HASH */
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    int64_t keepalive_ms;
    uint64_t buffer_size;
    unsigned max_fails;      /* passive: failures within fail_timeout that mark a server down */
    int64_t fail_timeout_ms; /* and how long it then stays down */
    unsigned retries;        /* attempts after the first */
    unsigned retry_budget;   /* retries, in percent of requests over 10 s */
    unsigned retry_on;       /* RETRY_ bits */
    unsigned queue;          /* requests a worker holds while every server is at max_inflight */
    int64_t queue_timeout_ms; /* ... each for at most this long, then 503 */
    struct uptls_conf *tls;  /* tls_* directives (uptls.h); NULL: none given */
    void *ssl_ctx;           /* SSL_CTX for its https:// servers, made at load */
    int proxy_protocol;      /* 0, or the PROXY version (1, 2) each connection starts with */
    /* Passive ejection (from max_fails, fail_timeout) and `health_check` (check.path NULL:
     * none; owned), as the shared records apply them; complete after upstream_finish. */
    struct upstate_policy policy;
};

struct conf_listen {
    struct listen_addr addr;
    struct conf_pos pos;
    int tls;
    int http2;   /* offer h2 by ALPN (TLS only) */
    int dflt;    /* `default`: answers a Host no service on the address names */
    int proxy_protocol; /* each connection starts with a PROXY header (proxyproto.h) */
};

/* `trusted_proxies`: the networks whose X-Forwarded-For (and PROXY headers) are believed,
 * in the main context or a service (whose own replaces the main one's). */
struct conf_trusted {
    struct ipnet *nets; /* owned */
    size_t n;
    int set; /* given in this block (`off` included) */
    struct conf_pos pos;
};

/* `request_id on|off [header=NAME]`: in the main context, every service's default; in a
 * service, its own. */
struct conf_reqid {
    int on;
    char *header; /* lowercase; "x-request-id" unless header= */
    int set;      /* given in this block */
};
#define CONF_REQID_HEADER "x-request-id"

/* Who may choose a request's trace: a traceparent from anyone, only from trusted_proxies,
 * or from no one (each request starts a trace). */
enum conf_trace_accept { TRACE_ACCEPT_ANY, TRACE_ACCEPT_TRUSTED, TRACE_ACCEPT_NONE };

/* The `tracing { }` block: W3C trace context on every request, spans exported by OTLP. */
struct conf_tracing {
    int on;                   /* the block was given */
    char *otlp_endpoint;      /* http://HOST[:PORT]/PATH; NULL: propagate only, export none */
    /* The endpoint as parsed and resolved at load (otel.c connects to it): its first
     * address, the Host header it is sent and the request target. */
    struct sockaddr_storage otlp_ss;
    socklen_t otlp_sslen;
    char *otlp_authority;
    char *otlp_path;
    double sample;            /* the share of traces started here that are sampled */
    char *service_name;       /* the spans' service.name */
    int accept;               /* enum conf_trace_accept */
    unsigned span_queue;      /* spans a worker holds for export; more are dropped */
    unsigned span_batch;      /* spans per export request at most */
    int64_t export_interval_ms; /* a batch goes at least this often */
    int64_t export_timeout_ms;  /* an export request taking longer is given up */
};
#define CONF_DEFAULT_SPAN_QUEUE 4096
#define CONF_DEFAULT_SPAN_BATCH 512
#define CONF_DEFAULT_EXPORT_INTERVAL_MS 1000
#define CONF_DEFAULT_EXPORT_TIMEOUT_MS 5000
#define CONF_OTLP_ENDPOINT_MAX 512 /* bytes: the export's request head has room for its path and host */

struct conf_service {
    char *name;
    struct conf_pos pos;
    char **server_names; /* lowercase; "*.example.com" matches any name below it */
    size_t nserver_names;
    struct conf_pos server_name_pos;
    int shared; /* shares a TLS address with another service (SNI picks between them) */
    uint64_t max_body;      /* request body limit, 413 above */
    uint64_t max_header_size; /* request line and headers, 431 above */
    int64_t header_timeout_ms;    /* HTTP/1.1: to get a request, keep-alive idle included */
    int64_t idle_timeout_ms;      /* HTTP/2: a connection with no streams */
    int64_t handshake_timeout_ms; /* TLS */
    int64_t send_timeout_ms;      /* a client taking no response bytes this long is cut */
    struct accesslog_conf access_log;
    char *tls_cert, *tls_key;
    struct conf_pos tls_pos;
    void *ssl_ctx;    /* SSL_CTX offering http/1.1, made at load for a tls listen */
    void *ssl_ctx_h2; /* the same offering h2 first, for listens with HTTP/2 */
    int http2;        /* `http2 on`: every tls listen offers h2 */
    struct conf_pos http2_pos;
    unsigned http2_max_resets; /* stream resets per connection per 10 s before closing it */
    struct conf_listen *listens;
    size_t nlistens;
    struct conf_route *routes;
    size_t nroutes;
    struct conf_rewrite *rewrites; /* before a route is chosen */
    size_t nrewrites;
    struct conf_reqheader *reqheaders;
    size_t nreqheaders;
    struct errordoc_set *errors; /* for requests no route takes; NULL: none */
    /* trusted_proxies: its own, else (after load) a copy of the main context's */
    struct conf_trusted trusted;
    struct conf_reqid reqid; /* its own, else (after load) the main context's */
};

/* Sockets systemd passed by name (socket activation), which let a service of that name
 * go without `listen`. known == 0: not known (percore -t), so a missing listen is fine. */
struct conf_sockets {
    const char *const *names;
    size_t n;
    int known;
};

struct conf {
    char *path;
    enum log_target log_target;
    char *log_path;
    int64_t worker_watchdog_ms;
    int64_t slow_turn_ms; /* a loop turn this busy is logged; 0: off */
    unsigned max_connections; /* per worker */
    unsigned workers; /* 0 = auto */
    unsigned http2_max_requests; /* requests run at once per HTTP/2 connection */
    int cpu_affinity;
    int64_t shutdown_timeout_ms;
    int64_t shutdown_delay_ms;
    int64_t tls_ticket_rotation_ms; /* a new session ticket key this often */
    char *user;        /* `user` as written; NULL: workers keep the master's ids */
    struct conf_pos user_pos;
    uid_t uid;         /* resolved at load */
    gid_t gid;         /* `group`, else the user's primary group */
    int gid_set;       /* gid is known (from `group` or the user's passwd entry) */
    int group_set;     /* `group` given */
    struct conf_pos group_pos;
    int worker_sandbox; /* workers confine themselves with seccomp (sandbox.c) */
    struct conf_trusted trusted; /* the services' default trusted_proxies */
    struct conf_reqid reqid;     /* the services' default request_id */
    struct conf_tracing tracing;
    struct conf_service *services;
    size_t nservices;
    struct conf_upstream **upstreams; /* `upstream` blocks, by name */
    size_t nupstreams;
    char **files; /* every file read, for positions in the tree */
    size_t nfiles;
};

#define CONF_WORKERS_MAX 512
#define CONF_DEFAULT_SHUTDOWN_TIMEOUT_MS 30000
#define CONF_DEFAULT_SHUTDOWN_DELAY_MS 0
#define CONF_DEFAULT_WORKER_WATCHDOG_MS 10000
/* A turn that long has kept every other client of the worker waiting a tenth of a second;
 * a burst of TLS handshakes (16 accepts at a time, about 2 ms each) stays well below. */
#define CONF_DEFAULT_SLOW_TURN_MS 100
#define CONF_DEFAULT_MAX_CONNECTIONS 16384
#define CONF_MAX_CONNECTIONS_MAX 1000000
#define CONF_DEFAULT_MAX_BODY (1024 * 1024)
#define CONF_DEFAULT_HTTP2_MAX_RESETS 100
#define CONF_DEFAULT_MAX_HEADER_SIZE (32 * 1024)
#define CONF_MAX_HEADER_SIZE_MAX (400 * 1024) /* about what libh2o itself reads */
#define CONF_DEFAULT_CONN_TIMEOUT_MS 10000
#define CONF_DEFAULT_SEND_TIMEOUT_MS 60000
#define CONF_DEFAULT_TICKET_ROTATION_MS (3600 * 1000)
#define CONF_DEFAULT_HTTP2_MAX_REQUESTS 100
#define CONF_HTTP2_MAX_STREAMS 100 /* SETTINGS_MAX_CONCURRENT_STREAMS, fixed by libh2o */

/* Load and validate a config file (or text, for tests). Returns the tree, or NULL with every
 * problem found in diag as "file:line:col: message". The caller frees with conf_free. */
struct conf *conf_load(const char *path, const struct conf_sockets *socks,
                       struct conf_diag *diag);
struct conf *conf_load_string(const char *name, const char *text,
                              const struct conf_sockets *socks, struct conf_diag *diag);
void conf_free(struct conf *c);

/* While a route block is loaded (handlers parse their arguments then): how many groups its
 * regex has, which its templates' $1..$9 may use; 0 elsewhere. */
unsigned conf_captures_in_scope(void);

/* While a config is loaded (handlers parse their arguments then): its `upstream` group of
 * that name, or NULL. Every group is loaded before any service. */
const struct conf_upstream *conf_find_upstream(const char *name);

/* Every time directive and handler option: libh2o keeps timeouts as milliseconds and
 * waits as int milliseconds, so a day keeps far from both limits. */
#define CONF_TIME_MAX_MS (24 * 3600 * 1000)
#define CONF_TIME_MAX "24h" /* as errors say it */

/* The one time parser, for directives and handler options alike: "30s", "500ms", "2m", "1h"
 * (a bare number is seconds) into *ms. 0 when from min_ms to CONF_TIME_MAX_MS; -1 when
 * malformed or above CONF_TIME_MAX_MS; -2 when below min_ms (*ms is then set). */
int conf_parse_time_ms(const char *s, int64_t min_ms, int64_t *ms);
/* "4k", "1m", "1g" (a bare number is bytes) into *bytes; -1 when malformed or too large for
 * 63 bits. Callers check their own bounds. */
int conf_parse_size(const char *s, uint64_t *bytes);

#endif
