/* Templates of the config: compiled by the master at load into literal and variable parts,
 * expanded by workers per request into the request's pool (one pass to measure, one to
 * write), each variable's value made safe for where it goes. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>

#include "clientaddr.h"
#include "hnd.h"
#include "tmpl.h"
#include "util.h"

/* A part: a literal run (var == TV_MAX) or a variable. off/len index t->text: the literal
 * bytes, or the argument of $arg_NAME (as written) and $http_NAME (lowercase, '-'). */
struct tmpl_part {
    unsigned char var;
    unsigned char capture; /* TV_CAPTURE: 1 .. 9 */
    unsigned char query;   /* a variable after the template's first literal '?' */
    size_t off, len;
    const h2o_token_t *token; /* TV_HTTP: the header's token, or NULL */
};

struct tmpl {
    struct tmpl_part *parts;
    size_t nparts;
    char *text;     /* the literal runs and names, one after the other */
    char *src;      /* as written */
    unsigned uses;  /* 1u << TV_x */
    int has_query;  /* a literal '?' */
    int lead_slash; /* the template starts with a literal "//" (or "/\"): an admin's
                       scheme-relative reference, kept as written */
};

static const char *const var_names[TV_MAX] = {
    [TV_HOST] = "host",
    [TV_SCHEME] = "scheme",
    [TV_REQUEST_URI] = "request_uri",
    [TV_URI] = "uri",
    [TV_ARGS] = "args",
    [TV_ARG] = "arg_",
    [TV_HTTP] = "http_",
    [TV_REMOTE_ADDR] = "remote_addr",
    [TV_REMOTE_PORT] = "remote_port",
    [TV_SERVER_ADDR] = "server_addr",
    [TV_SERVER_PORT] = "server_port",
    [TV_SERVICE] = "service",
    [TV_ROUTE] = "route",
    [TV_REQUEST_ID] = "request_id",
};

#define KNOWN_VARS                                                                                 \
    "$host $scheme $request_uri $uri $args $arg_NAME $http_NAME $remote_addr "                     \
    "$remote_port $server_addr $server_port $service $route $request_id $1..$9"

/* ASCII only, whatever the locale. */
static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int
is_alnum(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static unsigned char
to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static int
is_name_char(int c)
{
    return is_alnum((unsigned char)c) || c == '_';
}

/* ---- compiling ---- */

struct parse {
    struct tmpl *t;
    size_t ntext;
    int seen_query;
};

static void
add_literal(struct parse *p, const char *s, size_t len)
{
    struct tmpl *t = p->t;
    struct tmpl_part *last = t->nparts ? &t->parts[t->nparts - 1] : NULL;

    if (len == 0)
        return;
    if (last == NULL || last->var != TV_MAX) {
        last = &t->parts[t->nparts++];
        memset(last, 0, sizeof(*last));
        last->var = TV_MAX;
        last->off = p->ntext;
    }
    memcpy(t->text + p->ntext, s, len);
    p->ntext += len;
    last->len += len;
    if (memchr(s, '?', len) != NULL) {
        t->has_query = 1;
        p->seen_query = 1;
    }
}

static struct tmpl_part *
add_var(struct parse *p, enum tmpl_var v)
{
    struct tmpl_part *part = &p->t->parts[p->t->nparts++];

    memset(part, 0, sizeof(*part));
    part->var = (unsigned char)v;
    part->query = (unsigned char)p->seen_query;
    p->t->uses |= 1u << v;
    return part;
}

/* The known name closest to name, for "did you mean": a known one that name starts with
 * ("hostname": "${host}name"), else one within two edits. */
static void
suggest(const char *name, char *buf, size_t buflen)
{
    size_t best = 3, i;

    buf[0] = '\0';
    for (i = 0; i < TV_MAX; i++) {
        const char *k = var_names[i];
        size_t klen;

        if (k == NULL || i == TV_ARG || i == TV_HTTP)
            continue;
        klen = strlen(k);
        if (strncmp(name, k, klen) == 0 && name[klen] != '\0') {
            (void)snprintf(buf, buflen, "; did you mean '${%s}%s'?", k, name + klen);
            return;
        }
    }
    if (strlen(name) > 32) /* no typo of a known name, and edit distance is quadratic */
        return;
    for (i = 0; i < TV_MAX; i++) {
        size_t d;

        if (var_names[i] == NULL || i == TV_ARG || i == TV_HTTP)
            continue;
        d = util_edit_distance(name, var_names[i]);
        if (d < best) {
            best = d;
            (void)snprintf(buf, buflen, "; did you mean '$%s'?", var_names[i]);
        }
    }
}

/* Resolve name[0..len) (a capture is handled by the caller): 0, or -1 with a message. */
static int
add_named(struct parse *p, const char *name, size_t len, int braced, char *err, size_t errlen)
{
    char nm[256], hint[128];
    size_t i, plen;
    enum tmpl_var v;

    for (v = 0; v < TV_MAX; v++) {
        const char *k = var_names[v];

        if (k == NULL)
            continue;
        plen = strlen(k);
        if (v == TV_ARG || v == TV_HTTP) {
            struct tmpl_part *part;

            if (len < plen || memcmp(name, k, plen) != 0)
                continue;
            if (len == plen) {
                (void)snprintf(err, errlen, "'$%s' needs a name: '$%sNAME'", k, k);
                return -1;
            }
            part = add_var(p, v);
            part->off = p->ntext;
            part->len = len - plen;
            for (i = plen; i < len; i++) {
                char c = name[i];

                if (v == TV_HTTP)
                    c = c == '_' ? '-' : (char)to_lower((unsigned char)c);
                p->t->text[p->ntext++] = c;
            }
            if (v == TV_HTTP)
                part->token = h2o_lookup_token(p->t->text + part->off, part->len);
            return 0;
        }
        if (len == plen && memcmp(name, k, len) == 0) {
            add_var(p, v);
            return 0;
        }
    }
    (void)snprintf(nm, sizeof(nm), "%.*s", (int)len, name);
    suggest(nm, hint, sizeof(hint));
    (void)snprintf(err, errlen, "unknown variable '%s%s%s'%s (known: " KNOWN_VARS ")",
                   braced ? "${" : "$", nm, braced ? "}" : "", hint);
    return -1;
}

static int
add_capture(struct parse *p, const char *name, size_t len, unsigned max_capture, char *err,
            size_t errlen)
{
    unsigned n;

    if (len != 1 || name[0] == '0') {
        (void)snprintf(err, errlen, "'$%.*s': captures are $1 to $9", (int)len, name);
        return -1;
    }
    n = (unsigned)(name[0] - '0');
    if (n > max_capture) {
        if (max_capture == 0)
            (void)snprintf(err, errlen, "'$%u' refers to a regex group, but no regex with "
                           "groups is in scope here", n);
        else
            (void)snprintf(err, errlen, "'$%u' refers to group %u but the regex has %u group%s", n,
                           n, max_capture, max_capture == 1 ? "" : "s");
        return -1;
    }
    add_var(p, TV_CAPTURE)->capture = (unsigned char)n;
    return 0;
}

/* Parse the variable whose '$' is at s[*i]; *i moves past it. */
static int
parse_var(struct parse *p, const char *s, size_t *i, unsigned max_capture, char *err, size_t errlen)
{
    size_t j = *i + 1, start, len;
    int braced = 0;

    if (s[j] == '$') {
        add_literal(p, "$", 1);
        *i = j + 1;
        return 0;
    }
    if (s[j] == '{') {
        braced = 1;
        j++;
    }
    start = j;
    if (!braced && is_digit((unsigned char)s[j])) {
        /* unbraced captures take one digit: "$10" is $1 then "0" */
        *i = j + 1;
        return add_capture(p, s + j, 1, max_capture, err, errlen);
    }
    while (is_name_char(s[j]))
        j++;
    len = j - start;
    if (braced && s[j] != '}') {
        (void)snprintf(err, errlen, "'${' without a name and a closing '}'");
        return -1;
    }
    if (len == 0) {
        if (braced)
            (void)snprintf(err, errlen, "empty variable name '${}'");
        else if (s[j] == '\0')
            (void)snprintf(err, errlen, "'$' at the end: write '$$' for a literal '$'");
        else
            (void)snprintf(err, errlen,
                           "'$' not followed by a variable name: write '$$' for a literal '$'");
        return -1;
    }
    *i = braced ? j + 1 : j;
    if (is_digit((unsigned char)s[start])) /* only braced ones get here */
        return add_capture(p, s + start, len, max_capture, err, errlen);
    return add_named(p, s + start, len, braced, err, errlen);
}

struct tmpl *
tmpl_compile(const char *s, unsigned max_capture, char *err, size_t errlen, size_t *off)
{
    struct parse p = {0};
    size_t i = 0, ndollar = 0, n = strlen(s);

    for (i = 0; i < n; i++)
        ndollar += s[i] == '$';
    p.t = xcalloc(1, sizeof(*p.t));
    p.t->parts = xcalloc(2 * ndollar + 1, sizeof(*p.t->parts));
    /* literals and names never take more room than they take in s */
    p.t->text = xmalloc(n + 1);
    p.t->src = xstrdup(s);
    i = 0;
    while (i < n) {
        size_t j = i;

        while (j < n && s[j] != '$')
            j++;
        add_literal(&p, s + i, j - i);
        i = j;
        if (i == n)
            break;
        if (parse_var(&p, s, &i, max_capture, err, errlen) == -1) {
            *off = j;
            goto fail;
        }
    }
    p.t->text[p.ntext] = '\0';
    if (p.t->nparts > 0 && p.t->parts[0].var == TV_MAX && p.t->parts[0].len >= 2) {
        const char *l = p.t->text + p.t->parts[0].off;

        p.t->lead_slash = (l[0] == '/' || l[0] == '\\') && (l[1] == '/' || l[1] == '\\');
    }
    return p.t;
fail:
    tmpl_free(p.t);
    return NULL;
}

void
tmpl_free(struct tmpl *t)
{
    if (t == NULL)
        return;
    free(t->parts);
    free(t->text);
    free(t->src);
    free(t);
}

int
tmpl_has_vars(const struct tmpl *t)
{
    return t->uses != 0;
}

/* Without variables: the expansion ("$$" made '$'). With: the template as written. */
const char *
tmpl_literal(const struct tmpl *t)
{
    return t->uses != 0 ? t->src : t->text;
}

unsigned
tmpl_uses(const struct tmpl *t)
{
    return t->uses;
}

int
tmpl_has_query(const struct tmpl *t)
{
    return t->has_query;
}

/* ---- expanding ---- */

/* How a value is written: as is (literals), for a header, or into a target by its nature. */
enum enc {
    ENC_NONE,
    ENC_HEADER,  /* controls and DEL */
    ENC_PATH,    /* decoded value in the path: all but pchar and '/' */
    ENC_QUERY,   /* decoded value in the query: also keeps '?', also encodes & = + */
    ENC_ENCODED, /* already encoded: only what may never appear in a URI, and a stray '%' */
    ENC_HOST,    /* $host: its bytes are checked already; only lowercased */
};

/* A socket address of the connection, formatted once per expansion. */
struct addr {
    int done;
    char host[NI_MAXHOST];
    char port[8];
};

struct out {
    char *buf; /* NULL while measuring */
    size_t len;
    int target;   /* TMPL_TARGET */
    int past_sep; /* a '/', '?' or '#' was written: a ':' can no longer end a scheme */
};

static int
is_unreserved(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int
is_sub_delim(unsigned char c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

static int
is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Whether s[i] (of s[0..len)) is to be written as %XX. */
static int
must_encode(enum enc e, const char *s, size_t i, size_t len)
{
    unsigned char c = (unsigned char)s[i];

    switch (e) {
    case ENC_NONE:
    case ENC_HOST:
        return 0;
    case ENC_HEADER:
        return c < 0x20 || c == 0x7f;
    case ENC_PATH:
        return !(is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@' || c == '/');
    case ENC_QUERY:
        if (c == '&' || c == '=' || c == '+')
            return 1;
        return !(is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@' || c == '/' ||
                 c == '?');
    case ENC_ENCODED:
        if (c == '%')
            return !(i + 2 < len && is_hex((unsigned char)s[i + 1]) &&
                     is_hex((unsigned char)s[i + 2]));
        return c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}#", c) != NULL;
    }
    return 0;
}

static void
put(struct out *o, char c)
{
    if (o->buf != NULL)
        o->buf[o->len] = c;
    o->len++;
    if (c == '/' || c == '?' || c == '#')
        o->past_sep = 1;
}

static void
emit(struct out *o, const char *s, size_t len, enum enc e)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int enc = must_encode(e, s, i, len);

        if (e == ENC_HOST)
            c = to_lower(c);
        /* In a target, a ':' from a variable before any '/', '?' or '#' could make the
         * value a scheme ("javascript:..."): encoded. */
        if (e != ENC_NONE && o->target && c == ':' && !o->past_sep)
            enc = 1;
        if (!enc) {
            put(o, (char)c);
            continue;
        }
        put(o, '%');
        put(o, hex[c >> 4]);
        put(o, hex[c & 15]);
    }
}

static void
emit_str(struct out *o, const char *s, enum enc e)
{
    if (s != NULL)
        emit(o, s, strlen(s), e);
}

/* $host: the authority without port ("[v6]" keeps its brackets) and a trailing dot, when it
 * has only host bytes; else the service's server_name. A Host header cannot put a '/' or
 * '@' into a redirect this way. */
static h2o_iovec_t
host_of(h2o_req_t *req, const struct tmpl_env *env)
{
    /* Only what the client sent: without it, libh2o's default names a hostconf. */
    h2o_iovec_t a = hnd_client_authority(req);
    size_t len = a.len, i;

    if (len == 0)
        goto fallback;
    if (a.base[0] == '[') {
        const char *rb = memchr(a.base, ']', len);

        if (rb == NULL)
            goto fallback;
        len = (size_t)(rb - a.base) + 1;
        if (len < a.len && a.base[len] != ':')
            goto fallback; /* "[::1]junk" */
    } else {
        const char *colon = memchr(a.base, ':', len);

        if (colon != NULL)
            len = (size_t)(colon - a.base);
    }
    if (len != 0 && a.base[len - 1] == '.')
        len--;
    if (len == 0)
        goto fallback;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)a.base[i];

        if (!(is_alnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'))
            goto fallback;
        if ((c == '[' && i != 0) || (c == ']' && i != len - 1))
            goto fallback;
    }
    return h2o_iovec_init(a.base, len);
fallback:
    if (env->server_name != NULL)
        return h2o_iovec_init(env->server_name, strlen(env->server_name));
    return h2o_iovec_init("", 0);
}

static void
get_addr(h2o_req_t *req, int peer, struct addr *ad)
{
    struct sockaddr_storage ss;
    const h2o_conn_callbacks_t *cb;
    socklen_t sl = 0;
    int32_t port;

    if (ad->done)
        return;
    ad->done = 1;
    ad->host[0] = ad->port[0] = '\0';
    cb = req->conn != NULL ? req->conn->callbacks : NULL;
    memset(&ss, 0, sizeof(ss));
    if (cb != NULL && peer && cb->get_peername != NULL)
        sl = clientaddr_get(req, &ss);
    else if (cb != NULL && !peer && cb->get_sockname != NULL)
        sl = cb->get_sockname(req->conn, (struct sockaddr *)&ss);
    if (sl == 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        memcpy(ad->host, "unix:", sizeof("unix:"));
        return;
    }
    if (h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, ad->host) == SIZE_MAX)
        ad->host[0] = '\0';
    port = h2o_socket_getport((struct sockaddr *)&ss);
    if (port > 0 && port <= 65535)
        (void)snprintf(ad->port, sizeof(ad->port), "%u", (unsigned)(uint16_t)port);
}

/* $arg_NAME: the first NAME=value (or a bare NAME: "") of the query, raw. */
static h2o_iovec_t
arg_of(h2o_iovec_t q, const char *name, size_t nlen)
{
    const char *p = q.base, *end = q.base + q.len;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp != NULL ? amp : end;

        if ((size_t)(e - p) >= nlen && memcmp(p, name, nlen) == 0) {
            if (p + nlen == e)
                return h2o_iovec_init("", 0);
            if (p[nlen] == '=')
                return h2o_iovec_init(p + nlen + 1, (size_t)(e - p - nlen - 1));
        }
        p = e + 1;
    }
    return h2o_iovec_init("", 0);
}

static void
emit_headers(struct out *o, h2o_req_t *req, const struct tmpl_part *part, const char *text,
             enum enc e)
{
    const char *sep = part->token == H2O_TOKEN_COOKIE ? "; " : ", ";
    ssize_t i = -1;
    int first = 1;

    for (;;) {
        if (part->token != NULL)
            i = h2o_find_header(&req->headers, part->token, i);
        else
            i = h2o_find_header_by_str(&req->headers, text + part->off, part->len, i);
        if (i == -1)
            break;
        if (!first)
            emit(o, sep, 2, e);
        first = 0;
        emit(o, req->headers.entries[i].value.base, req->headers.entries[i].value.len, e);
    }
}

/* What expansion draws on, computed once for both passes. */
struct xctx {
    h2o_req_t *req;
    const struct tmpl_env *env;
    h2o_iovec_t host, query;
    struct addr peer, sock;
};

static void
emit_var(struct out *o, struct xctx *x, const struct tmpl *t, const struct tmpl_part *part,
         enum tmpl_out out)
{
    h2o_req_t *req = x->req;
    enum enc dec = out == TMPL_HEADER ? ENC_HEADER : part->query ? ENC_QUERY : ENC_PATH;
    enum enc raw = out == TMPL_HEADER ? ENC_HEADER : ENC_ENCODED;
    const h2o_url_scheme_t *scheme;
    h2o_iovec_t v;

    switch ((enum tmpl_var)part->var) {
    case TV_HOST:
        /* checked by host_of: no control byte, nothing a target must encode */
        emit(o, x->host.base, x->host.len, ENC_HOST);
        break;
    case TV_SCHEME:
        scheme = req->input.scheme != NULL ? req->input.scheme : req->scheme;
        if (scheme != NULL)
            emit(o, scheme->name.base, scheme->name.len, dec);
        break;
    case TV_REQUEST_URI:
        /* libh2o takes a target that does not start with '/' ("@evil.com/"): after $host
         * it would make another host. */
        if (req->input.path.len == 0 || req->input.path.base[0] != '/')
            emit(o, "/", 1, raw);
        emit(o, req->input.path.base, req->input.path.len, raw);
        break;
    case TV_URI:
        emit(o, req->path_normalized.base, req->path_normalized.len, dec);
        break;
    case TV_ARGS:
        emit(o, x->query.base, x->query.len, raw);
        break;
    case TV_ARG:
        v = arg_of(x->query, t->text + part->off, part->len);
        emit(o, v.base, v.len, raw);
        break;
    case TV_HTTP:
        emit_headers(o, req, part, t->text, dec);
        break;
    case TV_REMOTE_ADDR:
    case TV_REMOTE_PORT:
        get_addr(req, 1, &x->peer);
        emit_str(o, part->var == TV_REMOTE_ADDR ? x->peer.host : x->peer.port, dec);
        break;
    case TV_SERVER_ADDR:
    case TV_SERVER_PORT:
        get_addr(req, 0, &x->sock);
        emit_str(o, part->var == TV_SERVER_ADDR ? x->sock.host : x->sock.port, dec);
        break;
    case TV_SERVICE:
        emit_str(o, x->env->service, dec);
        break;
    case TV_ROUTE:
        emit_str(o, x->env->route, dec);
        break;
    case TV_REQUEST_ID:
        emit_str(o, x->env->request_id, dec);
        break;
    case TV_CAPTURE: {
        const struct tmpl_env *env = x->env;
        unsigned n = part->capture;

        if (env->ov != NULL && env->subject != NULL && n < env->nov && env->ov[2 * n] != SIZE_MAX &&
            env->ov[2 * n + 1] >= env->ov[2 * n])
            emit(o, env->subject + env->ov[2 * n], env->ov[2 * n + 1] - env->ov[2 * n], dec);
        break;
    }
    case TV_MAX:
        break;
    }
}

static void
run(struct out *o, struct xctx *x, const struct tmpl *t, enum tmpl_out out)
{
    size_t i;

    for (i = 0; i < t->nparts; i++) {
        const struct tmpl_part *part = &t->parts[i];

        if (part->var == TV_MAX)
            emit(o, t->text + part->off, part->len, ENC_NONE);
        else
            emit_var(o, x, t, part, out);
    }
}

/* TMPL_TARGET: a leading run of '/' and '\' longer than one becomes one '/', unless the
 * template itself starts with "//" (an admin's scheme-relative reference): a variable
 * never makes the target name another host. */
static size_t
collapse_slashes(char *buf, size_t len)
{
    size_t run = 0;

    while (run < len && (buf[run] == '/' || buf[run] == '\\'))
        run++;
    if (run < 2)
        return len;
    buf[0] = '/';
    memmove(buf + 1, buf + run, len - run);
    return len - run + 1;
}

/* Expansion of t for req, in req->pool, NUL-terminated (the NUL not counted).
 *
 * TMPL_HEADER: variable values get bytes < 0x20 and DEL as %XX; literals are as written.
 *
 * TMPL_TARGET: literals are as written. Values of $request_uri, $args and $arg_ (encoded
 * as received) keep every RFC 3986 character and "%XX" escapes; controls, space, DEL,
 * bytes >= 0x80, '"' '<' '>' '\' '^' '`' '{' '|' '}' '#' and a '%' not followed by two hex
 * digits become %XX. $host (checked to be [a-z0-9.-:[]_] by host_of) is lowercased only.
 * Every other value (decoded: $uri, captures, $http_, addresses, $service, ...) keeps
 * unreserved, sub-delims, ':', '@' and '/' before the template's first literal '?', and
 * after it also '?' but not '&', '=', '+' (so it cannot add a query argument); the rest
 * becomes %XX. Two rules then keep a variable from choosing where a target points:
 *  - a ':' written by any variable before the output has a '/', '?' or '#' becomes %3A,
 *    so no value makes a scheme ("$1" with "javascript:x" gives "javascript%3Ax"); a
 *    literal ':' after a variable ("$1:x") is the template's own choice;
 *  - a leading run of '/' and '\' becomes one '/' unless the template starts with a
 *    literal "//" ("/$uri" with "//evil.com" gives "/evil.com"). */
h2o_iovec_t
tmpl_expand(const struct tmpl *t, h2o_req_t *req, const struct tmpl_env *env, enum tmpl_out out)
{
    struct xctx x;
    struct out o = {NULL, 0, out == TMPL_TARGET, 0};
    char *buf;

    memset(&x, 0, sizeof(x));
    x.req = req;
    x.env = env;
    if (t->uses & (1u << TV_HOST))
        x.host = host_of(req, env);
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len)
        x.query =
            h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    else
        x.query = h2o_iovec_init("", 0);

    run(&o, &x, t, out);
    buf = h2o_mem_alloc_pool(&req->pool, o.len + 1);
    o.buf = buf;
    o.len = 0;
    o.past_sep = 0;
    run(&o, &x, t, out);
    if (out == TMPL_TARGET && !t->lead_slash)
        o.len = collapse_slashes(buf, o.len);
    buf[o.len] = '\0';
    return h2o_iovec_init(buf, o.len);
}

int
tmpl_gives_query(const struct tmpl *t)
{
    return tmpl_has_query(t) ||
           (tmpl_uses(t) & (1u << TV_REQUEST_URI | 1u << TV_ARGS)) != 0;
}
