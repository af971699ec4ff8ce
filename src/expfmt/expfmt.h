/* SPDX-License-Identifier: Apache-2.0
 *
 * expfmt: the Prometheus text exposition format 0.0.4, read and written.
 *
 * The parser is a pull parser over one complete, caller-owned buffer (a
 * scrape body). Each call to expfmt_parser_next() consumes one line and
 * reports what it was. It never copies the input: names, label values and
 * help text point into the caller's buffer, except for text that contained
 * backslash escapes, which is unescaped into a scratch buffer owned by the
 * parser. Everything the parser hands out is valid until the next call to
 * expfmt_parser_next() or expfmt_parser_fini(), and the input buffer must
 * outlive that too.
 *
 * Syntax and semantics follow Prometheus's text parser (promparse): HELP,
 * TYPE and comment lines, blank lines, series lines with optional labels,
 * a float value and an optional integer timestamp in milliseconds, and the
 * quoted-name syntax of Prometheus 3 ({"my.metric", "my.label"="v"}).
 * Departures, all stricter or more useful than promparse, are listed atop
 * text_parse.c.
 *
 * The writer appends series lines in the same format, for /metrics and
 * /federate.
 */
#ifndef BONGSU_EXPFMT_H
#define BONGSU_EXPFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "util/util.h"

/* A series line may carry at most this many labels; more fails the line with
 * BS_ELIMIT (the parser's label array never grows past it). */
#define EXPFMT_MAX_LABELS 4096

/* Passed as the timestamp to expfmt_write_series() to write no timestamp. */
#define EXPFMT_NO_TIMESTAMP ((int64_t)-1)

/* One label of a parsed series. Not NUL-terminated: use the lengths. */
struct expfmt_label {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* What expfmt_parser_next() found. */
enum expfmt_entry {
    EXPFMT_EOF = 0,     /* end of input; further calls keep returning it */
    EXPFMT_SERIES,      /* a sample line: see expfmt_parser_series() */
    EXPFMT_HELP,        /* "# HELP name text": see expfmt_parser_help() */
    EXPFMT_TYPE,        /* "# TYPE name type": see expfmt_parser_type() */
    EXPFMT_COMMENT,     /* any other '#' line: see expfmt_parser_comment() */
};

enum expfmt_metric_type {
    EXPFMT_TYPE_UNKNOWN = 0,   /* no TYPE line applies */
    EXPFMT_TYPE_COUNTER,
    EXPFMT_TYPE_GAUGE,
    EXPFMT_TYPE_HISTOGRAM,
    EXPFMT_TYPE_SUMMARY,
    EXPFMT_TYPE_UNTYPED,
};

/* A parsed sample line. */
struct expfmt_series {
    const char *name;            /* metric name, unquoted/unescaped */
    size_t name_len;
    const struct expfmt_label *labels;   /* in input order, names unique; NULL if none */
    size_t nlabels;
    double value;                /* every NaN is returned as one canonical quiet NaN */
    bool has_timestamp;
    int64_t timestamp_ms;        /* valid only when has_timestamp */
    /* The raw bytes of name and label block exactly as they appeared (from
     * the first byte of the name, or the '{' of a quoted-name series, to
     * the end of the name or the closing '}'): a cache key for the scraper. */
    const char *series_text;
    size_t series_text_len;
    /* From the most recent TYPE line if it names this series' family: the
     * name itself, or for a histogram name_bucket/_sum/_count, for a
     * summary name_sum/_count. Otherwise EXPFMT_TYPE_UNKNOWN. */
    enum expfmt_metric_type type;
};

/* Parser state. Public only so callers can keep it on the stack; every
 * field is private to expfmt. */
struct expfmt_parser {
    const char *buf;             /* borrowed input */
    size_t len;
    size_t pos;                  /* start of the next line */
    size_t lineno;               /* 1-based number of the current line */
    const char *line;            /* current line, without its '\n' */
    const char *line_end;
    struct expfmt_series series;
    struct expfmt_label *labels; /* owned; grows up to EXPFMT_MAX_LABELS */
    size_t labels_cap;
    char *scratch;               /* owned; unescaped text, <= line length */
    size_t scratch_cap;
    size_t scratch_used;
    size_t scratch_lineno;       /* line the scratch space was sized for */
    char *family;                /* owned copy of the last TYPE line's name */
    size_t family_len;
    size_t family_cap;
    enum expfmt_metric_type family_type;
    const char *meta_name;       /* HELP/TYPE name, comment text */
    size_t meta_name_len;
    const char *meta_text;       /* HELP text */
    size_t meta_text_len;
    enum expfmt_metric_type meta_type;
};

/* Start parsing buf[0..len). The buffer is borrowed: it must stay unchanged
 * and alive until expfmt_parser_fini(). It need not be NUL-terminated. Never
 * fails and allocates nothing; memory is allocated lazily by next(). */
void expfmt_parser_init(struct expfmt_parser *p, const char *buf, size_t len);

/* Release the parser's memory. Pointers it handed out become invalid. Safe to
 * call on an initialised parser in any state, once. */
void expfmt_parser_fini(struct expfmt_parser *p);

/* Parse the next non-blank line. On success returns 0 and sets *kind; at the
 * end of the input *kind is EXPFMT_EOF. On malformed input returns BS_EPARSE
 * and fills err (may be NULL) with "line N, column C: what was expected,
 * got what"; a series line with more than EXPFMT_MAX_LABELS labels returns
 * BS_ELIMIT; BS_ENOMEM when the scratch or label space cannot be allocated.
 * After an error the parser stands at the start of the following line, so a
 * checker may keep calling next() to find further errors; a scraper should
 * stop at the first, as Prometheus does. Invalidates everything returned by
 * the accessors below for the previous line. */
int expfmt_parser_next(struct expfmt_parser *p, enum expfmt_entry *kind, struct bs_error *err);

/* The series of the last EXPFMT_SERIES entry. The struct and everything it
 * points to are valid until the next call to next() or fini(). Undefined
 * after any other entry kind. */
const struct expfmt_series *expfmt_parser_series(const struct expfmt_parser *p);

/* The metric name and the unescaped help text (may be empty) of the last
 * EXPFMT_HELP entry; valid until the next call to next() or fini(). Any
 * output pointer may be NULL. */
void expfmt_parser_help(const struct expfmt_parser *p, const char **name, size_t *name_len,
                        const char **text, size_t *text_len);

/* The metric name and type of the last EXPFMT_TYPE entry; the name is valid
 * until the next call to next() or fini(). Any output pointer may be NULL. */
void expfmt_parser_type(const struct expfmt_parser *p, const char **name, size_t *name_len,
                        enum expfmt_metric_type *type);

/* The whole line of the last EXPFMT_COMMENT entry, '#' included, without the
 * line break; valid until the next call to next() or fini(). */
void expfmt_parser_comment(const struct expfmt_parser *p, const char **text, size_t *text_len);

/* The 1-based line number of the entry last returned (or of the error). */
size_t expfmt_parser_lineno(const struct expfmt_parser *p);

/* The exposition name of a type ("counter", ..., "unknown"); never NULL. */
const char *expfmt_metric_type_name(enum expfmt_metric_type t);

/* Append one series line for the set ls (which must contain __name__) to b:
 *   name{a="x",b="y"} 1.5 1700000000000\n
 * Labels follow ls's order, __name__ excluded; values are escaped (\\ \"
 * \n); names that are not legacy-valid are written quoted, Prometheus 3
 * style ({"my.metric","my.label"="v"}). The value is formatted with
 * bs_float_format_short(). t_ms is written unless it equals
 * EXPFMT_NO_TIMESTAMP (-1). Returns 0; BS_EINVAL when ls has no __name__;
 * BS_ELIMIT or BS_ENOMEM from b, in which case b is left as it was. */
int expfmt_write_series(struct bs_buf *b, const struct labels *ls, double v, int64_t t_ms);

#endif
