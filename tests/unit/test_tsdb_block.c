/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of persistent blocks and head compaction: a block written
 * from random series reads back bit-exact (labels, postings, every
 * sample); a store that compacts answers every query exactly like one that
 * keeps everything in the head; head truncation removes empty series while
 * stale refs and staged appends keep working; WAL checkpoints replay to the
 * same data after a restart, without duplicates; leftovers of crashes
 * (*.tmp block and checkpoint directories, blocks without meta.json,
 * segments a checkpoint covers) are cleaned up at open; retention deletes
 * old blocks; queriers stay valid across a compaction. Timestamps are
 * synthetic and the block range is 10 s, so hours of store life take
 * milliseconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

#define RANGE 10000 /* block range, ms */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static struct tsdb *open_opts(const char *dir, int64_t retention_ms)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.block_range_ms = RANGE;
    o.compaction_interval_ms = -1;
    if (retention_ms)
        o.retention_ms = retention_ms;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err))
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

static void commit_ok(struct tsdb_appender *a)
{
    struct bs_error err = {0};
    if (tsdb_appender_commit(a, &err))
        fail_msg("commit: %s", err.msg);
}

/* A random but valid value: mostly counters and gauges, sometimes odd bit
 * patterns (NaN payloads, stale markers, -0, infinities). */
static double rnd_value(uint64_t k)
{
    switch (rnd() % 8) {
    case 0:
        return bs_float_from_bits(rnd());
    case 1:
        return bs_stale_nan();
    case 2:
        return -0.0;
    case 3:
        return (double)(rnd() % 5) - 2.0;
    default:
        return (double)k * 1.5 + (double)(rnd() % 100) / 8.0;
    }
}


static char *dump_names_values(struct tsdb *db, int64_t mint, int64_t maxt)
{
    struct tsdb_querier *q = tsdb_querier_new(db, mint, maxt);
    const char **v;
    size_t n;
    struct bs_buf out;
    bs_buf_init(&out, 0);
    bs_buf_puts(&out, "names:");
    assert_int_equal(tsdb_querier_label_names(q, NULL, 0, &v, &n, NULL), 0);
    for (size_t i = 0; i < n; i++)
        bs_buf_printf(&out, " %s", v[i]);
    free(v);
    bs_buf_puts(&out, "\ninstance:");
    assert_int_equal(tsdb_querier_label_values(q, "instance", NULL, 0, &v, &n, NULL), 0);
    for (size_t i = 0; i < n; i++)
        bs_buf_printf(&out, " %s", v[i]);
    free(v);
    tsdb_querier_free(q);
    return bs_buf_steal(&out, NULL);
}

static size_t count_entries(const char *dir, const char *prefix, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;
        if (de->d_name[0] == '.')
            continue;
        if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (suffix && (l < sl || strcmp(de->d_name + l - sl, suffix) != 0))
            continue;
        n++;
    }
    closedir(d);
    return n;
}

static size_t count_blocks(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += tsdb_ulid_valid(de->d_name);
    closedir(d);
    return n;
}

/* --------------------------------------------------- block round trip */

struct ref_series {
    char *spec;
    int64_t *t;
    uint64_t *v;
    size_t n;
};

/* Open the block at path written from the NS series rs / ls with meta and
 * check it: meta, every series in label order with every sample
 * bit-exact, postings of matchers against brute force. */
static void check_roundtrip_block(const char *path, const struct tsdb_block_meta *mp,
                                  const struct ref_series *rs, const struct labels *ls, int NS)
{
    struct tsdb_block_meta meta = *mp;
    struct tsdb_block *b;
    struct bs_error err = {0};
    if (tsdb_block_open(path, &b, &err))
        fail_msg("block open: %s", err.msg);
    assert_string_equal(b->meta.ulid, meta.ulid);
    assert_int_equal(b->meta.num_series, NS);
    assert_int_equal(b->meta.nsources, 1);
    assert_string_equal(b->meta.sources[0], meta.ulid);
    assert_int_equal(b->meta.mint, meta.mint);
    assert_int_equal(b->meta.maxt, meta.maxt);

    /* every series, in label order, with every sample bit-exact */
    uint64_t *ids;
    size_t nids;
    assert_int_equal(tsdb_block_postings_all(b, &ids, &nids), 0);
    assert_int_equal(nids, NS);
    struct bs_arena arena;
    bs_arena_init(&arena, 0, 0);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, cap = 0;
    uint64_t total = 0;
    struct labels prev = {0};
    for (size_t k = 0; k < nids; k++) {
        struct labels got;
        assert_int_equal(tsdb_block_series(b, ids[k], &arena, &got, &chks, &nchks, &cap), 0);
        if (k > 0)
            assert_true(labels_cmp(&prev, &got) < 0);
        prev = got;
        int i = atoi(labels_get(&got, "i"));
        assert_true(labels_equal(&got, &ls[i]));
        size_t s = 0;
        for (size_t c = 0; c < nchks; c++) {
            const uint8_t *p;
            size_t len;
            assert_int_equal(tsdb_block_chunk(b, chks[c].ref, &p, &len, NULL), 0);
            struct tsdb_xor_dec d;
            tsdb_xor_dec_init(&d, p, len);
            while (tsdb_xor_dec_next(&d)) {
                assert_true(s < rs[i].n);
                assert_int_equal(d.t, rs[i].t[s]);
                assert_int_equal(d.v, rs[i].v[s]);
                assert_true(d.t >= chks[c].mint && d.t <= chks[c].maxt);
                s++;
            }
            assert_int_equal(d.err, 0);
        }
        assert_int_equal(s, rs[i].n);
        total += s;
    }
    assert_int_equal(total, b->meta.num_samples);
    free(ids);

    /* postings for matchers against brute force */
    const char *mspecs[] = {"job=j1",  "__name__=~m[0-3]",      "zone=z\xc3\xa9",
                            "job!=j2", "a_long_label_name=~.+", "i=17",
                            "nope=x",  "__name__=~m9|m1"};
    for (size_t m = 0; m < sizeof(mspecs) / sizeof(*mspecs); m++) {
        struct labels_matcher *mt = mk_matcher(mspecs[m]);
        uint64_t *l;
        size_t nl;
        assert_int_equal(tsdb_block_postings_for_matcher(b, mt, &l, &nl), 0);
        size_t want = 0;
        for (int i = 0; i < NS; i++) {
            const char *v = labels_get(&ls[i], labels_matcher_name(mt));
            want += v && labels_matcher_matches(mt, v);
        }
        assert_int_equal(nl, want);
        for (size_t k = 1; k < nl; k++)
            assert_true(l[k] > l[k - 1]);
        free(l);
        labels_matcher_free(mt);
    }
    free(chks);
    bs_arena_fini(&arena);
    tsdb_block_unref(b);
}

static void test_block_roundtrip(void **state)
{
    (void)state;
    rng_state = 42;
    char *dir = make_tmpdir();
    enum { NS = 300 };
    struct ref_series rs[NS];
    struct labels_builder lb[NS];
    struct labels ls[NS];
    struct tsdb_bw_series bw[NS];
    struct tsdb_xor_enc enc;
    for (int i = 0; i < NS; i++) {
        char spec[256];
        /* unique by i; random extra labels exercise the symbol table */
        snprintf(spec, sizeof(spec), "__name__=m%u,i=%d,job=j%u%s%s", (unsigned)(rnd() % 7), i,
                 (unsigned)(rnd() % 3), rnd() % 2 ? ",zone=z\xc3\xa9" : "",
                 rnd() % 3 ? ",a_long_label_name=some value with spaces" : "");
        rs[i].spec = strdup(spec);
        labels_builder_init(&lb[i]);
        ls[i] = mk_labels(&lb[i], spec);
        rs[i].n = 1 + rnd() % 700;
        rs[i].t = malloc(rs[i].n * sizeof(int64_t));
        rs[i].v = malloc(rs[i].n * sizeof(uint64_t));
        int64_t t = 1700000000000 + (int64_t)(rnd() % 1000);
        for (size_t k = 0; k < rs[i].n; k++) {
            rs[i].t[k] = t;
            rs[i].v[k] = bs_float_bits(rnd_value(k));
            t += 1 + (int64_t)(rnd() % 3 ? 15000 : rnd() % 100000);
        }
        /* encode as the head would: 120 samples per chunk */
        bw[i].ls = &ls[i];
        bw[i].n = 0;
        bw[i].chunks = calloc(rs[i].n / 120 + 2, sizeof(struct tsdb_bw_chunk));
        tsdb_xor_enc_init(&enc);
        for (size_t k = 0; k <= rs[i].n; k++) {
            if (k == rs[i].n || enc.n == 120) {
                size_t len = tsdb_xor_enc_bytes(&enc);
                uint8_t *copy = malloc(len);
                memcpy(copy, enc.buf, len);
                bw[i].chunks[bw[i].n++] =
                    (struct tsdb_bw_chunk){enc.mint, enc.t, copy, (uint32_t)len, enc.n, 0};
                tsdb_xor_enc_reset(&enc);
            }
            if (k < rs[i].n)
                assert_int_equal(tsdb_xor_enc_append(&enc, rs[i].t[k], rs[i].v[k]), 0);
        }
        tsdb_xor_enc_fini(&enc);
    }
    struct tsdb_block_meta meta = {.mint = 1700000000000, .maxt = 1800000000000, .level = 1};
    struct bs_error err = {0};
    /* the writer sorts bw in place; keep the chunk arrays to free them */
    struct tsdb_bw_chunk *chunk_arrays[NS];
    for (int i = 0; i < NS; i++)
        chunk_arrays[i] = bw[i].chunks;
    if (tsdb_block_write(dir, &meta, bw, NS, &err))
        fail_msg("block write: %s", err.msg);
    assert_true(tsdb_ulid_valid(meta.ulid));
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, meta.ulid);
    check_roundtrip_block(path, &meta, rs, ls, NS);

    /* The same series in index format 1 (16-byte aligned series entries,
     * u32 postings lists), as blocks written before 2026-11-27 hold it:
     * read the same; format 2 is smaller. */
    struct tsdb_block_writer *w1;
    assert_int_equal(tsdb_block_writer_new(dir, &w1, &err), 0);
    assert_int_equal(tsdb_block_writer_set_index_version(w1, 1), 0);
    assert_int_equal(tsdb_block_writer_set_index_version(w1, 3), BS_EINVAL);
    for (int i = 0; i < NS; i++) /* bw is in label order now */
        assert_int_equal(tsdb_block_writer_add(w1, bw[i].ls, bw[i].chunks, bw[i].n, &err), 0);
    struct tsdb_block_meta meta1 = {.mint = 1700000000000, .maxt = 1800000000000, .level = 1};
    if (tsdb_block_writer_commit(w1, &meta1, &err))
        fail_msg("block write (index v1): %s", err.msg);
    char path1[512];
    snprintf(path1, sizeof(path1), "%s/%s", dir, meta1.ulid);
    check_roundtrip_block(path1, &meta1, rs, ls, NS);
    struct stat st1, st2;
    char ipath[600];
    snprintf(ipath, sizeof(ipath), "%s/index", path1);
    assert_int_equal(stat(ipath, &st1), 0);
    snprintf(ipath, sizeof(ipath), "%s/index", path);
    assert_int_equal(stat(ipath, &st2), 0);
    assert_true(st2.st_size < st1.st_size);
    struct tsdb_block *b;

    /* a flipped byte in a chunk is reported, not crashed on */
    snprintf(path, sizeof(path), "%s/%s/chunks/000001", dir, meta.ulid);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 200), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, 200), 1);
    close(fd);
    snprintf(path, sizeof(path), "%s/%s", dir, meta.ulid);
    assert_int_equal(tsdb_block_open(path, &b, &err), 0);
    uint64_t *ids;
    size_t nids;
    assert_int_equal(tsdb_block_postings_all(b, &ids, &nids), 0);
    size_t bad = 0;
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, cap = 0;
    for (size_t k = 0; k < nids; k++) {
        assert_int_equal(tsdb_block_series(b, ids[k], NULL, NULL, &chks, &nchks, &cap), 0);
        for (size_t c = 0; c < nchks; c++) {
            const uint8_t *p;
            size_t len;
            int r = tsdb_block_chunk(b, chks[c].ref, &p, &len, NULL);
            assert_true(r == 0 || r == BS_ECORRUPT);
            bad += r != 0;
        }
    }
    assert_int_equal(bad, 1);
    free(chks);
    free(ids);
    tsdb_block_unref(b);

    for (int i = 0; i < NS; i++) {
        for (size_t c = 0; c < bw[i].n; c++)
            free((void *)bw[i].chunks[c].data);
        free(rs[i].spec);
        free(rs[i].t);
        free(rs[i].v);
        labels_builder_fini(&lb[i]);
    }
    for (int i = 0; i < NS; i++)
        free(chunk_arrays[i]);
    rmrf(dir);
    free(dir);
}

/* ------------------------------------------- compacting vs head-only */

/* Append second s in [from, to) for series 0..nseries-1; series i stops at
 * second 20*i+35 (so series disappear and get garbage-collected) and
 * reappears after 150 s. */
static void append_seconds(struct tsdb *db, int from, int to, int nseries)
{
    char spec[128];
    for (int sec = from; sec < to; sec++) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < nseries; i++) {
            if (sec > 20 * i + 35 && sec < 150)
                continue;
            snprintf(spec, sizeof(spec), "__name__=%s,instance=host%02d,job=%s",
                     i % 3 ? "cpu" : "mem", i, i % 2 ? "node" : "app");
            double v = (i % 4 == 0) ? bs_float_from_bits(rnd()) : (double)sec * (i + 1) / 4.0;
            assert_int_equal(add_spec(a, spec, (int64_t)sec * 1000 + i, v), 0);
        }
        commit_ok(a);
    }
}

static void compare_dbs(struct tsdb *x, struct tsdb *y)
{
    static const struct {
        int64_t mint, maxt;
    } ranges[] = {{INT64_MIN, INT64_MAX}, {0, 9999},      {10000, 10000},  {9999, 10001},
                  {5000, 35000},          {15000, 15000}, {42003, 177000}, {199000, 400000}};
    const char *ms[] = {"__name__=~.+", "__name__=cpu", "job=node;instance=~host0[0-5]",
                        "instance!=host03;__name__=~.+", "job=~app|none"};
    for (size_t r = 0; r < sizeof(ranges) / sizeof(*ranges); r++) {
        for (size_t m = 0; m < sizeof(ms) / sizeof(*ms); m++) {
            char *a = dump_exact(x, ranges[r].mint, ranges[r].maxt, ms[m]);
            char *b = dump_exact(y, ranges[r].mint, ranges[r].maxt, ms[m]);
            if (strcmp(a, b) != 0)
                fail_msg("range [%lld, %lld] %s differs:\ncompacted:\n%s\nhead only:\n%s",
                         (long long)ranges[r].mint, (long long)ranges[r].maxt, ms[m], a, b);
            free(a);
            free(b);
        }
        char *a = dump_names_values(x, ranges[r].mint, ranges[r].maxt);
        char *b = dump_names_values(y, ranges[r].mint, ranges[r].maxt);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
}

static void test_blocks_equal_head(void **state)
{
    (void)state;
    rng_state = 7;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_opts(d1, 0), *y = open_opts(d2, 0);
    uint64_t saved = rng_state;
    for (int step = 0; step < 20; step++) {
        rng_state = saved;
        append_seconds(x, step * 10, step * 10 + 10, 9);
        rng_state = saved;
        append_seconds(y, step * 10, step * 10 + 10, 9);
        saved = rng_state;
        compact_ok(x);
        if (step % 5 == 4)
            compare_dbs(x, y);
    }
    struct tsdb_stats sx, sy;
    tsdb_stats(x, &sx);
    tsdb_stats(y, &sy);
    /* 17 head blocks of 10 s, merged upward into 30 s and 90 s blocks */
    assert_true(sx.compactions >= 17);
    assert_true(sx.merges >= 3);
    assert_true(sx.num_blocks >= 2 && sx.num_blocks < 17);
    assert_int_equal(sx.merge_failures, 0);
    assert_int_equal(sx.num_blocks, count_blocks(d1));
    assert_int_equal(sy.num_blocks, 0);
    assert_true(sx.num_chunks < sy.num_chunks);
    assert_true(sx.min_valid_time >= 170000);
    /* the head keeps at most 1.5 ranges plus the open range */
    assert_true(sx.max_time - sx.min_time <= RANGE * 2);
    assert_int_equal(sx.out_of_bounds_samples, 0);

    /* too old for the head now: out of bounds, and counted */
    struct tsdb_appender *a = tsdb_appender_new(x);
    assert_int_equal(add_spec(a, "__name__=cpu,instance=host01,job=node", 1000, 1),
                     BS_EOUTOFBOUNDS);
    assert_int_equal(add_spec(a, "__name__=new,job=x", sx.min_valid_time - 1, 1), BS_EOUTOFBOUNDS);
    tsdb_appender_rollback(a);
    tsdb_stats(x, &sx);
    assert_int_equal(sx.out_of_bounds_samples, 2);

    /* and the same after a restart of the compacted store */
    tsdb_close(x);
    x = open_opts(d1, 0);
    compare_dbs(x, y);
    tsdb_close(x);
    tsdb_close(y);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

/* ------------------------------------------- truncation and stale refs */

static void test_truncate_stale_refs(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_opts(dir, 0);
    struct labels_builder lb;
    labels_builder_init(&lb);
    struct labels la = mk_labels(&lb, "__name__=a");
    tsdb_ref ra, rb, rc;
    struct tsdb_appender *ap = tsdb_appender_new(db);
    assert_int_equal(tsdb_appender_add(ap, 0, &la, 1000, 1, &ra), 0);
    struct labels lbb = mk_labels(&lb, "__name__=b");
    assert_int_equal(tsdb_appender_add(ap, 0, &lbb, 1000, 2, &rb), 0);
    commit_ok(ap);
    /* a keeps going, b stops; c is created by an add whose batch stays
     * open across the compaction */
    for (int s = 2; s <= 26; s++) {
        ap = tsdb_appender_new(db);
        assert_int_equal(tsdb_appender_add(ap, ra, NULL, s * 1000, s, NULL), 0);
        commit_ok(ap);
    }
    struct tsdb_appender *pending = tsdb_appender_new(db);
    struct labels lc = mk_labels(&lb, "__name__=c");
    assert_int_equal(tsdb_appender_add(pending, 0, &lc, 26500, 3, &rc), 0);
    /* b, staged at a valid time, also survives its series' removal */
    lbb = mk_labels(&lb, "__name__=b");
    assert_int_equal(tsdb_appender_add(pending, rb, &lbb, 26600, 4, NULL), 0);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.num_series, 3);

    compact_ok(db); /* head 1000..26000: blocks [0, 10 s) and [10 s, 20 s) */
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 2);
    assert_int_equal(st.min_valid_time, 2 * RANGE);
    /* b and c had nothing left in the head: removed */
    assert_int_equal(st.num_series, 1);
    assert_null(tsdb_head_series_by_ref(&db->head, rb));
    assert_null(tsdb_head_series_by_ref(&db->head, rc));
    assert_non_null(tsdb_head_series_by_ref(&db->head, ra));

    /* the pending batch resolves its series again */
    commit_ok(pending);
    tsdb_stats(db, &st);
    assert_int_equal(st.num_series, 3);
    char *got = dump_query(db, 0, 100000, "__name__=~b|c", true);
    assert_string_equal(got, "b 1000:2 26600:4\nc 26500:3\n");
    free(got);

    /* a stale ref falls back to the labels; without labels it is invalid */
    tsdb_ref rb2;
    ap = tsdb_appender_new(db);
    lbb = mk_labels(&lb, "__name__=b");
    assert_int_equal(tsdb_appender_add(ap, rb, &lbb, 27000, 5, &rb2), 0);
    assert_true(rb2 != rb);
    assert_int_equal(tsdb_appender_add(ap, rb, NULL, 27001, 6, NULL), BS_EINVAL);
    assert_int_equal(tsdb_appender_add(ap, rb2, NULL, 27002, 7, NULL), 0);
    commit_ok(ap);
    got = dump_query(db, 0, 100000, "__name__=b", true);
    assert_string_equal(got, "b 1000:2 26600:4 27000:5 27002:7\n");
    free(got);

    /* postings no longer list removed refs: label values still correct */
    struct tsdb_querier *q = tsdb_querier_new(db, 20000, 100000);
    const char **v;
    size_t n;
    assert_int_equal(tsdb_querier_label_values(q, "__name__", NULL, 0, &v, &n, NULL), 0);
    assert_int_equal(n, 3);
    free(v);
    tsdb_querier_free(q);

    /* the same after restart (replay of checkpoint + segments) */
    char *before = dump_query(db, INT64_MIN, INT64_MAX, "__name__=~.+", true);
    tsdb_close(db);
    db = open_opts(dir, 0);
    char *after = dump_query(db, INT64_MIN, INT64_MAX, "__name__=~.+", true);
    assert_string_equal(before, after);
    free(before);
    free(after);
    labels_builder_fini(&lb);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

/* ------------------------------------------------ checkpoint + replay */

static void test_checkpoint_replay(void **state)
{
    (void)state;
    rng_state = 99;
    char *dir = make_tmpdir();
    char waldir[512];
    snprintf(waldir, sizeof(waldir), "%s/wal", dir);
    struct tsdb *db = open_opts(dir, 0);
    for (int step = 0; step < 6; step++) {
        append_seconds(db, step * 10, step * 10 + 10, 7);
        compact_ok(db);
    }
    append_seconds(db, 60, 64, 7);
    assert_int_equal(count_entries(waldir, "checkpoint.", NULL), 1);
    assert_int_equal(count_entries(waldir, "checkpoint.", ".tmp"), 0);
    /* covered segments are gone: only those since the last cut remain */
    assert_int_equal(count_entries(waldir, "0000", NULL), 1);
    char *before = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    struct tsdb_stats s1, s2;
    tsdb_stats(db, &s1);
    tsdb_close(db);

    /* replay twice: nothing is duplicated, nothing lost */
    for (int round = 0; round < 2; round++) {
        db = open_opts(dir, 0);
        char *after = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
        assert_string_equal(before, after);
        free(after);
        tsdb_stats(db, &s2);
        assert_int_equal(s2.num_series, s1.num_series);
        assert_int_equal(s2.num_chunks, s1.num_chunks);
        assert_int_equal(s2.min_time, s1.min_time);
        assert_int_equal(s2.max_time, s1.max_time);
        assert_int_equal(s2.num_blocks, s1.num_blocks);
        tsdb_close(db);
    }

    /* the checkpoint alone (segments deleted) still holds the head's data
     * older than the last cut */
    db = open_opts(dir, 0);
    append_seconds(db, 64, 80, 7);
    compact_ok(db);
    char *b2 = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    tsdb_close(db);
    db = open_opts(dir, 0);
    char *a2 = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    assert_string_equal(a2, b2);
    free(a2);
    free(b2);
    free(before);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

/* ------------------------------------------------------ crash leftovers */

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t k;
    while ((k = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, k, out), k);
    fclose(in);
    fclose(out);
}

/* Damaged index bytes (random flips past the header, in the series,
 * postings and table sections of a version 2 index) are refused at open
 * or reported per item as BS_ECORRUPT, never read out of bounds (run under
 * ASan by make check). */
static void test_damaged_index(void **state)
{
    (void)state;
    rng_state = 7;
    char *dir = make_tmpdir();
    struct tsdb *db = open_opts(dir, 0);
    append_seconds(db, 0, 200, 40);
    compact_ok(db);
    pthread_mutex_lock(&db->blocks_mu);
    assert_true(db->nblocks >= 1);
    char src[4200];
    snprintf(src, sizeof(src), "%s", db->blocks[0]->dir);
    pthread_mutex_unlock(&db->blocks_mu);
    tsdb_close(db);

    char index[4300], dmg[4300], dmg_index[4400], path[4400];
    snprintf(index, sizeof(index), "%s/index", src);
    snprintf(dmg, sizeof(dmg), "%s/damaged", dir);
    assert_int_equal(mkdir(dmg, 0755), 0);
    snprintf(path, sizeof(path), "%s/chunks", dmg);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/meta.json", src);
    char to[4400];
    snprintf(to, sizeof(to), "%s/meta.json", dmg);
    copy_file(path, to);
    snprintf(path, sizeof(path), "%s/chunks/000001", src);
    snprintf(to, sizeof(to), "%s/chunks/000001", dmg);
    copy_file(path, to);
    snprintf(dmg_index, sizeof(dmg_index), "%s/index", dmg);

    FILE *f = fopen(index, "rb");
    assert_non_null(f);
    uint8_t *orig = malloc(1 << 20);
    size_t len = fread(orig, 1, 1 << 20, f);
    fclose(f);
    assert_true(len > 64 && len < (1 << 20));
    assert_int_equal(orig[4], TSDB_INDEX_VERSION);
    size_t opened = 0, refused = 0;
    for (int k = 0; k < 400; k++) {
        uint8_t *bad = malloc(len);
        memcpy(bad, orig, len);
        for (int j = 0; j < 1 + k % 3; j++)
            bad[8 + rnd() % (len - 8)] ^= (uint8_t)(1u << (rnd() % 8));
        f = fopen(dmg_index, "wb");
        assert_int_equal(fwrite(bad, 1, len, f), len);
        fclose(f);
        free(bad);
        struct tsdb_block *b;
        struct bs_error err = {0};
        if (tsdb_block_open(dmg, &b, &err)) {
            refused++;
            continue;
        }
        opened++;
        uint64_t *ids;
        size_t nids;
        int rc = tsdb_block_postings_all(b, &ids, &nids);
        assert_true(rc == 0 || rc == BS_ECORRUPT);
        struct tsdb_chunk_meta *chks = NULL;
        size_t nchks = 0, cap = 0;
        for (size_t i = 0; rc == 0 && i < nids; i++) {
            int r = tsdb_block_series(b, ids[i], NULL, NULL, &chks, &nchks, &cap);
            assert_true(r == 0 || r == BS_ECORRUPT);
        }
        if (rc == 0)
            free(ids);
        free(chks);
        static const char *ms[] = {"job=node", "__name__=~c.*", "instance!=host03"};
        for (size_t m = 0; m < sizeof(ms) / sizeof(ms[0]); m++) {
            struct labels_matcher *mt = mk_matcher(ms[m]);
            uint64_t *l;
            size_t nl;
            int r = tsdb_block_postings_for_matcher(b, mt, &l, &nl);
            assert_true(r == 0 || r == BS_ECORRUPT);
            if (r == 0)
                free(l);
            labels_matcher_free(mt);
        }
        tsdb_block_unref(b);
    }
    assert_true(opened > 0 && refused > 0);
    free(orig);
    rmrf(dir);
    free(dir);
}

static void test_crash_leftovers(void **state)
{
    (void)state;
    rng_state = 5;
    char *dir = make_tmpdir();
    struct tsdb *db = open_opts(dir, 0);
    append_seconds(db, 0, 30, 5);
    char *before = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    /* keep a copy of the first WAL segment, as if the process had died
     * between the checkpoint's rename and the deletion of the segments */
    char seg0[512], seg0copy[512];
    snprintf(seg0, sizeof(seg0), "%s/wal/00000000", dir);
    snprintf(seg0copy, sizeof(seg0copy), "%s/seg0.copy", dir);
    copy_file(seg0, seg0copy);
    compact_ok(db);
    tsdb_close(db);
    assert_int_equal(rename(seg0copy, seg0), 0);

    /* a block write that died before its rename: <ulid>.tmp */
    char ulid[TSDB_ULID_LEN + 1], path[700];
    tsdb_ulid_new(ulid);
    snprintf(path, sizeof(path), "%s/%s.tmp", dir, ulid);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/%s.tmp/index", dir, ulid);
    FILE *f = fopen(path, "w");
    fputs("half an index", f);
    fclose(f);
    /* a block directory without meta.json (a partial copy) */
    char ulid2[TSDB_ULID_LEN + 1];
    tsdb_ulid_new(ulid2);
    snprintf(path, sizeof(path), "%s/%s", dir, ulid2);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/%s/chunks", dir, ulid2);
    assert_int_equal(mkdir(path, 0755), 0);
    /* a checkpoint that died before its rename */
    snprintf(path, sizeof(path), "%s/wal/checkpoint.00000099.tmp", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    /* an unrelated directory is left alone */
    snprintf(path, sizeof(path), "%s/notes", dir);
    assert_int_equal(mkdir(path, 0755), 0);

    db = open_opts(dir, 0);
    char *after = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    assert_string_equal(before, after);
    assert_int_equal(count_entries(dir, NULL, ".tmp"), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, ulid2);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/notes", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/wal", dir);
    assert_int_equal(count_entries(path, "checkpoint.", ".tmp"), 0);
    assert_int_not_equal(access(seg0, F_OK), 0); /* covered by the checkpoint */
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 2);
    tsdb_close(db);

    /* a damaged block (index cut short) is skipped and left on disk */
    DIR *d = opendir(dir);
    struct dirent *de;
    char blockdir[600] = "";
    while ((de = readdir(d)) != NULL) {
        if (tsdb_ulid_valid(de->d_name))
            snprintf(blockdir, sizeof(blockdir), "%s/%s", dir, de->d_name);
    }
    closedir(d);
    assert_true(blockdir[0]);
    snprintf(path, sizeof(path), "%s/index", blockdir);
    assert_int_equal(truncate(path, 100), 0);
    db = open_opts(dir, 0);
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 1);
    assert_int_equal(access(blockdir, F_OK), 0);
    tsdb_close(db);

    free(before);
    free(after);
    rmrf(dir);
    free(dir);
}

/* ------------------------------------------------------------ retention */

static void test_retention(void **state)
{
    (void)state;
    rng_state = 11;
    char *d1 = make_tmpdir(), *d2 = make_tmpdir();
    struct tsdb *x = open_opts(d1, 35000), *y = open_opts(d2, 0);
    uint64_t saved = rng_state;
    for (int step = 0; step < 12; step++) {
        rng_state = saved;
        append_seconds(x, step * 10, step * 10 + 10, 4);
        rng_state = saved;
        append_seconds(y, step * 10, step * 10 + 10, 4);
        saved = rng_state;
        compact_ok(x);
    }
    struct tsdb_stats st;
    tsdb_stats(x, &st);
    assert_int_equal(st.num_blocks, count_blocks(d1));
    assert_true(st.num_blocks >= 2 && st.num_blocks <= 4);
    struct tsdb_querier *q = tsdb_querier_new(x, INT64_MIN, INT64_MAX);
    struct labels_matcher *m = mk_matcher("__name__=~.+");
    struct tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    int64_t oldest = INT64_MAX;
    while (tsdb_series_set_next(set)) {
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        if (tsdb_iterator_next(it)) {
            int64_t t;
            tsdb_iterator_at(it, &t, NULL);
            if (t < oldest)
                oldest = t;
        }
        tsdb_iterator_free(it);
    }
    tsdb_series_set_free(set);
    labels_matcher_free(m);
    tsdb_querier_free(q);
    /* newest sample at st.max_time; a block survives while its newest
     * possible sample is younger than the retention */
    assert_true(oldest >= st.max_time - 35000 - RANGE);
    assert_true(oldest < st.max_time - 35000 + RANGE);
    /* what is retained answers exactly as the store that kept all */
    char *a = dump_exact(x, oldest, INT64_MAX, "__name__=~.+");
    char *b = dump_exact(y, oldest, INT64_MAX, "__name__=~.+");
    assert_string_equal(a, b);
    free(a);
    free(b);
    tsdb_close(x);
    tsdb_close(y);
    rmrf(d1);
    rmrf(d2);
    free(d1);
    free(d2);
}

/* ------------------------------------- queriers across a compaction */

static void test_querier_survives_compaction(void **state)
{
    (void)state;
    rng_state = 3;
    char *dir = make_tmpdir();
    struct tsdb *db = open_opts(dir, 15000);
    append_seconds(db, 0, 30, 6);
    compact_ok(db); /* blocks [0, 10 s) and [10 s, 20 s), the rest in the head */
    char *before = dump_exact(db, INT64_MIN, INT64_MAX, "__name__=~.+");
    /* an iterator over blocks and head chunks, opened before retention
     * deletes those blocks and truncation drops those head chunks */
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    struct labels_matcher *m = mk_matcher("__name__=~.+");
    struct tsdb_series_set *set;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    assert_true(tsdb_series_set_next(set));
    struct tsdb_iterator *it = tsdb_series_set_iterator(set);
    assert_true(tsdb_iterator_next(it));
    for (int step = 3; step < 8; step++) {
        append_seconds(db, step * 10, step * 10 + 10, 6);
        compact_ok(db); /* truncates the head; retention deletes blocks */
    }
    /* the old view is intact: same samples as before the compactions */
    struct bs_buf out;
    bs_buf_init(&out, 0);
    bs_buf_puts(&out, "");
    bool ok = true; /* the first iterator is positioned already */
    do {
        labels_format(tsdb_series_set_labels(set), &out);
        if (!it) {
            it = tsdb_series_set_iterator(set);
            assert_non_null(it);
            ok = tsdb_iterator_next(it);
        }
        while (ok) {
            int64_t t;
            double v;
            tsdb_iterator_at(it, &t, &v);
            bs_buf_printf(&out, " %lld:%016llx", (long long)t,
                          (unsigned long long)bs_float_bits(v));
            ok = tsdb_iterator_next(it);
        }
        tsdb_iterator_free(it);
        it = NULL;
        bs_buf_putc(&out, '\n');
    } while (tsdb_series_set_next(set));
    char *got = bs_buf_steal(&out, NULL);
    assert_string_equal(got, before);
    free(got);
    tsdb_series_set_free(set);
    labels_matcher_free(m);
    tsdb_querier_free(q);
    free(before);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_true(st.compactions >= 5);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

/* The background compactor runs on its own and concurrent queries never
 * see a sample twice or miss one. */
struct conc {
    struct tsdb *db;
    volatile int stop;
    int errors;
};

static void *query_loop(void *arg)
{
    struct conc *c = arg;
    struct labels_matcher *m = NULL;
    labels_matcher_new(&m, LABELS_MATCH_EQ, "__name__", "tick", NULL);
    while (!c->stop) {
        struct tsdb_querier *q = tsdb_querier_new(c->db, INT64_MIN, INT64_MAX);
        struct tsdb_series_set *set;
        if (tsdb_querier_select(q, &m, 1, &set, NULL) == 0) {
            while (tsdb_series_set_next(set)) {
                struct tsdb_iterator *it = tsdb_series_set_iterator(set);
                int64_t prev = -1;
                while (tsdb_iterator_next(it)) {
                    int64_t t;
                    double v;
                    tsdb_iterator_at(it, &t, &v);
                    if (prev >= 0 && t != prev + 100)
                        c->errors++; /* gap or repeat */
                    if (v != (double)t)
                        c->errors++;
                    prev = t;
                }
                tsdb_iterator_free(it);
            }
            tsdb_series_set_free(set);
        }
        tsdb_querier_free(q);
    }
    labels_matcher_free(m);
    return NULL;
}

static void test_background_compactor(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.block_range_ms = 1000;
    o.compaction_interval_ms = 5;
    o.retention_ms = INT64_C(1) << 40;
    struct tsdb *db = NULL;
    assert_int_equal(tsdb_open(&db, &o, NULL), 0);
    struct conc c = {.db = db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, query_loop, &c), 0);
    struct labels_builder lb;
    labels_builder_init(&lb);
    struct labels ls = mk_labels(&lb, "__name__=tick");
    tsdb_ref ref = 0;
    for (int64_t t = 0; t < 20000; t += 100) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        assert_int_equal(tsdb_appender_add(a, ref, &ls, t, (double)t, &ref), 0);
        commit_ok(a);
        if (t % 2000 == 0)
            bs_sleep_ms(10);
    }
    /* give the compactor (every 5 ms) up to 10 s on a loaded machine */
    struct tsdb_stats st;
    for (int i = 0; i < 1000; i++) {
        tsdb_stats(db, &st);
        if (st.min_valid_time >= 15000)
            break;
        bs_sleep_ms(10);
    }
    c.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(c.errors, 0);
    assert_true(st.min_valid_time >= 15000);
    assert_true(st.num_blocks >= 1);
    char *got = dump_query(db, 0, 20000, "__name__=tick", false);
    assert_string_equal(got, "tick\n");
    free(got);
    labels_builder_fini(&lb);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_roundtrip),
        cmocka_unit_test(test_blocks_equal_head),
        cmocka_unit_test(test_truncate_stale_refs),
        cmocka_unit_test(test_checkpoint_replay),
        cmocka_unit_test(test_damaged_index),
        cmocka_unit_test(test_crash_leftovers),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_querier_survives_compaction),
        cmocka_unit_test(test_background_compactor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
