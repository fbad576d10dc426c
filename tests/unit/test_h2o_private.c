/* percore's mirrors of libh2o 2.2.5's private structs (src/h2o_private.h), against the
 * library's own header: a mismatch does not compile. */
#include "config.h"

#include <criterion/criterion.h>
#include <stddef.h>

#include "h2o_private.h"
/* Needs khash.h, which Debian does not ship: tests/unit/stub has just enough of it. */
#include <h2o/http2_internal.h>

#ifdef PERCORE_H2O_PRIVATE

#define FIELD_OF(type, f) (((type *)0)->f)
/* Field mine of struct h2_stream_head is field theirs of libh2o's stream: same place, same
 * size. */
#define SAME_FIELD(mine, theirs)                                                               \
    _Static_assert(offsetof(struct h2_stream_head, mine) ==                                    \
                           offsetof(struct st_h2o_http2_stream_t, theirs) &&                   \
                       sizeof(FIELD_OF(struct h2_stream_head, mine)) ==                        \
                           sizeof(FIELD_OF(struct st_h2o_http2_stream_t, theirs)),             \
                   "h2_stream_head." #mine " is not libh2o's " #theirs)

SAME_FIELD(stream_id, stream_id);
SAME_FIELD(ostr_final, _ostr_final);
SAME_FIELD(state, state);
SAME_FIELD(output_window, output_window);
SAME_FIELD(input_window, input_window);
SAME_FIELD(received_priority, received_priority);
SAME_FIELD(req_body, _req_body);
SAME_FIELD(expected_content_length, _expected_content_length);
SAME_FIELD(data, _data);

Test(h2o_private, http2_stream_head_is_libh2o_s)
{
    struct st_h2o_http2_stream_t st = {.stream_id = 7};
    struct h2_stream_head *head;

    st.output_window._avail = 12345;
    st._data.size = 2;
    head = H2O_STRUCT_FROM_MEMBER(struct h2_stream_head, ostr_final, &st._ostr_final);
    cr_assert_eq(head->stream_id, 7);
    cr_assert_eq(head->output_window, 12345);
    cr_assert_eq(head->data.size, 2);
}

#else

Test(h2o_private, not_libh2o_2_2, .disabled = 1)
{
}

#endif
