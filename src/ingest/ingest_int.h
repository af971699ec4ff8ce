/* SPDX-License-Identifier: Apache-2.0
 *
 * ingest internals shared by the module's files and its unit tests:
 * building responses (text bodies and extra headers) and the small
 * validators every push path needs.
 */
#ifndef BONGSU_INGEST_INT_H
#define BONGSU_INGEST_INT_H

#include <stdarg.h>

#include "ingest/ingest.h"

#define INGEST_TEXT_PLAIN "text/plain; charset=utf-8"

/* Set status and a text/plain body made of the printf-formatted message
 * and a trailing newline (as Go's http.Error writes it). Replaces any body
 * already set. Returns 0, or BS_ENOMEM (the status is set anyway, the body
 * left NULL). */
int ingest_response_text(struct ingest_response *r, int status, const char *fmt, ...)
    BS_PRINTF(3, 4);
/* Same, taking the body from b (NUL-terminated, b->len bytes); b is left
 * empty. */
int ingest_response_take(struct ingest_response *r, int status, struct bs_buf *b);
/* Add header name (static text) with a printf-formatted value (truncated
 * to fit struct ingest_header). Silently ignored past INGEST_MAX_HEADERS:
 * callers add a fixed, small number. */
void ingest_response_header(struct ingest_response *r, const char *name, const char *fmt, ...)
    BS_PRINTF(3, 4);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, at
 * most U+10FFFF). */
bool ingest_utf8_valid(const char *s, size_t n);

#endif
