#include <criterion/criterion.h>

Test(route_match, placeholder) { cr_assert(1); }
