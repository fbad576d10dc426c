/* Error documents: what a service or route answers in place of percore's own plain-text
 * error bodies (404, 405, 413, 421, 429, 502, 503, 504 ...): a page per status
 * (`error_page`) or an RFC 9457 problem document (`error_format problem+json`). Responses
 * an upstream, a FastCGI application or a module made are theirs and pass unchanged. */
#ifndef PERCORE_ERRORDOC_H
#define PERCORE_ERRORDOC_H

#include "conf_parse.h"
#include "h2o_inc.h"

struct errordoc_set;

/* Master, at load: `error_page CODE... file PATH|respond TEXT` and
 * `error_format text|problem+json` into *set (made when NULL). Files are read now, so
 * workers need no access to them. 0, or -1 with the problem in diag at its argument. */
int errordoc_parse_page(const struct conf_node *n, struct errordoc_set **set,
                        struct conf_diag *diag);
int errordoc_parse_format(const struct conf_node *n, struct errordoc_set **set,
                          struct conf_diag *diag);
/* A route's set: its own entries and format over the service's. NULL when both are. */
struct errordoc_set *errordoc_merge(const struct errordoc_set *route,
                                    const struct errordoc_set *service);
void errordoc_free(struct errordoc_set *set);

/* The RFC 9457 problem document {"type":"about:blank","title":REASON,"status":STATUS,
 * "detail":DETAIL,"instance":PATH} with detail[0..dlen) and path[0..plen) escaped so that
 * any bytes give valid JSON (bytes >= 0x80 each as \u00XX). Writes at most cap bytes of
 * it to buf (no NUL) and returns its whole length: call with cap 0 to size it. */
size_t errordoc_problem_json(char *buf, size_t cap, int status, const char *detail, size_t dlen,
                             const char *path, size_t plen);

/* Worker: the filter on pc that puts set's documents in place of percore's own errors. */
void errordoc_register(h2o_pathconf_t *pc, const struct errordoc_set *set);

#endif
