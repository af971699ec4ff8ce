/* SPDX-License-Identifier: Apache-2.0
 *
 * labels: label sets, label matchers and string interning.
 *
 * A label set is a view: an array of (name, value) pairs of NUL-terminated
 * strings, sorted by name, names unique, no empty values. Whoever built it
 * owns the storage; labels_dup() makes a self-contained heap copy in one
 * allocation that free() releases. The metric name is the label "__name__".
 * An absent label and a label with the empty value are the same thing, as
 * in Prometheus.
 */
#ifndef BONGSU_LABELS_H
#define BONGSU_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define LABELS_METRIC_NAME "__name__"

struct label {
    const char *name;
    const char *value;
};

struct labels {
    struct label *v;
    size_t n;
};

/* One canonical 64-bit hash of a set: XXH3 over name 0xff value 0xff ...
 * Equal sets hash equal; the hash is stable across runs and releases. */
uint64_t labels_hash(const struct labels *ls);
/* Same hash, but ignoring the labels whose names are in skip (sorted or not). */
uint64_t labels_hash_without(const struct labels *ls, const char *const *skip, size_t nskip);
uint64_t labels_hash_only(const struct labels *ls, const char *const *only, size_t nonly);
/* Total order as Prometheus's labels.Compare: pairwise by name, then value,
 * then the shorter set first. */
int labels_cmp(const struct labels *a, const struct labels *b);
bool labels_equal(const struct labels *a, const struct labels *b);
/* Value of name, or NULL when absent. Binary search. */
const char *labels_get(const struct labels *ls, const char *name);
/* Size in bytes of a labels_dup() copy. */
size_t labels_size(const struct labels *ls);
/* Heap copy in one block (struct, array and strings); release with free().
 * Returns NULL on allocation failure. */
struct labels *labels_dup(const struct labels *ls);
/* Append the Prometheus text form: name{a="x", b="y"} (", " between pairs,
 * values escaped as in PromQL strings; "{}" for the empty set; a set with
 * only __name__ prints just the name). */
int labels_format(const struct labels *ls, struct bs_buf *out);
/* Append as a JSON object {"__name__":"up","job":"x"} in label order. */
int labels_format_json(const struct labels *ls, struct bs_buf *out);

/* Valid label name: [a-zA-Z_][a-zA-Z0-9_]*; metric name also allows ':'. */
bool labels_name_valid(const char *s, size_t n);
bool labels_metric_name_valid(const char *s, size_t n);

/* ------------------------------------------------------------- builder */

/* Builds a label set. Strings are copied into the builder's own storage, so
 * inputs may be transient. set() with an empty value deletes the label.
 * labels_builder_labels() sorts and returns a view valid until the next
 * call that modifies the builder or fini/reset. */
struct labels_builder {
    struct label *v;
    size_t n, cap;
    struct bs_arena arena;
    bool sorted;
};
void labels_builder_init(struct labels_builder *b);
void labels_builder_fini(struct labels_builder *b);
void labels_builder_reset(struct labels_builder *b);
/* Start from an existing set (copies it). */
int labels_builder_from(struct labels_builder *b, const struct labels *ls);
int labels_builder_set(struct labels_builder *b, const char *name, size_t name_len,
                       const char *value, size_t value_len);
int labels_builder_set_str(struct labels_builder *b, const char *name, const char *value);
void labels_builder_del(struct labels_builder *b, const char *name);
const char *labels_builder_get(const struct labels_builder *b, const char *name);
/* Sorted view. If duplicate names were added with add_raw, returns
 * BS_EINVAL and sets err "label name \"x\" is not unique". */
int labels_builder_labels(struct labels_builder *b, struct labels *out, struct bs_error *err);
/* Add without replacing an existing name (to detect duplicates in input). */
int labels_builder_add_raw(struct labels_builder *b, const char *name, size_t name_len,
                           const char *value, size_t value_len);

/* ------------------------------------------------------------- matchers */

enum labels_match_type {
    LABELS_MATCH_EQ,    /* =  */
    LABELS_MATCH_NEQ,   /* != */
    LABELS_MATCH_RE,    /* =~ fully anchored PCRE2 */
    LABELS_MATCH_NRE,   /* !~ */
};

struct labels_matcher;   /* opaque; immutable after creation, thread-safe */

/* Compile a matcher. Regexes are anchored at both ends, like Prometheus
 * (^(?:re)$), with PCRE2 in UTF mode and JIT where available; a bad regex
 * fails with BS_EPARSE and PCRE2's message and offset in err. */
int labels_matcher_new(struct labels_matcher **out, enum labels_match_type type, const char *name,
                       const char *value, struct bs_error *err);
void labels_matcher_free(struct labels_matcher *m);
/* Does value (NULL or "" when the label is absent) satisfy the matcher? */
bool labels_matcher_matches(const struct labels_matcher *m, const char *value);
/* Does the whole set satisfy it (looks the label up by name)? */
bool labels_matcher_matches_labels(const struct labels_matcher *m, const struct labels *ls);
enum labels_match_type labels_matcher_type(const struct labels_matcher *m);
const char *labels_matcher_name(const struct labels_matcher *m);
const char *labels_matcher_value(const struct labels_matcher *m);
/* True if the matcher matches the empty string (so it also selects series
 * that lack the label). */
bool labels_matcher_matches_empty(const struct labels_matcher *m);
/* Text form: name="value", name=~"re" ... */
int labels_matcher_format(const struct labels_matcher *m, struct bs_buf *out);

/* ------------------------------------------------------------ interning */

/* A thread-safe set of interned strings. Interned strings are immutable,
 * NUL-terminated and live until the table is freed; two interns of equal
 * text return the same pointer, so pointer equality is string equality. */
struct labels_symtab;
struct labels_symtab *labels_symtab_new(void);
void labels_symtab_free(struct labels_symtab *t);
/* Returns the interned copy, or NULL on allocation failure. */
const char *labels_symtab_intern(struct labels_symtab *t, const char *s, size_t n);
size_t labels_symtab_count(const struct labels_symtab *t);
size_t labels_symtab_bytes(const struct labels_symtab *t);

#endif
