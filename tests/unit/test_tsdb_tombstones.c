/* SPDX-License-Identifier: Apache-2.0
 *
 * Tombstones and the admin operations of the store:
 *   - interval lists: merging of overlapping, touching and nested ranges;
 *   - the tombstones file: round trip, atomic replacement, every kind of
 *     damage refused with a message naming the file, and a block with a
 *     damaged file skipped at open;
 *   - deletion in the head: iterators skip deleted samples across chunk
 *     boundaries (next and seek), series left without samples are not
 *     selected, the deletion survives WAL replay and head checkpoints;
 *   - deletion across blocks and head, then head compaction, block merges
 *     and clean_tombstones: the data written no longer holds the deleted
 *     samples and every query answers as a reference store that never
 *     received them;
 *   - snapshots open as data directories with the same answers.
 * Sample times are synthetic (one sample a minute).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>

#include "test_tsdb_util.h"
#include "tsdb/tombstones.h"
#include "tsdb/tsdb_int.h"

#define HOUR INT64_C(3600000)
#define MINUTE INT64_C(60000)
#define NS 4

/* ------------------------------------------------------------ intervals */

static char *iv_text(const struct tsdb_intervals *iv)
{
    static char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < iv->n; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s[%lld,%lld]", i ? " " : "",
                              (long long)iv->v[i].mint, (long long)iv->v[i].maxt);
    return buf;
}

static void test_intervals(void **state)
{
    (void)state;
    struct tsdb_intervals iv = {0};
    assert_int_equal(tsdb_intervals_add(&iv, 10, 20), 0);
    assert_int_equal(tsdb_intervals_add(&iv, 40, 50), 0);
    assert_int_equal(tsdb_intervals_add(&iv, 0, 2), 0);
    assert_string_equal(iv_text(&iv), "[0,2] [10,20] [40,50]");
    assert_int_equal(tsdb_intervals_add(&iv, 5, 1), BS_EINVAL);
    /* touching ends merge (integer times: [0,2] and [3,4] leave no gap) */
    assert_int_equal(tsdb_intervals_add(&iv, 3, 4), 0);
    assert_string_equal(iv_text(&iv), "[0,4] [10,20] [40,50]");
    /* nested: nothing changes */
    assert_int_equal(tsdb_intervals_add(&iv, 12, 18), 0);
    assert_string_equal(iv_text(&iv), "[0,4] [10,20] [40,50]");
    /* overlapping two */
    assert_int_equal(tsdb_intervals_add(&iv, 15, 45), 0);
    assert_string_equal(iv_text(&iv), "[0,4] [10,50]");
    /* swallowing everything, at the ends of the int64 range */
    assert_int_equal(tsdb_intervals_add(&iv, INT64_MAX, INT64_MAX), 0);
    assert_int_equal(tsdb_intervals_add(&iv, INT64_MIN, INT64_MIN + 1), 0);
    assert_int_equal(iv.n, 4);
    assert_true(tsdb_intervals_cover(iv.v, iv.n, INT64_MAX));
    assert_true(tsdb_intervals_cover(iv.v, iv.n, INT64_MIN));
    assert_true(tsdb_intervals_cover(iv.v, iv.n, 10));
    assert_true(tsdb_intervals_cover(iv.v, iv.n, 50));
    assert_false(tsdb_intervals_cover(iv.v, iv.n, 5));
    assert_false(tsdb_intervals_cover(iv.v, iv.n, 51));
    assert_int_equal(tsdb_intervals_add(&iv, INT64_MIN, INT64_MAX), 0);
    assert_string_equal(iv_text(&iv), "[-9223372036854775808,9223372036854775807]");
    tsdb_intervals_fini(&iv);
    assert_int_equal(iv.n, 0);
}

/* ------------------------------------------------------------------ file */

static struct tsdb_tombs *sample_set(void)
{
    struct tsdb_tombs *t = tsdb_tombs_new();
    assert_non_null(t);
    assert_int_equal(tsdb_tombs_add(t, 7, 100, 200), 0);
    assert_int_equal(tsdb_tombs_add(t, 7, 300, 400), 0);
    assert_int_equal(tsdb_tombs_add(t, 1, -50, 50), 0);
    assert_int_equal(tsdb_tombs_add(t, 1000000, INT64_MIN, INT64_MAX), 0);
    for (uint64_t id = 10; id < 200; id++) /* grows the table */
        assert_int_equal(tsdb_tombs_add(t, id * 3, (int64_t)id, (int64_t)id * 2), 0);
    return t;
}

static void same_sets(const struct tsdb_tombs *a, const struct tsdb_tombs *b)
{
    uint64_t *ia, *ib;
    size_t na, nb;
    assert_int_equal(tsdb_tombs_ids(a, &ia, &na), 0);
    assert_int_equal(tsdb_tombs_ids(b, &ib, &nb), 0);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(ia[i], ib[i]);
        const struct tsdb_intervals *x = tsdb_tombs_get(a, ia[i]), *y = tsdb_tombs_get(b, ib[i]);
        assert_int_equal(x->n, y->n);
        assert_memory_equal(x->v, y->v, x->n * sizeof(*x->v));
    }
    free(ia);
    free(ib);
}

static void write_bytes(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_file_roundtrip(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb_tombs *t = sample_set(), *back = NULL;
    struct bs_error err = {0};
    /* no file: no tombstones */
    assert_int_equal(tsdb_tombs_read(dir, &back, &err), 0);
    assert_null(back);
    assert_int_equal(tsdb_tombs_write(dir, t, &err), 0);
    assert_int_equal(tsdb_tombs_read(dir, &back, &err), 0);
    assert_non_null(back);
    same_sets(t, back);
    tsdb_tombs_free(back);
    /* encode is deterministic (ids sorted) */
    uint8_t *e1, *e2;
    size_t l1, l2;
    assert_int_equal(tsdb_tombs_encode(t, &e1, &l1), 0);
    struct tsdb_tombs *t2 = NULL;
    assert_int_equal(tsdb_tombs_decode(e1, l1, &t2, NULL, 0), 0);
    assert_int_equal(tsdb_tombs_encode(t2, &e2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(e1, e2, l1);
    free(e1);
    free(e2);
    tsdb_tombs_free(t2);
    /* no tmp file is left; an empty set removes the file */
    char path[4300];
    snprintf(path, sizeof(path), "%s/tombstones.tmp", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    struct tsdb_tombs *empty = tsdb_tombs_new();
    assert_int_equal(tsdb_tombs_write(dir, empty, &err), 0);
    snprintf(path, sizeof(path), "%s/tombstones", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    tsdb_tombs_free(empty);
    tsdb_tombs_free(t);
    rmrf(dir);
    free(dir);
}

static void test_file_corrupt(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb_tombs *t = sample_set();
    uint8_t *enc;
    size_t len;
    assert_int_equal(tsdb_tombs_encode(t, &enc, &len), 0);
    tsdb_tombs_free(t);
    char path[4300];
    snprintf(path, sizeof(path), "%s/tombstones", dir);
    uint8_t *bad = malloc(len);
    /* every single-byte flip and every truncation is refused */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, enc, len);
        bad[i] ^= 0x41;
        struct tsdb_tombs *out = NULL;
        char why[160];
        assert_int_equal(tsdb_tombs_decode(bad, len, &out, why, sizeof(why)), BS_ECORRUPT);
        assert_null(out);
        assert_int_equal(tsdb_tombs_decode(enc, i, &out, why, sizeof(why)), BS_ECORRUPT);
    }
    memcpy(bad, enc, len);
    bad[len / 2] ^= 1;
    write_bytes(path, bad, len);
    struct tsdb_tombs *out = NULL;
    struct bs_error err = {0};
    assert_int_equal(tsdb_tombs_read(dir, &out, &err), BS_ECORRUPT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "CRC mismatch"));
    /* a valid CRC over bad content: the offset is named */
    static const uint8_t head[] = {0x42, 0x53, 0x54, 0x53, 1, 1, 5, 0};
    uint8_t b2[sizeof(head) + 4];
    memcpy(b2, head, sizeof(head));
    bs_put_be32(b2 + sizeof(head), bs_crc32c(0, head, sizeof(head)));
    write_bytes(path, b2, sizeof(b2));
    assert_int_equal(tsdb_tombs_read(dir, &out, &err), BS_ECORRUPT);
    assert_non_null(strstr(err.msg, "bad interval count at offset 7"));
    free(bad);
    free(enc);
    rmrf(dir);
    free(dir);
}

/* ----------------------------------------------------------- the store */

static struct tsdb *open_store(const char *dir, bool snapshot_on_close)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.wal_segment_size = 64 * 1024;
    o.compaction_interval_ms = -1;
    o.retention_ms = 0;
    o.head_snapshot_on_close = snapshot_on_close;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err))
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

static double value_of(int i, int64_t t)
{
    return (double)i * 1e6 + (double)(t / MINUTE);
}

/* A deleted range: series i (-1: all) in [lo, hi]. */
struct del {
    int i;
    int64_t lo, hi;
};

static bool deleted(const struct del *d, size_t nd, int i, int64_t t)
{
    for (size_t k = 0; k < nd; k++)
        if ((d[k].i < 0 || d[k].i == i) && d[k].lo <= t && t <= d[k].hi)
            return true;
    return false;
}

/* One sample a minute for every series in [from, to), those in d left
 * out (the reference store). */
static void ingest(struct tsdb *db, int64_t from, int64_t to, const struct del *d, size_t nd)
{
    char spec[64];
    for (int64_t t = from; t < to; t += MINUTE) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < NS; i++) {
            if (deleted(d, nd, i, t))
                continue;
            snprintf(spec, sizeof(spec), "__name__=m,i=%02d", i);
            assert_int_equal(add_spec(a, spec, t, value_of(i, t)), 0);
        }
        struct bs_error err = {0};
        if (tsdb_appender_commit(a, &err))
            fail_msg("commit: %s", err.msg);
    }
}

static void do_delete(struct tsdb *db, const struct del *d)
{
    char spec[32];
    snprintf(spec, sizeof(spec), "i=%02d", d->i);
    struct labels_matcher *m = mk_matcher(d->i < 0 ? "__name__=m" : spec);
    struct bs_error err = {0};
    if (tsdb_delete(db, d->lo, d->hi, &m, 1, &err))
        fail_msg("delete: %s", err.msg);
    labels_matcher_free(m);
}

/* Every sample of every series, and seeks to each minute of span. */
static char *dump_all(struct tsdb *db, int64_t mint, int64_t maxt)
{
    char *s = dump_query(db, mint, maxt, "__name__=m", true);
    struct bs_buf out;
    bs_buf_init(&out, 0);
    bs_buf_puts(&out, s);
    free(s);
    /* seek lands on the first sample at or after t that is not deleted */
    struct labels_matcher *m = mk_matcher("__name__=m");
    struct tsdb_querier *q = tsdb_querier_new(db, mint, maxt);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    while (tsdb_series_set_next(set)) {
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        bs_buf_puts(&out, "seek");
        for (int64_t t = mint < 0 ? 0 : mint; t <= maxt && t < 12 * HOUR; t += 37 * MINUTE) {
            if (!tsdb_iterator_seek(it, t))
                break;
            int64_t at;
            tsdb_iterator_at(it, &at, NULL);
            bs_buf_printf(&out, " %lld", (long long)at);
        }
        bs_buf_putc(&out, '\n');
        tsdb_iterator_free(it);
    }
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    labels_matcher_free(m);
    return bs_buf_steal(&out, NULL);
}

static void same_as_ref(struct tsdb *db, struct tsdb *ref)
{
    static const int64_t spans[][2] = {{INT64_MIN, INT64_MAX},
                                       {0, 12 * HOUR},
                                       {HOUR + 5 * MINUTE, 3 * HOUR},
                                       {2 * HOUR - 1, 2 * HOUR},
                                       {7 * HOUR, 9 * HOUR}};
    for (size_t s = 0; s < sizeof(spans) / sizeof(*spans); s++) {
        char *a = dump_all(db, spans[s][0], spans[s][1]);
        char *b = dump_all(ref, spans[s][0], spans[s][1]);
        if (strcmp(a, b) != 0)
            fail_msg("span %zu differs:\n--- store\n%.2000s\n--- reference\n%.2000s", s, a, b);
        free(a);
        free(b);
    }
}

static size_t count_blocks(const char *dir, size_t *with_tombstones)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, nt = 0;
    struct dirent *de;
    char path[4400];
    while ((de = readdir(d)) != NULL) {
        if (!tsdb_ulid_valid(de->d_name))
            continue;
        n++;
        snprintf(path, sizeof(path), "%s/%s/tombstones", dir, de->d_name);
        nt += access(path, F_OK) == 0;
    }
    closedir(d);
    if (with_tombstones)
        *with_tombstones = nt;
    return n;
}

/* Deletions inside the head, across chunk boundaries (120 samples a
 * chunk), then WAL replay and a head checkpoint. */
static void test_head_delete(void **state)
{
    (void)state;
    char *dir = make_tmpdir(), *rdir = make_tmpdir();
    const struct del d[] = {{0, 100 * MINUTE, 250 * MINUTE},  /* spans 2 chunk cuts */
                            {1, 119 * MINUTE, 120 * MINUTE},  /* the cut itself */
                            {2, INT64_MIN, INT64_MAX},        /* the whole series */
                            {-1, 170 * MINUTE, 170 * MINUTE}, /* one sample of all */
                            {1, 2 * HOUR + 30 * MINUTE, INT64_MAX}};
    size_t nd = sizeof(d) / sizeof(*d);
    struct tsdb *db = open_store(dir, false), *ref = open_store(rdir, false);
    ingest(db, 0, 3 * HOUR, NULL, 0);
    ingest(ref, 0, 3 * HOUR, d, nd);
    for (size_t k = 0; k < nd; k++)
        do_delete(db, &d[k]);
    same_as_ref(db, ref);
    /* series 2 is gone from selection too */
    char *s = dump_query(db, INT64_MIN, INT64_MAX, "i=02", false);
    assert_string_equal(s, "");
    free(s);
    /* WAL replay (no head snapshot at close) */
    tsdb_close(db);
    db = open_store(dir, true);
    same_as_ref(db, ref);
    /* head checkpoint at close, then its replay */
    tsdb_close(db);
    db = open_store(dir, true);
    same_as_ref(db, ref);
    /* appending continues: as in Prometheus a head deletion reaches only
     * up to the series' newest sample at the time, so the open-ended
     * deletions of series 1 and 2 do not hide what comes after */
    ingest(db, 3 * HOUR, 4 * HOUR, NULL, 0);
    ingest(ref, 3 * HOUR, 4 * HOUR, NULL, 0);
    same_as_ref(db, ref);
    tsdb_close(db);
    tsdb_close(ref);
    rmrf(dir);
    rmrf(rdir);
    free(dir);
    free(rdir);
}

/* Deletions across blocks and head; head compaction, merges,
 * clean_tombstones, restarts, snapshots. */
static void test_blocks_compaction_clean_snapshot(void **state)
{
    (void)state;
    char *dir = make_tmpdir(), *rdir = make_tmpdir();
    struct tsdb *db = open_store(dir, true), *ref = open_store(rdir, true);
    /* 6h of data: blocks [0,2h) and [2h,4h), the rest in the head */
    ingest(db, 0, 6 * HOUR, NULL, 0);
    compact_ok(db);
    size_t nt;
    assert_int_equal(count_blocks(dir, &nt), 2);
    assert_int_equal(nt, 0);
    const struct del d[] = {{0, HOUR, 5 * HOUR},                        /* block, block, head */
                            {1, 0, 2 * HOUR - 1},                       /* all of block 1 */
                            {3, 5 * HOUR + 1, 5 * HOUR + 30 * MINUTE}}; /* head only */
    size_t nd = sizeof(d) / sizeof(*d);
    ingest(ref, 0, 6 * HOUR, d, nd);
    for (size_t k = 0; k < nd; k++)
        do_delete(db, &d[k]);
    assert_int_equal(count_blocks(dir, &nt), 2);
    assert_int_equal(nt, 2);
    same_as_ref(db, ref);

    /* durable: restart */
    tsdb_close(db);
    db = open_store(dir, true);
    same_as_ref(db, ref);

    /* head compaction drops the deleted samples of the head */
    ingest(db, 6 * HOUR, 8 * HOUR, NULL, 0);
    ingest(ref, 6 * HOUR, 8 * HOUR, d, nd);
    compact_ok(db);
    same_as_ref(db, ref);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 3);

    /* the block cut from the head [4h,6h) holds no deleted sample: its
     * samples are those of the reference */
    pthread_mutex_lock(&db->blocks_mu);
    struct tsdb_block *b3 = db->blocks[2];
    assert_int_equal(b3->meta.mint, 4 * HOUR);
    uint64_t want = 0;
    for (int i = 0; i < NS; i++)
        for (int64_t t = 4 * HOUR; t < 6 * HOUR; t += MINUTE)
            want += !deleted(d, nd, i, t);
    assert_int_equal(b3->meta.num_samples, want);
    pthread_mutex_unlock(&db->blocks_mu);

    /* snapshot with the head: opens with the same answers */
    struct bs_error err = {0};
    if (tsdb_snapshot(db, "snap1", true, &err))
        fail_msg("snapshot: %s", err.msg);
    char sdir[4300];
    snprintf(sdir, sizeof(sdir), "%s/snapshots/snap1", dir);
    assert_int_equal(count_blocks(sdir, &nt), 4);
    assert_int_equal(nt, 2);
    struct tsdb *snap = open_store(sdir, true);
    same_as_ref(snap, ref);
    tsdb_close(snap);
    assert_int_equal(tsdb_snapshot(db, "../x", true, &err), BS_EINVAL);

    /* clean_tombstones rewrites the two blocks with tombstones */
    if (tsdb_clean_tombstones(db, &err))
        fail_msg("clean: %s", err.msg);
    assert_int_equal(count_blocks(dir, &nt), 3);
    assert_int_equal(nt, 0);
    same_as_ref(db, ref);
    pthread_mutex_lock(&db->blocks_mu);
    uint64_t total = 0;
    for (size_t i = 0; i < db->nblocks; i++)
        total += db->blocks[i]->meta.num_samples;
    pthread_mutex_unlock(&db->blocks_mu);
    want = 0;
    for (int i = 0; i < NS; i++)
        for (int64_t t = 0; t < 6 * HOUR; t += MINUTE)
            want += !deleted(d, nd, i, t);
    assert_int_equal(total, want);
    tsdb_close(db);
    db = open_store(dir, true);
    same_as_ref(db, ref);
    /* nothing to clean: a no-op */
    assert_int_equal(tsdb_clean_tombstones(db, &err), 0);
    assert_int_equal(count_blocks(dir, NULL), 3);

    /* a merge drops samples deleted in its source blocks: 8h more data
     * gives blocks enough to merge [0,6h) */
    const struct del d2[] = {{2, 3 * HOUR, 3 * HOUR + 10 * MINUTE}};
    do_delete(db, &d2[0]);
    struct del all[4] = {d[0], d[1], d[2], d2[0]};
    tsdb_close(ref);
    rmrf(rdir);
    ref = open_store(rdir, true);
    ingest(ref, 0, 16 * HOUR, all, 4);
    ingest(db, 8 * HOUR, 16 * HOUR, NULL, 0);
    compact_ok(db);
    same_as_ref(db, ref);
    assert_int_equal(count_blocks(dir, &nt) < 7, true); /* merged */
    assert_int_equal(nt, 0);                            /* the tombstoned block was merged away */
    tsdb_close(db);
    db = open_store(dir, true);
    same_as_ref(db, ref);

    /* Deletions in the merged block, whose series share one time column
     * (shared-time chunks refer to the first series' chunk): all of series
     * 0, which holds the column, and part of series 4; then
     * clean_tombstones, which must not copy a reference to a chunk it
     * does not keep. */
    const struct del d3[] = {{0, 0, 16 * HOUR}, {4, 2 * HOUR, 2 * HOUR + 20 * MINUTE}};
    for (size_t k = 0; k < 2; k++)
        do_delete(db, &d3[k]);
    struct del all3[6] = {d[0], d[1], d[2], d2[0], d3[0], d3[1]};
    tsdb_close(ref);
    rmrf(rdir);
    ref = open_store(rdir, true);
    ingest(ref, 0, 16 * HOUR, all3, 6);
    same_as_ref(db, ref);
    if (tsdb_clean_tombstones(db, &err))
        fail_msg("clean: %s", err.msg);
    count_blocks(dir, &nt);
    assert_int_equal(nt, 0);
    same_as_ref(db, ref);
    tsdb_close(db);
    db = open_store(dir, true);
    same_as_ref(db, ref);

    tsdb_close(db);
    tsdb_close(ref);
    rmrf(dir);
    rmrf(rdir);
    free(dir);
    free(rdir);
}

/* Hard-link the files of block directory src (and chunks/) into dst. */
static void link_block(const char *src, const char *dst)
{
    char a[5000], b[5000];
    assert_int_equal(mkdir(dst, 0755), 0);
    snprintf(b, sizeof(b), "%s/chunks", dst);
    assert_int_equal(mkdir(b, 0755), 0);
    const char *sub[] = {"", "/chunks"};
    for (int k = 0; k < 2; k++) {
        snprintf(a, sizeof(a), "%s%s", src, sub[k]);
        DIR *d = opendir(a);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char f[5000], g[5000];
            snprintf(f, sizeof(f), "%s%s/%s", src, sub[k], de->d_name);
            snprintf(g, sizeof(g), "%s%s/%s", dst, sub[k], de->d_name);
            struct stat st;
            if (stat(f, &st) == 0 && S_ISREG(st.st_mode))
                assert_int_equal(link(f, g), 0);
        }
        closedir(d);
    }
}

/* clean_tombstones interrupted after the new block's commit (the old
 * block still on disk): the next open deletes the old block. A block
 * left without samples is deleted without replacement. */
static void test_clean_interrupted(void **state)
{
    (void)state;
    char *dir = make_tmpdir(), *rdir = make_tmpdir(), *keep = make_tmpdir();
    struct tsdb *db = open_store(dir, true), *ref = open_store(rdir, true);
    const struct del d[] = {{-1, 0, 2 * HOUR - 1}, {3, 2 * HOUR + 7 * MINUTE, 3 * HOUR}};
    ingest(db, 0, 6 * HOUR, NULL, 0);
    ingest(ref, 0, 6 * HOUR, d, 2);
    compact_ok(db);
    assert_int_equal(count_blocks(dir, NULL), 2);
    do_delete(db, &d[0]);
    do_delete(db, &d[1]);
    char old[4300], saved[4400];
    pthread_mutex_lock(&db->blocks_mu);
    snprintf(old, sizeof(old), "%s", db->blocks[1]->dir);
    pthread_mutex_unlock(&db->blocks_mu);
    snprintf(saved, sizeof(saved), "%s/b", keep);
    link_block(old, saved);
    /* a querier opened before the rewrite keeps reading the old blocks,
     * their tombstones still applied */
    struct labels_matcher *m = mk_matcher("__name__=m");
    struct tsdb_querier *q = tsdb_querier_new(db, INT64_MIN, INT64_MAX);
    struct tsdb_series_set *set = NULL;
    assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
    struct bs_error err = {0};
    if (tsdb_clean_tombstones(db, &err))
        fail_msg("clean: %s", err.msg);
    size_t seen = 0;
    while (tsdb_series_set_next(set)) {
        const char *iv = labels_get(tsdb_series_set_labels(set), "i");
        struct tsdb_iterator *it = tsdb_series_set_iterator(set);
        while (tsdb_iterator_next(it)) {
            int64_t t;
            tsdb_iterator_at(it, &t, NULL);
            assert_false(deleted(d, 2, atoi(iv), t));
            seen++;
        }
        tsdb_iterator_free(it);
    }
    assert_int_equal(seen, NS * 4 * 60 - 54); /* [2h07, 3h] of series 3 */
    tsdb_series_set_free(set);
    tsdb_querier_free(q);
    labels_matcher_free(m);
    size_t nt;
    /* block 1 had nothing left: gone; block 2 rewritten */
    assert_int_equal(count_blocks(dir, &nt), 1);
    assert_int_equal(nt, 0);
    same_as_ref(db, ref);
    tsdb_close(db);
    /* put the old block back, as a crash before its deletion leaves it */
    assert_int_equal(rename(saved, old), 0);
    assert_int_equal(count_blocks(dir, &nt), 2);
    db = open_store(dir, true);
    assert_int_equal(count_blocks(dir, &nt), 1);
    assert_int_equal(nt, 0);
    same_as_ref(db, ref);
    tsdb_close(db);
    tsdb_close(ref);
    rmrf(dir);
    rmrf(rdir);
    rmrf(keep);
    free(dir);
    free(rdir);
    free(keep);
}

/* A block whose tombstones file is damaged is skipped at open. */
static void test_damaged_file_at_open(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_store(dir, true);
    ingest(db, 0, 4 * HOUR, NULL, 0);
    compact_ok(db);
    const struct del d = {0, 0, HOUR};
    do_delete(db, &d);
    char bdir[4300], path[4400];
    pthread_mutex_lock(&db->blocks_mu);
    assert_int_equal(db->nblocks, 1);
    snprintf(bdir, sizeof(bdir), "%s", db->blocks[0]->dir);
    pthread_mutex_unlock(&db->blocks_mu);
    tsdb_close(db);
    snprintf(path, sizeof(path), "%s/tombstones", bdir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\xff", 1, 6), 1);
    close(fd);
    db = open_store(dir, true);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 0);
    /* the block stays on disk for inspection */
    assert_int_equal(access(path, F_OK), 0);
    struct tsdb_tombs *t = NULL;
    struct bs_error err = {0};
    assert_int_equal(tsdb_tombs_read(bdir, &t, &err), BS_ECORRUPT);
    assert_non_null(strstr(err.msg, path));
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

/* Readers while deletions, rewrites, compactions, merges and snapshots
 * run: every answer is in time order and never holds a sample deleted
 * before the querier was created (run under ASan for the lifetimes). */
struct reader_arg {
    struct tsdb *db;
    int done;             /* atomic */
    int64_t deleted_upto; /* atomic: series 0 deleted in [0, this] */
    size_t answers;
};

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    struct labels_matcher *m = mk_matcher("__name__=m");
    while (!__atomic_load_n(&a->done, __ATOMIC_ACQUIRE)) {
        int64_t gone = __atomic_load_n(&a->deleted_upto, __ATOMIC_ACQUIRE);
        struct tsdb_querier *q = tsdb_querier_new(a->db, INT64_MIN, INT64_MAX);
        struct tsdb_series_set *set = NULL;
        assert_int_equal(tsdb_querier_select(q, &m, 1, &set, NULL), 0);
        while (tsdb_series_set_next(set)) {
            bool s0 = strcmp(labels_get(tsdb_series_set_labels(set), "i"), "00") == 0;
            struct tsdb_iterator *it = tsdb_series_set_iterator(set);
            int64_t last = INT64_MIN;
            while (tsdb_iterator_next(it)) {
                int64_t t;
                tsdb_iterator_at(it, &t, NULL);
                assert_true(t > last);
                last = t;
                if (s0)
                    assert_true(t > gone);
            }
            tsdb_iterator_free(it);
        }
        tsdb_series_set_free(set);
        tsdb_querier_free(q);
        __atomic_add_fetch(&a->answers, 1, __ATOMIC_ACQ_REL);
    }
    labels_matcher_free(m);
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_store(dir, true);
    ingest(db, 0, 4 * HOUR, NULL, 0);
    struct reader_arg a = {.db = db, .deleted_upto = -1};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &a), 0);
    struct bs_error err = {0};
    for (int round = 1; round <= 12; round++) {
        int64_t to = 4 * HOUR + round * HOUR;
        ingest(db, to - HOUR, to, NULL, 0);
        const struct del d = {0, 0, round * 40 * MINUTE};
        do_delete(db, &d);
        __atomic_store_n(&a.deleted_upto, d.hi, __ATOMIC_RELEASE);
        const struct del d2 = {round % 3 + 1, round * 20 * MINUTE, round * 20 * MINUTE + 5};
        do_delete(db, &d2);
        compact_ok(db);
        if (round % 3 == 0 && tsdb_clean_tombstones(db, &err))
            fail_msg("clean: %s", err.msg);
        if (round % 4 == 0) {
            char name[32];
            snprintf(name, sizeof(name), "s%d", round);
            if (tsdb_snapshot(db, name, round % 8 == 0, &err))
                fail_msg("snapshot: %s", err.msg);
        }
        /* let the readers answer at least once more before going on */
        size_t seen = __atomic_load_n(&a.answers, __ATOMIC_ACQUIRE);
        while (__atomic_load_n(&a.answers, __ATOMIC_ACQUIRE) == seen)
            sched_yield();
    }
    __atomic_store_n(&a.done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_true(a.answers > 0);
    tsdb_close(db);
    rmrf(dir);
    free(dir);
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intervals),
        cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_file_corrupt),
        cmocka_unit_test(test_head_delete),
        cmocka_unit_test(test_blocks_compaction_clean_snapshot),
        cmocka_unit_test(test_clean_interrupted),
        cmocka_unit_test(test_damaged_file_at_open),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
