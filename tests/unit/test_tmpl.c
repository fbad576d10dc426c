#include <criterion/criterion.h>

Test(tmpl, placeholder) { cr_assert(1); }
