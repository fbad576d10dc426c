/* libFuzzer harness for the config lexer, parser and loader (src/conf*.c and the handlers'
 * argument parsers), run by `make fuzz`: the fuzzed bytes are a config file, loaded as
 * `percore -t` loads one. It must give a tree, with every position inside the input and
 * no control byte in a header, or errors each "file:line:col: message" at a position
 * inside the file it names; and it must free all it took, memory and descriptors.
 *
 * The loader opens files, loads modules and resolves names the config gives: the link
 * wraps those calls (Makefile.am) so that every absolute path lands in a sandbox directory
 * the harness makes under $TMPDIR, no path climbs out with "..", no module is ever loaded
 * (the sandbox holds no shared object) and host names are taken as numeric addresses
 * only, so no input reaches the network or the rest of the file system. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conf.h"
#include "upstate.h"
#include "util.h"

static char sandbox[PATH_MAX];
static size_t sandbox_len; /* 0 but while the loader runs: libFuzzer's own calls pass */

/* ---- the sandbox ---- */

/* path as the loader may see it: moved into the sandbox. NULL (errno set) for a path with
 * a ".." component, which could climb out of it. */
static const char *
sandboxed(const char *path, char *buf, size_t len)
{
    if (sandbox_len == 0 || (strncmp(path, sandbox, sandbox_len) == 0 &&
                             (path[sandbox_len] == '/' || path[sandbox_len] == '\0')))
        return path;
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
        if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/')) {
            errno = EACCES;
            return NULL;
        }
    }
    /* A relative path is taken from the sandbox's root, as if it were the working
     * directory. */
    if ((size_t)snprintf(buf, len, "%s%s%s", sandbox, path[0] == '/' ? "" : "/", path) >= len) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return buf;
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __real_stat(const char *path, struct stat *st);
int __wrap_stat(const char *path, struct stat *st);
int __real_access(const char *path, int mode);
int __wrap_access(const char *path, int mode);
FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);
int __real_glob(const char *pat, int flags, int (*err)(const char *, int), glob_t *g);
int __wrap_glob(const char *pat, int flags, int (*err)(const char *, int), glob_t *g);
char *__real_realpath(const char *path, char *out);
char *__wrap_realpath(const char *path, char *out);
void *__real_dlopen(const char *path, int flags);
void *__wrap_dlopen(const char *path, int flags);
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __real_SSL_CTX_use_certificate_chain_file(SSL_CTX *ctx, const char *path);
int __wrap_SSL_CTX_use_certificate_chain_file(SSL_CTX *ctx, const char *path);
int __real_SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *path, int type);
int __wrap_SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *path, int type);

int
__wrap_open(const char *path, int flags, ...)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));
    mode_t mode = 0;
    va_list ap;

    if ((flags & O_CREAT) != 0) {
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return p == NULL ? -1 : __real_open(p, flags, mode);
}

int
__wrap_stat(const char *path, struct stat *st)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return p == NULL ? -1 : __real_stat(p, st);
}

int
__wrap_access(const char *path, int mode)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return p == NULL ? -1 : __real_access(p, mode);
}

FILE *
__wrap_fopen(const char *path, const char *mode)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return p == NULL ? NULL : __real_fopen(p, mode);
}

int
__wrap_glob(const char *pat, int flags, int (*err)(const char *, int), glob_t *g)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(pat, buf, sizeof(buf));

    if (p == NULL) {
        memset(g, 0, sizeof(*g));
        return GLOB_NOMATCH;
    }
    return __real_glob(p, flags, err, g);
}

char *
__wrap_realpath(const char *path, char *out)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return p == NULL ? NULL : __real_realpath(p, out);
}

/* The sandbox holds no shared object: this fails, with dlerror() saying why. */
void *
__wrap_dlopen(const char *path, int flags)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return __real_dlopen(p == NULL ? "/nonexistent/.." : p, flags);
}

int
__wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res)
{
    struct addrinfo h = {0};

    if (hints != NULL)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}

int
__wrap_SSL_CTX_use_certificate_chain_file(SSL_CTX *ctx, const char *path)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return __real_SSL_CTX_use_certificate_chain_file(ctx, p == NULL ? "/nonexistent" : p);
}

int
__wrap_SSL_CTX_use_PrivateKey_file(SSL_CTX *ctx, const char *path, int type)
{
    char buf[PATH_MAX * 2];
    const char *p = sandboxed(path, buf, sizeof(buf));

    return __real_SSL_CTX_use_PrivateKey_file(ctx, p == NULL ? "/nonexistent" : p, type);
}

static void
put_file(const char *rel, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", sandbox, rel);
    f = __real_fopen(path, "w");
    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void
put_dir(const char *rel)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", sandbox, rel);
    if (mkdir(path, 0755) == -1 && errno != EEXIST) {
        perror(path);
        abort();
    }
}

/* A self-signed certificate and its key for "localhost", in etc/ssl. */
static void
put_cert(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    char path[PATH_MAX];
    FILE *f;

    assert(key != NULL && x != NULL);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    assert(X509_sign(x, key, EVP_sha256()) > 0);
    snprintf(path, sizeof(path), "%s/etc/ssl/cert.pem", sandbox);
    f = __real_fopen(path, "w");
    assert(f != NULL && PEM_write_X509(f, x) == 1 && fclose(f) == 0);
    snprintf(path, sizeof(path), "%s/etc/ssl/key.pem", sandbox);
    f = __real_fopen(path, "w");
    assert(f != NULL && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 &&
           fclose(f) == 0);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == -1 ? -1 : 0;
}

/* At a clean exit the sandbox goes; after a crash it stays, beside the input. */
static void
remove_sandbox(void)
{
    sandbox_len = 0;
    (void)nftw(sandbox, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The sandbox: a tree like a real host's, so that paths the corpus uses exist. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    char fifo[PATH_MAX];

    snprintf(sandbox, sizeof(sandbox), "%s/percore-fuzz-conf.XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    if (mkdtemp(sandbox) == NULL) {
        perror(sandbox);
        abort();
    }
    put_dir("etc");
    put_dir("etc/percore");
    put_dir("etc/percore/conf.d");
    put_dir("etc/ssl");
    put_dir("srv");
    put_dir("srv/www");
    put_dir("var");
    put_dir("var/log");
    put_dir("var/log/percore");
    put_dir("usr");
    put_dir("usr/lib");
    put_file("etc/percore/conf.d/api.conf",
             "service api {\n    listen 127.0.0.1:9001;\n    route / { respond 200 ok; }\n}\n");
    put_file("etc/percore/conf.d/bad.conf", "workers two;\n");
    put_file("etc/percore/mime.conf", "# nothing\n");
    put_file("srv/www/index.html", "<p>hello</p>\n");
    put_file("usr/lib/mod.so", "not a shared object\n");
    put_cert();
    snprintf(fifo, sizeof(fifo), "%s/var/log/fifo", sandbox);
    (void)mkfifo(fifo, 0600);
    atexit(remove_sandbox);
    return 0;
}

/* ---- the checks ---- */

/* Whether line:col lies in text (or just past its end, where end of file is reported). */
static int
inside(const char *text, size_t len, int line, int col)
{
    size_t at = 0, linelen;
    const char *nl;

    if (line < 1 || col < 1)
        return 0;
    for (int l = 1; l < line; l++) {
        nl = memchr(text + at, '\n', len - at);
        if (nl == NULL)
            return 0;
        at = (size_t)(nl - text) + 1;
    }
    nl = memchr(text + at, '\n', len - at);
    linelen = (nl != NULL ? (size_t)(nl - text) : len) - at;
    return (size_t)col <= linelen + 1;
}

/* The text of a file the load read (a sandbox file), malloc'ed. */
static char *
slurp(const char *path, size_t *len)
{
    int fd = __real_open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    ssize_t n;

    assert(fd != -1 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
    buf = xmalloc((size_t)st.st_size + 1);
    n = read(fd, buf, (size_t)st.st_size + 1);
    assert(n == st.st_size);
    close(fd);
    *len = (size_t)n;
    return buf;
}

static const uint8_t *input;
static size_t input_len;
static char input_path[PATH_MAX];

static void
pos_ok(const struct conf_pos *pos)
{
    char *text;
    size_t len;

    if (pos->file == NULL) {
        assert(pos->line == 0 && pos->col == 0); /* never set */
        return;
    }
    if (strcmp(pos->file, input_path) == 0) {
        assert(inside((const char *)input, input_len, pos->line, pos->col));
        return;
    }
    text = slurp(pos->file, &len);
    assert(inside(text, len, pos->line, pos->col));
    free(text);
}

/* One diagnostic: "FILE:LINE:COL: message" inside FILE, "FILE: message" for what has no
 * position, or the note that more were cut. */
static void
diag_ok(const char *msg)
{
    struct conf_pos pos = {0};
    char file[PATH_MAX], *end;
    const char *colon;
    long line, col;

    if (strncmp(msg, "more than ", 10) == 0 && strstr(msg, " errors; the rest") != NULL)
        return;
    colon = strchr(msg, ':');
    if (colon == NULL || colon == msg || (size_t)(colon - msg) >= sizeof(file)) {
        fprintf(stderr, "diagnostic without a file: %s\n", msg);
        abort();
    }
    memcpy(file, msg, (size_t)(colon - msg));
    file[colon - msg] = '\0';
    if (strcmp(file, input_path) != 0 && strncmp(file, sandbox, strlen(sandbox)) != 0) {
        fprintf(stderr, "diagnostic naming a file the load did not read: %s\n", msg);
        abort();
    }
    if (colon[1] == ' ')
        return; /* FILE: message */
    line = strtol(colon + 1, &end, 10);
    if (*end != ':' || end == colon + 1) {
        fprintf(stderr, "diagnostic without a line: %s\n", msg);
        abort();
    }
    col = strtol(end + 1, &end, 10);
    if (end[0] != ':' || end[1] != ' ') {
        fprintf(stderr, "diagnostic without a column: %s\n", msg);
        abort();
    }
    pos.file = file;
    pos.line = (int)line;
    pos.col = (int)col;
    if (line > INT_MAX || col > INT_MAX)
        pos.line = -1;
    pos_ok(&pos);
    for (const char *p = msg; *p != '\0'; p++)
        assert((unsigned char)*p >= 0x20 && *p != 0x7f);
}

/* No control byte in s; tab_ok: but tabs, which a header value may hold. */
static void
no_ctl(const char *s, int tab_ok)
{
    for (; s != NULL && *s != '\0'; s++)
        assert(((unsigned char)*s >= 0x20 && *s != 0x7f) || (tab_ok && *s == '\t'));
}

static void
tree_ok(const struct conf *c)
{
    pos_ok(&c->user_pos);
    pos_ok(&c->group_pos);
    assert(c->nservices > 0);
    for (size_t i = 0; i < c->nservices; i++) {
        const struct conf_service *s = &c->services[i];
        pos_ok(&s->pos);
        pos_ok(&s->server_name_pos);
        pos_ok(&s->tls_pos);
        pos_ok(&s->http2_pos);
        no_ctl(s->name, 0);
        for (size_t j = 0; j < s->nserver_names; j++)
            no_ctl(s->server_names[j], 0);
        for (size_t j = 0; j < s->nlistens; j++)
            pos_ok(&s->listens[j].pos);
        for (size_t j = 0; j < s->nroutes; j++) {
            const struct conf_route *r = &s->routes[j];
            pos_ok(&r->pos);
            pos_ok(&r->hnd_pos);
            assert(r->hnd != NULL);
            no_ctl(r->prefix, 0);
            for (size_t k = 0; k < r->nheaders; k++) {
                no_ctl(r->headers[k].name, 0);
                no_ctl(r->headers[k].value, 1);
            }
        }
    }
}

/* The lowest free descriptor: a load that leaks one moves it. */
static int
lowest_free_fd(void)
{
    int fd = dup(0);

    assert(fd != -1);
    close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct conf_sockets no_sockets = {NULL, 0, 1};
    struct conf_diag diag = {0};
    struct conf *c;
    int fd, before;

    if (input_path[0] == '\0')
        snprintf(input_path, sizeof(input_path), "%s/etc/percore/fuzz.conf", sandbox);
    input = data;
    input_len = size;
    /* Cut to size after the write: a file truncated to 0 and closed is flushed to disk at
     * once by ext4 (auto_da_alloc), which would cost a disk write per input. */
    fd = __real_open(input_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert(fd != -1 && pwrite(fd, data, size, 0) == (ssize_t)size);
    assert(ftruncate(fd, (off_t)size) == 0);
    close(fd);

    before = lowest_free_fd();
    sandbox_len = strlen(sandbox);
    c = conf_load(input_path, &no_sockets, &diag);
    /* As the master does for a load that will not serve: the shared records it registered
     * (upstream servers) are free for the next input's. */
    upstate_discard();
    sandbox_len = 0;
    if (c != NULL) {
        assert(diag.n == 0);
        tree_ok(c);
        conf_free(c);
    } else {
        assert(diag.n > 0);
        for (size_t i = 0; i < diag.n; i++)
            diag_ok(diag.msgs[i]);
    }
    conf_diag_clear(&diag);
    assert(lowest_free_fd() == before);
    return 0;
}
