/* SPDX-License-Identifier: Apache-2.0
 *
 * Head chunk files and fast restart: a write/scan round trip of
 * chunks_head records, a torn and a corrupt file tail (truncated at open),
 * the XOR encoder restored from a chunk, a store killed with SIGKILL in a
 * child reopening to exactly what an uncrashed store holds (closed chunks
 * from the files, the rest from the WAL), and the head snapshot written
 * at a clean close reopening to the same data without WAL segments; that
 * snapshot's two files (series records, then open chunks) and the single
 * interleaved file older versions wrote both reopen to the same data, as
 * does a series defined after the snapshot whose chunk went to a file, and
 * a compaction checkpoint built from such a snapshot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_tsdb_util.h"
#include "tsdb/tsdb_int.h"

/* Encode n samples (t0 + 15000 i, i * 1.5) into e. */
static void encode(struct tsdb_xor_enc *e, int64_t t0, int n)
{
    tsdb_xor_enc_reset(e);
    for (int i = 0; i < n; i++)
        assert_int_equal(tsdb_xor_enc_append(e, t0 + 15000 * i, bs_float_bits(i * 1.5)), 0);
}

struct scanned {
    uint64_t sref[16];
    struct tsdb_hchunk c[16];
    uint16_t n[16];
    uint64_t last_v[16];
    size_t count;
};

static void scan_cb(void *arg, uint64_t sref, const struct tsdb_hchunk *c, uint16_t n,
                    uint64_t last_v)
{
    struct scanned *s = arg;
    assert_true(s->count < 16);
    s->sref[s->count] = sref;
    s->c[s->count] = *c;
    s->n[s->count] = n;
    s->last_v[s->count] = last_v;
    s->count++;
}

static char *file0(const char *dir)
{
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/chunks_head/000000", dir);
    return p;
}

static off_t fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Write 3 chunks of series 7, 8, 7 into a fresh chunks_head in dir. */
static void write_three(const char *dir, uint64_t refs[3], size_t lens[3])
{
    struct tsdb_hchunks *hc;
    struct bs_error err = {0};
    assert_int_equal(tsdb_hchunks_open(dir, &hc, &err), 0);
    struct scanned none = {0};
    assert_int_equal(tsdb_hchunks_scan(hc, INT64_MIN, scan_cb, &none, &err), 0);
    assert_int_equal(none.count, 0);
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    const uint64_t sref[3] = {7, 8, 7};
    for (int i = 0; i < 3; i++) {
        encode(&e, 1000000 * (i + 1), 10 + i);
        lens[i] = tsdb_xor_enc_bytes(&e);
        assert_int_equal(tsdb_hchunks_write(hc, sref[i], e.mint, e.t, e.n, e.v, e.buf,
                                            (uint32_t)lens[i], &refs[i]),
                         0);
        uint32_t len;
        uint16_t n;
        const uint8_t *p = tsdb_hchunks_data(hc, refs[i], &len, &n);
        assert_non_null(p);
        assert_int_equal(len, lens[i]);
        assert_int_equal(n, 10 + i);
        assert_memory_equal(p, e.buf, len);
    }
    tsdb_xor_enc_fini(&e);
    tsdb_hchunks_close(hc);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    uint64_t refs[3];
    size_t lens[3];
    write_three(dir, refs, lens);

    struct tsdb_hchunks *hc;
    struct bs_error err = {0};
    assert_int_equal(tsdb_hchunks_open(dir, &hc, &err), 0);
    struct scanned s = {0};
    assert_int_equal(tsdb_hchunks_scan(hc, INT64_MIN, scan_cb, &s, &err), 0);
    assert_int_equal(s.count, 3);
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    for (int i = 0; i < 3; i++) {
        encode(&e, 1000000 * (i + 1), 10 + i);
        assert_int_equal(s.sref[i], i == 1 ? 8 : 7);
        assert_int_equal(s.c[i].ref, refs[i]);
        assert_int_equal(s.c[i].mint, e.mint);
        assert_int_equal(s.c[i].maxt, e.t);
        assert_int_equal(s.n[i], 10 + i);
        assert_int_equal(s.last_v[i], bs_float_bits((9 + i) * 1.5));
        uint32_t len;
        const uint8_t *p = tsdb_hchunks_data(hc, s.c[i].ref, &len, NULL);
        assert_non_null(p);
        assert_int_equal(len, lens[i]);
        assert_memory_equal(p, e.buf, len);
    }
    /* min_valid filters whole chunks; new writes go to a new file. */
    struct scanned s2 = {0};
    tsdb_hchunks_close(hc);
    assert_int_equal(tsdb_hchunks_open(dir, &hc, &err), 0);
    assert_int_equal(tsdb_hchunks_scan(hc, 2000000 + 15000 * 10, scan_cb, &s2, &err), 0);
    assert_int_equal(s2.count, 2);
    uint64_t ref;
    encode(&e, 5000000, 3);
    assert_int_equal(tsdb_hchunks_write(hc, 9, e.mint, e.t, e.n, e.v, e.buf,
                                        (uint32_t)tsdb_xor_enc_bytes(&e), &ref),
                     0);
    assert_int_equal(ref >> 32, 1);
    /* Truncation deletes the old file, never the current one. */
    assert_int_equal(tsdb_hchunks_truncate(hc, INT64_MAX, NULL), 1);
    char *f0 = file0(dir);
    assert_int_equal(fsize(f0), -1);
    assert_non_null(tsdb_hchunks_data(hc, ref, &(uint32_t){0}, NULL));
    assert_null(tsdb_hchunks_data(hc, refs[0], &(uint32_t){0}, NULL));
    free(f0);
    tsdb_xor_enc_fini(&e);
    tsdb_hchunks_close(hc);
    rmrf(dir);
    free(dir);
}

static void test_torn_and_corrupt_tail(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    uint64_t refs[3];
    size_t lens[3];
    write_three(dir, refs, lens);
    char *f0 = file0(dir);
    off_t full = fsize(f0);
    uint64_t third = (uint32_t)refs[2];

    /* Torn: the last record lost its last 5 bytes. */
    assert_int_equal(truncate(f0, full - 5), 0);
    struct tsdb_hchunks *hc;
    struct bs_error err = {0};
    assert_int_equal(tsdb_hchunks_open(dir, &hc, &err), 0);
    struct scanned s = {0};
    assert_int_equal(tsdb_hchunks_scan(hc, INT64_MIN, scan_cb, &s, &err), 0);
    assert_int_equal(s.count, 2);
    assert_int_equal(fsize(f0), (off_t)third);
    tsdb_hchunks_close(hc);

    /* Corrupt: a flipped byte in the second record's data. */
    int fd = open(f0, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    off_t at = (off_t)(uint32_t)refs[1] + TSDB_HCF_REC_HEADER + 3;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
    assert_int_equal(tsdb_hchunks_open(dir, &hc, &err), 0);
    struct scanned s2 = {0};
    assert_int_equal(tsdb_hchunks_scan(hc, INT64_MIN, scan_cb, &s2, &err), 0);
    assert_int_equal(s2.count, 1);
    assert_int_equal(fsize(f0), (off_t)(uint32_t)refs[1]);
    tsdb_hchunks_close(hc);
    free(f0);
    rmrf(dir);
    free(dir);
}

static void test_encoder_restore(void **state)
{
    (void)state;
    struct tsdb_xor_enc a, b;
    tsdb_xor_enc_init(&a);
    tsdb_xor_enc_init(&b);
    for (int n = 1; n < 40; n += 3) {
        tsdb_xor_enc_reset(&a);
        for (int i = 0; i < n + 20; i++) {
            double v = i % 3 ? i * 0.1 : (double)(i * i);
            assert_int_equal(tsdb_xor_enc_append(&a, 1000 + i * 15000 + (i % 4), bs_float_bits(v)),
                             0);
            if (i + 1 == n)
                assert_int_equal(tsdb_xor_enc_restore(&b, a.buf, tsdb_xor_enc_bytes(&a)), 0);
            else if (i >= n)
                assert_int_equal(
                    tsdb_xor_enc_append(&b, 1000 + i * 15000 + (i % 4), bs_float_bits(v)), 0);
        }
        assert_int_equal(tsdb_xor_enc_bytes(&a), tsdb_xor_enc_bytes(&b));
        assert_memory_equal(a.buf, b.buf, tsdb_xor_enc_bytes(&a));
        assert_int_equal(a.mint, b.mint);
    }
    uint8_t junk[8] = {0, 5, 1, 2, 3, 4, 5, 6};
    assert_int_equal(tsdb_xor_enc_restore(&b, junk, sizeof(junk)), BS_ECORRUPT);
    tsdb_xor_enc_fini(&a);
    tsdb_xor_enc_fini(&b);
}

#define NSER 40
#define NSAMP 300 /* two closed chunks and an open one per series */

static struct tsdb *open_store(const char *dir, bool snapshot)
{
    struct tsdb_options o;
    tsdb_options_default(&o);
    o.dir = dir;
    o.wal_fsync_interval_ms = 0;
    o.compaction_interval_ms = -1;
    o.retention_ms = 0;
    o.head_snapshot_on_close = snapshot;
    struct tsdb *db = NULL;
    struct bs_error err = {0};
    if (tsdb_open(&db, &o, &err))
        fail_msg("tsdb_open(%s): %s", dir, err.msg);
    return db;
}

static void fill(struct tsdb *db, int from, int to)
{
    char spec[64];
    for (int k = from; k < to; k++) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < NSER; i++) {
            snprintf(spec, sizeof(spec), "__name__=hc,i=%d", i);
            assert_int_equal(add_spec(a, spec, 15000 * k, i % 2 ? k * 0.5 : (double)(k % 9)), 0);
        }
        assert_int_equal(tsdb_appender_commit(a, NULL), 0);
    }
}

static bool has_segment_data(const char *dir)
{
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s/wal", dir);
    DIR *d = opendir(wal);
    bool any = false;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strspn(de->d_name, "0123456789") == 8 && strlen(de->d_name) == 8) {
            char p[4200 + sizeof(de->d_name) + 2];
            snprintf(p, sizeof(p), "%s/%s", wal, de->d_name);
            any = any || fsize(p) > 0;
        }
    }
    if (d)
        closedir(d);
    return any;
}

static void test_kill_reopen(void **state)
{
    (void)state;
    char *dir = make_tmpdir(), *ref = make_tmpdir();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct tsdb *db = open_store(dir, true);
        fill(db, 0, NSAMP);
        raise(SIGKILL);
        _exit(1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct tsdb *want = open_store(ref, false);
    fill(want, 0, NSAMP);
    char *exp = dump_query(want, INT64_MIN, INT64_MAX, "__name__=hc", true);
    struct tsdb_stats ws;
    tsdb_stats(want, &ws);

    char *f0 = file0(dir);
    assert_true(fsize(f0) > TSDB_HCF_HEADER);
    free(f0);
    struct tsdb *db = open_store(dir, true);
    char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    assert_string_equal(exp, got);
    struct tsdb_stats gs;
    tsdb_stats(db, &gs);
    assert_int_equal(gs.num_series, ws.num_series);
    assert_int_equal(gs.num_chunks, ws.num_chunks);
    assert_int_equal(gs.min_time, ws.min_time);
    assert_int_equal(gs.max_time, ws.max_time);
    /* Closed chunks came back as file references, not copies. */
    struct tsdb_series *s = tsdb_head_series_by_ref(&db->head, 1);
    assert_non_null(s);
    assert_int_equal(s->nchunks, 2);
    assert_false(s->chunks[0].ref & TSDB_HCHUNK_MEM);
    /* Both keep going alike. */
    fill(db, NSAMP, NSAMP + 130);
    fill(want, NSAMP, NSAMP + 130);
    free(exp);
    free(got);
    exp = dump_query(want, INT64_MIN, INT64_MAX, "__name__=hc", true);
    got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    assert_string_equal(exp, got);
    tsdb_close(db);
    tsdb_close(want);
    free(exp);
    free(got);
    rmrf(dir);
    rmrf(ref);
    free(dir);
    free(ref);
}

static void test_snapshot_on_close(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_store(dir, true);
    fill(db, 0, NSAMP);
    char *exp = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    struct tsdb_stats st1;
    tsdb_stats(db, &st1);
    tsdb_close(db);
    assert_false(has_segment_data(dir)); /* all folded into the snapshot */

    db = open_store(dir, true);
    char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    assert_string_equal(exp, got);
    struct tsdb_stats st2;
    tsdb_stats(db, &st2);
    assert_int_equal(st2.num_series, st1.num_series);
    assert_int_equal(st2.num_chunks, st1.num_chunks);
    assert_int_equal(st2.max_time, st1.max_time);
    /* The newest sample's value came back: a repeat is accepted, a
     * different value at the same time is a duplicate. */
    struct tsdb_appender *a = tsdb_appender_new(db);
    assert_int_equal(add_spec(a, "__name__=hc,i=1", 15000 * (NSAMP - 1), (NSAMP - 1) * 0.5), 0);
    assert_int_equal(add_spec(a, "__name__=hc,i=3", 15000 * (NSAMP - 1), 42), BS_EDUPLICATE);
    tsdb_appender_rollback(a);
    /* A snapshot, more samples without one, a crash-like reopen. */
    fill(db, NSAMP, NSAMP + 50);
    free(exp);
    exp = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    db->opts.head_snapshot_on_close = false;
    tsdb_close(db);
    db = open_store(dir, true);
    free(got);
    got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    assert_string_equal(exp, got);
    tsdb_close(db);
    free(exp);
    free(got);
    rmrf(dir);
    free(dir);
}

/* The one checkpoint directory of dir (NULL if none). */
static char *checkpoint_dir(const char *dir)
{
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s/wal", dir);
    DIR *d = opendir(wal);
    assert_non_null(d);
    char *found = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "checkpoint.", 11) == 0) {
            assert_null(found);
            found = malloc(4500);
            snprintf(found, 4500, "%s/%s", wal, de->d_name);
        }
    }
    closedir(d);
    return found;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Rewrite a head checkpoint from its two files (series records in
 * 00000000, open chunks records in 00000001) into the single file of
 * earlier versions, whose records alternate: series, open chunks, ... */
static void interleave_checkpoint(const char *ckdir)
{
    char p0[4600], p1[4600];
    snprintf(p0, sizeof(p0), "%s/00000000", ckdir);
    snprintf(p1, sizeof(p1), "%s/00000001", ckdir);
    size_t l0, l1, o0 = 0, o1 = 0;
    uint8_t *b0 = slurp(p0, &l0), *b1 = slurp(p1, &l1);
    FILE *f = fopen(p0, "wb");
    assert_non_null(f);
    size_t recs = 0;
    while (o0 < l0 || o1 < l1) {
        if (o0 < l0) {
            assert_int_equal(b0[o0], TSDB_WAL_REC_SERIES);
            size_t n = TSDB_WAL_HEADER + bs_get_be32(b0 + o0 + 1);
            assert_int_equal(fwrite(b0 + o0, 1, n, f), n);
            o0 += n;
            recs++;
        }
        if (o1 < l1) {
            assert_int_equal(b1[o1], TSDB_WAL_REC_OPEN_STATE);
            size_t n = TSDB_WAL_HEADER + bs_get_be32(b1 + o1 + 1);
            assert_int_equal(fwrite(b1 + o1, 1, n, f), n);
            o1 += n;
            recs++;
        }
    }
    assert_true(recs >= 2);
    fclose(f);
    assert_int_equal(unlink(p1), 0);
    free(b0);
    free(b1);
}

static void test_snapshot_layouts(void **state)
{
    (void)state;
    for (int interleaved = 0; interleaved < 2; interleaved++) {
        char *dir = make_tmpdir();
        struct tsdb *db = open_store(dir, true);
        fill(db, 0, NSAMP);
        char *exp = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
        tsdb_close(db);
        char *ck = checkpoint_dir(dir);
        assert_non_null(ck);
        char p1[4600];
        snprintf(p1, sizeof(p1), "%s/00000001", ck);
        assert_true(fsize(p1) > 0); /* open chunks in a file of their own */
        if (interleaved)
            interleave_checkpoint(ck);
        free(ck);

        db = open_store(dir, true);
        char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
        assert_string_equal(exp, got);
        struct tsdb_series *s = tsdb_head_series_by_ref(&db->head, 1);
        assert_non_null(s);
        assert_int_equal(s->nchunks, 2);
        assert_false(s->chunks[0].ref & TSDB_HCHUNK_MEM);
        free(got);
        /* A series born after the snapshot, with a closed chunk in a file,
         * then a crash-like close: its series record comes after the head
         * chunk files were scanned and attached. */
        struct tsdb_appender *a;
        for (int k = 0; k < 130; k++) {
            a = tsdb_appender_new(db);
            assert_int_equal(add_spec(a, "__name__=hc,i=late", 15000 * (NSAMP + k), k), 0);
            assert_int_equal(tsdb_appender_commit(a, NULL), 0);
        }
        free(exp);
        exp = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
        db->opts.head_snapshot_on_close = false;
        tsdb_close(db);
        db = open_store(dir, true);
        got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
        assert_string_equal(exp, got);
        s = tsdb_head_series_by_ref(&db->head, NSER + 1);
        assert_non_null(s);
        assert_int_equal(s->nchunks, 1);
        assert_false(s->chunks[0].ref & TSDB_HCHUNK_MEM);
        tsdb_close(db);
        free(exp);
        free(got);
        rmrf(dir);
        free(dir);
    }
}

/* A compaction after a restart from a two-file head snapshot: the
 * compaction checkpoint re-reads both files (series, then open chunks)
 * and the segments after them; a crash-like reopen then holds exactly
 * what the store held. */
static void test_snapshot_then_compaction(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct tsdb *db = open_store(dir, true);
    fill(db, 0, 700); /* 2.9 h: nothing to compact yet */
    tsdb_close(db);
    db = open_store(dir, true);
    fill(db, 700, 1000); /* 4.2 h: the first 2 h go to a block */
    struct bs_error err = {0};
    if (tsdb_compact_now(db, &err))
        fail_msg("compact: %s", err.msg);
    struct tsdb_stats st;
    tsdb_stats(db, &st);
    assert_int_equal(st.num_blocks, 1);
    char *exp = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    db->opts.head_snapshot_on_close = false;
    tsdb_close(db);
    db = open_store(dir, true);
    char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=hc", true);
    assert_string_equal(exp, got);
    tsdb_close(db);
    free(exp);
    free(got);
    rmrf(dir);
    free(dir);
}

/* Interleaved (earlier versions') and two-file snapshots of more series
 * than one record holds (4096), so that replay meets series records
 * whose series the helper thread has not made yet when the open chunks
 * record after them arrives. */
#define MANY 9000

static void fill_many(struct tsdb *db, int from, int to)
{
    char spec[64];
    for (int k = from; k < to; k++) {
        struct tsdb_appender *a = tsdb_appender_new(db);
        for (int i = 0; i < MANY; i++) {
            snprintf(spec, sizeof(spec), "__name__=many,i=%d", i);
            assert_int_equal(add_spec(a, spec, 15000 * k, (double)(k * (i % 5))), 0);
        }
        assert_int_equal(tsdb_appender_commit(a, NULL), 0);
    }
}

static void test_snapshot_layouts_many(void **state)
{
    (void)state;
    for (int interleaved = 0; interleaved < 2; interleaved++) {
        char *dir = make_tmpdir();
        struct tsdb *db = open_store(dir, true);
        fill_many(db, 0, 130); /* a closed chunk in a file and an open one */
        char *exp = dump_query(db, INT64_MIN, INT64_MAX, "__name__=many", true);
        struct tsdb_stats st1;
        tsdb_stats(db, &st1);
        tsdb_close(db);
        if (interleaved) {
            char *ck = checkpoint_dir(dir);
            assert_non_null(ck);
            interleave_checkpoint(ck);
            free(ck);
        }
        db = open_store(dir, true);
        char *got = dump_query(db, INT64_MIN, INT64_MAX, "__name__=many", true);
        assert_string_equal(exp, got);
        struct tsdb_stats st2;
        tsdb_stats(db, &st2);
        assert_int_equal(st2.num_series, st1.num_series);
        assert_int_equal(st2.num_chunks, st1.num_chunks);
        db->opts.head_snapshot_on_close = false;
        tsdb_close(db);
        free(exp);
        free(got);
        rmrf(dir);
        free(dir);
    }
}

int main(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_torn_and_corrupt_tail),
        cmocka_unit_test(test_encoder_restore),
        cmocka_unit_test(test_kill_reopen),
        cmocka_unit_test(test_snapshot_on_close),
        cmocka_unit_test(test_snapshot_layouts),
        cmocka_unit_test(test_snapshot_then_compaction),
        cmocka_unit_test(test_snapshot_layouts_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
