/* SPDX-License-Identifier: Apache-2.0
 *
 * Writing a block: chunk segment files, the index and meta.json, laid out
 * as docs/format/index.md and docs/format/chunks.md describe.
 *
 * Atomicity. Everything is written under parent/<ulid>.tmp: the chunk
 * segments first, then the index, then meta.json; each file is fsynced,
 * then the chunks directory and the block directory, and only then is the
 * directory renamed to parent/<ulid> and the parent fsynced. The rename is
 * the commit point: a crash before it leaves a *.tmp directory, which the
 * next open deletes; a crash after it leaves a complete block. Nothing in
 * a block is modified after the rename.
 *
 * Streaming. The writer (tsdb_block_writer_*) takes series one at a time
 * in label order and writes their chunks to the segments at once, keeping
 * only labels (borrowed) and chunk references for the index; a merge of
 * large blocks therefore never holds more than one series' chunks in
 * memory. tsdb_block_write() sorts an array of series and streams it.
 *
 * Layout decisions. Series are sorted by labels before anything is
 * written, so the chunks of one series are adjacent in the segments, and
 * series ids (file offset / 8 of the series entry) increase in label
 * order: every postings list, being sorted by id, is also in label order,
 * and a reader gets sorted series for free. Symbols are written with a
 * trailing NUL so a reader can hand out pointers into the mapping as C
 * strings. Postings are built from (name symbol, value symbol, series id)
 * triples sorted as integers, which orders them by (name, value) because
 * the symbol table itself is sorted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"

/* ---------------------------------------------------------------- ULID */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void tsdb_ulid_new(char out[TSDB_ULID_LEN + 1])
{
    uint8_t b[16];
    uint64_t ms = (uint64_t)bs_now_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    size_t got = 0;
    while (got < 10) {
        ssize_t k = getrandom(b + 6 + got, 10 - got, 0);
        if (k <= 0) {
            /* No entropy source: fall back to a time-and-address mix. */
            uint64_t x = bs_hash64(&ms, sizeof(ms)) ^ (uint64_t)bs_monotonic_ns();
            for (; got < 10; got++, x = x * UINT64_C(6364136223846793005) + 1)
                b[6 + got] = (uint8_t)(x >> 56);
            break;
        }
        got += (size_t)k;
    }
    /* 128 bits as 26 base32 digits, the first carrying the top 3 bits. */
    for (int i = 0; i < TSDB_ULID_LEN; i++) {
        int bit = 128 - 5 * (TSDB_ULID_LEN - i); /* may be negative for i = 0 */
        unsigned v = 0;
        for (int k = 0; k < 5; k++) {
            int pos = bit + k;
            if (pos < 0)
                continue;
            v = (v << 1) | ((b[pos / 8] >> (7 - pos % 8)) & 1u);
        }
        out[i] = crockford[v];
    }
    out[TSDB_ULID_LEN] = '\0';
}

bool tsdb_ulid_valid(const char *s)
{
    if (strlen(s) != TSDB_ULID_LEN || s[0] > '7')
        return false;
    for (size_t i = 0; i < TSDB_ULID_LEN; i++) {
        if (!s[i] || !strchr(crockford, s[i]))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------- file writer */

struct fwriter {
    int fd;
    const char *path; /* for messages; NULL = the writer's own copy */
    char pathbuf[4300];
    uint64_t off;
    uint8_t *buf;
    size_t len;
};

#define FW_BUF (1u << 20)

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? BS_ENOSPC : BS_EIO;
}

static int fw_open(struct fwriter *w, const char *path, struct bs_error *err)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->pathbuf, sizeof(w->pathbuf), "%s", path);
    w->path = w->pathbuf;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        return bs_error_set(err, errno_code(e), "cannot create %s: %s", path, strerror(e));
    }
    w->buf = malloc(FW_BUF);
    if (!w->buf) {
        close(w->fd);
        w->fd = -1;
        return bs_error_set(err, BS_ENOMEM, "out of memory writing %s", path);
    }
    return 0;
}

static int fw_flush(struct fwriter *w, struct bs_error *err)
{
    size_t done = 0;
    while (done < w->len) {
        ssize_t k = write(w->fd, w->buf + done, w->len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            return bs_error_set(err, errno_code(e), "writing %s failed: %s", w->path, strerror(e));
        }
        done += (size_t)k;
    }
    w->len = 0;
    return 0;
}

static int fw_write(struct fwriter *w, const void *p, size_t n, struct bs_error *err)
{
    const uint8_t *s = p;
    while (n > 0) {
        if (w->len == FW_BUF) {
            int rc = fw_flush(w, err);
            if (rc)
                return rc;
        }
        size_t k = FW_BUF - w->len < n ? FW_BUF - w->len : n;
        memcpy(w->buf + w->len, s, k);
        w->len += k;
        w->off += k;
        s += k;
        n -= k;
    }
    return 0;
}

static int fw_u32(struct fwriter *w, uint32_t v, struct bs_error *err)
{
    uint8_t b[4];
    bs_put_be32(b, v);
    return fw_write(w, b, 4, err);
}

static int fw_pad(struct fwriter *w, unsigned align, struct bs_error *err)
{
    static const uint8_t zeros[16];
    size_t k = (size_t)((align - w->off % align) % align);
    return k ? fw_write(w, zeros, k, err) : 0;
}

/* Flush, fsync and close; on error the file is closed too. */
static int fw_close(struct fwriter *w, struct bs_error *err)
{
    int rc = w->fd >= 0 ? fw_flush(w, err) : 0;
    if (rc == 0 && w->fd >= 0 && fsync(w->fd) != 0) {
        int e = errno;
        rc = bs_error_set(err, errno_code(e), "fsync of %s failed: %s", w->path, strerror(e));
    }
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    return rc;
}

static void fw_abort(struct fwriter *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
}

/* A small in-memory encoder for one entry (series, table). */
struct mbuf {
    uint8_t *p;
    size_t len, cap;
};

static void mb_reserve(struct mbuf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + n)
        ncap *= 2;
    b->p = bs_xrealloc(b->p, ncap);
    b->cap = ncap;
}

static void mb_uvarint(struct mbuf *b, uint64_t v)
{
    mb_reserve(b, 10);
    b->len += bs_put_uvarint(b->p + b->len, v);
}

static void mb_varint(struct mbuf *b, int64_t v)
{
    mb_reserve(b, 10);
    b->len += bs_put_varint(b->p + b->len, v);
}

static void mb_bytes(struct mbuf *b, const void *p, size_t n)
{
    mb_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void mb_u32(struct mbuf *b, uint32_t v)
{
    mb_reserve(b, 4);
    bs_put_be32(b->p + b->len, v);
    b->len += 4;
}

/* --------------------------------------------------------------- helpers */

int tsdb_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return rc;
}

static int cmp_bw_series(const void *a, const void *b)
{
    const struct tsdb_bw_series *x = a, *y = b;
    return labels_cmp(x->ls, y->ls);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct sym_table {
    const char **s; /* sorted, unique */
    uint64_t *ref;  /* offset of each in the symbols content */
    size_t n;
};

static size_t sym_index(const struct sym_table *t, const char *s)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->s[mid], s);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX; /* not reached: every label string is in the table */
}

struct post_triple {
    uint32_t name, value, id;
};

static int cmp_triple(const void *a, const void *b)
{
    const struct post_triple *x = a, *y = b;
    if (x->name != y->name)
        return x->name < y->name ? -1 : 1;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* -------------------------------------------------------------- writer */

/* One series as the index will list it: labels (borrowed until commit or
 * abort) and its chunks in w->chunks[first .. first + n). */
struct wr_series {
    const struct labels *ls;
    size_t first, n;
};

struct wr_chunk {
    int64_t mint, maxt;
    uint64_t ref; /* segment << 32 | offset */
};

struct tsdb_block_writer {
    char *parent;
    char tmp[4096];   /* parent/<ulid>.tmp */
    char final[4096]; /* parent/<ulid> */
    char ulid[TSDB_ULID_LEN + 1];
    struct fwriter seg; /* current chunk segment; fd -1 before the first */
    uint32_t segno;
    struct wr_series *series;
    size_t nseries, series_cap;
    struct wr_chunk *chunks;
    size_t nchunks, chunks_cap;
    uint64_t num_samples;
    const struct labels *last_ls; /* to check the order of add() */
    unsigned index_version;
};

int tsdb_block_writer_new(const char *parent, struct tsdb_block_writer **out, struct bs_error *err)
{
    *out = NULL;
    struct tsdb_block_writer *w = bs_xcalloc(1, sizeof(*w));
    w->seg.fd = -1;
    w->index_version = TSDB_INDEX_VERSION;
    tsdb_ulid_new(w->ulid);
    char chunks[4200];
    if ((size_t)snprintf(w->tmp, sizeof(w->tmp), "%s/%s.tmp", parent, w->ulid) >= sizeof(w->tmp) ||
        (size_t)snprintf(w->final, sizeof(w->final), "%s/%s", parent, w->ulid) >=
            sizeof(w->final)) {
        free(w);
        return bs_error_set(err, BS_EINVAL, "block path under %s is too long", parent);
    }
    snprintf(chunks, sizeof(chunks), "%s/chunks", w->tmp);
    if (mkdir(w->tmp, 0755) != 0 || mkdir(chunks, 0755) != 0) {
        int e = errno;
        tsdb_rmdir_all(w->tmp);
        free(w);
        return bs_error_set(err, errno_code(e), "cannot create %s: %s", chunks, strerror(e));
    }
    w->parent = bs_xstrdup(parent);
    *out = w;
    return 0;
}

const char *tsdb_block_writer_ulid(const struct tsdb_block_writer *w)
{
    return w->ulid;
}

static void writer_free(struct tsdb_block_writer *w)
{
    fw_abort(&w->seg);
    free(w->series);
    free(w->chunks);
    free(w->parent);
    free(w);
}

void tsdb_block_writer_abort(struct tsdb_block_writer *w)
{
    if (!w)
        return;
    fw_abort(&w->seg);
    tsdb_rmdir_all(w->tmp);
    writer_free(w);
}

/* Append one chunk record to the current segment (starting a new one when
 * it would pass TSDB_BLOCK_SEGMENT_MAX); *ref gets its address. */
static int write_chunk(struct tsdb_block_writer *w, const struct tsdb_bw_chunk *c, uint64_t *ref,
                       struct bs_error *err)
{
    uint8_t hdr[11];
    hdr[0] = c->enc ? c->enc : TSDB_CHUNK_ENC_XOR;
    size_t hl = 1 + bs_put_uvarint(hdr + 1, c->len);
    uint64_t rec = hl + c->len + 4;
    int rc;
    if (rec + 8 > TSDB_BLOCK_SEGMENT_MAX)
        return bs_error_set(err, BS_ELIMIT, "a chunk of %u bytes does not fit a segment", c->len);
    if (w->seg.fd < 0 || w->seg.off + rec > TSDB_BLOCK_SEGMENT_MAX) {
        if (w->seg.fd >= 0 && (rc = fw_close(&w->seg, err)) != 0)
            return rc;
        char path[4300];
        w->segno++;
        snprintf(path, sizeof(path), "%s/chunks/%06u", w->tmp, w->segno);
        if ((rc = fw_open(&w->seg, path, err)) != 0)
            return rc;
        uint8_t fh[8] = {0};
        bs_put_be32(fh, TSDB_CHUNKS_MAGIC);
        fh[4] = 1;
        if ((rc = fw_write(&w->seg, fh, 8, err)) != 0)
            return rc;
    }
    *ref = ((uint64_t)w->segno << 32) | w->seg.off;
    uint32_t crc = bs_crc32c(bs_crc32c(0, hdr, hl), c->data, c->len);
    rc = fw_write(&w->seg, hdr, hl, err);
    if (rc == 0)
        rc = fw_write(&w->seg, c->data, c->len, err);
    if (rc == 0)
        rc = fw_u32(&w->seg, crc, err);
    return rc;
}

int tsdb_block_writer_add(struct tsdb_block_writer *w, const struct labels *ls,
                          const struct tsdb_bw_chunk *chunks, size_t n, struct bs_error *err)
{
    return tsdb_block_writer_add_refs(w, ls, chunks, n, NULL, err);
}

int tsdb_block_writer_add_refs(struct tsdb_block_writer *w, const struct labels *ls,
                               const struct tsdb_bw_chunk *chunks, size_t n, uint64_t *refs,
                               struct bs_error *err)
{
    if (n == 0)
        return 0;
    if (w->last_ls && labels_cmp(w->last_ls, ls) >= 0)
        return bs_error_set(err, BS_EINVAL, "block writer: series added out of label order");
    if (w->nseries == w->series_cap) {
        w->series_cap = w->series_cap ? w->series_cap * 2 : 256;
        w->series = bs_xrealloc(w->series, w->series_cap * sizeof(*w->series));
    }
    if (w->nchunks + n > w->chunks_cap) {
        size_t ncap = w->chunks_cap ? w->chunks_cap : 1024;
        while (ncap < w->nchunks + n)
            ncap *= 2;
        w->chunks = bs_xrealloc(w->chunks, ncap * sizeof(*w->chunks));
        w->chunks_cap = ncap;
    }
    size_t first = w->nchunks;
    for (size_t i = 0; i < n; i++) {
        uint64_t ref;
        int rc = write_chunk(w, &chunks[i], &ref, err);
        if (rc) {
            w->nchunks = first;
            return rc;
        }
        w->chunks[w->nchunks++] = (struct wr_chunk){chunks[i].mint, chunks[i].maxt, ref};
        if (refs)
            refs[i] = ref;
        w->num_samples += chunks[i].nsamples;
    }
    w->series[w->nseries++] = (struct wr_series){ls, first, n};
    w->last_ls = ls;
    return 0;
}

/* --------------------------------------------------------------- index */

int tsdb_block_writer_set_index_version(struct tsdb_block_writer *w, unsigned version)
{
    if (version != 1 && version != TSDB_INDEX_VERSION)
        return BS_EINVAL;
    w->index_version = version;
    return 0;
}

/* A postings list being appended to an mbuf in the layout of the index
 * version: count and ids as u32 (1), or count and id deltas as uvarints
 * (2). */
struct postings_w {
    struct mbuf *mb;
    unsigned version;
    uint32_t prev;
};

static void pw_start(struct postings_w *pw, struct mbuf *mb, unsigned version, size_t n)
{
    *pw = (struct postings_w){mb, version, 0};
    if (version == 1)
        mb_u32(mb, (uint32_t)n);
    else
        mb_uvarint(mb, n);
}

static void pw_add(struct postings_w *pw, uint32_t id)
{
    if (pw->version == 1)
        mb_u32(pw->mb, id);
    else
        mb_uvarint(pw->mb, id - pw->prev);
    pw->prev = id;
}

static int write_index(const char *dir, const struct wr_series *series, size_t n,
                       const struct wr_chunk *chunks, unsigned version, struct bs_error *err)
{
    /* Series entries start at multiples of align; ids are offset / align. */
    const unsigned align = version == 1 ? 16 : 8;
    char path[4200];
    snprintf(path, sizeof(path), "%s/index", dir);
    struct sym_table st = {0};
    struct post_triple *tr = NULL;
    size_t ntr = 0, nlabels = 0;
    uint32_t *ids = NULL;
    struct mbuf mb = {0};
    struct fwriter w = {.fd = -1};
    int rc = 0;

    /* Symbols. */
    for (size_t i = 0; i < n; i++)
        nlabels += series[i].ls->n;
    st.s = malloc((2 * nlabels + 1) * sizeof(*st.s));
    tr = malloc((nlabels + 1) * sizeof(*tr));
    ids = malloc((n + 1) * sizeof(*ids));
    if (!st.s || !tr || !ids) {
        rc = bs_error_set(err, BS_ENOMEM, "out of memory building the index of %s", dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < series[i].ls->n; j++) {
            st.s[st.n++] = series[i].ls->v[j].name;
            st.s[st.n++] = series[i].ls->v[j].value;
        }
    }
    if (st.n > 1)
        qsort(st.s, st.n, sizeof(*st.s), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < st.n; i++) {
        if (u == 0 || strcmp(st.s[u - 1], st.s[i]) != 0)
            st.s[u++] = st.s[i];
    }
    st.n = u;
    st.ref = malloc((st.n + 1) * sizeof(*st.ref));
    if (!st.ref) {
        rc = bs_error_set(err, BS_ENOMEM, "out of memory building the index of %s", dir);
        goto done;
    }
    mb_u32(&mb, (uint32_t)st.n);
    for (size_t i = 0; i < st.n; i++) {
        size_t l = strlen(st.s[i]);
        st.ref[i] = mb.len;
        mb_uvarint(&mb, l);
        mb_bytes(&mb, st.s[i], l + 1);
    }

    if ((rc = fw_open(&w, path, err)) != 0)
        goto done;
    uint8_t fh[8] = {0};
    bs_put_be32(fh, TSDB_INDEX_MAGIC);
    fh[4] = (uint8_t)version;
    uint64_t toc[4];
    rc = fw_write(&w, fh, 8, err);
    /* symbols section: len, content, crc */
    toc[0] = w.off;
    if (rc == 0 && mb.len > UINT32_MAX)
        rc = bs_error_set(err, BS_ELIMIT, "symbol table of %s exceeds 4 GiB", dir);
    if (rc == 0)
        rc = fw_u32(&w, (uint32_t)mb.len, err);
    if (rc == 0)
        rc = fw_write(&w, mb.p, mb.len, err);
    if (rc == 0)
        rc = fw_u32(&w, bs_crc32c(0, mb.p, mb.len), err);

    /* series */
    if (rc == 0)
        rc = fw_pad(&w, 16, err);
    toc[1] = w.off;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = fw_pad(&w, align, err);
        if (rc)
            break;
        if (w.off / align > UINT32_MAX) {
            rc = bs_error_set(err, BS_ELIMIT, "index of %s exceeds %u GiB of series", dir,
                              4 * align);
            break;
        }
        ids[i] = (uint32_t)(w.off / align);
        const struct labels *ls = series[i].ls;
        mb.len = 0;
        mb_uvarint(&mb, ls->n);
        for (size_t j = 0; j < ls->n; j++) {
            size_t ni = sym_index(&st, ls->v[j].name), vi = sym_index(&st, ls->v[j].value);
            mb_uvarint(&mb, st.ref[ni]);
            mb_uvarint(&mb, st.ref[vi]);
            tr[ntr++] = (struct post_triple){(uint32_t)ni, (uint32_t)vi, ids[i]};
        }
        mb_uvarint(&mb, series[i].n);
        int64_t prev_maxt = 0;
        uint64_t prev_ref = 0;
        for (size_t j = 0; j < series[i].n; j++) {
            const struct wr_chunk *c = &chunks[series[i].first + j];
            if (j == 0) {
                mb_varint(&mb, c->mint);
                mb_uvarint(&mb, (uint64_t)c->maxt - (uint64_t)c->mint);
                mb_uvarint(&mb, c->ref);
            } else {
                mb_varint(&mb, (int64_t)((uint64_t)c->mint - (uint64_t)prev_maxt));
                mb_uvarint(&mb, (uint64_t)c->maxt - (uint64_t)c->mint);
                mb_varint(&mb, (int64_t)(c->ref - prev_ref));
            }
            prev_maxt = c->maxt;
            prev_ref = c->ref;
        }
        uint8_t lb[10];
        size_t ll = bs_put_uvarint(lb, mb.len);
        rc = fw_write(&w, lb, ll, err);
        if (rc == 0)
            rc = fw_write(&w, mb.p, mb.len, err);
        if (rc == 0)
            rc = fw_u32(&w, bs_crc32c(0, mb.p, mb.len), err);
    }

    /* postings: all series first, then one list per (name, value) */
    if (rc == 0)
        rc = fw_pad(&w, 16, err);
    toc[2] = w.off;
    struct mbuf table = {0};
    mb_u32(&table, 0); /* count, patched below */
    uint32_t nentries = 0;
    mb.len = 0;
    struct postings_w pw;
    pw_start(&pw, &mb, version, n);
    for (size_t i = 0; i < n; i++)
        pw_add(&pw, ids[i]);
    if (rc == 0)
        rc = fw_write(&w, mb.p, mb.len, err);
    if (rc == 0)
        rc = fw_u32(&w, bs_crc32c(0, mb.p, mb.len), err);
    if (ntr > 1)
        qsort(tr, ntr, sizeof(*tr), cmp_triple);
    for (size_t i = 0; i < ntr && rc == 0;) {
        size_t j = i;
        while (j < ntr && tr[j].name == tr[i].name && tr[j].value == tr[i].value)
            j++;
        mb_uvarint(&table, st.ref[tr[i].name]);
        mb_uvarint(&table, st.ref[tr[i].value]);
        mb_uvarint(&table, w.off);
        nentries++;
        mb.len = 0;
        pw_start(&pw, &mb, version, j - i);
        for (size_t x = i; x < j; x++)
            pw_add(&pw, tr[x].id);
        rc = fw_write(&w, mb.p, mb.len, err);
        if (rc == 0)
            rc = fw_u32(&w, bs_crc32c(0, mb.p, mb.len), err);
        i = j;
    }
    bs_put_be32(table.p, nentries);

    /* postings offset table */
    toc[3] = w.off;
    if (rc == 0 && table.len > UINT32_MAX)
        rc = bs_error_set(err, BS_ELIMIT, "postings table of %s exceeds 4 GiB", dir);
    if (rc == 0)
        rc = fw_u32(&w, (uint32_t)table.len, err);
    if (rc == 0)
        rc = fw_write(&w, table.p, table.len, err);
    if (rc == 0)
        rc = fw_u32(&w, bs_crc32c(0, table.p, table.len), err);
    free(table.p);

    /* TOC */
    if (rc == 0) {
        uint8_t tb[TSDB_INDEX_TOC_LEN];
        for (int i = 0; i < 4; i++)
            bs_put_be64(tb + 8 * i, toc[i]);
        bs_put_be32(tb + 32, bs_crc32c(0, tb, 32));
        rc = fw_write(&w, tb, sizeof(tb), err);
    }
    if (rc == 0)
        rc = fw_close(&w, err);
    else
        fw_abort(&w);
done:
    free(st.s);
    free(st.ref);
    free(tr);
    free(ids);
    free(mb.p);
    return rc;
}

/* ------------------------------------------------------------ meta.json */

int tsdb_block_meta_write(const char *blockdir, const struct tsdb_block_meta *m,
                          struct bs_error *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/meta.json", blockdir);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    bs_buf_printf(&b,
                  "{\n\t\"ulid\": \"%s\",\n\t\"minTime\": %lld,\n\t\"maxTime\": %lld,\n"
                  "\t\"stats\": {\n\t\t\"numSamples\": %llu,\n\t\t\"numSeries\": %llu,\n"
                  "\t\t\"numChunks\": %llu\n\t},\n\t\"compaction\": {\n\t\t\"level\": %d,\n"
                  "\t\t\"sources\": [",
                  m->ulid, (long long)m->mint, (long long)m->maxt,
                  (unsigned long long)m->num_samples, (unsigned long long)m->num_series,
                  (unsigned long long)m->num_chunks, m->level);
    for (size_t i = 0; i < m->nsources; i++)
        bs_buf_printf(&b, "%s\n\t\t\t\"%s\"", i ? "," : "", m->sources[i]);
    bs_buf_printf(&b, "%s]\n\t},\n\t\"version\": %d\n}\n", m->nsources ? "\n\t\t" : "", m->version);
    struct fwriter w;
    int rc = fw_open(&w, path, err);
    if (rc == 0) {
        rc = fw_write(&w, b.data, b.len, err);
        if (rc == 0)
            rc = fw_close(&w, err);
        else
            fw_abort(&w);
    }
    bs_buf_fini(&b);
    return rc;
}

/* --------------------------------------------------------------- block */

int tsdb_block_writer_commit(struct tsdb_block_writer *w, struct tsdb_block_meta *meta,
                             struct bs_error *err)
{
    char chunks[4200];
    snprintf(chunks, sizeof(chunks), "%s/chunks", w->tmp);
    memcpy(meta->ulid, w->ulid, sizeof(meta->ulid));
    meta->num_samples = w->num_samples;
    meta->num_series = w->nseries;
    meta->num_chunks = w->nchunks;
    meta->version = TSDB_BLOCK_VERSION;
    if (meta->level <= 0)
        meta->level = 1;
    char self[1][TSDB_ULID_LEN + 1];
    bool own_source = meta->nsources == 0;
    if (own_source) { /* a block cut from the head is its own source */
        memcpy(self[0], meta->ulid, sizeof(self[0]));
        meta->sources = self;
        meta->nsources = 1;
    }
    int rc = w->seg.fd >= 0 ? fw_close(&w->seg, err) : 0;
    if (rc == 0)
        rc = write_index(w->tmp, w->series, w->nseries, w->chunks, w->index_version, err);
    if (rc == 0)
        rc = tsdb_block_meta_write(w->tmp, meta, err);
    if (own_source) {
        meta->sources = NULL;
        meta->nsources = 0;
    }
    if (rc == 0) {
        int e = tsdb_fsync_dir(chunks);
        if (e == 0)
            e = tsdb_fsync_dir(w->tmp);
        if (e == 0 && rename(w->tmp, w->final) != 0)
            e = errno;
        if (e == 0)
            e = tsdb_fsync_dir(w->parent);
        if (e)
            rc = bs_error_set(err, errno_code(e), "cannot commit block %s: %s", w->final,
                              strerror(e));
    }
    if (rc) {
        tsdb_block_writer_abort(w);
        return rc;
    }
    writer_free(w);
    return 0;
}

int tsdb_block_write(const char *parent, struct tsdb_block_meta *meta,
                     struct tsdb_bw_series *series, size_t n, struct bs_error *err)
{
    if (n > 1)
        qsort(series, n, sizeof(*series), cmp_bw_series);
    struct tsdb_block_writer *w;
    int rc = tsdb_block_writer_new(parent, &w, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tsdb_block_writer_add(w, series[i].ls, series[i].chunks, series[i].n, err);
    if (rc) {
        tsdb_block_writer_abort(w);
        return rc;
    }
    return tsdb_block_writer_commit(w, meta, err);
}
