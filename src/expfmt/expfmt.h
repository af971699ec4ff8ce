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
 * The same parser also reads OpenMetrics 1.0 text (application/openmetrics-
 * text), chosen with expfmt_parser_init_format(); see the OpenMetrics
 * section below and docs/openmetrics.md. Same entry API, same lifetimes.
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
    EXPFMT_TYPE_GAUGEHISTOGRAM, /* OpenMetrics only, as the two below */
    EXPFMT_TYPE_INFO,
    EXPFMT_TYPE_STATESET,
};

/* The exposition format a parser reads. */
enum expfmt_format {
    EXPFMT_FORMAT_TEXT = 0,      /* text/plain; version=0.0.4 (the default) */
    EXPFMT_FORMAT_OPENMETRICS,   /* application/openmetrics-text; version=1.0.0 */
};

/* An OpenMetrics exemplar ("# {labels} value [timestamp]" after a sample). */
struct expfmt_exemplar {
    const struct expfmt_label *labels;   /* in input order, names unique; NULL if none */
    size_t nlabels;
    double value;                /* NaN canonicalised as for samples */
    bool has_timestamp;
    int64_t timestamp_ms;        /* float seconds converted as for samples */
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
    /* OpenMetrics only; zero/NULL/false for the 0.0.4 format. */
    const char *family;          /* the metric family: TYPE/HELP/UNIT name, or for a */
    size_t family_len;           /* sample without metadata its own name */
    bool created;                /* family_created of a counter, histogram or summary:
                                  * value is the creation time in seconds. Still an
                                  * ordinary sample (see docs/openmetrics.md). */
    bool has_exemplar;           /* only ever on counter _total and histogram _bucket */
    struct expfmt_exemplar exemplar;     /* valid when has_exemplar */
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
    enum expfmt_format format;
    struct expfmt_om *om;        /* owned; OpenMetrics state, private to om_parse.c */
};

/* Start parsing buf[0..len). The buffer is borrowed: it must stay unchanged
 * and alive until expfmt_parser_fini(). It need not be NUL-terminated. Never
 * fails and allocates nothing; memory is allocated lazily by next(). */
void expfmt_parser_init(struct expfmt_parser *p, const char *buf, size_t len);

/* As expfmt_parser_init(), for the given format. EXPFMT_FORMAT_TEXT is the
 * same as expfmt_parser_init(). */
void expfmt_parser_init_format(struct expfmt_parser *p, const char *buf, size_t len,
                               enum expfmt_format format);

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

/* OpenMetrics: the metric family of the current position and its UNIT
 * (empty when it has none). A "# UNIT" line produces no entry of its own
 * (the entry kinds are those of 0.0.4); since OpenMetrics puts all metadata
 * before a family's samples, the unit is known at every later HELP, TYPE and
 * SERIES entry of that family. Pointers are into the input buffer. For the
 * 0.0.4 format both are empty. Any output pointer may be NULL. */
void expfmt_parser_unit(const struct expfmt_parser *p, const char **family, size_t *family_len,
                        const char **unit, size_t *unit_len);

/* The 1-based line number of the entry last returned (or of the error). */
size_t expfmt_parser_lineno(const struct expfmt_parser *p);

/* ----------------------------------------------------------- OpenMetrics
 *
 * With EXPFMT_FORMAT_OPENMETRICS, expfmt_parser_next() reads OpenMetrics 1.0
 * text and enforces the whole format, as the upstream parser test suite
 * does: "# EOF" as the last line, no blank lines or comments, exact single
 * spaces, HELP/TYPE/UNIT once each and before the family's samples, each
 * family contiguous and its name never reused, per-type sample names
 * (counter _total/_created, histogram _bucket/_count/_sum/_created,
 * gaugehistogram _bucket/_gcount/_gsum, summary quantiles/_count/_sum/
 * _created, info _info, stateset), le/quantile labels, counter-like values
 * not negative or NaN, bucket order and +Inf, groups contiguous with
 * timestamps that never go backwards, exemplars only on counter _total and
 * histogram _bucket samples with at most 128 code points of label text.
 * Timestamps are float seconds, returned as milliseconds (truncated toward
 * zero, as Prometheus does; saturated to the int64 range).
 *
 * Entries: EXPFMT_HELP, EXPFMT_TYPE (any of the eight OpenMetrics types;
 * "unknown" is EXPFMT_TYPE_UNKNOWN), EXPFMT_SERIES, and EXPFMT_EOF after
 * "# EOF". Never EXPFMT_COMMENT. Errors are BS_EPARSE with "line N, column
 * C: expected ..., got ..." for a line's syntax and "line N: ..." for rules
 * that span lines; a family's cross-line rules (histogram buckets, name
 * clashes) are checked when the family ends, so the error names the line
 * that ended it and the family's first line. Input that ends without
 * "# EOF", or has anything after it, fails at the end. The series lifetime
 * rules are those above; exemplar labels live with the series labels. */

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
