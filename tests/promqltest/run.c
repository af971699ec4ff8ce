/* SPDX-License-Identifier: Apache-2.0
 *
 * promqltest: running the commands of one parsed file and comparing.
 *
 * Each file starts with no storage; the first load or eval opens a tsdb in a
 * fresh mkdtemp() directory, and every `clear` closes and removes it so the
 * next command starts empty again (FORMAT.md §5). Samples of a load go into
 * one appender batch at t = k * interval.
 *
 * Before running, every eval is classified. It is "unsupported" — counted
 * and reported with its reason, never silently dropped — when it needs
 * native histograms (a histogram was loaded since the last clear, its
 * expected output holds one, or eval-index.tsv marks it needs_nh_strict), or
 * when eval-index.tsv lists a feature that is not in the runnable set.
 *
 * Comparison follows FORMAT.md §7: label sets must match exactly, order
 * matters only for ordered evals, matrices must come sorted by labels with
 * exactly the expected points, floats compare with upstream's relative
 * epsilon (NaN equals NaN, the stale NaN only itself). Annotations are
 * checked only when the eval has expect warn/info/no_warn/no_info lines.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "promql/promql.h"
#include "ptest.h"
#include "tsdb/tsdb.h"

struct run {
    const struct pt_options *o;
    const struct pt_file *f;
    struct pt_counts *c;
    pt_report_fn report;
    void *report_arg;
    struct promql_engine *eng;
    struct tsdb *db;
    char dir[PATH_MAX];
    bool nh_loaded;          /* a histogram sample was loaded since the last clear */
};

/* ------------------------------------------------------------- storage */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void storage_close(struct run *r)
{
    if (r->db) {
        tsdb_close(r->db);
        r->db = NULL;
    }
    if (r->dir[0]) {
        nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        r->dir[0] = '\0';
    }
    r->nh_loaded = false;
}

static int storage_open(struct run *r, struct bs_error *err)
{
    struct tsdb_options to;
    const char *tmp = getenv("TMPDIR");

    if (r->db)
        return 0;
    snprintf(r->dir, sizeof(r->dir), "%s/promqltest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(r->dir)) {
        r->dir[0] = '\0';
        return bs_error_set(err, BS_EIO, "mkdtemp failed");
    }
    tsdb_options_default(&to);
    to.dir = r->dir;
    to.retention_ms = INT64_C(100) * 365 * 24 * 3600 * 1000;
    to.wal_fsync_interval_ms = INT64_C(24) * 3600 * 1000;
    /* Like upstream's test storage: 24h blocks, so the head accepts every
     * load (its appendable window is half a block range), and no
     * background compaction. */
    to.block_range_ms = INT64_C(24) * 3600 * 1000;
    to.compaction_interval_ms = -1;
    return tsdb_open(&r->db, &to, err);
}

/* ------------------------------------------------------------- reporting */

static void report(struct run *r, int line, enum pt_status st, const char *what,
                   const char *expr, const char *detail)
{
    switch (st) {
    case PT_PASS:
        r->c->passed++;
        break;
    case PT_FAIL:
        r->c->failed++;
        break;
    case PT_UNSUPPORTED:
        r->c->unsupported++;
        break;
    }
    if (r->o->verbose && st != PT_PASS)
        printf("%s:%d: %s%s%s%s%s%s\n", r->f->name, line,
               st == PT_FAIL ? "FAIL" : "UNSUPPORTED", what ? " (" : "", what ? what : "",
               what ? ")" : "", expr ? ": " : "", expr ? expr : "");
    if (r->o->verbose && st == PT_FAIL && detail)
        printf("    %s\n", detail);
    if (r->o->tsv) {
        fprintf(r->o->tsv, "%s\t%d\t%s\t%s\t", r->f->name, line,
                st == PT_PASS ? "pass" : st == PT_FAIL ? "fail" : "unsupported",
                what ? what : "-");
        for (const char *p = detail ? detail : "-"; *p; p++)
            fputc(*p == '\t' || *p == '\n' ? ' ' : *p, r->o->tsv);
        fprintf(r->o->tsv, "\t%s\n", expr ? expr : "-");
    }
    if (r->report)
        r->report(r->report_arg, r->f->name, line, st);
}

/* ------------------------------------------------------------------ load */

static int run_load(struct run *r, const struct pt_cmd *cmd)
{
    const struct pt_load *ld = &cmd->load;
    struct bs_error err;
    struct tsdb_appender *a;
    char detail[700] = "";
    int rc;

    bs_error_clear(&err);
    if ((rc = storage_open(r, &err))) {
        snprintf(detail, sizeof(detail), "cannot open tsdb: %s", err.msg);
        report(r, cmd->line, PT_FAIL, "load", NULL, detail);
        return 0;
    }
    if (ld->nhcb)
        r->nh_loaded = true;
    a = tsdb_appender_new(r->db);
    if (!a)
        return BS_ENOMEM;
    for (size_t i = 0; i < ld->nseries; i++) {
        const struct pt_series *se = &ld->series[i];
        bool replaced = false;
        tsdb_ref ref = 0;

        if (se->has_hist)
            r->nh_loaded = true;
        /* A later line with the same labels replaces this one. */
        for (size_t j = i + 1; j < ld->nseries && !replaced; j++)
            replaced = labels_equal(se->labels, ld->series[j].labels);
        if (replaced)
            continue;
        for (size_t k = 0; k < se->nvals; k++) {
            if (se->vals[k].kind != PT_VAL_FLOAT)
                continue;
            int64_t t = (int64_t)k * ld->interval_ms;
            rc = tsdb_appender_add(a, ref, ref ? NULL : se->labels, t, se->vals[k].v, &ref);
            if (rc && !detail[0])
                snprintf(detail, sizeof(detail), "line %d: appending sample %zu (t=%lld): %s",
                         se->line, k, (long long)t, bs_strerror(rc));
        }
    }
    rc = tsdb_appender_commit(a, &err);
    if (rc && !detail[0])
        snprintf(detail, sizeof(detail), "commit: %s", err.msg[0] ? err.msg : bs_strerror(rc));
    if (detail[0]) {
        fprintf(stderr, "%s:%d: load error: %s\n", r->f->name, cmd->line, detail);
        report(r, cmd->line, PT_FAIL, "load", NULL, detail);
    }
    return 0;
}

/* ------------------------------------------------------------ formatting */

static void put_float(struct bs_buf *b, double v)
{
    char tmp[BS_FLOAT_FMT_MAX];
    if (bs_is_stale_nan(v)) {
        bs_buf_puts(b, "stale");
        return;
    }
    bs_float_format_short(v, tmp);
    bs_buf_puts(b, tmp);
}

static void put_labels(struct bs_buf *b, const struct labels *ls)
{
    if (ls->n == 0)
        bs_buf_puts(b, "{}");
    else
        labels_format(ls, b);
}

#define PT_SHOW_POINTS 8

static void put_points(struct bs_buf *b, const struct promql_point *p, size_t n)
{
    bs_buf_putc(b, '[');
    for (size_t i = 0; i < n && i < PT_SHOW_POINTS; i++) {
        if (i)
            bs_buf_putc(b, ' ');
        bs_buf_printf(b, "%lld:", (long long)p[i].t);
        put_float(b, p[i].v);
    }
    if (n > PT_SHOW_POINTS)
        bs_buf_printf(b, " ...(%zu)", n);
    bs_buf_putc(b, ']');
}

/* The whole result in one line, shortened. */
static void put_result(struct bs_buf *b, const struct promql_result *res)
{
    switch (res->type) {
    case PROMQL_VALUE_SCALAR:
        bs_buf_puts(b, "scalar ");
        put_float(b, res->scalar.v);
        return;
    case PROMQL_VALUE_STRING:
        bs_buf_printf(b, "string \"%s\"", res->string ? res->string : "");
        return;
    case PROMQL_VALUE_NONE:
        bs_buf_puts(b, "none");
        return;
    case PROMQL_VALUE_VECTOR:
    case PROMQL_VALUE_MATRIX:
        break;
    }
    bs_buf_printf(b, "%s(%zu)", res->type == PROMQL_VALUE_VECTOR ? "vector" : "matrix",
                  res->nseries);
    for (size_t i = 0; i < res->nseries && i < 6; i++) {
        bs_buf_putc(b, ' ');
        put_labels(b, res->series[i].labels);
        bs_buf_putc(b, ' ');
        if (res->type == PROMQL_VALUE_VECTOR && res->series[i].npoints == 1)
            put_float(b, res->series[i].points[0].v);
        else
            put_points(b, res->series[i].points, res->series[i].npoints);
    }
    if (res->nseries > 6)
        bs_buf_puts(b, " ...");
}

static void put_expected(struct bs_buf *b, const struct pt_eval *ev)
{
    if (ev->want_scalar) {
        bs_buf_puts(b, "scalar ");
        put_float(b, ev->scalar);
        return;
    }
    if (ev->want_string) {
        bs_buf_printf(b, "string \"%s\"", ev->string);
        return;
    }
    bs_buf_printf(b, "%zu series", ev->nseries);
    for (size_t i = 0; i < ev->nseries && i < 6; i++) {
        const struct pt_series *se = &ev->series[i];
        bs_buf_putc(b, ' ');
        put_labels(b, se->labels);
        for (size_t k = 0; k < se->nvals && k < PT_SHOW_POINTS; k++) {
            bs_buf_putc(b, ' ');
            if (se->vals[k].kind == PT_VAL_OMIT)
                bs_buf_putc(b, '_');
            else if (se->vals[k].kind == PT_VAL_HIST)
                bs_buf_puts(b, "{{h}}");
            else
                put_float(b, se->vals[k].v);
        }
        if (se->nvals > PT_SHOW_POINTS)
            bs_buf_puts(b, " ...");
    }
    if (ev->nseries > 6)
        bs_buf_puts(b, " ...");
}

/* ------------------------------------------------------------ comparison */

static bool msg_matches(const struct pt_msg *m, const char *text)
{
    pcre2_code *re;
    pcre2_match_data *md;
    int errcode, rc;
    PCRE2_SIZE erroff;

    if (m->mode == PT_MSG_ANY)
        return true;
    if (m->mode == PT_MSG_EXACT)
        return strcmp(m->text, text) == 0;
    re = pcre2_compile((PCRE2_SPTR)m->text, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &errcode, &erroff,
                       NULL);
    if (!re)
        return false;
    md = pcre2_match_data_create_from_pattern(re, NULL);
    rc = md ? pcre2_match(re, (PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

/* Annotations of one kind (the result's infos or warnings) against the
 * expect lines of that kind. */
static bool check_annotations(const struct promql_result *res, bool info, bool none,
                              const struct pt_msg *ms, size_t nms, bool ignore_msgs,
                              struct bs_buf *why)
{
    const char *kind = info ? "info" : "warning";
    char *const *list = info ? res->infos : res->warnings;
    size_t nlist = info ? res->ninfos : res->nwarnings;
    size_t count = 0;

    for (size_t i = 0; i < nlist; i++) {
        const char *w = list[i];
        count++;
        if (none) {
            bs_buf_printf(why, "unexpected %s: %s", kind, w);
            return false;
        }
        bool any = false;
        for (size_t k = 0; k < nms && !any; k++)
            any = ignore_msgs || msg_matches(&ms[k], w);
        if (!any) {
            bs_buf_printf(why, "%s not matched by any expect line: %s", kind, w);
            return false;
        }
    }
    if (none)
        return true;
    if (count == 0) {
        bs_buf_printf(why, "expected a %s annotation, got none", kind);
        return false;
    }
    for (size_t k = 0; k < nms && !ignore_msgs; k++) {
        bool any = false;
        for (size_t i = 0; i < nlist && !any; i++)
            any = msg_matches(&ms[k], list[i]);
        if (!any) {
            bs_buf_printf(why, "expected %s \"%s\" not among the annotations", kind,
                          ms[k].text ? ms[k].text : "");
            return false;
        }
    }
    return true;
}

static const struct pt_series *find_expected(const struct pt_eval *ev, const struct labels *ls,
                                             size_t *idx)
{
    for (size_t k = 0; k < ev->nseries; k++)
        if (labels_equal(ev->series[k].labels, ls)) {
            *idx = k;
            return &ev->series[k];
        }
    return NULL;
}

static bool missing_series(const struct pt_eval *ev, const struct promql_result *res,
                           struct bs_buf *why)
{
    for (size_t k = 0; k < ev->nseries; k++) {
        bool found = false;
        for (size_t i = 0; i < res->nseries && !found; i++)
            found = labels_equal(ev->series[k].labels, res->series[i].labels);
        if (!found) {
            bs_buf_puts(why, "expected series ");
            put_labels(why, ev->series[k].labels);
            bs_buf_puts(why, " not in result");
            return true;
        }
    }
    return false;
}

static bool compare_vector(const struct pt_eval *ev, const struct promql_result *res,
                           struct bs_buf *why)
{
    for (size_t i = 0; i < res->nseries; i++) {
        const struct promql_series *s = &res->series[i];
        size_t k;
        const struct pt_series *se = find_expected(ev, s->labels, &k);
        if (!se) {
            bs_buf_puts(why, "unexpected series ");
            put_labels(why, s->labels);
            return false;
        }
        if (ev->ordered && k != i) {
            bs_buf_printf(why, "ordered: expected series #%zu at position %zu: ", k, i);
            put_labels(why, s->labels);
            return false;
        }
        if (s->npoints != 1) {
            bs_buf_printf(why, "vector sample with %zu points", s->npoints);
            return false;
        }
        if (se->vals[0].kind == PT_VAL_HIST) {
            bs_buf_puts(why, "expected a histogram, got a float for ");
            put_labels(why, s->labels);
            return false;
        }
        if (se->vals[0].kind == PT_VAL_OMIT || !pt_float_equal(se->vals[0].v, s->points[0].v)) {
            bs_buf_puts(why, "value of ");
            put_labels(why, s->labels);
            bs_buf_puts(why, ": expected ");
            if (se->vals[0].kind == PT_VAL_OMIT)
                bs_buf_putc(why, '_');
            else
                put_float(why, se->vals[0].v);
            bs_buf_puts(why, ", got ");
            put_float(why, s->points[0].v);
            return false;
        }
    }
    if (res->nseries != ev->nseries) {
        if (!missing_series(ev, res, why))
            bs_buf_printf(why, "expected %zu series, got %zu", ev->nseries, res->nseries);
        return false;
    }
    return true;
}

static bool compare_matrix(const struct pt_eval *ev, const struct promql_result *res,
                           int64_t start, int64_t step, struct bs_buf *why)
{
    for (size_t i = 1; i < res->nseries; i++)
        if (labels_cmp(res->series[i - 1].labels, res->series[i].labels) >= 0) {
            bs_buf_puts(why, "matrix not sorted by labels at ");
            put_labels(why, res->series[i].labels);
            return false;
        }
    for (size_t i = 0; i < res->nseries; i++) {
        const struct promql_series *s = &res->series[i];
        size_t k, nexp = 0, j = 0;
        const struct pt_series *se = find_expected(ev, s->labels, &k);
        if (!se) {
            bs_buf_puts(why, "unexpected series ");
            put_labels(why, s->labels);
            bs_buf_putc(why, ' ');
            put_points(why, s->points, s->npoints);
            return false;
        }
        for (size_t v = 0; v < se->nvals; v++)
            if (se->vals[v].kind == PT_VAL_FLOAT)
                nexp++;
            else if (se->vals[v].kind == PT_VAL_HIST) {
                bs_buf_puts(why, "expected histogram points for ");
                put_labels(why, s->labels);
                return false;
            }
        bool ok = nexp == s->npoints;
        for (size_t v = 0; v < se->nvals && ok; v++) {
            if (se->vals[v].kind != PT_VAL_FLOAT)
                continue;
            const struct promql_point *p = &s->points[j++];
            ok = p->t == start + (int64_t)v * step && pt_float_equal(se->vals[v].v, p->v);
        }
        if (!ok) {
            bs_buf_puts(why, "points of ");
            put_labels(why, s->labels);
            bs_buf_puts(why, ": expected [");
            size_t shown = 0;
            for (size_t v = 0; v < se->nvals && shown < PT_SHOW_POINTS; v++) {
                if (se->vals[v].kind != PT_VAL_FLOAT)
                    continue;
                bs_buf_printf(why, "%s%lld:", shown++ ? " " : "",
                              (long long)(start + (int64_t)v * step));
                put_float(why, se->vals[v].v);
            }
            if (nexp > PT_SHOW_POINTS)
                bs_buf_printf(why, " ...(%zu)", nexp);
            bs_buf_puts(why, "], got ");
            put_points(why, s->points, s->npoints);
            return false;
        }
    }
    if (res->nseries != ev->nseries) {
        if (!missing_series(ev, res, why))
            bs_buf_printf(why, "expected %zu series, got %zu", ev->nseries, res->nseries);
        return false;
    }
    return true;
}

static bool compare_result(const struct pt_eval *ev, const struct promql_result *res,
                           struct bs_buf *why)
{
    if (ev->range)
        return res->type == PROMQL_VALUE_MATRIX
                   ? compare_matrix(ev, res, ev->start, ev->step, why)
                   : (bs_buf_puts(why, "range query did not return a matrix"), false);
    if (ev->range_vector) {
        if (res->type != PROMQL_VALUE_MATRIX) {
            bs_buf_puts(why, "expected a range vector result");
            return false;
        }
        return compare_matrix(ev, res, ev->rv_start, ev->rv_step, why);
    }
    switch (res->type) {
    case PROMQL_VALUE_SCALAR:
        if (!ev->want_scalar) {
            bs_buf_puts(why, ev->want_string ? "expected a string" : "expected a vector");
            return false;
        }
        if (!pt_float_equal(ev->scalar, res->scalar.v)) {
            bs_buf_puts(why, "scalar: expected ");
            put_float(why, ev->scalar);
            bs_buf_puts(why, ", got ");
            put_float(why, res->scalar.v);
            return false;
        }
        return true;
    case PROMQL_VALUE_STRING:
        if (!ev->want_string) {
            bs_buf_puts(why, "unexpected string result");
            return false;
        }
        if (strcmp(ev->string, res->string ? res->string : "") != 0) {
            bs_buf_printf(why, "string: expected \"%s\"", ev->string);
            return false;
        }
        return true;
    case PROMQL_VALUE_VECTOR:
        if (ev->want_scalar || ev->want_string) {
            bs_buf_printf(why, "expected a %s, got a vector",
                          ev->want_scalar ? "scalar" : "string");
            return false;
        }
        return compare_vector(ev, res, why);
    case PROMQL_VALUE_MATRIX:
        bs_buf_puts(why, "range vector result for an instant eval without expect range vector");
        return false;
    case PROMQL_VALUE_NONE:
        break;
    }
    bs_buf_puts(why, "result has no type");
    return false;
}

/* ---------------------------------------------------------- classification */

static bool feature_ok(const char *list, const char *f, size_t n)
{
    const char *p = list;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, f, n) == 0)
            return true;
        /* "experimental" admits every experimental:* feature. */
        if (len == 12 && memcmp(p, "experimental", 12) == 0 && n > 13 &&
            memcmp(f, "experimental:", 13) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* Why ev cannot run, in why; false when it can. */
static bool unsupported(struct run *r, const struct pt_cmd *cmd, struct bs_buf *why)
{
    const struct pt_eval *ev = &cmd->eval;
    const struct pt_index_row *row =
        r->o->index ? pt_index_find(r->o->index, r->f->name, cmd->line) : NULL;

    if (r->o->run_all)
        return false;
    if (r->nh_loaded || ev->hist_expected || (row && row->nh_strict)) {
        bs_buf_puts(why, "native histograms");
        return true;
    }
    if (row && strcmp(row->features, "-") != 0) {
        const char *p = row->features;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (!feature_ok(r->o->features_ok, p, n)) {
                bs_buf_printf(why, "feature %.*s", (int)n, p);
                return true;
            }
            p = e ? e + 1 : p + n;
        }
    }
    return false;
}

/* ------------------------------------------------------------------- eval */

static int run_eval(struct run *r, const struct pt_cmd *cmd)
{
    const struct pt_eval *ev = &cmd->eval;
    struct promql_result *res = NULL;
    struct bs_error err;
    struct bs_buf why;
    enum pt_status st = PT_PASS;
    int rc;

    bs_buf_init(&why, 0);
    bs_error_clear(&err);
    if (unsupported(r, cmd, &why)) {
        report(r, cmd->line, PT_UNSUPPORTED, why.data, ev->expr, NULL);
        bs_buf_fini(&why);
        return 0;
    }
    if ((rc = storage_open(r, &err))) {
        bs_buf_printf(&why, "cannot open tsdb: %s", err.msg);
        report(r, cmd->line, PT_FAIL, "storage", ev->expr, why.data);
        bs_buf_fini(&why);
        return 0;
    }
    if (ev->range)
        rc = promql_query_range(r->eng, r->db, ev->expr, ev->start, ev->end, ev->step, &res,
                                &err);
    else
        rc = promql_query_instant(r->eng, r->db, ev->expr,
                                  ev->range_vector ? ev->rv_end : ev->at, &res, &err);
    if (rc) {
        const char *msg = err.msg[0] ? err.msg : bs_strerror(rc);
        if (!ev->want_fail) {
            bs_buf_printf(&why, "unexpected error: %s", msg);
            st = PT_FAIL;
        } else if (!r->o->ignore_messages && !msg_matches(&ev->fail_msg, msg)) {
            bs_buf_printf(&why, "error message: expected %s \"%s\", got \"%s\"",
                          ev->fail_msg.mode == PT_MSG_REGEX ? "match of" : "",
                          ev->fail_msg.text, msg);
            st = PT_FAIL;
        }
        goto done;
    }
    if (ev->want_fail) {
        bs_buf_puts(&why, "expected an error, got ");
        put_result(&why, res);
        st = PT_FAIL;
        goto done;
    }
    if (!compare_result(ev, res, &why)) {
        bs_buf_puts(&why, " || expected: ");
        put_expected(&why, ev);
        bs_buf_puts(&why, " || got: ");
        put_result(&why, res);
        st = PT_FAIL;
        goto done;
    }
    if (!r->o->ignore_annotations &&
        ((ev->check_warn && !check_annotations(res, false, ev->no_warn, ev->warns, ev->nwarns,
                                                r->o->ignore_messages, &why)) ||
         (ev->check_info && !check_annotations(res, true, ev->no_info, ev->infos, ev->ninfos,
                                                r->o->ignore_messages, &why))))
        st = PT_FAIL;
done:
    report(r, cmd->line, st,
           st == PT_FAIL ? (rc ? (ev->want_fail ? "message" : "error")
                               : (ev->want_fail ? "no error"
                                                : (why.len && strstr(why.data, " || ")
                                                       ? "result"
                                                       : "annotations")))
                         : NULL,
           ev->expr, why.data);
    promql_result_free(res);
    bs_buf_fini(&why);
    return 0;
}

int pt_file_run(const struct pt_file *f, const struct pt_options *o, struct pt_counts *c,
                pt_report_fn report_fn, void *report_arg)
{
    struct promql_engine_opts eo;
    struct run r;
    int rc = 0;

    memset(&r, 0, sizeof(r));
    r.o = o;
    r.f = f;
    r.c = c;
    r.report = report_fn;
    r.report_arg = report_arg;
    promql_engine_opts_default(&eo);
    eo.lookback_ms = 5 * 60 * 1000;
    eo.timeout_ms = 100 * 1000;
    eo.max_samples = 50000000;
    r.eng = promql_engine_new(&eo);
    if (!r.eng)
        return BS_ENOMEM;

    for (size_t i = 0; i < f->ncmds && rc == 0; i++) {
        const struct pt_cmd *cmd = &f->cmds[i];
        switch (cmd->kind) {
        case PT_CMD_CLEAR:
            storage_close(&r);
            break;
        case PT_CMD_LOAD:
            rc = run_load(&r, cmd);
            break;
        case PT_CMD_EVAL:
            rc = run_eval(&r, cmd);
            break;
        case PT_CMD_BROKEN:
            fprintf(stderr, "%s:%d: parse error: %s\n", f->name, cmd->line, cmd->error);
            report(&r, cmd->line, PT_FAIL, "parse", NULL, cmd->error);
            break;
        }
    }
    storage_close(&r);
    promql_engine_free(r.eng);
    return rc;
}
