/* Request hygiene checks run before any handler (worker). */
#ifndef PERCORE_REQCHECK_H
#define PERCORE_REQCHECK_H

#include <stddef.h>

struct st_h2o_req_t;
struct st_h2o_pathconf_t;

/* Worker: make the checks the first handler of pc (before the route's own). */
void reqcheck_register(struct st_h2o_pathconf_t *pc);
/* Why req must be refused with 400 (a static string), or NULL if it may go on. */
const char *reqcheck_why(struct st_h2o_req_t *req);
/* 1 if s[0..len) is an acceptable Host value: empty, or host[:port]. */
int reqcheck_host_valid(const char *s, size_t len);

#endif
