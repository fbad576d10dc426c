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

struct access_log;
struct metrics_slot;
struct st_h2o_socket_t;

/* Requests libh2o's HTTP/1 parser refuses (a request line or header it cannot parse, a
 * head larger than it reads) are answered by libh2o with a fixed 400 on the socket, with
 * no request that handlers or loggers see. Connections are tracked so that such a 400
 * still gets an access log line and a count in the metrics. */

/* Worker, at start: the metrics slot refused requests are counted in, and what to call
 * (with the connection's former fd) after a tracked connection has closed. */
void reqcheck_init(struct metrics_slot *slot, void (*closed)(int fd));
/* Worker, at accept: track sock (this sets its on_close), a connection of the service
 * whose access log is al (or NULL) and metrics index svc. */
void reqcheck_conn_track(struct st_h2o_socket_t *sock, struct access_log *al, int svc);
/* Worker: sock (tracked) speaks HTTP/2, which libh2o never answers with that 400. */
void reqcheck_conn_http2(struct st_h2o_socket_t *sock);
/* Worker, from the request logger: req was logged to al and counted under svc. */
void reqcheck_conn_logged(struct st_h2o_req_t *req, struct access_log *al, int svc);

#endif
