#include <criterion/criterion.h>

Test(errordoc, placeholder) { cr_assert(1); }
