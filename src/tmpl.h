/* Templates: config strings with variables ("https://$host$request_uri", "$remote_addr",
 * "/api/v$1/user/$2"), compiled once at load into literal and variable parts, expanded per
 * request into the request's pool with no parsing. A template without variables costs
 * nothing: callers test tmpl_has_vars and use the literal. */
#ifndef PERCORE_TMPL_H
#define PERCORE_TMPL_H

#include <stddef.h>

#include "h2o_inc.h"

/* The variables. */
enum tmpl_var {
    TV_HOST,        /* the request's host, lowercase, without port: from the request line
                       or Host (:authority), else the service's first server_name */
    TV_SCHEME,      /* http or https */
    TV_REQUEST_URI, /* the request target as received: path and query, encoded */
    TV_URI,         /* the current path, decoded and normalised (after rewrites) */
    TV_ARGS,        /* the query without its '?', encoded as received ("" when none) */
    TV_ARG,         /* $arg_NAME: the value of the first NAME=... of the query, encoded */
    TV_HTTP,        /* $http_NAME: request header NAME ('_' for '-'); several joined ", " */
    TV_REMOTE_ADDR, /* the client's address (clientaddr.h): behind trusted proxies, theirs */
    TV_REMOTE_PORT, /* its port; "" when X-Forwarded-For gave the address without one */
    TV_SERVER_ADDR, TV_SERVER_PORT,
    TV_SERVICE,     /* the service's name */
    TV_ROUTE,       /* the route's pattern as written */
    TV_REQUEST_ID,  /* 32 hex digits, one per request */
    TV_CAPTURE,     /* $1 .. $9 */
    TV_MAX
};

/* Where an expansion goes: each variable's value is made safe for it. */
enum tmpl_out {
    /* A header value: control bytes and DEL percent-encoded. */
    TMPL_HEADER,
    /* A URL or request target (redirect, rewrite, proxy path): a decoded value ($uri,
     * captures, $host, headers) has every byte outside RFC 3986 pchar and '/' encoded
     * (after the template's first literal '?': outside query characters); an encoded
     * value ($request_uri, $args, $arg_) keeps its escapes and has only bytes that may
     * never appear in a URI encoded. A result that would start with "//" or "/\" gets
     * one '/' (never a scheme-relative reference from a variable). */
    TMPL_TARGET,
};

struct tmpl;

/* What a request's expansion draws on beyond the request. */
struct tmpl_env {
    const char *service;     /* name */
    const char *server_name; /* the service's first server_name, or NULL */
    const char *route;       /* pattern as written, or NULL */
    const char *subject;     /* the string the captures index */
    const size_t *ov;        /* offset pairs as regex_match gives them, pair 0 the whole */
    unsigned nov;            /* pairs in ov: a $N with N >= nov expands to "" */
    const char *request_id;  /* 32 hex digits, or NULL when the template does not use it */
};

/* Compile s. max_capture: the highest $N allowed (0 where no regex is in scope). "$$" is
 * a '$'; "${name}" delimits a name ("${1}0"). NULL for an unknown variable or a $N above
 * max_capture, with a message in err and the offset of the '$' in *off. */
struct tmpl *tmpl_compile(const char *s, unsigned max_capture, char *err, size_t errlen,
                          size_t *off);
void tmpl_free(struct tmpl *t);

/* Whether the template has variables; without, tmpl_literal is its only expansion. */
int tmpl_has_vars(const struct tmpl *t);
const char *tmpl_literal(const struct tmpl *t);
/* A bit (1u << TV_x) for each variable it uses. */
unsigned tmpl_uses(const struct tmpl *t);
/* Whether it has a literal '?'. */
int tmpl_has_query(const struct tmpl *t);
/* Whether a target made from it carries a query of its own: a literal '?', or
 * $request_uri or $args (the request's query is then not added again). */
int tmpl_gives_query(const struct tmpl *t);

/* The expansion for req, allocated from req->pool. */
h2o_iovec_t tmpl_expand(const struct tmpl *t, h2o_req_t *req, const struct tmpl_env *env,
                        enum tmpl_out out);

#endif
