/* Upstream groups as configured (struct conf_upstream, conf.h): their servers' URLs parsed
 * and resolved at load, their defaults, and the words of their directives. Used by the
 * config loader for `upstream` blocks and by the proxy handler for the servers written on
 * its line. */
#ifndef PERCORE_UPSTREAM_H
#define PERCORE_UPSTREAM_H

#include <stddef.h>

#include "conf.h"

#define UPSTREAM_DEFAULT_TIMEOUT_MS 30000
#define UPSTREAM_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define UPSTREAM_DEFAULT_KEEPALIVE_MS 2000
#define UPSTREAM_DEFAULT_BUFFER_SIZE (2 * 1024 * 1024)
#define UPSTREAM_DEFAULT_MAX_FAILS 1
#define UPSTREAM_DEFAULT_FAIL_TIMEOUT_MS 10000
#define UPSTREAM_DEFAULT_RETRY_BUDGET 20
#define UPSTREAM_BUFFER_MIN 4096
#define UPSTREAM_BUFFER_MAX (1024 * 1024 * 1024)
#define UPSTREAM_RETRIES_MAX 10
#define UPSTREAM_WEIGHT_MAX 1000
#define UPSTREAM_CHECK_PATH_MAX 1024
#define UPSTREAM_DEFAULT_QUEUE 32
#define UPSTREAM_DEFAULT_QUEUE_TIMEOUT_MS 1000
#define UPSTREAM_QUEUE_MAX 100000

/* A new group with every default (no server yet); anonymous for a proxy line's own. */
struct conf_upstream *upstream_new(const char *name, const struct conf_pos *pos, int anonymous);
void upstream_free(struct conf_upstream *g);

/* Parses server URL (http(s)://HOST[:PORT][/PATH] or unix:/PATH) into a new server of g,
 * resolving its host now. A path is only allowed when with_path (a proxy line's server;
 * it may hold variables). -1 with a message in err. */
int upstream_add_server(struct conf_upstream *g, const char *url, const struct conf_pos *pos,
                        int with_path, char *err, size_t errlen);
/* A server option word (weight=N, max_inflight=N, resolve=TIME|off) for the last server
 * added: 1 when it was one (and is set), 0 when it is no option word, -1 (message in err)
 * for a bad value. */
int upstream_server_option(struct conf_upstream *g, const char *word, char *err,
                           size_t errlen);

/* A tls_* directive of g's block (uptls_conf_set): 0, 1 when it is none, -1 with err. */
int upstream_set_tls(struct conf_upstream *g, const char *directive, const char *value,
                     char *err, size_t errlen);
/* `health_check PATH [interval=TIME] [timeout=TIME] [fall=N] [rise=N] [status=LO[-HI]]`:
 * the path (0, or -1 with err), then each option word (1 when set, 0 when it is no option
 * word, -1 with err for a bad value). */
int upstream_check_path(struct conf_upstream *g, const char *path, char *err, size_t errlen);
int upstream_check_option(struct conf_upstream *g, const char *word, char *err, size_t errlen);

/* `queue N [timeout=TIME]`: N from 0 to UPSTREAM_QUEUE_MAX then the option (NULL: none):
 * 0, or with err -1 for a bad N, -2 for a bad option. */
int upstream_set_queue(struct conf_upstream *g, const char *n, const char *option, char *err,
                       size_t errlen);

/* Once g's servers and settings are all read: its passive and active check policy, each
 * server's record in the shared region (upstate_register: the caller commits or discards
 * the load), its servers named by a host followed from now on (upresolve.h; upstream_free
 * gives them up), and its TLS context when a server is https:// (files read now). -1 with
 * err when a record or the context cannot be made, or tls_* settings serve nothing. */
int upstream_finish(struct conf_upstream *g, char *err, size_t errlen);

/* `retry_on WORD...`: the RETRY_ bit of one word, or 0 if it is none. */
unsigned upstream_retry_word(const char *word);

/* The words a `retry_on` knows, for messages. */
#define UPSTREAM_RETRY_WORDS "error, timeout, 429, 500, 502, 503, 504"

#endif
