/* Writing bytes a client sent into structured logs: as the contents of a JSON string
 * (RFC 8259) and as a journal field's value, valid UTF-8 whatever the input, never more
 * than one line. Pure functions, any process. */
#ifndef PERCORE_LOGESC_H
#define PERCORE_LOGESC_H

#include <stddef.h>

/* The most a byte of input can take in the output of logesc_json and logesc_text. */
#define LOGESC_JSON_GROWTH 6 /* \u00XX */
#define LOGESC_TEXT_GROWTH 4 /* \xHH */

/* The length of the well-formed UTF-8 sequence (RFC 3629: no overlong form, no surrogate,
 * nothing above U+10FFFF) that s[0..n) starts with, from 1 to 4; 0 if it starts with none
 * (an invalid or a truncated sequence). */
size_t logesc_utf8_len(const unsigned char *s, size_t n);

/* Write the first max bytes (or fewer) of s[0..len) into out as the inside of a JSON string
 * (no quotes); out has room for LOGESC_JSON_GROWTH * max bytes. Well-formed UTF-8 is
 * copied, but for '"' and '\' (escaped as \" and \\), control characters (U+0000 to U+001F,
 * U+007F to U+009F) and U+2028, U+2029 (as \u00XX, \u2028, \u2029: terminals and
 * JavaScript take them for line ends or escapes); each byte that starts no well-formed
 * sequence is written as \u00XX of its value, so the raw line tells it from the character
 * U+00XX (which is copied as its two UTF-8 bytes). A character is never cut: one that
 * would end past max bytes is left out with the rest. Returns the bytes written. */
size_t logesc_json(char *out, const char *s, size_t len, size_t max);

/* The same for a journal field's value, which is text with no quoting of its own: '\',
 * control characters and the bytes that start no well-formed sequence are written as
 * \xHH (each byte of a control character's encoding), everything else is copied. out has
 * room for LOGESC_TEXT_GROWTH * max bytes. */
size_t logesc_text(char *out, const char *s, size_t len, size_t max);

#endif
