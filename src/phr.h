/* picohttpparser, as libh2o 2.2.5 exports it (Debian installs no header for it). */
#ifndef PERCORE_PHR_H
#define PERCORE_PHR_H

#include <stddef.h>
#include <sys/types.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status,
                       const char **msg, size_t *msg_len, struct phr_header *headers,
                       size_t *num_headers, size_t last_len);

/* Its leading members; the library may keep more after them, so it is allocated with
 * room to spare (PHR_DECODER_ROOM) and zeroed. */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char hex_count_;
    char state_;
};
#define PHR_DECODER_ROOM 64

ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
