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


/* ----------------------------------------------------------- relabeling */

/* Prometheus relabeling (relabel_configs, metric_relabel_configs and
 * alert_relabel_configs), with the semantics of Prometheus 2.42's
 * model/relabel: the configs are applied in order to one label set, each
 * reading the result of the one before; keep, drop, keepequal and dropequal
 * can drop the set, which ends processing. See src/labels/relabel.c for the
 * exact rules, including Prometheus's quirks that are kept on purpose. */

enum labels_relabel_action {
    LABELS_RELABEL_REPLACE,   /* default: regex replace into target_label */
    LABELS_RELABEL_KEEP,      /* drop the set unless the regex matches */
    LABELS_RELABEL_DROP,      /* drop the set if the regex matches */
    LABELS_RELABEL_KEEPEQUAL, /* drop unless joined sources == target_label's value */
    LABELS_RELABEL_DROPEQUAL, /* drop if joined sources == target_label's value */
    LABELS_RELABEL_HASHMOD,   /* target_label = md5(joined sources) % modulus */
    LABELS_RELABEL_LABELMAP,  /* copy labels whose names match to expanded names */
    LABELS_RELABEL_LABELDROP, /* delete labels whose names match */
    LABELS_RELABEL_LABELKEEP, /* delete labels whose names do not match */
    LABELS_RELABEL_LOWERCASE, /* target_label = lower-cased joined sources */
    LABELS_RELABEL_UPPERCASE, /* target_label = upper-cased joined sources */
};

/* Parse an action name the way Prometheus does: case-insensitively
 * ("Keep" is keep). Returns 0 and stores *out, or BS_EINVAL when the name is
 * unknown. */
int labels_relabel_action_parse(const char *s, enum labels_relabel_action *out);
/* Lower-case name of an action ("replace", ...); never NULL. */
const char *labels_relabel_action_name(enum labels_relabel_action a);

/* One relabel config as written in YAML, borrowed by
 * labels_relabel_config_init(). A NULL string means the key is absent, so
 * Prometheus's default applies; "" means the key was given with an empty
 * value, which is not the same (regex "" matches only the empty string,
 * replacement "" deletes the target label). */
struct labels_relabel_spec {
    const char *action;               /* NULL: "replace" */
    const char *const *source_labels; /* NULL: key absent; else nsource_labels names */
                                      /* (must be non-NULL when nsource_labels > 0) */
    size_t nsource_labels;
    const char *separator;            /* NULL: ";" */
    const char *regex;                /* NULL: "(.*)"; anchored at both ends */
    uint64_t modulus;                 /* 0: absent (required by hashmod) */
    const char *target_label;         /* NULL: "" */
    const char *replacement;          /* NULL: "$1" */
};

/* A validated, compiled relabel config. The public fields are the effective
 * values (defaults applied) and must not be changed; the config is immutable
 * after init, so any number of threads may apply it at once. */
struct labels_relabel_config {
    enum labels_relabel_action action;
    char **source_labels;
    size_t nsource_labels;
    char *separator;
    char *regex;          /* the text as given, without the anchors */
    uint64_t modulus;
    char *target_label;
    char *replacement;
    void *re_;            /* private: compiled regex */
    bool target_template_; /* private: target_label contains '$' */
};

/* Validate spec and compile it into c (caller storage). Returns 0, or:
 *   BS_EINVAL  the config is not allowed; err holds Prometheus's message,
 *              e.g. "relabel configuration for replace action requires
 *              'target_label' value", "\"1x\" is invalid 'target_label' for
 *              replace action", "relabel configuration for hashmod requires
 *              non-zero modulus", "labeldrop action requires only 'regex',
 *              and no other fields", "unknown relabel action \"x\"";
 *   BS_EPARSE  the regex does not compile ("error parsing regexp: ...");
 *   BS_ENOMEM  out of memory.
 * On failure c holds nothing to release (fini is harmless). */
int labels_relabel_config_init(struct labels_relabel_config *c,
                               const struct labels_relabel_spec *spec, struct bs_error *err);
/* Release what init allocated; c may then be init'ed again. */
void labels_relabel_config_fini(struct labels_relabel_config *c);

/* Apply cfgs[0..n) in order to the label set held by b, in place, like
 * Prometheus's relabel.Process. *keep is set false when a keep, drop,
 * keepequal or dropequal config dropped the set; b's content is then
 * unspecified. Returns 0, or BS_ENOMEM (b's content unspecified). Label
 * names written by replace and labelmap are not validated beyond what
 * Prometheus checks; callers validate the result as scraping does. */
int labels_relabel_apply_builder(const struct labels_relabel_config *cfgs, size_t n,
                                 struct labels_builder *b, bool *keep);
/* The same starting from a label set: out is reset to a copy of in (which is
 * only borrowed), then relabeled; read the result with
 * labels_builder_labels(out, ...). */
int labels_relabel_apply(const struct labels_relabel_config *cfgs, size_t n,
                         const struct labels *in, struct labels_builder *out, bool *keep);

/* MD5 (RFC 1321) of p[0..n) into out; the hash behind hashmod. */
void labels_md5(const void *p, size_t n, uint8_t out[16]);
/* hashmod's value: the last 8 bytes of md5(s[0..n)) read big-endian, modulo
 * modulus (which must be non-zero). */
uint64_t labels_relabel_hashmod(const char *s, size_t n, uint64_t modulus);

#endif
