/* SPDX-License-Identifier: Apache-2.0
 *
 * labels internals shared by the module's files and its unit tests.
 */
#ifndef BONGSU_LABELS_INT_H
#define BONGSU_LABELS_INT_H

#include "labels/labels.h"

/* Append s as a double-quoted string the way Go's strconv.Quote (and so
 * Prometheus's labels.String and matcher String) writes it: \\ \" \n \r \t
 * \a \b \f \v by name, other control bytes and invalid UTF-8 as \xNN. */
int labels_quote(struct bs_buf *out, const char *s, size_t n);

/* Append a label name: bare when it is a legacy name, otherwise quoted
 * (Prometheus 3 UTF-8 names). */
int labels_put_name(struct bs_buf *out, const char *s);

/* Length (1..4) of the valid UTF-8 sequence at p[0..n), n > 0, or 0 when
 * the bytes there are not valid UTF-8 (overlong, surrogate, truncated, or
 * beyond U+10FFFF). */
size_t labels_utf8_len(const unsigned char *p, size_t n);
/* Whole-string check. */
bool labels_utf8_valid(const char *s, size_t n);

#endif
