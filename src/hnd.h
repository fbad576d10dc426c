/* Handler registry: each route has exactly one handler kind (respond, ...). */
#ifndef PERCORE_HND_H
#define PERCORE_HND_H

#include "conf_parse.h"
#include "h2o_inc.h"

struct st_h2o_pathconf_t;

struct hnd_ops {
    const char *name; /* the directive, which has a HANDLER row in conf.c's table */
    /* The one statement of the directive's arguments: the loader checks their count before
     * parse is called, so parse may rely on it; usage is shown when it is wrong. */
    int min_args, max_args;
    const char *usage;
    /* Master: validate the directive's arguments into a handler config (*out, freed with
     * free_conf). Errors go to diag with the argument's position; returns -1 then. */
    int (*parse)(const struct conf_node *n, void **out, struct conf_diag *diag);
    /* Worker: attach the handler to a pathconf. */
    void (*setup)(struct st_h2o_pathconf_t *pc, const void *hconf);
    void (*free_conf)(void *hconf);
    /* Master, once the config is loaded: NULL when the handler serves within the worker
     * sandbox, else who needs it off ("module 'x' (/path)"), a string hconf owns. May be
     * NULL: always within. */
    const char *(*unsandboxed)(const void *hconf);
    /* Worker: whether its templates (a redirect target, a proxy path) use variables, which
     * the router then records per request. May be NULL: none. */
    int (*uses_vars)(const void *hconf);
};

extern const struct hnd_ops hnd_respond_ops;
extern const struct hnd_ops hnd_module_ops;
extern const struct hnd_ops hnd_files_ops;
extern const struct hnd_ops hnd_redirect_ops;
extern const struct hnd_ops hnd_proxy_ops;
extern const struct hnd_ops hnd_fastcgi_ops;
extern const struct hnd_ops hnd_metrics_ops;
extern const struct hnd_ops hnd_health_ops;
extern const struct hnd_ops hnd_status_ops;

/* A ", "-separated list of all handler names, for error messages. */
const char *hnd_names(void);

struct sockaddr_storage;
/* Master, at load: the first address getaddrinfo gives for a TCP host and port, into
 * *ss and *len. 0, or getaddrinfo's error (for gai_strerror). */
int hnd_resolve(const char *host, const char *port, struct sockaddr_storage *ss,
                unsigned *len);

/* The HTTP/1 reason phrase of a status: the standard one when known, else a generic word
 * for its class. */
const char *hnd_reason(int status);

struct st_h2o_req_t;
/* How many leading bytes of req's normalised path its route's prefix stands for: the
 * pathconf's path when the path still starts with it, 0 when a rewrite moved the path
 * elsewhere (its whole path is then the suffix). */
size_t hnd_prefix_len(const struct st_h2o_req_t *req);

/* The host the client named (request line, Host or :authority), or an empty iovec: when
 * it named none, libh2o puts its default hostconf's name there, which is percore's. */
h2o_iovec_t hnd_client_authority(const struct st_h2o_req_t *req);

/* Worker: after each event loop turn; drops what the files handler kept open for it. */
void hnd_files_turn_end(void);

struct st_h2o_req_t;
/* Send a response whose status and headers are set, with body (which must outlive the
 * request), leaving the body out for HEAD. */
void hnd_send_body(struct st_h2o_req_t *req, const char *body, size_t len);

struct st_h2o_mem_pool_t;
/* The decoded path s[0..len) as it may appear in a Location header, allocated from pool:
 * every byte that is not an RFC 3986 path character (controls, '\\', '%', '?', '#',
 * quotes, bytes >= 0x80 ...) percent-encoded, and runs of '/' made one, so the result
 * can neither add a header nor become a scheme-relative "//host" reference; *outlen
 * is its length. */
char *hnd_location_path(struct st_h2o_mem_pool_t *pool, const char *s, size_t len,
                        size_t *outlen);
/* The query s[0..len) as received (from its '?', still percent-encoded) as it may appear in
 * a Location header or a request target sent upstream: every byte that is not an RFC 3986
 * query character ('#', controls, spaces, quotes, '<', '>', '{', '|', '\\', '^', '[',
 * bytes >= 0x80 ...) percent-encoded, and '\'' too (libh2o also writes the Location into
 * an HTML link); a '%' with two hex digits after it is kept, any other '%' encoded. */
char *hnd_location_query(struct st_h2o_mem_pool_t *pool, const char *s, size_t len,
                         size_t *outlen);
/* The Location s[0..len) from elsewhere (an upstream) as percore may pass it on: controls,
 * space and DEL percent-encoded, all else as it is. */
char *hnd_location_visible(struct st_h2o_mem_pool_t *pool, const char *s, size_t len,
                           size_t *outlen);

#endif
