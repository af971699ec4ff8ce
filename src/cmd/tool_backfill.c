/* SPDX-License-Identifier: Apache-2.0
 *
 * bongsutool tsdb create-blocks-from openmetrics FILE DIR: backfill.
 *
 * The file is mapped and parsed once with the OpenMetrics parser, which
 * enforces the whole format ("# EOF" last, families contiguous, ...).
 * Every sample must carry its own timestamp. Samples are XOR-encoded as
 * they arrive, per series, into chunks of at most TSDB_CHUNK_MAX_SAMPLES
 * that never cross a 2 h boundary, exactly as the head cuts them; so
 * memory holds the compressed samples (about 1-2 bytes each) plus one
 * label set per series, not 16 bytes per sample, and the input is read
 * only once (promtool re-parses the whole file for every block).
 *
 * Blocks. Time is divided into windows of the block duration (2 h by
 * default; with --max-block-duration the largest 2 h * 3^k not above it,
 * as promtool and the compactor's ranges agree), aligned to multiples of
 * it. Each window with samples becomes one level-1 block written by
 * tsdb_block_write_dense (atomic: built in <ulid>.tmp, renamed): each
 * series' chunks of the window are re-encoded as dense chunks, with the
 * time column of series that share their timestamps (one scrape target)
 * stored once, as in merged blocks; its meta.json spans [first sample,
 * last sample + 1) like promtool's. Since
 * windows are multiples of 2 h, a chunk belongs to exactly one window.
 * bongsu loads such blocks like any other, and its compactor may merge
 * them later; the head then accepts only samples newer than the last
 * backfilled block.
 *
 * Order. Within a series, timestamps must increase. A repeated timestamp
 * with the bit-identical value is ignored (as the appender does); another
 * value there, or an older timestamp, fails the import naming both lines,
 * as promtool fails on an out-of-order sample. Nothing is written before
 * the whole file has parsed, so a bad file leaves DIR untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/tool.h"
#include "expfmt/expfmt.h"
#include "tsdb/tsdb_int.h"

struct bf_chunk {
    int64_t mint, maxt;
    uint8_t *data;
    uint32_t len;
    uint16_t n;
};

struct bf_series {
    struct labels *ls; /* labels_dup'd */
    uint64_t hash;
    struct bf_chunk *chunks; /* closed, oldest first */
    size_t nchunks, cap, cursor;
    struct tsdb_xor_enc open;
    int64_t last_t;
    uint64_t last_v;
    size_t last_line;
};

struct backfill {
    const char *file;
    int64_t block_ms;
    struct bf_series **table; /* open addressing by hash */
    size_t buckets, nseries;
    struct bf_series **all; /* in arrival order */
    size_t all_cap;
    uint64_t samples;
};

/* --------------------------------------------------------- error text */

/* Turn the parser's "line N, column C: what" (or "line N: what") into
 * "FILE:N:C: what" so every message names the file like the config's. */
static void report_parse_error(const char *file, const char *msg)
{
    unsigned long line = 0, col = 0;
    int used = 0;
    if (sscanf(msg, "line %lu, column %lu: %n", &line, &col, &used) == 2 && used > 0)
        fprintf(stderr, "bongsutool: error: %s:%lu:%lu: %s\n", file, line, col, msg + used);
    else if (sscanf(msg, "line %lu: %n", &line, &used) == 1 && used > 0)
        fprintf(stderr, "bongsutool: error: %s:%lu: %s\n", file, line, msg + used);
    else
        fprintf(stderr, "bongsutool: error: %s: %s\n", file, msg);
}

static void format_labels(const struct labels *ls, char *dst, size_t cap)
{
    struct bs_buf b;
    bs_buf_init(&b, 4096);
    if (labels_format(ls, &b) == 0 && b.data)
        snprintf(dst, cap, "%s", b.data);
    else
        snprintf(dst, cap, "<labels>");
    bs_buf_fini(&b);
}

/* ------------------------------------------------------------ series */

static struct bf_series *series_get(struct backfill *bf, const struct labels *ls)
{
    uint64_t h = labels_hash(ls);
    if ((bf->nseries + 1) * 2 > bf->buckets) {
        size_t nb = bf->buckets ? bf->buckets * 2 : 1024;
        struct bf_series **nt = bs_xcalloc(nb, sizeof(*nt));
        for (size_t i = 0; i < bf->buckets; i++) {
            struct bf_series *s = bf->table[i];
            if (!s)
                continue;
            size_t k = (size_t)s->hash & (nb - 1);
            while (nt[k])
                k = (k + 1) & (nb - 1);
            nt[k] = s;
        }
        free(bf->table);
        bf->table = nt;
        bf->buckets = nb;
    }
    size_t k = (size_t)h & (bf->buckets - 1);
    while (bf->table[k]) {
        struct bf_series *s = bf->table[k];
        if (s->hash == h && labels_equal(s->ls, ls))
            return s;
        k = (k + 1) & (bf->buckets - 1);
    }
    struct bf_series *s = bs_xcalloc(1, sizeof(*s));
    s->ls = labels_dup(ls);
    if (!s->ls) {
        free(s);
        return NULL;
    }
    s->hash = h;
    tsdb_xor_enc_init(&s->open);
    bf->table[k] = s;
    bf->nseries++;
    if (bf->nseries > bf->all_cap) {
        bf->all_cap = bf->all_cap ? bf->all_cap * 2 : 1024;
        bf->all = bs_xrealloc(bf->all, bf->all_cap * sizeof(*bf->all));
    }
    bf->all[bf->nseries - 1] = s;
    return s;
}

/* Move the open chunk of s, if any, to its closed list. */
static int series_close_chunk(struct bf_series *s)
{
    if (s->open.n == 0)
        return 0;
    size_t len = tsdb_xor_enc_bytes(&s->open);
    uint8_t *copy = malloc(len);
    if (!copy)
        return BS_ENOMEM;
    memcpy(copy, s->open.buf, len);
    if (s->nchunks == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->chunks = bs_xrealloc(s->chunks, s->cap * sizeof(*s->chunks));
    }
    s->chunks[s->nchunks++] =
        (struct bf_chunk){s->open.mint, s->open.t, copy, (uint32_t)len, s->open.n};
    tsdb_xor_enc_reset(&s->open);
    return 0;
}

static void series_free(struct bf_series *s)
{
    for (size_t i = 0; i < s->nchunks; i++)
        free(s->chunks[i].data);
    free(s->chunks);
    tsdb_xor_enc_fini(&s->open);
    free(s->ls);
    free(s);
}

/* Append one sample read at line; prints the error itself. */
static int series_append(struct backfill *bf, struct bf_series *s, int64_t t, double v, size_t line)
{
    uint64_t bits = bs_float_bits(v);
    if (s->open.n > 0 || s->nchunks > 0) {
        if (t == s->last_t && bits == s->last_v)
            return 0;
        if (t <= s->last_t) {
            char name[512];
            format_labels(s->ls, name, sizeof(name));
            fprintf(stderr,
                    "bongsutool: error: %s:%zu: %s sample for series %s: timestamp %" PRId64
                    " is %s the one at line %zu (%" PRId64 ")\n",
                    bf->file, line, t == s->last_t ? "duplicate" : "out of order", name, t,
                    t == s->last_t ? "the same as" : "older than", s->last_line, s->last_t);
            return t == s->last_t ? BS_EDUPLICATE : BS_EOUTOFORDER;
        }
    }
    if (s->open.n > 0 && (s->open.n >= TSDB_CHUNK_MAX_SAMPLES ||
                          tsdb_chunk_range_of(t) != tsdb_chunk_range_of(s->open.mint))) {
        if (series_close_chunk(s) != 0)
            goto nomem;
    }
    if (tsdb_xor_enc_append(&s->open, t, bits) != 0)
        goto nomem;
    s->last_t = t;
    s->last_v = bits;
    s->last_line = line;
    bf->samples++;
    return 0;
nomem:
    fprintf(stderr, "bongsutool: error: out of memory at %s:%zu\n", bf->file, line);
    return BS_ENOMEM;
}

/* ------------------------------------------------------------ parse */

static int parse_file(struct backfill *bf, const char *buf, size_t len)
{
    struct expfmt_parser p;
    expfmt_parser_init_format(&p, buf, len, EXPFMT_FORMAT_OPENMETRICS);
    struct labels_builder lb;
    labels_builder_init(&lb);
    int rc = 0;
    for (;;) {
        enum expfmt_entry kind;
        struct bs_error err = {0};
        rc = expfmt_parser_next(&p, &kind, &err);
        if (rc) {
            report_parse_error(bf->file, err.msg[0] ? err.msg : bs_strerror(rc));
            break;
        }
        if (kind == EXPFMT_EOF)
            break;
        if (kind != EXPFMT_SERIES)
            continue;
        const struct expfmt_series *es = expfmt_parser_series(&p);
        size_t line = expfmt_parser_lineno(&p);
        labels_builder_reset(&lb);
        rc = labels_builder_set(&lb, LABELS_METRIC_NAME, strlen(LABELS_METRIC_NAME), es->name,
                                es->name_len);
        for (size_t i = 0; rc == 0 && i < es->nlabels; i++)
            rc = labels_builder_set(&lb, es->labels[i].name, es->labels[i].name_len,
                                    es->labels[i].value, es->labels[i].value_len);
        struct labels ls;
        if (rc == 0)
            rc = labels_builder_labels(&lb, &ls, &err);
        if (rc) {
            fprintf(stderr, "bongsutool: error: %s:%zu: %s\n", bf->file, line,
                    err.msg[0] ? err.msg : bs_strerror(rc));
            break;
        }
        if (!es->has_timestamp) {
            char name[512];
            format_labels(&ls, name, sizeof(name));
            fprintf(stderr,
                    "bongsutool: error: %s:%zu: expected timestamp for series %s, got none\n",
                    bf->file, line, name);
            rc = BS_EPARSE;
            break;
        }
        struct bf_series *s = series_get(bf, &ls);
        if (!s) {
            fprintf(stderr, "bongsutool: error: out of memory at %s:%zu\n", bf->file, line);
            rc = BS_ENOMEM;
            break;
        }
        rc = series_append(bf, s, es->timestamp_ms, es->value, line);
        if (rc)
            break;
    }
    labels_builder_fini(&lb);
    expfmt_parser_fini(&p);
    for (size_t i = 0; rc == 0 && i < bf->nseries; i++)
        if (series_close_chunk(bf->all[i]) != 0) {
            fprintf(stderr, "bongsutool: error: out of memory\n");
            rc = BS_ENOMEM;
        }
    return rc;
}

/* ------------------------------------------------------------ write */

static int cmp_series(const void *a, const void *b)
{
    const struct bf_series *x = *(const struct bf_series *const *)a;
    const struct bf_series *y = *(const struct bf_series *const *)b;
    return labels_cmp(x->ls, y->ls);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Write one block per window with samples; the ULIDs written go to
 * *ulids (malloc'd strings). */
static int write_blocks(struct backfill *bf, const char *dir, char ***ulids, size_t *nulids)
{
    *ulids = NULL;
    *nulids = 0;
    qsort(bf->all, bf->nseries, sizeof(*bf->all), cmp_series);
    /* Distinct windows, ascending. */
    size_t nw = 0, wcap = 0;
    int64_t *wins = NULL;
    for (size_t i = 0; i < bf->nseries; i++) {
        const struct bf_series *s = bf->all[i];
        int64_t last = 0;
        for (size_t j = 0; j < s->nchunks; j++) {
            int64_t w = tsdb_range_of(s->chunks[j].mint, bf->block_ms);
            if (j > 0 && w == last)
                continue;
            last = w;
            if (nw == wcap) {
                wcap = wcap ? wcap * 2 : 64;
                wins = bs_xrealloc(wins, wcap * sizeof(*wins));
            }
            wins[nw++] = w;
        }
    }
    if (nw > 1)
        qsort(wins, nw, sizeof(*wins), cmp_i64);
    size_t uniq = 0;
    for (size_t i = 0; i < nw; i++)
        if (uniq == 0 || wins[uniq - 1] != wins[i])
            wins[uniq++] = wins[i];
    nw = uniq;

    int rc = 0;
    struct tsdb_bw_chunk *bw = NULL;
    size_t bw_cap = 0;
    struct tsdb_bw_series *bs = NULL;
    size_t bs_cap = 0;
    for (size_t wi = 0; wi < nw && rc == 0; wi++) {
        struct bs_error err = {0};
        /* The window's chunks, then one dense block of them (chunks
         * re-encoded with shared time columns, as merged blocks). */
        int64_t mint = INT64_MAX, maxt = INT64_MIN;
        size_t nbw = 0, nbs = 0;
        for (size_t i = 0; i < bf->nseries; i++) {
            struct bf_series *s = bf->all[i];
            size_t first = s->cursor, n = 0;
            while (s->cursor < s->nchunks &&
                   tsdb_range_of(s->chunks[s->cursor].mint, bf->block_ms) == wins[wi])
                s->cursor++;
            n = s->cursor - first;
            if (n == 0)
                continue;
            if (nbw + n > bw_cap) {
                bw_cap = (nbw + n) * 2;
                bw = bs_xrealloc(bw, bw_cap * sizeof(*bw));
            }
            if (nbs == bs_cap) {
                bs_cap = bs_cap ? bs_cap * 2 : 1024;
                bs = bs_xrealloc(bs, bs_cap * sizeof(*bs));
            }
            for (size_t j = 0; j < n; j++) {
                const struct bf_chunk *c = &s->chunks[first + j];
                bw[nbw + j] = (struct tsdb_bw_chunk){c->mint, c->maxt, c->data,
                                                     c->len,  c->n,    TSDB_CHUNK_ENC_XOR};
                if (c->mint < mint)
                    mint = c->mint;
                if (c->maxt > maxt)
                    maxt = c->maxt;
            }
            /* chunks pointer fixed up once bw stops moving */
            bs[nbs++] = (struct tsdb_bw_series){s->ls, (void *)(uintptr_t)nbw, n};
            nbw += n;
        }
        for (size_t i = 0; i < nbs; i++)
            bs[i].chunks = bw + (uintptr_t)bs[i].chunks;
        struct tsdb_block_meta meta = {.mint = mint, .maxt = maxt + 1, .level = 1};
        rc = tsdb_block_write_dense(dir, &meta, bs, nbs, &err);
        for (size_t i = 0; i < nbw; i++) /* written: the bytes are no longer needed */
            free((void *)bw[i].data);
        for (size_t i = 0; i < bf->nseries; i++) {
            struct bf_series *s = bf->all[i];
            for (size_t j = 0; j < s->cursor; j++)
                s->chunks[j].data = NULL;
        }
        if (rc) {
            fprintf(stderr, "bongsutool: error: writing a block into %s: %s\n", dir, err.msg);
            break;
        }
        *ulids = bs_xrealloc(*ulids, (*nulids + 1) * sizeof(**ulids));
        (*ulids)[(*nulids)++] = bs_xstrdup(meta.ulid);
    }
    free(bw);
    free(bs);
    free(wins);
    return rc;
}

/* mkdir -p. 0 or errno. */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return errno;
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int tool_backfill_openmetrics(const char *file, const char *dir, int64_t max_block_ms,
                              bool human_readable, bool quiet)
{
    /* 2 h, or the largest 2 h * 3^k (k < 10) not above the maximum. */
    int64_t block_ms = TSDB_CHUNK_RANGE_MS;
    for (int k = 1; k < TSDB_MAX_RANGES && block_ms * 3 <= max_block_ms; k++)
        block_ms *= 3;

    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "bongsutool: error: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "bongsutool: error: %s is not a regular file\n", file);
        close(fd);
        return 1;
    }
    const char *buf = "";
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "bongsutool: error: cannot map %s: %s\n", file, strerror(errno));
            close(fd);
            return 1;
        }
        buf = map;
    }
    close(fd);

    struct backfill bf = {.file = file, .block_ms = block_ms};
    int rc = parse_file(&bf, buf, len);
    char **ulids = NULL;
    size_t nulids = 0;
    if (rc == 0 && bf.samples == 0) {
        fprintf(stderr, "bongsutool: error: %s holds no samples\n", file);
        rc = BS_EINVAL;
    }
    if (rc == 0) {
        int e = make_dirs(dir);
        if (e) {
            fprintf(stderr, "bongsutool: error: cannot create output directory %s: %s\n", dir,
                    strerror(e));
            rc = BS_EIO;
        }
    }
    if (rc == 0)
        rc = write_blocks(&bf, dir, &ulids, &nulids);
    if (rc == 0 && !quiet && nulids > 0 &&
        tool_print_blocks(dir, ulids, nulids, true, human_readable) != 0)
        rc = BS_EIO;
    for (size_t i = 0; i < nulids; i++)
        free(ulids[i]);
    free(ulids);
    for (size_t i = 0; i < bf.nseries; i++)
        series_free(bf.all[i]);
    free(bf.all);
    free(bf.table);
    if (map)
        munmap(map, len);
    return rc ? 1 : 0;
}
