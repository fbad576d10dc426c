/* Request hygiene checks run before any handler (worker). */
#ifndef PERCORE_REQCHECK_H
#define PERCORE_REQCHECK_H

#include <stddef.h>
#include <sys/socket.h>

struct st_h2o_req_t;
struct st_h2o_pathconf_t;

/* Worker: make the checks the first handler of pc (before the route's own). */
void reqcheck_register(struct st_h2o_pathconf_t *pc);
/* Why req must be refused with 400 (a static string), or NULL if it may go on. */
const char *reqcheck_why(struct st_h2o_req_t *req);
/* 1 if s[0..len) is an acceptable Host value: empty, or host[:port]. */
int reqcheck_host_valid(const char *s, size_t len);

struct access_log;
struct conn;
struct metrics_slot;

/* Requests libh2o's HTTP/1 parser refuses (a request line or header it cannot parse, a
 * head larger than it reads) are answered by libh2o with a fixed 400 on the socket, with
 * no request that handlers or loggers see. Each connection's record keeps what it takes
 * to see such a 400 when the connection closes, so that it still gets an access log line
 * and a count in the metrics. */
struct reqcheck_conn {
    size_t written; /* sock->bytes_written when its last request was logged */
    struct access_log *al;
    int svc;
    int not_http1; /* HTTP/2, or a tunnel after an upgrade: no parser 400 to find */
    struct sockaddr_storage peer;
    socklen_t peerlen;
};

/* Worker, at start: the metrics slot refused requests are counted in. */
void reqcheck_init(struct metrics_slot *slot);
/* Worker, at accept: c is a connection of the service whose access log is al (or NULL)
 * and metrics index svc. */
void reqcheck_conn_open(struct conn *c, struct access_log *al, int svc);
/* Worker: c speaks HTTP/2, or no longer HTTP/1 (a WebSocket tunnel): libh2o never
 * answers with that 400, and the count of bytes written means nothing. */
void reqcheck_conn_not_http1(struct conn *c);
/* Worker, from the request logger: req, of connection c (or NULL), was logged to al and
 * counted under svc. */
void reqcheck_conn_logged(struct conn *c, struct st_h2o_req_t *req, struct access_log *al,
                          int svc);
/* Worker, from c's close hook: counts and logs the 400 libh2o's parser answered last. */
void reqcheck_conn_closed(struct conn *c);

#endif
