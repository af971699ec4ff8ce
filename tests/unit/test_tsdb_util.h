/* SPDX-License-Identifier: Apache-2.0
 *
 * Helpers shared by the tsdb unit tests (header-only, static): temporary
 * directories, label sets from "k=v,k=v" text, matchers from
 * "name op value" text, and a textual dump of a query result that tests
 * compare against expected strings.
 */
#ifndef BONGSU_TEST_TSDB_UTIL_H
#define BONGSU_TEST_TSDB_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "labels/labels.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static BS_UNUSED void rmrf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static BS_UNUSED char *make_tmpdir(void)
{
    char *t = strdup("/tmp/bongsu-tsdb-test-XXXXXX");
    assert_non_null(t);
    assert_non_null(mkdtemp(t));
    return t;
}

static BS_UNUSED struct tsdb *open_db(const char *dir, int64_t fsync_ms, size_t seg_size)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = fsync_ms;
    o.wal_segment_size = seg_size;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    int rc = tsdb_open(&db, &o, &err);
    if (rc)
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

/* "a=1,b=2" -> labels, held by the builder. */
static BS_UNUSED struct labels mk_labels(struct labels_builder *b, const char *spec)
{
    labels_builder_reset(b);
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        assert_int_equal(labels_builder_set_str(b, tok, eq + 1), 0);
    }
    free(copy);
    struct labels ls;
    assert_int_equal(labels_builder_labels(b, &ls, NULL), 0);
    return ls;
}

static BS_UNUSED int add_spec(struct tsdb_appender *a, const char *spec, int64_t t, double v)
{
    struct labels_builder b;
    labels_builder_init(&b);
    struct labels ls = mk_labels(&b, spec);
    int rc = tsdb_appender_add(a, 0, &ls, t, v, NULL);
    labels_builder_fini(&b);
    return rc;
}

/* "job=~a|b" style: name, op (=, !=, =~, !~), value. */
static BS_UNUSED struct labels_matcher *mk_matcher(const char *spec)
{
    const char *op = strpbrk(spec, "=!");
    assert_non_null(op);
    char name[128];
    size_t nl = (size_t)(op - spec);
    memcpy(name, spec, nl);
    name[nl] = '\0';
    enum labels_match_type type;
    const char *value;
    if (op[0] == '=' && op[1] == '~') {
        type = LABELS_MATCH_RE;
        value = op + 2;
    } else if (op[0] == '!' && op[1] == '~') {
        type = LABELS_MATCH_NRE;
        value = op + 2;
    } else if (op[0] == '!') {
        type = LABELS_MATCH_NEQ;
        value = op + 2;
    } else {
        type = LABELS_MATCH_EQ;
        value = op + 1;
    }
    struct labels_matcher *m = NULL;
    struct bs_error err = {0};
    if (labels_matcher_new(&m, type, name, value, &err))
        fail_msg("matcher %s: %s", spec, err.msg);
    return m;
}

/* How dump_select writes samples. */
enum { DUMP_LABELS, DUMP_VALUES, DUMP_BITS };

/* Query with matchers given as text separated by ';' and select flags
 * (TSDB_SELECT_*), and dump the result as "labels t:v t:v\n...": no
 * samples, values with %g, or (DUMP_BITS) values as exact bit patterns,
 * checking that samples are in time order within [mint, maxt]. Series
 * must come in label order. Returns a malloc'd string. */
static BS_UNUSED char *dump_select(struct tsdb *db, int64_t mint, int64_t maxt, const char *mspec,
                                   unsigned flags, int samples)
{
    struct labels_matcher *ms[16];
    size_t nms = 0;
    char *copy = strdup(mspec), *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
        ms[nms++] = mk_matcher(tok);
    free(copy);
    struct tsdb_querier *q = tsdb_querier_new(db, mint, maxt);
    assert_non_null(q);
    struct tsdb_series_set *set = NULL;
    struct bs_error err = {0};
    if (tsdb_querier_select_flags(q, ms, nms, flags, &set, &err))
        fail_msg("select %s: %s", mspec, err.msg);
    struct bs_buf out;
    bs_buf_init(&out, 0);
    bs_buf_puts(&out, "");
    const struct labels *prev = NULL;
    while (tsdb_series_set_next(set)) {
        const struct labels *ls = tsdb_series_set_labels(set);
        if (prev)
            assert_true(labels_cmp(prev, ls) < 0);
        prev = ls;
        labels_format(ls, &out);
        if (samples != DUMP_LABELS) {
            struct tsdb_iterator *it = tsdb_series_set_iterator(set);
            assert_non_null(it);
            int64_t last = INT64_MIN;
            while (tsdb_iterator_next(it)) {
                int64_t t;
                double v;
                tsdb_iterator_at(it, &t, &v);
                if (samples == DUMP_VALUES) {
                    bs_buf_printf(&out, " %lld:%g", (long long)t, v);
                    continue;
                }
                assert_true(t > last);
                assert_true(t >= mint && t <= maxt);
                last = t;
                bs_buf_printf(&out, " %lld:%016llx", (long long)t,
                              (unsigned long long)bs_float_bits(v));
            }
            tsdb_iterator_free(it);
        }
        bs_buf_putc(&out, '\n');
    }
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    for (size_t i = 0; i < nms; i++)
        labels_matcher_free(ms[i]);
    return bs_buf_steal(&out, NULL);
}

/* dump_select with values as %g, or labels only. */
static BS_UNUSED char *dump_query_flags(struct tsdb *db, int64_t mint, int64_t maxt,
                                        const char *mspec, bool with_samples, unsigned flags)
{
    return dump_select(db, mint, maxt, mspec, flags, with_samples ? DUMP_VALUES : DUMP_LABELS);
}

/* dump_query_flags with exact selection. */
static BS_UNUSED char *dump_query(struct tsdb *db, int64_t mint, int64_t maxt, const char *mspec,
                                  bool with_samples)
{
    return dump_query_flags(db, mint, maxt, mspec, with_samples, 0);
}

static BS_UNUSED void compact_ok(struct tsdb *db)
{
    struct bs_error err = {0};
    if (tsdb_compact_now(db, &err))
        fail_msg("compact: %s", err.msg);
}

/* Every series matching mspec (matchers separated by ';') in [mint, maxt]
 * with bit-exact values (dump_select, DUMP_BITS). */
static BS_UNUSED char *dump_exact(struct tsdb *db, int64_t mint, int64_t maxt, const char *mspec)
{
    return dump_select(db, mint, maxt, mspec, 0, DUMP_BITS);
}

#endif
