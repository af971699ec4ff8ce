/* SPDX-License-Identifier: Apache-2.0
 *
 * promqltest: the PromQL scripted-test runner (private header). The runner
 * reads the upstream `.test` scripts described in
 * ../shared/testdata/promql/FORMAT.md, loads their data into a fresh tsdb,
 * runs every eval through the promql API and compares the result exactly as
 * upstream's Go runner does.
 *
 * Split by concern: parse.c turns a file into commands (series descriptions
 * expanded, expected results decoded), index.c reads eval-index.tsv, run.c
 * executes commands and compares, promqltest_main.c walks the directory and
 * prints the figures. A file is parsed completely before it runs; a command
 * that does not parse becomes a PT_CMD_BROKEN entry carrying its message so
 * the rest of the file still runs.
 */
#ifndef BONGSU_PROMQLTEST_PTEST_H
#define BONGSU_PROMQLTEST_PTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "labels/labels.h"
#include "util/util.h"

/* ------------------------------------------------------------ parsed data */

enum pt_val_kind {
    PT_VAL_FLOAT,   /* v holds the value (may be the stale NaN) */
    PT_VAL_OMIT,    /* `_`: no sample in this slot */
    PT_VAL_HIST,    /* a native-histogram literal (not decoded further) */
};

struct pt_value {
    double v;
    enum pt_val_kind kind;
};

/* One `<series> <values>` line, expanded. */
struct pt_series {
    struct labels *labels;    /* owned, labels_dup() copy */
    struct pt_value *vals;    /* owned */
    size_t nvals;
    int line;
    bool has_hist;            /* at least one PT_VAL_HIST */
};

struct pt_load {
    int64_t interval_ms;
    bool nhcb;                /* load_with_nhcb */
    struct pt_series *series; /* start-timestamp (@st) lines are dropped */
    size_t nseries;
    size_t n_st_lines;        /* how many @st lines were seen */
};

enum pt_msg_mode { PT_MSG_ANY, PT_MSG_EXACT, PT_MSG_REGEX };

/* An `expect fail|warn|info [msg: X | regex: X]` line. */
struct pt_msg {
    enum pt_msg_mode mode;
    char *text;               /* owned; NULL for PT_MSG_ANY */
};

struct pt_eval {
    bool range;               /* eval range ... */
    int64_t at;               /* instant: evaluation time */
    int64_t start, end, step; /* range */
    char *expr;               /* owned */

    bool want_fail;
    struct pt_msg fail_msg;
    bool ordered;
    /* Annotations: checked only when check_warn / check_info. */
    bool check_warn, check_info;
    bool no_warn, no_info;
    struct pt_msg *warns;     /* expect warn lines (owned) */
    size_t nwarns;
    struct pt_msg *infos;
    size_t ninfos;

    bool range_vector;        /* expect range vector from A to B step S */
    int64_t rv_start, rv_end, rv_step;
    bool want_string;
    char *string;             /* owned */
    bool want_scalar;
    double scalar;
    struct pt_series *series; /* expected series lines */
    size_t nseries;
    bool hist_expected;       /* some expected value is a histogram */
};

enum pt_cmd_kind { PT_CMD_LOAD, PT_CMD_CLEAR, PT_CMD_EVAL, PT_CMD_BROKEN };

struct pt_cmd {
    enum pt_cmd_kind kind;
    int line;                 /* 1-based line of the command header */
    struct pt_load load;
    struct pt_eval eval;
    char *error;              /* PT_CMD_BROKEN: owned message */
    bool broken_eval;         /* the broken command was an eval */
};

struct pt_file {
    char *name;               /* base name, owned */
    struct pt_cmd *cmds;
    size_t ncmds;
};

/* Parse the text of one .test file (NUL-terminated, len bytes). Never
 * fails on bad input: every command that does not parse becomes
 * PT_CMD_BROKEN with a message. Returns BS_ENOMEM only. */
int pt_file_parse(struct pt_file *f, const char *name, const char *text, size_t len);
void pt_file_fini(struct pt_file *f);

/* Expand one values list ("0+10x10 _ stale {{...}}") into vals. Exposed for
 * the parser's self test. Returns 0 or BS_EPARSE with err. */
int pt_values_expand(const char *s, size_t n, struct pt_value **vals, size_t *nvals,
                     struct bs_error *err);
/* Parse a series descriptor at s: `name`, `name{...}`, `{...}`. On success
 * *consumed is the number of bytes taken and *out a labels_dup() copy. */
int pt_series_parse(const char *s, size_t n, size_t *consumed, struct labels **out,
                    struct bs_error *err);

/* Upstream's float comparison (FORMAT.md §7). */
bool pt_float_equal(double a, double b);

/* --self-test: checks of the parser and comparison; returns the number of
 * failed checks (selftest.c). */
int pt_self_test(void);

/* ------------------------------------------------------------- eval index */

struct pt_index_row {
    char *file;
    int line;
    bool range;
    bool nh_strict, nh_heuristic;
    char *features;           /* "-" when none */
    char *expr;
};

struct pt_index {
    struct pt_index_row *rows;
    size_t n;
};

/* Load eval-index.tsv from path. A missing file gives an empty index and
 * returns BS_ENOENT; other errors BS_EPARSE / BS_ENOMEM with err. */
int pt_index_load(struct pt_index *ix, const char *path, struct bs_error *err);
void pt_index_fini(struct pt_index *ix);
const struct pt_index_row *pt_index_find(const struct pt_index *ix, const char *file, int line);
size_t pt_index_count_file(const struct pt_index *ix, const char *file);

/* ---------------------------------------------------------------- running */

enum pt_status { PT_PASS, PT_FAIL, PT_UNSUPPORTED };

struct pt_options {
    bool verbose;
    bool ignore_annotations;  /* skip warn/info checks */
    bool ignore_messages;     /* check fail/warn/info presence only */
    bool run_all;             /* ignore the unsupported classification */
    const char *features_ok;  /* comma list of index features that run */
    const struct pt_index *index;
    FILE *tsv;                /* per-eval result rows, or NULL */
};

/* Totals over one file or the whole run. */
struct pt_counts {
    size_t passed, failed, unsupported;
};

/* Called once per finished eval (and per broken command or failed load,
 * which count as failures). key is "file:line". */
typedef void (*pt_report_fn)(void *arg, const char *file, int line, enum pt_status st);

/* Run every command of f. Counts go to *c; every result is reported. */
int pt_file_run(const struct pt_file *f, const struct pt_options *o, struct pt_counts *c,
                pt_report_fn report, void *report_arg);

#endif
