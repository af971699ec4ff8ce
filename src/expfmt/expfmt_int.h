/* SPDX-License-Identifier: Apache-2.0
 *
 * expfmt internals shared by the two text parsers (text_parse.c for 0.0.4,
 * om_parse.c for OpenMetrics 1.0) and their unit tests: the line-level
 * lexing helpers that text_parse.c defines, and the OpenMetrics entry points
 * that text_parse.c dispatches to. Nothing outside src/expfmt/ and
 * tests/unit/test_expfmt*.c includes this.
 *
 * All helpers work on the current line of a parser (p->line .. p->line_end,
 * number p->lineno) and report errors as "line N, column C: ...".
 */
#ifndef BONGSU_EXPFMT_INT_H
#define BONGSU_EXPFMT_INT_H

#include "expfmt/expfmt.h"

/* 1-based column of s on the current line. */
size_t expfmt_lex_column(const struct expfmt_parser *p, const char *s);

/* Fill err with "line N, column C: <what>, got <the byte at s>" (or "end of
 * line") and return BS_EPARSE. */
int expfmt_lex_fail_got(const struct expfmt_parser *p, struct bs_error *err, const char *s,
                        const char *what);

/* Quote at most 64 bytes of s into dst[cap] for a message, escaping what is
 * unprintable and appending "..." when cut. cap of 400 always suffices. */
void expfmt_lex_quote(const char *s, size_t n, char *dst, size_t cap);

/* Strict UTF-8 as Go's utf8.Valid. */
bool expfmt_lex_utf8_valid(const char *s, size_t n);

/* Make p->scratch hold the whole current line (once per line); BS_ENOMEM
 * with a message on failure. Must be called before the first unescaped byte
 * of a line is written; pointers into scratch from the same line stay valid. */
int expfmt_lex_scratch_prepare(struct expfmt_parser *p, struct bs_error *err);

/* Read a double-quoted string at *ps (the opening quote), unescaping \\ \"
 * and \n (other pairs kept literally) into scratch only when needed. On
 * success *ps points past the closing quote. what names the string in
 * errors ("label value"). */
int expfmt_lex_read_quoted(struct expfmt_parser *p, const char **ps, const char **out,
                           size_t *out_len, const char *what, struct bs_error *err);

/* BS_EPARSE naming column `at` unless s[0..n) is valid UTF-8. */
int expfmt_lex_check_utf8(struct expfmt_parser *p, const char *at, const char *s, size_t n,
                          const char *what, struct bs_error *err);

/* Double p->labels (up to EXPFMT_MAX_LABELS, else BS_ELIMIT). Pointers into
 * the old array are invalid afterwards. */
int expfmt_lex_labels_grow(struct expfmt_parser *p, struct bs_error *err);

/* BS_EPARSE when l[0..n) repeats a label name or has a "__name__" label. */
int expfmt_lex_check_duplicates(struct expfmt_parser *p, const struct expfmt_label *l, size_t n,
                                struct bs_error *err);

/* The OpenMetrics pull parser (om_parse.c): expfmt_parser_next() and
 * expfmt_parser_fini() call these when p->format is OpenMetrics. om_fini is
 * a no-op when no OpenMetrics state was ever allocated. */
int expfmt_om_next(struct expfmt_parser *p, enum expfmt_entry *kind, struct bs_error *err);
void expfmt_om_fini(struct expfmt_parser *p);

#endif
