/* Loading a config text in unit tests: load_ok fails the test on any error; load_err
 * wants the load refused with want as its first message. */
#ifndef PERCORE_TEST_CONF_LOAD_H
#define PERCORE_TEST_CONF_LOAD_H

#include <criterion/criterion.h>

#include "conf.h"

static const struct conf_sockets no_sockets = {NULL, 0, 1};

static struct conf *
load_ok(const char *text)
{
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", text, &no_sockets, &d);

    if (c == NULL)
        cr_assert_fail("unexpected error: %s", d.n ? d.msgs[0] : "(none)");
    conf_diag_clear(&d);
    return c;
}

static void
load_err(const char *text, const char *want)
{
    struct conf_diag d = {0};
    struct conf *c = conf_load_string("t.conf", text, &no_sockets, &d);

    cr_assert_null(c, "loaded:\n%s", text);
    cr_assert_gt(d.n, 0);
    cr_assert_str_eq(d.msgs[0], want, "input:\n%s", text);
    conf_diag_clear(&d);
}

#endif
