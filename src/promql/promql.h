/* SPDX-License-Identifier: Apache-2.0
 *
 * promql: the Prometheus query language. A lexer and parser for the whole
 * grammar (with Prometheus's error texts and line:column positions), the
 * AST, an evaluator for instant and range queries over a struct tsdb, and
 * the JSON form of results used by the HTTP API.
 *
 * Thread safety: an engine is shared by all threads; each query call is
 * independent. At most max_concurrency queries evaluate at once; further
 * callers block until a slot frees.
 */
#ifndef BONGSU_PROMQL_H
#define BONGSU_PROMQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

struct promql_engine_opts {
    int64_t lookback_ms;   /* 300000: how far back an instant selector looks */
    int64_t timeout_ms;    /* 120000: per query; 0 = no timeout */
    int64_t max_samples;   /* 50000000: samples a query may hold at once */
    int max_concurrency;   /* 20: queries evaluating at the same time */
};

/* Fill o with the defaults shown above (Prometheus's). */
void promql_engine_opts_default(struct promql_engine_opts *o);

struct promql_engine;

/* Create an engine with a copy of o (NULL means defaults). Returns NULL on
 * allocation failure. Free with promql_engine_free once no query runs. */
struct promql_engine *promql_engine_new(const struct promql_engine_opts *o);
void promql_engine_free(struct promql_engine *e);

enum promql_value_type {
    PROMQL_VALUE_NONE,
    PROMQL_VALUE_SCALAR,
    PROMQL_VALUE_VECTOR,
    PROMQL_VALUE_MATRIX,
    PROMQL_VALUE_STRING,
};

struct promql_point {
    int64_t t;   /* milliseconds */
    double v;
};

struct promql_series {
    struct labels *labels;        /* owned: a labels_dup() copy, free() */
    struct promql_point *points;  /* owned */
    size_t npoints;
};

/* A query result; everything in it is owned by it and released by
 * promql_result_free(). A vector holds one point per series (at the
 * evaluation time), a matrix many, sorted by time. */
struct promql_result {
    enum promql_value_type type;
    struct promql_series *series;
    size_t nseries;
    struct promql_point scalar;   /* PROMQL_VALUE_SCALAR */
    char *string;                 /* PROMQL_VALUE_STRING */
    int64_t string_t;
    /* Annotations, as Prometheus's "warnings" and "infos" arrays: each a
     * malloc'd text starting "PromQL warning: " or "PromQL info: ". */
    char **warnings;
    size_t nwarnings;
    char **infos;
    size_t ninfos;
};

/* Evaluate q at t_ms against db. On success *out is a new result the
 * caller frees with promql_result_free(). On failure returns a negative
 * BS_* code (BS_EPARSE for bad queries, BS_EEXEC, BS_ELIMIT, BS_ETIMEOUT,
 * BS_ENOMEM) with a Prometheus-style message in err, and *out is NULL. */
int promql_query_instant(struct promql_engine *e, struct tsdb *db, const char *q, int64_t t_ms,
                         struct promql_result **out, struct bs_error *err);
/* Evaluate q at start_ms, start_ms + step_ms, ... up to end_ms; the result
 * is always a matrix (one series per label set, sorted by labels, points
 * by time; series without points are dropped). The expression must be a
 * scalar or an instant vector (BS_EINVAL otherwise, as for step_ms <= 0 or
 * end_ms < start_ms). Ownership and errors as for promql_query_instant. */
int promql_query_range(struct promql_engine *e, struct tsdb *db, const char *q, int64_t start_ms,
                       int64_t end_ms, int64_t step_ms, struct promql_result **out,
                       struct bs_error *err);
/* Free a result and everything it owns. NULL is allowed. */
void promql_result_free(struct promql_result *r);

/* Append the API "data" object for r, exactly as Prometheus writes it:
 * {"resultType":"vector","result":[{"metric":{...},"value":[t,"v"]}]}.
 * Returns 0 or the error of the buffer (BS_ENOMEM, BS_ELIMIT). */
int promql_result_json(const struct promql_result *r, struct bs_buf *out);

/* The API errorType for a code returned by the query functions:
 * "bad_data", "timeout", "canceled" or "execution". Never NULL. */
const char *promql_error_type(int code);

/* ------------------------------------------------------------------ AST */

struct promql_expr;   /* opaque; see promql_int.h */

/* Parse q. On success *out is a new tree (free with promql_expr_free). On
 * failure returns BS_EPARSE with err holding e.g.
 * "1:5: parse error: unexpected <op:+>", and *out is NULL. */
int promql_parse(const char *q, struct promql_expr **out, struct bs_error *err);
/* Free a tree. NULL is allowed. */
void promql_expr_free(struct promql_expr *x);
/* Append the canonical text of x (as Prometheus's String()); the text
 * parses back to an equal tree. */
int promql_expr_format(const struct promql_expr *x, struct bs_buf *out);

#endif
