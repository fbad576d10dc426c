/* Mirrors of private structs of libh2o 2.2.5 (Debian 12's libh2o-evloop 2.2.5+dfsg2), for
 * what the library has no API for. Each is the head of the library's struct, up to the
 * last field percore reads, with the same types; its users check at run time that what
 * they read is plausible, and fall back to doing nothing. Defined for libh2o 2.2 only
 * (PERCORE_H2O_PRIVATE): another version must be read again before these are trusted.
 *
 * tests/unit/test_h2o_private.c checks the HTTP/2 stream's mirror against the installed
 * <h2o/http2_internal.h>. */
#ifndef PERCORE_H2O_PRIVATE_H
#define PERCORE_H2O_PRIVATE_H

#include "h2o_inc.h"

#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
#define PERCORE_H2O_PRIVATE 1

/* The head of the HTTP/2 stream (lib/http2/http2_internal.h, struct st_h2o_http2_stream_t,
 * installed but unusable: it needs khash.h): its final ostream, the send guard's way in,
 * its windows, and the data it holds to send. */
struct h2_stream_head {
    uint32_t stream_id;
    h2o_ostream_t ostr_final;
    int state;
    ssize_t output_window, input_window;
    h2o_http2_priority_t received_priority;
    void *req_body;
    size_t expected_content_length;
    H2O_VECTOR(h2o_iovec_t) data;
};

#endif

#endif
