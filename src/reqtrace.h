/* A request's identity, fixed when the router takes it: when it began, its request ID
 * (accepted from a trusted proxy, else made here), and its W3C trace context (the trace
 * it belongs to, the caller's span, percore's own span, and whether it is sampled). */
#ifndef PERCORE_REQTRACE_H
#define PERCORE_REQTRACE_H

#include <stddef.h>
#include <stdint.h>

#include "h2o_inc.h"

struct conf;
struct conf_service;
struct reqdata;

#define REQTRACE_ID_MAX 128 /* an accepted request ID's length at most */
#define REQTRACE_TRACEPARENT_LEN 55 /* "00-" 32 "-" 16 "-" 2 */
#define REQTRACE_TRACESTATE_MAX 512 /* a tracestate list passed on, in bytes at most */

struct reqtrace {
    uint8_t trace_id[16];
    uint8_t span_id[8];   /* percore's server span */
    uint8_t parent_id[8]; /* the caller's span; all zero: none (the trace began here) */
    uint8_t flags;        /* W3C trace-flags: bit 0, sampled */
    uint8_t on;           /* tracing is on: the IDs above are set */
    h2o_iovec_t tracestate; /* the caller's, as it came if valid; else empty */
    char trace_hex[33];     /* trace_id in hex, for logs */
};

/* Worker, at start: the main context's tracing settings (c outlives the worker). */
void reqtrace_init(const struct conf *c);

/* The router, as it takes req for service s: note the time, then, as s and the tracing
 * settings say, take or make the request ID (replacing the client's header) and the
 * trace context (replacing traceparent and tracestate with percore's span). */
void reqtrace_begin(h2o_req_t *req, struct reqdata *rd, const struct conf_service *s);

/* A new random span ID. */
void reqtrace_new_span(uint8_t span[8]);
/* "00-TRACE-SPAN-FLAGS" for t with span as the parent the next hop sees; out has room for
 * REQTRACE_TRACEPARENT_LEN + 1 bytes. */
void reqtrace_traceparent(const struct reqtrace *t, const uint8_t span[8], char *out);
/* n bytes as lowercase hex in out (2n + 1 bytes). */
void reqtrace_hex(const uint8_t *b, size_t n, char *out);

/* Parse a traceparent value into t (trace_id, parent_id, flags): 0, or -1 if it is not
 * valid (W3C Trace Context level 1, version 00, or a later one read as 00). */
int reqtrace_parse_traceparent(h2o_iovec_t v, struct reqtrace *t);
/* Whether v is a tracestate list percore passes on: at most 32 members of key=value, 512
 * bytes, printable. */
int reqtrace_valid_tracestate(h2o_iovec_t v);
/* Whether v may be taken as a request ID from a trusted proxy: 1 to REQTRACE_ID_MAX bytes
 * of visible ASCII but '"' and '\'. */
int reqtrace_valid_request_id(h2o_iovec_t v);

/* Services with request_id on: the filter on pc that sends the ID back in the response. */
void reqtrace_register(h2o_pathconf_t *pc, const struct conf_service *s);

#endif
