/*
 * percore module ABI: request handlers written in C, loaded from a shared object by the
 * `module` route handler. See percore-module(3).
 *
 * A module exports one object, `percore_module`, describing itself. For each worker,
 * percore calls init() once after the worker starts, then handle() for every request of
 * the route, on the worker's single-threaded event loop: a handler must never block.
 * It answers with percore_respond(), either at once or later from a callback scheduled
 * with percore_defer() (the asynchronous form). Requests and the strings percore hands
 * out live until the response is sent or the client goes away, whichever comes first.
 */
#ifndef PERCORE_MODULE_H
#define PERCORE_MODULE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PERCORE_MODULE_ABI 1

struct percore_request; /* opaque; valid from handle() until the response is sent */

enum percore_handled {
    PERCORE_DECLINED = -1, /* not mine: the route answers 404 */
    PERCORE_DONE = 0,      /* percore_respond() was called, or will be from a callback */
};

struct percore_module {
    unsigned abi; /* PERCORE_MODULE_ABI */
    const char *name;
    /* Per worker. arg is the route's optional module argument (or NULL). Return 0, or -1
     * to make the worker log the failure and answer the route with 500. May be NULL. */
    int (*init)(const char *arg, void **data);
    int (*handle)(void *data, struct percore_request *req);
};

/* Workers run modules inside a seccomp sandbox (percore.conf(5), worker_sandbox) that
 * allows what serving needs: no running programs, no fork, no writing files, no new
 * executable code. A module that needs more defines, beside percore_module,
 *     const int percore_module_needs_syscalls = 1;
 * and percore then refuses to load it unless the config says `worker_sandbox off;` (a
 * module that makes a forbidden call without saying so gets its worker killed). */
extern const int percore_module_needs_syscalls;

/* Request. Strings are not NUL-terminated: use the length. */
const char *percore_req_method(const struct percore_request *req, size_t *len);
const char *percore_req_path(const struct percore_request *req, size_t *len);
/* The first header called name (case-insensitive), or NULL. */
const char *percore_req_header(const struct percore_request *req, const char *name,
                               size_t *len);
/* The whole request body (buffered by percore), or NULL when there is none. */
const char *percore_req_body(const struct percore_request *req, size_t *len);

/* Response. Add headers before percore_respond(); the body is copied. Returns 0, or -1
 * when the request already has its response. */
int percore_resp_header(struct percore_request *req, const char *name, const char *value);
int percore_respond(struct percore_request *req, int status, const char *content_type,
                    const void *body, size_t len);

/* Call cb(req, arg) on this worker's loop after ms milliseconds (0 = next loop turn),
 * unless the client is gone by then: the asynchronous way to answer later. */
typedef void percore_defer_cb(struct percore_request *req, void *arg);
int percore_defer(struct percore_request *req, unsigned ms, percore_defer_cb *cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif
