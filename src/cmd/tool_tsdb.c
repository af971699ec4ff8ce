/* SPDX-License-Identifier: Apache-2.0
 *
 * bongsutool tsdb list and tsdb analyze: read-only views of the blocks in
 * a data directory, printed in promtool's layout so that scripts written
 * for `promtool tsdb list|analyze` read ours too.
 *
 * Blocks are opened with the engine's own reader (tsdb_block_open: mmap,
 * CRC-checked entries), never through a struct tsdb, so no lock file is
 * taken, no WAL is replayed and a running bongsu is not disturbed. A block
 * that the server deletes meanwhile stays readable through the mapping.
 *
 * Analyze walks every series of one block once. Counters are kept per row
 * of the block's postings offset table, which already lists each distinct
 * (name, value) pair in sorted order: a series' label is found there by
 * binary search, so no hash table of strings is needed and the memory is
 * proportional to the number of distinct pairs.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/tool.h"
#include "tsdb/tsdb_int.h"

/* ------------------------------------------------------------- formats */

/* Go's time.Duration.String() for a whole number of milliseconds:
 * "0s", "500ms", "12m0.001s", "1h46m0s". */
static void fmt_go_duration(int64_t ms, char *dst, size_t cap)
{
    if (ms == 0) {
        snprintf(dst, cap, "0s");
        return;
    }
    const char *sign = ms < 0 ? "-" : "";
    uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (u < 1000) {
        snprintf(dst, cap, "%s%" PRIu64 "ms", sign, u);
        return;
    }
    uint64_t secs = u / 1000, frac = u % 1000;
    char s[40];
    if (frac) {
        char f[8];
        snprintf(f, sizeof(f), "%03" PRIu64, frac);
        size_t k = strlen(f);
        while (k > 0 && f[k - 1] == '0')
            f[--k] = '\0';
        snprintf(s, sizeof(s), "%" PRIu64 ".%ss", secs % 60, f);
    } else {
        snprintf(s, sizeof(s), "%" PRIu64 "s", secs % 60);
    }
    uint64_t mins = secs / 60 % 60, hours = secs / 3600;
    if (hours)
        snprintf(dst, cap, "%s%" PRIu64 "h%" PRIu64 "m%s", sign, hours, mins, s);
    else if (secs >= 60)
        snprintf(dst, cap, "%s%" PRIu64 "m%s", sign, mins, s);
    else
        snprintf(dst, cap, "%s%s", sign, s);
}

/* A block time as promtool prints it: milliseconds, or with -r the UTC
 * date of the second (Go's Time.String(): "2023-11-14 22:13:20 +0000 UTC"). */
static void fmt_time(int64_t ms, bool human, char *dst, size_t cap)
{
    if (!human) {
        snprintf(dst, cap, "%" PRId64, ms);
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(dst, cap, "%" PRId64, ms);
        return;
    }
    strftime(dst, cap, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
}

/* Bytes as promtool prints them with -r: every non-zero base-1024 digit
 * with its unit, largest first ("2KiB172B", "1MiB", "0B"). */
static void fmt_bytes(uint64_t n, bool human, char *dst, size_t cap)
{
    if (!human) {
        snprintf(dst, cap, "%" PRIu64, n);
        return;
    }
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    char parts[7][32];
    size_t np = 0;
    for (size_t i = 0; i < 7; i++) {
        uint64_t digit = n % 1024;
        if (digit || (i == 0 && n == 0))
            snprintf(parts[np++], sizeof(parts[0]), "%" PRIu64 "%s", digit, units[i]);
        n /= 1024;
        if (n == 0)
            break;
    }
    size_t off = 0;
    dst[0] = '\0';
    while (np > 0 && off < cap) {
        int k = snprintf(dst + off, cap - off, "%s", parts[--np]);
        if (k < 0)
            break;
        off += (size_t)k;
    }
}

/* ------------------------------------------------------------- blocks */

/* Names of the block directories under dir (valid ULIDs holding a
 * meta.json), malloc'd. Returns 0, or 1 with a message when dir cannot
 * be read. */
static int list_block_dirs(const char *dir, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bongsutool: error: cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(d)) != NULL) {
        if (!tsdb_ulid_valid(de->d_name))
            continue;
        char meta[4200];
        struct stat st;
        snprintf(meta, sizeof(meta), "%s/%s/meta.json", dir, de->d_name);
        if (stat(meta, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = bs_xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = bs_xstrdup(de->d_name);
    }
    closedir(d);
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int cmp_block_mint(const void *a, const void *b)
{
    const struct tsdb_block *x = *(const struct tsdb_block *const *)a;
    const struct tsdb_block *y = *(const struct tsdb_block *const *)b;
    if (x->meta.mint != y->meta.mint)
        return x->meta.mint < y->meta.mint ? -1 : 1;
    return strcmp(x->meta.ulid, y->meta.ulid);
}

/* Open the blocks parent/names[i], sorted by min time. Unreadable blocks
 * are reported on stderr and *bad is set. *out malloc'd. */
static void open_blocks(const char *parent, char **names, size_t n, struct tsdb_block ***out,
                        size_t *nout, bool *bad)
{
    *out = bs_xcalloc(n ? n : 1, sizeof(**out));
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", parent, names[i]);
        struct bs_error err = {0};
        struct tsdb_block *b;
        if (tsdb_block_open(path, &b, &err) != 0) {
            fprintf(stderr, "bongsutool: error: cannot read block %s: %s\n", path, err.msg);
            *bad = true;
            continue;
        }
        (*out)[(*nout)++] = b;
    }
    if (*nout > 1)
        qsort(*out, *nout, sizeof(**out), cmp_block_mint);
}

static void close_blocks(struct tsdb_block **bl, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tsdb_block_unref(bl[i]);
    free(bl);
}

#define LIST_COLS 8

int tool_print_blocks(const char *parent, char **names, size_t n, bool header, bool human_readable)
{
    bool bad = false;
    struct tsdb_block **bl;
    size_t nb;
    open_blocks(parent, names, n, &bl, &nb, &bad);
    /* Cells, then promtool's tabwriter layout: every column but the last
     * as wide as its widest cell plus 2, at least 13. */
    size_t rows = nb + 1;
    char(*cells)[LIST_COLS][64] = bs_xcalloc(rows, sizeof(*cells));
    static const char *const head[LIST_COLS] = {"BLOCK ULID", "MIN TIME",    "MAX TIME",
                                                "DURATION",   "NUM SAMPLES", "NUM CHUNKS",
                                                "NUM SERIES", "SIZE"};
    for (size_t c = 0; c < LIST_COLS; c++)
        snprintf(cells[0][c], sizeof(cells[0][c]), "%s", head[c]);
    for (size_t i = 0; i < nb; i++) {
        const struct tsdb_block_meta *m = &bl[i]->meta;
        char(*row)[64] = cells[i + 1];
        snprintf(row[0], 64, "%s", m->ulid);
        fmt_time(m->mint, human_readable, row[1], 64);
        fmt_time(m->maxt, human_readable, row[2], 64);
        fmt_go_duration(m->maxt - m->mint, row[3], 64);
        snprintf(row[4], 64, "%" PRIu64, m->num_samples);
        snprintf(row[5], 64, "%" PRIu64, m->num_chunks);
        snprintf(row[6], 64, "%" PRIu64, m->num_series);
        fmt_bytes(bl[i]->bytes, human_readable, row[7], 64);
    }
    size_t width[LIST_COLS] = {0};
    for (size_t r = header ? 0 : 1; r < rows; r++)
        for (size_t c = 0; c + 1 < LIST_COLS; c++) {
            size_t w = strlen(cells[r][c]) + 2;
            if (w < 13)
                w = 13;
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = header ? 0 : 1; r < rows; r++) {
        for (size_t c = 0; c + 1 < LIST_COLS; c++)
            printf("%-*s", (int)width[c], cells[r][c]);
        printf("%s\n", cells[r][LIST_COLS - 1]);
    }
    free(cells);
    close_blocks(bl, nb);
    return bad ? 1 : 0;
}

int tool_tsdb_list(const char *dir, bool human_readable)
{
    char **names;
    size_t n;
    if (list_block_dirs(dir, &names, &n) != 0)
        return 1;
    int rc = tool_print_blocks(dir, names, n, true, human_readable);
    free_names(names, n);
    return rc;
}

/* ------------------------------------------------------------- analyze */

struct rank {               /* one line of an analyze list */
    const char *key, *key2; /* "key" or "key=key2" */
    uint64_t value;
};

/* Largest value first; ties in key order, so the output is stable. */
static int cmp_rank(const void *a, const void *b)
{
    const struct rank *x = a, *y = b;
    if (x->value != y->value)
        return x->value > y->value ? -1 : 1;
    int c = strcmp(x->key, y->key);
    if (c || !x->key2 || !y->key2)
        return c;
    return strcmp(x->key2, y->key2);
}

static void print_ranks(const char *title, struct rank *r, size_t n, size_t limit)
{
    printf("\n%s\n", title);
    qsort(r, n, sizeof(*r), cmp_rank);
    for (size_t i = 0; i < n && i < limit; i++) {
        if (r[i].key2)
            printf("%" PRIu64 " %s=%s\n", r[i].value, r[i].key, r[i].key2);
        else
            printf("%" PRIu64 " %s\n", r[i].value, r[i].key);
    }
}

/* Row of (name, value) in the postings offset table, or SIZE_MAX. */
static size_t po_find(const struct tsdb_block *b, const char *name, const char *value)
{
    size_t lo = 0, hi = b->npo;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->po[mid].name, name);
        if (c == 0)
            c = strcmp(b->po[mid].value, value);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

/* Per-row and per-name counters of one block. */
struct analysis {
    uint64_t *pair_series;    /* [npo] series carrying the pair */
    uint64_t *pair_uncovered; /* [npo] ms of the block not covered, summed */
    size_t *name_of;          /* [npo] index into names */
    const char **names;       /* distinct label names, sorted */
    uint64_t *name_uncovered;
    uint64_t *name_values; /* distinct values */
    uint64_t *name_length; /* their summed byte lengths */
    size_t nnames;
    uint64_t series, entries;
};

static int analyze_block(struct tsdb_block *b, struct analysis *a, struct bs_error *err)
{
    size_t npo = b->npo;
    a->pair_series = bs_xcalloc(npo + 1, sizeof(uint64_t));
    a->pair_uncovered = bs_xcalloc(npo + 1, sizeof(uint64_t));
    a->name_of = bs_xcalloc(npo + 1, sizeof(size_t));
    a->names = bs_xcalloc(npo + 1, sizeof(char *));
    a->name_uncovered = bs_xcalloc(npo + 1, sizeof(uint64_t));
    a->name_values = bs_xcalloc(npo + 1, sizeof(uint64_t));
    a->name_length = bs_xcalloc(npo + 1, sizeof(uint64_t));
    /* The table is sorted by name, then value: names come in runs. */
    for (size_t i = 0; i < npo; i++) {
        const struct tsdb_postings_entry *e = &b->po[i];
        if (!e->name[0])
            continue; /* the all-series list, if listed */
        if (a->nnames == 0 || strcmp(a->names[a->nnames - 1], e->name) != 0)
            a->names[a->nnames++] = e->name;
        size_t k = a->nnames - 1;
        a->name_of[i] = k;
        a->name_values[k]++;
        a->name_length[k] += strlen(e->value);
    }
    uint64_t *ids = NULL;
    size_t nids = 0;
    int rc = tsdb_block_postings_all(b, &ids, &nids);
    if (rc)
        return bs_error_set(err, rc, "block %s: cannot read the series list: %s", b->meta.ulid,
                            bs_strerror(rc));
    struct bs_arena arena;
    bs_arena_init(&arena, 64 * 1024, 0);
    struct tsdb_chunk_meta *chks = NULL;
    size_t nchks = 0, chks_cap = 0;
    uint64_t span = (uint64_t)(b->meta.maxt - b->meta.mint);
    for (size_t i = 0; i < nids && rc == 0; i++) {
        struct labels ls;
        bs_arena_reset(&arena);
        rc = tsdb_block_series(b, ids[i], &arena, &ls, &chks, &nchks, &chks_cap);
        if (rc) {
            bs_error_set(err, rc, "block %s: series %" PRIu64 ": %s", b->meta.ulid, ids[i],
                         bs_strerror(rc));
            break;
        }
        a->series++;
        uint64_t uncovered = span;
        if (nchks > 0) {
            uint64_t covered = (uint64_t)(chks[nchks - 1].maxt - chks[0].mint);
            uncovered = covered < span ? span - covered : 0;
        }
        for (size_t j = 0; j < ls.n; j++) {
            size_t row = po_find(b, ls.v[j].name, ls.v[j].value);
            if (row == SIZE_MAX) {
                rc = bs_error_set(err, BS_ECORRUPT,
                                  "block %s: label %s=\"%s\" of series %" PRIu64
                                  " is missing from the postings table",
                                  b->meta.ulid, ls.v[j].name, ls.v[j].value, ids[i]);
                break;
            }
            a->pair_series[row]++;
            a->pair_uncovered[row] += uncovered;
            a->name_uncovered[a->name_of[row]] += uncovered;
            a->entries++;
        }
    }
    free(chks);
    free(ids);
    bs_arena_fini(&arena);
    return rc;
}

static void analysis_fini(struct analysis *a)
{
    free(a->pair_series);
    free(a->pair_uncovered);
    free(a->name_of);
    free(a->names);
    free(a->name_uncovered);
    free(a->name_values);
    free(a->name_length);
}

static void print_analysis(const struct tsdb_block *b, const struct analysis *a, size_t limit)
{
    char dur[64];
    int64_t span = b->meta.maxt - b->meta.mint;
    fmt_go_duration(span, dur, sizeof(dur));
    size_t pairs = 0;
    for (size_t i = 0; i < b->npo; i++)
        pairs += b->po[i].name[0] && a->pair_series[i] > 0;
    printf("Block ID: %s\n", b->meta.ulid);
    printf("Duration: %s\n", dur);
    printf("Series: %" PRIu64 "\n", a->series);
    printf("Label names: %zu\n", a->nnames);
    printf("Postings (unique label pairs): %zu\n", pairs);
    printf("Postings entries (total label pairs): %" PRIu64 "\n", a->entries);

    size_t cap = (b->npo > a->nnames ? b->npo : a->nnames) + 1;
    struct rank *r = bs_xcalloc(cap, sizeof(*r));
    double dspan = span > 0 ? (double)span : 1.0;
    size_t n = 0;
    for (size_t i = 0; i < b->npo; i++)
        if (b->po[i].name[0] && a->pair_series[i])
            r[n++] = (struct rank){b->po[i].name, b->po[i].value,
                                   (uint64_t)((double)a->pair_uncovered[i] / dspan)};
    print_ranks("Label pairs most involved in churning:", r, n, limit);

    n = 0;
    for (size_t k = 0; k < a->nnames; k++)
        r[n++] = (struct rank){a->names[k], NULL, (uint64_t)((double)a->name_uncovered[k] / dspan)};
    print_ranks("Label names most involved in churning:", r, n, limit);

    n = 0;
    for (size_t i = 0; i < b->npo; i++)
        if (b->po[i].name[0] && a->pair_series[i])
            r[n++] = (struct rank){b->po[i].name, b->po[i].value, a->pair_series[i]};
    print_ranks("Most common label pairs:", r, n, limit);

    n = 0;
    for (size_t k = 0; k < a->nnames; k++)
        r[n++] = (struct rank){a->names[k], NULL, a->name_length[k]};
    print_ranks("Label names with highest cumulative label value length:", r, n, limit);

    n = 0;
    for (size_t k = 0; k < a->nnames; k++)
        r[n++] = (struct rank){a->names[k], NULL, a->name_values[k]};
    print_ranks("Highest cardinality labels:", r, n, limit);

    n = 0;
    for (size_t i = 0; i < b->npo; i++)
        if (strcmp(b->po[i].name, LABELS_METRIC_NAME) == 0 && a->pair_series[i])
            r[n++] = (struct rank){b->po[i].value, NULL, a->pair_series[i]};
    print_ranks("Highest cardinality metric names:", r, n, limit);
    free(r);
}

int tool_tsdb_analyze(const char *dir, const char *block_id, size_t limit)
{
    char **names;
    size_t n;
    if (list_block_dirs(dir, &names, &n) != 0)
        return 1;
    struct tsdb_block **bl;
    size_t nb;
    bool bad = false;
    open_blocks(dir, names, n, &bl, &nb, &bad);
    free_names(names, n);
    struct tsdb_block *b = NULL;
    if (block_id) {
        for (size_t i = 0; i < nb && !b; i++)
            if (strcmp(bl[i]->meta.ulid, block_id) == 0)
                b = bl[i];
        if (!b) {
            fprintf(stderr, "bongsutool: error: block %s not found in %s\n", block_id, dir);
            close_blocks(bl, nb);
            return 1;
        }
    } else if (nb > 0) {
        b = bl[nb - 1];
    } else {
        fprintf(stderr, "bongsutool: error: no blocks found in %s\n", dir);
        close_blocks(bl, nb);
        return 1;
    }
    struct analysis a = {0};
    struct bs_error err = {0};
    int rc = analyze_block(b, &a, &err);
    if (rc == 0)
        print_analysis(b, &a, limit);
    else
        fprintf(stderr, "bongsutool: error: %s\n", err.msg);
    analysis_fini(&a);
    close_blocks(bl, nb);
    return rc ? 1 : 0;
}
