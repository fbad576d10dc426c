/* Request hygiene, in workers: the first handler of every route (and of requests no route
 * matches), so no handler ever sees a request whose meaning two parsers could disagree on.
 *
 * Refused with 400 and, on HTTP/1, the connection closed after the answer (so bytes
 * left behind a refused request are never read as another request):
 * - a method that is not a token (RFC 9110 9.1): libh2o's HTTP/1 parser takes an empty
 *   one (a request line starting with a space) or one with quotes or brackets, which the
 *   proxy would send on as they are;
 * - a path with a control byte (0x00-0x1f, 0x7f), raw or percent-encoded: handlers copy
 *   the decoded path into response headers (Location) and file names;
 * - HTTP/1 framing that RFC 9112 6.3 calls an attack: more than one Content-Length (equal
 *   values too), a Content-Length that is not digits, Content-Length with
 *   Transfer-Encoding, more than one Transfer-Encoding, or one that is not `chunked`;
 * - an obsolete folded header line (libh2o keeps it as a header with an empty name);
 * - more than one Host, or a Host that is not host[:port]: a DNS name (letters, digits,
 *   '-', '.', '_', '~'), an IPv4 address or a bracketed IPv6 address, and a port up to
 *   65535; an HTTP/1.1 request without a Host.
 *
 * libh2o 2.2.5 keeps Content-Length, Transfer-Encoding and Host out of req->headers (the
 * first Content-Length, or the last Transfer-Encoding, frames the body; the last Host is
 * the authority), so HTTP/1 header lines are read again from the connection's input
 * buffer, which still starts with the request being served. */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "accesslog.h"
#include "conn.h"
#include "hnd.h"
#include "h2o_inc.h"
#include "metrics.h"
#include "reqcheck.h"
#include "util.h"

#define HOST_MAX 255 /* a DNS name is at most 253 bytes */

/* RFC 9110 5.6.2 tchar, the bytes of a method. */
static int
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
is_token(h2o_iovec_t s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.base[i]))
            return 0;
    return 1;
}

static int
has_ctl(h2o_iovec_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c < 0x20 || c == 0x7f)
            return 1;
    }
    return 0;
}

/* Bytes of a Host name: letters, digits, '-', '.', '_', '~' (a table: this runs for every
 * request). */
static const unsigned char host_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* 1 if s is host[:port] as described above; an empty Host (RFC 9112 3.2) passes. */
int
reqcheck_host_valid(const char *s, size_t len)
{
    size_t i = 0, end;
    unsigned port;

    if (len > 0 && s[0] == '[') {
        char ip6[INET6_ADDRSTRLEN];
        struct in6_addr a;
        const char *close = memchr(s, ']', len);
        size_t n = close != NULL ? (size_t)(close - s) - 1 : 0;
        if (n == 0 || n >= sizeof(ip6))
            return 0;
        memcpy(ip6, s + 1, n);
        ip6[n] = '\0';
        if (inet_pton(AF_INET6, ip6, &a) != 1)
            return 0;
        i = n + 2;
    } else {
        while (i < len && host_char[(unsigned char)s[i]])
            i++;
        if (i > HOST_MAX)
            return 0;
    }
    if (i == len)
        return 1;
    if (s[i] != ':' || i == 0) /* ":80" names no host */
        return 0;
    end = len - i - 1;
    if (end == 0 || end > 5)
        return 0;
    for (i++, port = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (unsigned)(s[i] - '0');
    }
    return port <= 65535;
}

static int
name_is(const char *name, size_t len, const char *want, size_t wlen)
{
    return len == wlen && strncasecmp(name, want, wlen) == 0;
}

static int
all_digits(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* The value of the header line [p, eol): without the name, the colon and the spaces or
 * tabs around it (eol is the '\n'; a '\r' before it is dropped). */
static h2o_iovec_t
line_value(const char *colon, const char *eol)
{
    const char *v = colon + 1;

    if (eol > v && eol[-1] == '\r')
        eol--;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
        eol--;
    return h2o_iovec_init(v, (size_t)(eol - v));
}

/* What is wrong with the framing of an HTTP/1 request head in [p, end), or NULL; an
 * HTTP/1.1 request must name its Host (RFC 9112 3.2). */
static const char *
check_head_lines(const char *p, const char *end, int http11)
{
    unsigned ncl = 0, nte = 0, nhost = 0;
    const char *eol;

    /* The request line first. */
    if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
        return NULL;
    for (p = eol + 1; p < end && *p != '\r' && *p != '\n'; p = eol + 1) {
        const char *colon;
        h2o_iovec_t v;
        size_t nlen;

        if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
            break;
        if (*p == ' ' || *p == '\t')
            return "folded header line";
        /* Only Content-Length, Transfer-Encoding and Host matter here. */
        if (((*p | 0x20) != 'c' && (*p | 0x20) != 't' && (*p | 0x20) != 'h') ||
            (colon = memchr(p, ':', (size_t)(eol - p))) == NULL)
            continue;
        nlen = (size_t)(colon - p);
        if (name_is(p, nlen, H2O_STRLIT("content-length"))) {
            v = line_value(colon, eol);
            if (++ncl > 1)
                return "more than one content-length";
            if (!all_digits(v.base, v.len))
                return "invalid content-length";
        } else if (name_is(p, nlen, H2O_STRLIT("transfer-encoding"))) {
            v = line_value(colon, eol);
            if (++nte > 1)
                return "more than one transfer-encoding";
            if (!h2o_lcstris(v.base, v.len, H2O_STRLIT("chunked")))
                return "transfer-encoding other than chunked";
        } else if (name_is(p, nlen, H2O_STRLIT("host"))) {
            if (++nhost > 1)
                return "more than one host";
        }
    }
    if (ncl > 0 && nte > 0)
        return "content-length with transfer-encoding";
    if (http11 && nhost == 0)
        return "no host";
    return NULL;
}

/* The head of HTTP/1 request req as received, or {NULL, 0} if it cannot be found. */
static h2o_iovec_t
http1_head(h2o_req_t *req)
{
    h2o_socket_t *sock;
    const char *p, *end;

    if (req->conn->callbacks->get_socket == NULL)
        return h2o_iovec_init(NULL, 0);
    sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL || sock->input->size == 0)
        return h2o_iovec_init(NULL, 0);
    p = sock->input->bytes;
    end = p + sock->input->size;
    /* The parser skips empty lines before a request. */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    /* Make sure this is the request being served, not bytes after it. */
    if ((size_t)(end - p) <= req->input.method.len ||
        memcmp(p, req->input.method.base, req->input.method.len) != 0 ||
        p[req->input.method.len] != ' ')
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(p, (size_t)(end - p));
}

const char *
reqcheck_why(h2o_req_t *req)
{
    h2o_iovec_t head;

    if (!is_token(req->input.method))
        return "invalid method";
    if (has_ctl(req->input.path) ||
        (req->path_normalized.base != req->input.path.base && has_ctl(req->path_normalized)))
        return "control byte in the path";
    for (size_t i = 0; i < req->headers.size; i++)
        if (req->headers.entries[i].name->len == 0)
            return "folded header line";
    if (req->input.authority.base != NULL &&
        !reqcheck_host_valid(req->input.authority.base, req->input.authority.len))
        return "invalid host";
    if (req->version >= 0x200)
        return NULL;
    head = http1_head(req);
    if (head.base == NULL)
        return NULL;
    return check_head_lines(head.base, head.base + head.len, req->version >= 0x101);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    const char *why = reqcheck_why(req);

    if (why == NULL)
        return -1;
    h2o_req_log_error(req, "reqcheck", "refused: %s", why);
    /* Closing is what keeps bytes after a disputed body from running as a request. */
    h2o_send_error_400(req, hnd_reason(400), "bad request\n",
                       H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION);
    return 0;
}

void
reqcheck_register(h2o_pathconf_t *pc)
{
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_req;
}

/* libh2o 2.2.5's answer to a request its parser refuses (lib/http1.c, send_bad_request),
 * the only bytes it writes on an HTTP/1 connection outside a request: when exactly this
 * many were written after the last logged request, the parser refused one. */
#define PARSER_400 "HTTP/1.1 400 Bad Request\r\n" \
                   "Content-Type: text/plain; charset=utf-8\r\n" \
                   "Connection: close\r\n" \
                   "Content-Length: 11\r\n" \
                   "\r\n" \
                   "Bad Request"
#define PARSER_400_LEN (sizeof(PARSER_400) - 1)

static struct metrics_slot *refused_slot;

void
reqcheck_init(struct metrics_slot *slot)
{
    refused_slot = slot;
}

/* libh2o disposes of the socket's buffers and fd before on_close, but frees the socket
 * itself only at the end of the loop turn, so its byte count can still be read here. */
void
reqcheck_conn_closed(struct conn *c)
{
    struct reqcheck_conn *rc = &c->check;

    assert(c->sock != NULL);
    if (!rc->not_http1 && c->sock->bytes_written - rc->written == PARSER_400_LEN) {
        metrics_count(refused_slot, rc->svc, 400, 11, 0);
        if (rc->al != NULL)
            accesslog_write_refused(rc->al, (struct sockaddr *)&rc->peer, rc->peerlen, 400, 11);
    }
}

void
reqcheck_conn_open(struct conn *c, struct access_log *al, int svc)
{
    struct reqcheck_conn *rc = &c->check;

    rc->al = al;
    rc->svc = svc;
    /* The address is gone by the time the socket closes. libh2o caches it, so the access
     * log's lookup of each request costs nothing more. */
    if (al != NULL)
        rc->peerlen = h2o_socket_getpeername(c->sock, (struct sockaddr *)&rc->peer);
}

void
reqcheck_conn_not_http1(struct conn *c)
{
    c->check.not_http1 = 1;
}

void
reqcheck_conn_logged(struct conn *c, h2o_req_t *req, struct access_log *al, int svc)
{
    if (c == NULL || req->version >= 0x200)
        return;
    c->check.written = c->sock->bytes_written;
    c->check.al = al;
    c->check.svc = svc;
}
