/* SPDX-License-Identifier: Apache-2.0
 *
 * promql internals shared by the lexer, parser, AST printer, evaluator and
 * functions, and by the module's unit tests. Nothing here is a contract for
 * other modules.
 */
#ifndef BONGSU_PROMQL_INT_H
#define BONGSU_PROMQL_INT_H

#include "promql/promql.h"

/* ---------------------------------------------------------------- tokens */

enum promql_tok {
    PT_EOF,
    PT_ERROR,        /* lexer error; the message is in the lexer */
    PT_IDENT,        /* foo (no colon) */
    PT_METRIC_IDENT, /* foo:bar */
    PT_NUMBER,
    PT_STRING,
    PT_DURATION,
    PT_LPAREN, PT_RPAREN, PT_LBRACE, PT_RBRACE, PT_LBRACKET, PT_RBRACKET,
    PT_COMMA, PT_COLON, PT_AT,
    PT_EQL,          /* = */
    /* binary operators */
    PT_ADD, PT_SUB, PT_MUL, PT_DIV, PT_MOD, PT_POW, PT_ATAN2,
    PT_EQLC, PT_NEQ, PT_LTE, PT_LSS, PT_GTE, PT_GTR,
    PT_LAND, PT_LOR, PT_LUNLESS,
    PT_EQL_REGEX, PT_NEQ_REGEX,
    /* keywords */
    PT_BOOL, PT_BY, PT_GROUP_LEFT, PT_GROUP_RIGHT, PT_IGNORING, PT_OFFSET, PT_ON,
    PT_WITHOUT, PT_START, PT_END,
    PT_AGG,          /* an aggregation operator; which one in tok.agg */
};

enum promql_agg_op {
    PROMQL_AGG_SUM, PROMQL_AGG_AVG, PROMQL_AGG_MIN, PROMQL_AGG_MAX, PROMQL_AGG_COUNT,
    PROMQL_AGG_GROUP, PROMQL_AGG_STDDEV, PROMQL_AGG_STDVAR, PROMQL_AGG_TOPK,
    PROMQL_AGG_BOTTOMK, PROMQL_AGG_QUANTILE, PROMQL_AGG_COUNT_VALUES, PROMQL_AGG_LIMITK,
    PROMQL_AGG_LIMIT_RATIO,
};

struct promql_token {
    enum promql_tok type;
    int agg;            /* enum promql_agg_op when type == PT_AGG */
    size_t pos, len;    /* byte range in the query */
};

/* The lexer produces one token at a time. Tokens point into q. */
struct promql_lexer {
    const char *q;
    size_t n, pos;
    int brace_depth;    /* inside {...} */
    int bracket_depth;  /* inside [...] */
    int paren_depth;
    char errmsg[256];   /* PT_ERROR text */
};
void promql_lexer_init(struct promql_lexer *l, const char *q);
void promql_lexer_next(struct promql_lexer *l, struct promql_token *t);
/* Text used for a token in "unexpected X" messages, written to dst. */
void promql_token_desc(const struct promql_lexer *l, const struct promql_token *t, char *dst,
                       size_t cap);
bool promql_tok_is_binop(enum promql_tok t);
bool promql_tok_is_comparison(enum promql_tok t);
bool promql_tok_is_setop(enum promql_tok t);
const char *promql_tok_text(enum promql_tok t);   /* "+", "and", ... */
const char *promql_agg_name(int agg);
/* Unquote a PromQL string literal s[0..n) (quotes included) into a new
 * malloc'd string. Returns 0 or BS_EPARSE with a message in err. */
int promql_unquote(const char *s, size_t n, char **out, char *err, size_t errcap);

/* ------------------------------------------------------------------- AST */

enum promql_node {
    PROMQL_NODE_NUMBER,
    PROMQL_NODE_STRING,
    PROMQL_NODE_VECTOR,    /* instant vector selector */
    PROMQL_NODE_MATRIX,    /* lhs is a PROMQL_NODE_VECTOR; range_ms */
    PROMQL_NODE_SUBQUERY,  /* lhs [range_ms:step_ms] */
    PROMQL_NODE_PAREN,
    PROMQL_NODE_UNARY,     /* op PT_SUB or PT_ADD, lhs */
    PROMQL_NODE_BINARY,
    PROMQL_NODE_CALL,
    PROMQL_NODE_AGG,
};

enum promql_at { PROMQL_AT_NONE, PROMQL_AT_VALUE, PROMQL_AT_START, PROMQL_AT_END };

enum promql_card { PROMQL_CARD_ONE_TO_ONE, PROMQL_CARD_MANY_TO_ONE, PROMQL_CARD_ONE_TO_MANY,
                   PROMQL_CARD_MANY_TO_MANY };

struct promql_matcher_ast {
    enum labels_match_type type;
    char *name;    /* owned */
    char *value;   /* owned */
    struct labels_matcher *m;   /* owned, compiled at parse time */
};

struct promql_func;

/* One node type with the fields of every kind; a kind uses only its own.
 * Every pointer is owned by the node. */
struct promql_expr {
    enum promql_node kind;
    size_t pos;                     /* byte offset of the node's start */
    double num;                     /* NUMBER */
    char *str;                      /* STRING (unquoted) */
    /* VECTOR */
    char *name;                     /* metric name written before {, or NULL */
    struct promql_matcher_ast *matchers;   /* includes __name__="name" */
    size_t nmatchers;
    /* VECTOR and SUBQUERY: modifiers */
    int64_t offset_ms;
    bool has_offset;
    enum promql_at at;
    int64_t at_ms;
    /* MATRIX / SUBQUERY */
    int64_t range_ms, step_ms;      /* step 0: default interval */
    /* Duration expressions (Prometheus 3's "[5m+1m]", "offset (2*2)",
     * "[step()]"): when one uses step() or range() it is kept here and
     * resolved into range_ms/step_ms/offset_ms when a query starts
     * (promql_resolve_durations); constant ones are folded while parsing.
     * Their nodes are NUMBER (seconds), PAREN, UNARY, BINARY and CALL of a
     * duration function (step, range, min_of, max_of). */
    struct promql_expr *range_expr, *step_expr, *offset_expr;
    /* operands: UNARY, PAREN, MATRIX, SUBQUERY use lhs; BINARY both */
    struct promql_expr *lhs, *rhs;
    enum promql_tok op;             /* UNARY, BINARY */
    size_t op_pos;                  /* BINARY: where the operator is */
    bool return_bool;
    bool has_matching;              /* on/ignoring written */
    bool on;
    enum promql_card card;
    char **match_labels; size_t nmatch_labels;
    char **include; size_t ninclude;
    /* CALL */
    const struct promql_func *func;
    struct promql_expr **args; size_t nargs;
    /* AGG: lhs is the expression, rhs the parameter (or NULL) */
    int agg;
    bool without, has_grouping;
    char **grouping; size_t ngrouping;
};

/* The duration functions usable only inside duration expressions. */
const struct promql_func *promql_duration_func_lookup(const char *name, size_t n);
/* Evaluate a duration expression to seconds; step_s and range_s are what
 * step() and range() return. Returns 0, or BS_EINVAL with a message in err
 * ("division by zero", "modulo by zero"). */
int promql_duration_eval(const struct promql_expr *x, double step_s, double range_s,
                         double *out, char *err, size_t errcap);
/* Seconds to milliseconds as upstream (truncated toward zero). allow_neg:
 * offsets; ranges and steps must be positive ("duration must be greater
 * than 0"). Returns 0 or BS_EINVAL with a message in err. */
int promql_duration_ms(double secs, bool allow_neg, int64_t *ms, char *err, size_t errcap);
/* Resolve every duration expression of x for a query with the given step
 * (0 for instant queries) and range (end - start), both in ms. Returns 0 or
 * BS_EINVAL with a message in err. */
int promql_resolve_durations(struct promql_expr *x, int64_t step_ms, int64_t range_ms, char *err,
                             size_t errcap);

/* The value type of an expression (NONE never happens for a parsed tree). */
enum promql_value_type promql_expr_type(const struct promql_expr *x);
const char *promql_value_type_name(enum promql_value_type t);
/* The default subquery step when [range:] is written. */
#define PROMQL_DEFAULT_STEP_MS 60000

/* ------------------------------------------------------------- functions */

struct promql_eval;
struct promql_val;

typedef int (*promql_func_fn)(struct promql_eval *ev, const struct promql_expr *call,
                              struct promql_val *args, int64_t t, struct promql_val *out);

struct promql_func {
    const char *name;
    enum promql_value_type args[6];
    int nargs;                  /* listed */
    int variadic;               /* 0: exactly nargs; n > 0: up to n optional; -1: unbounded */
    enum promql_value_type ret;
    promql_func_fn fn;          /* NULL: parsed but not evaluable yet */
    double (*math)(double);     /* for the element-wise math functions */
};
const struct promql_func *promql_func_lookup(const char *name, size_t n);

/* ------------------------------------------------------------- evaluator */

/* Delayed __name__ removal (Prometheus 3's EnableDelayedNameRemoval): an
 * operation that would drop the metric name only sets drop_name and keeps
 * the labels, so label_replace/label_join and "by (__name__)" still see the
 * name. The name, together with __type__ and __unit__, is removed when the
 * value leaves the engine (the query result, or a subquery's output). */
struct promql_sample {
    const struct labels *ls;   /* borrowed: query- or step-lifetime */
    double v;
    int64_t t;                 /* timestamp of the sample (for timestamp()) */
    bool drop_name;            /* remove the metadata labels at the end */
};

struct promql_mseries {
    const struct labels *ls;
    const struct promql_point *p;
    size_t n;
    /* No value is lower than the one before it (no counter reset in p):
     * known for windows of range selectors; false means "not known". */
    bool monotone;
};

struct promql_val {
    enum promql_value_type type;
    double scalar;
    const char *str;
    struct promql_sample *vec; size_t nvec;
    struct promql_mseries *mat; size_t nmat;
    int64_t range_start, range_end;   /* matrix window (for extrapolation) */
    int64_t range_ms;
};

/* Step-lifetime allocation (freed at once after each step); on failure the
 * evaluation error is set. */
void *promql_eval_alloc(struct promql_eval *ev, size_t n);
/* Copy ls into step-lifetime memory. */
const struct labels *promql_eval_labels(struct promql_eval *ev, const struct labels *ls);
/* Labels of ls without the metadata labels __name__, __type__ and __unit__
 * (may return ls itself when it has none). */
const struct labels *promql_eval_drop_name(struct promql_eval *ev, const struct labels *ls);
/* True for __name__, __type__ and __unit__. */
bool promql_is_metadata_label(const char *name);
/* A per-query slot for state that a node computes once and reuses at
 * every step (a compiled regex): *slot is NULL the first time key is
 * seen; whatever is stored there is passed to free_fn when the query ends.
 * Returns NULL (with the evaluation error set) on allocation failure. */
void **promql_eval_node_slot(struct promql_eval *ev, const void *key, void (*free_fn)(void *));
/* The zeroed object of `size` bytes (calloc'd, freed with free_fn at the
 * end of the query) in key's slot, made on the first call (*fresh then
 * true, for the caller to initialise). NULL on OOM (error set). */
void *promql_eval_node_object(struct promql_eval *ev, const void *key, size_t size,
                              void (*free_fn)(void *), bool *fresh);
/* Set the evaluation error; returns code. */
int promql_eval_error(struct promql_eval *ev, int code, const char *fmt, ...) BS_PRINTF(3, 4);
/* Record an annotation for the query result: a warning ("PromQL warning:
 * ...") or an info ("PromQL info: ..."); the prefix is added here. Equal
 * texts are kept once, at most PROMQL_MAX_ANNOTATIONS of each kind. */
void promql_eval_annotate(struct promql_eval *ev, bool info, const char *fmt, ...)
    BS_PRINTF(3, 4);
#define PROMQL_MAX_ANNOTATIONS 100
/* Periodic deadline check. */
int promql_eval_check(struct promql_eval *ev);
/* Query start, end and step (0 for an instant query), for start(), end(),
 * step() and range(). */
int64_t promql_eval_start(const struct promql_eval *ev);
int64_t promql_eval_end(const struct promql_eval *ev);
int64_t promql_eval_step(const struct promql_eval *ev);

/* Number text for the API (fmt.c): the value exactly as
 * bs_float_format_api writes it, only faster; Unix seconds with up to
 * three decimals ("1.5", "1700000000.123"). dst needs BS_FLOAT_FMT_MAX and
 * 32 bytes respectively; both return the length written (NUL added). */
size_t promql_float_format_api(double v, char *dst);
size_t promql_time_format(int64_t t, char *dst);

/* Give freed heap memory back to the system (glibc's malloc_trim) when a
 * query or result of that many samples was just freed: glibc keeps freed
 * memory for reuse otherwise, and the process would stay at its peak size
 * after one big query. Below the threshold nothing happens (trimming costs
 * a walk of the heap). */
#define PROMQL_TRIM_SAMPLES 262144   /* about 4 MiB of points */
void promql_release_memory(int64_t samples);

/* Shared numeric helpers (functions.c). */
double promql_quantile(double q, double *vals, size_t n);   /* sorts vals */
void promql_kahan_inc(double inc, double *sum, double *c);

#endif
