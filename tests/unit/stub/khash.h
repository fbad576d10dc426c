/* Just enough of klib's khash.h (which Debian's libh2o-evloop-dev does not ship) for
 * <h2o/http2_internal.h> to compile, so tests can check percore's mirrors of its structs.
 * No hash table is ever used through it. */
#ifndef PERCORE_TEST_KHASH_H
#define PERCORE_TEST_KHASH_H

typedef unsigned khiter_t;
#define khash_t(name) struct kh_##name##_s
#define KHASH_MAP_INIT_INT64(name, type) khash_t(name);
#define kh_get(name, h, k) ((void)(h), (void)(k), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, i) ((void)(h), (void)(i), NULL)

#endif
