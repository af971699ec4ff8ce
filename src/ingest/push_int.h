/* SPDX-License-Identifier: Apache-2.0
 *
 * Internals of the Pushgateway API and the InfluxDB line protocol, shared by
 * their files, their unit tests, fuzz target and benchmark: the gzip
 * decoder both accept, the Pushgateway path syntax (with @base64 values),
 * and the allocation-free line-protocol tokenizer.
 */
#ifndef BONGSU_INGEST_PUSH_INT_H
#define BONGSU_INGEST_PUSH_INT_H

#include "ingest/ingest.h"
#include "ingest/ingest_int.h"

/* ------------------------------------------------------------------ gzip */

/* Decompress a gzip body into *out (malloc'd, NUL-terminated, *out_len
 * bytes without the NUL). Returns 0; BS_ELIMIT when the output would pass
 * max bytes (0: unlimited), nothing kept; BS_EPARSE when the data is not
 * valid gzip (trailing garbage included); BS_ENOMEM. */
int ingest_gunzip(const void *in, size_t len, size_t max, char **out, size_t *out_len);

/* --------------------------------------------------------- pushgateway */

/* One grouping label taken from a push path. Value may be empty (the
 * special @base64 "=" encoding). Both strings are malloc'd. */
struct push_glabel {
    char *name;
    char *value;
};

/* Parse "/metrics/job/<job>{/<name>/<value>}" (job@base64 and
 * <name>@base64 allowed) into labels sorted by name, job included.
 * On failure returns BS_EINVAL and writes the Pushgateway's message to msg
 * ("odd number of components in label string ...", "improper label name
 * ...", "invalid base64 encoding for label ...", "job name is required").
 * Release with push_glabels_free(). */
int push_path_parse(const char *path, struct push_glabel **out, size_t *n, char *msg,
                    size_t msgcap);
void push_glabels_free(struct push_glabel *v, size_t n);

/* URL-safe base64 (RFC 4648 section 5) with optional '=' padding, as the
 * Pushgateway decodes label values. Writes at most (n*3)/4 bytes to out.
 * Returns the decoded length, or -1 - (index of the first bad byte). */
long push_base64_decode(const char *s, size_t n, char *out);

/* ----------------------------------------------------------- line protocol */

enum lp_field_type { LP_FLOAT, LP_INT, LP_UINT, LP_BOOL, LP_STRING };

/* One token of a line, pointing into the input. esc is true when the raw
 * text holds backslash escapes that lp_unescape() must remove. */
struct lp_token {
    const char *p;
    size_t n;
    bool esc;
};

struct lp_field {
    struct lp_token key;
    enum lp_field_type type;
    double value;          /* float, int, uint and bool (1/0) as a double */
};

#define LP_MAX_TAGS 256
#define LP_MAX_FIELDS 256

/* A parsed line. Tokens point into the input buffer. */
struct lp_line {
    const char *text;      /* the whole line, for error messages */
    size_t text_len;
    size_t lineno;         /* 1-based */
    struct lp_token measurement;
    struct lp_token tag_key[LP_MAX_TAGS], tag_value[LP_MAX_TAGS];
    size_t ntags;
    struct lp_field field[LP_MAX_FIELDS];
    size_t nfields;
    bool has_time;
    int64_t time;          /* as written, in the request's precision */
};

/* A pull tokenizer over buf[0..len). */
struct lp_parser {
    const char *buf;
    size_t len;
    size_t pos;
    size_t lineno;
};

void lp_parser_init(struct lp_parser *p, const char *buf, size_t len);

/* Parse the next non-blank, non-comment line into *line. Returns 1 when a
 * line was parsed, 0 at the end, or BS_EPARSE with line->text/lineno set
 * and *reason pointing to InfluxDB's static reason text ("missing fields",
 * "bad timestamp", ...; for integer overflow a message in reason_buf). The
 * parser then stands after that line, so the caller keeps going. A string
 * field may span lines, as in InfluxDB. */
int lp_parser_next(struct lp_parser *p, struct lp_line *line, const char **reason,
                   char *reason_buf, size_t reason_cap);

/* Copy t's text to dst without its escapes (dst needs t->n bytes); returns
 * the new length. Measurement escapes are "\," and "\ "; tag keys, values
 * and field keys also "\="; a backslash before anything else is kept. */
size_t lp_unescape(const struct lp_token *t, char *dst);

/* Write a Prometheus-valid metric or label name made from s[0..n) to dst
 * (needs n + 1 bytes): every byte outside [a-zA-Z0-9_] (':' too for metric
 * names) becomes '_', and a leading digit gets a '_' before it. Returns the
 * new length (0 when n is 0). */
size_t lp_sanitize_name(const char *s, size_t n, bool metric, char *dst);

#endif
