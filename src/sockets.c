/* The master's listening sockets: groups per address, kept in systemd's fd store, adopted
 * from socket activation. Runs in the master only. */
#include "config.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heritage.h"
#include "log.h"
#include "sockets.h"
#include "sysd.h"
#include "util.h"

/* A socket from the fd store, waiting to be claimed by a listener group. */
struct kept_fd {
    char addr[LISTEN_ADDR_TEXT];
    size_t slot;
    int fd;
    char *name; /* its FDNAME= */
};

static struct listener *
find_group(struct sockets *s, const struct listen_addr *a)
{
    for (size_t i = 0; i < s->ngroups; i++)
        if (!s->groups[i].activated && listener_addr_equal(&s->groups[i].addr, a))
            return &s->groups[i];
    return NULL;
}

static struct listener *
new_group(struct sockets *s, const struct listen_addr *a, enum listener_mark mark)
{
    struct listener *l;

    s->groups = xreallocarray(s->groups, s->ngroups + 1, sizeof(*s->groups));
    l = &s->groups[s->ngroups++];
    memset(l, 0, sizeof(*l));
    l->addr = *a;
    l->mark = mark;
    return l;
}

/* listener_take_fn: the kept socket for (a, slot), which the group now owns; or -1. */
static int
take_kept(void *arg, const struct listen_addr *a, size_t slot)
{
    struct sockets *s = arg;

    for (size_t i = 0; i < s->nkept; i++) {
        if (s->kept[i].slot == slot && strcmp(s->kept[i].addr, a->text) == 0) {
            int fd = s->kept[i].fd;
            free(s->kept[i].name);
            s->kept[i] = s->kept[--s->nkept];
            log_debug("reusing %s slot %zu from the fd store", a->text, slot);
            return fd;
        }
    }
    return -1;
}

static int
kept_has(const struct sockets *s, const struct listen_addr *a)
{
    for (size_t i = 0; i < s->nkept; i++)
        if (strcmp(s->kept[i].addr, a->text) == 0)
            return 1;
    return 0;
}

/* Push sockets [from, nfds) of l to the fd store, so a restart finds them open. */
static void
store_fds(const struct listener *l, size_t from)
{
    char name[96];

    for (size_t k = from; k < l->nfds; k++) {
        listener_store_name(&l->addr, k, name, sizeof(name));
        if (sysd_fdstore(l->fds[k], name) == -1)
            log_warnx("cannot keep %s in the fd store (FileDescriptorStoreMax=?), ignoring",
                      name);
    }
}

static void
unstore_fds(const struct listener *l, size_t from)
{
    char name[96];

    for (size_t k = from; k < l->nfds; k++) {
        listener_store_name(&l->addr, k, name, sizeof(name));
        sysd_fdstore_remove(name);
    }
}

static void
set_owner(struct listener *l, const char *name)
{
    if (l->owner == NULL || strcmp(l->owner, name) != 0) {
        free(l->owner);
        l->owner = xstrdup(name);
    }
}

/* Whether a service before index svc listens on a. */
static int
listened_before(const struct conf *c, size_t svc, const struct listen_addr *a)
{
    for (size_t i = 0; i < svc; i++)
        for (size_t j = 0; j < c->services[i].nlistens; j++)
            if (listener_addr_equal(&c->services[i].listens[j].addr, a))
                return 1;
    return 0;
}

/* The group of address a of service svc, with at least nslots sockets. */
static int
prepare_group(struct sockets *s, const struct conf *c, size_t svc, const struct listen_addr *a,
              unsigned nslots, char *err, size_t errlen)
{
    struct listener *l = find_group(s, a);
    size_t had;

    if (l == NULL) {
        if (!kept_has(s, a) && listener_probe(a, err, errlen) == -1)
            return -1;
        l = new_group(s, a, LISTENER_OPENED);
    } else if (l->mark == LISTENER_UNNAMED) {
        l->mark = LISTENER_NAMED;
    }
    /* On an address services share (by SNI), the first is its owner. */
    if (!listened_before(c, svc, a))
        set_owner(l, c->services[svc].name);
    had = l->nfds;
    if (l->nfds < nslots && listener_resize(l, nslots, take_kept, s, err, errlen) == -1)
        return -1;
    store_fds(l, had);
    return 0;
}

int
sockets_prepare(struct sockets *s, const struct conf *c, unsigned nslots, char *err,
                size_t errlen)
{
    ASSERT_MASTER();
    /* conf_load checked that a service claims every activated socket. */
    for (size_t i = 0; i < s->ngroups; i++) {
        assert(s->groups[i].mark == LISTENER_NAMED); /* no other reload is under way */
        s->groups[i].mark = s->groups[i].activated ? LISTENER_NAMED : LISTENER_UNNAMED;
    }
    for (size_t i = 0; i < c->nservices; i++)
        for (size_t j = 0; j < c->services[i].nlistens; j++)
            if (prepare_group(s, c, i, &c->services[i].listens[j].addr, nslots, err,
                              errlen) == -1)
                return -1;
    return 0;
}

/* Close the groups marked `mark` (never an activated one) and compact the array; mark the
 * others LISTENER_NAMED. */
static void
close_marked(struct sockets *s, enum listener_mark mark)
{
    size_t k = 0;

    for (size_t i = 0; i < s->ngroups; i++) {
        struct listener *l = &s->groups[i];
        if (l->mark == mark && !l->activated) {
            log_info("closing listener %s", l->addr.text);
            unstore_fds(l, 0);
            listener_close(l);
        } else {
            s->groups[k] = *l;
            s->groups[k++].mark = LISTENER_NAMED;
        }
    }
    s->ngroups = k;
}

void
sockets_rollback(struct sockets *s)
{
    ASSERT_MASTER();
    close_marked(s, LISTENER_OPENED);
}

void
sockets_commit(struct sockets *s, unsigned nslots)
{
    char err[256];

    ASSERT_MASTER();
    /* Workers that still drain hold their own copies until they exit, and the new
     * workers never poll what closes here. */
    close_marked(s, LISTENER_UNNAMED);
    for (size_t i = 0; i < s->ngroups; i++) {
        struct listener *l = &s->groups[i];
        if (!l->activated && l->nfds > nslots) {
            unstore_fds(l, nslots);
            (void)listener_resize(l, nslots, NULL, NULL, err, sizeof(err));
        }
    }
}

/* Sockets left in the fd store that the config no longer names. */
static void
drop_stale_kept(struct sockets *s)
{
    for (size_t i = 0; i < s->nkept; i++) {
        log_info("closing stale socket %s from the fd store", s->kept[i].addr);
        sysd_fdstore_remove(s->kept[i].name);
        close(s->kept[i].fd);
        free(s->kept[i].name);
    }
    s->nkept = 0;
}

int
sockets_open(struct sockets *s, const struct conf *c, unsigned nslots, char *err,
             size_t errlen)
{
    ASSERT_MASTER();
    if (sockets_prepare(s, c, nslots, err, errlen) == -1)
        return -1;
    for (size_t i = 0; i < s->ngroups; i++)
        s->groups[i].mark = LISTENER_NAMED;
    drop_stale_kept(s);
    return 0;
}

static void
keep_stored(struct sockets *s, const struct sysd_fd *fd, const char *addr, size_t slot)
{
    s->kept = xreallocarray(s->kept, s->nkept + 1, sizeof(*s->kept));
    s->kept[s->nkept] = (struct kept_fd){.slot = slot, .fd = fd->fd, .name = xstrdup(fd->name)};
    snprintf(s->kept[s->nkept++].addr, LISTEN_ADDR_TEXT, "%s", addr);
}

/* Socket activation: FileDescriptorName= names the service. */
static void
adopt_activated(struct sockets *s, const struct sysd_fd *fd, const struct listen_addr *a)
{
    struct listener *l = new_group(s, a, LISTENER_NAMED);

    l->activated = 1;
    l->owner = xstrdup(fd->name);
    l->fds = xmalloc(sizeof(int));
    l->fds[0] = fd->fd;
    l->nfds = 1;
    s->names = xreallocarray(s->names, s->nnames + 1, sizeof(char *));
    s->names[s->nnames++] = xstrdup(fd->name);
    log_info("socket %s from systemd for service '%s' (shared by all workers)", a->text,
             fd->name);
}

void
sockets_adopt(struct sockets *s)
{
    struct sysd_fd *fds;
    size_t n;

    ASSERT_MASTER();
    n = sysd_listen_fds(&fds);
    for (size_t i = 0; i < n; i++) {
        struct listen_addr a;
        char text[LISTEN_ADDR_TEXT];
        size_t slot;

        if (listener_addr_of_fd(fds[i].fd, &a) == -1)
            fatalx("socket %d ('%s') passed by systemd is not a listening TCP socket",
                   fds[i].fd, fds[i].name);
        (void)fcntl(fds[i].fd, F_SETFD, FD_CLOEXEC);
        /* Ours, from the fd store: reused by address and slot. */
        if (listener_parse_store_name(fds[i].name, text, sizeof(text), &slot) == 0)
            keep_stored(s, &fds[i], text, slot);
        else
            adopt_activated(s, &fds[i], &a);
        free(fds[i].name);
    }
    free(fds);
}

struct conf_sockets
sockets_names(const struct sockets *s)
{
    return (struct conf_sockets){(const char *const *)s->names, s->nnames, 1};
}

void
sockets_free(struct sockets *s)
{
    for (size_t i = 0; i < s->ngroups; i++)
        listener_close(&s->groups[i]);
    free(s->groups);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i]);
    free(s->names);
    for (size_t i = 0; i < s->nkept; i++)
        free(s->kept[i].name);
    free(s->kept);
    *s = (struct sockets){0};
}
