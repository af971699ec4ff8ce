/* SPDX-License-Identifier: Apache-2.0
 *
 * Reading a block: meta.json, the index and the chunk segments, mapped
 * read-only with mmap(2) (formats in docs/format/index.md and chunks.md).
 *
 * Open checks what is cheap and global: magic numbers, the TOC and its
 * CRC, section bounds, the CRCs of the symbol table and of the postings
 * offset table (which is parsed into an array of pointers into the
 * mapping). Series entries, postings lists and chunks carry their own
 * CRC32C, checked each time they are read, so a damaged byte anywhere is
 * reported as BS_ECORRUPT for the entry it belongs to, never a crash and
 * never a wrong answer. Every offset read from the file is bounds-checked
 * before use.
 *
 * Strings handed out (label names and values) point into the mapping;
 * they are NUL-terminated on disk, and live as long as a reference on the
 * block. A block is reference counted: the db's block list holds one, each
 * querier one per block it reads; the last unref unmaps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"

/* ------------------------------------------------------------ meta.json */

/* Find "key": in text and return a pointer past the colon, or NULL. */
static const char *json_key(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static bool json_int(const char *text, const char *key, int64_t *out)
{
    const char *p = json_key(text, key);
    if (!p)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno)
        return false;
    *out = v;
    return true;
}

/* Parse a "ULID" string at p; returns the pointer past it or NULL. */
static const char *json_ulid(const char *p, char out[TSDB_ULID_LEN + 1])
{
    if (*p != '"')
        return NULL;
    const char *e = strchr(p + 1, '"');
    if (!e || e - p - 1 != TSDB_ULID_LEN)
        return NULL;
    memcpy(out, p + 1, TSDB_ULID_LEN);
    out[TSDB_ULID_LEN] = '\0';
    return tsdb_ulid_valid(out) ? e + 1 : NULL;
}

void tsdb_block_meta_fini(struct tsdb_block_meta *m)
{
    free(m->sources);
    m->sources = NULL;
    m->nsources = 0;
}

int tsdb_block_meta_read(const char *blockdir, struct tsdb_block_meta *m, struct bs_error *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/meta.json", blockdir);
    memset(m, 0, sizeof(*m));
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        return bs_error_set(err, e == ENOENT ? BS_ENOENT : BS_EIO, "cannot open %s: %s", path,
                            strerror(e));
    }
    char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    bool big = n == sizeof(text) - 1 && !feof(f);
    fclose(f);
    text[n] = '\0';
    if (big)
        return bs_error_set(err, BS_ECORRUPT, "%s is larger than 64 KiB", path);
    int64_t mint, maxt, ns, nse, nc, level, version;
    const char *u = json_key(text, "ulid");
    if (!u || !json_ulid(u, m->ulid) || !json_int(text, "minTime", &mint) ||
        !json_int(text, "maxTime", &maxt) || !json_int(text, "numSamples", &ns) ||
        !json_int(text, "numSeries", &nse) || !json_int(text, "numChunks", &nc) ||
        !json_int(text, "level", &level) || !json_int(text, "version", &version))
        return bs_error_set(err, BS_ECORRUPT, "%s: missing or malformed field", path);
    if (version != TSDB_BLOCK_VERSION)
        return bs_error_set(err, BS_ECORRUPT, "%s: unsupported version %lld", path,
                            (long long)version);
    if (mint >= maxt)
        return bs_error_set(err, BS_ECORRUPT, "%s: minTime %lld is not before maxTime %lld", path,
                            (long long)mint, (long long)maxt);
    m->mint = mint;
    m->maxt = maxt;
    m->num_samples = (uint64_t)ns;
    m->num_series = (uint64_t)nse;
    m->num_chunks = (uint64_t)nc;
    m->level = (int)level;
    m->version = (int)version;
    const char *p = json_key(text, "sources");
    if (p && *p == '[') {
        p++;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
                p++;
            if (*p == ']' || !*p)
                break;
            m->sources = bs_xrealloc(m->sources, (m->nsources + 1) * sizeof(*m->sources));
            p = json_ulid(p, m->sources[m->nsources]);
            if (!p) {
                tsdb_block_meta_fini(m);
                return bs_error_set(err, BS_ECORRUPT, "%s: malformed compaction sources", path);
            }
            m->nsources++;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- maps */

static int map_file(const char *path, struct tsdb_map *m, struct bs_error *err)
{
    m->p = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return bs_error_set(err, BS_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    if (st.st_size == 0) {
        close(fd);
        return bs_error_set(err, BS_ECORRUPT, "%s is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return bs_error_set(err, BS_EIO, "cannot map %s: %s", path, strerror(e));
    m->p = p;
    m->len = (size_t)st.st_size;
    return 0;
}

static void unmap(struct tsdb_map *m)
{
    if (m->p)
        munmap(m->p, m->len);
    m->p = NULL;
    m->len = 0;
}

/* ---------------------------------------------------------------- index */

/* The symbol at ref: a NUL-terminated string in the mapping, or NULL. */
static const char *symbol(const struct tsdb_block *b, uint64_t ref)
{
    if (ref < 4 || ref >= b->syms_len)
        return NULL;
    const uint8_t *p = b->index.p + b->syms_off + ref;
    size_t avail = (size_t)(b->syms_len - ref);
    uint64_t len;
    size_t k = bs_get_uvarint(p, avail, &len);
    if (!k || len >= avail - k || p[k + len] != '\0')
        return NULL;
    return (const char *)p + k;
}

static int cmp_po(const struct tsdb_postings_entry *e, const char *name, const char *value)
{
    int c = strcmp(e->name, name);
    if (c || !value)
        return c;
    return strcmp(e->value, value);
}

/* Bytes of the shortest postings list: an empty one, count and CRC. */
static uint64_t postings_min_len(const struct tsdb_block *b)
{
    return b->index_version == 1 ? 8 : 5;
}

static int parse_index(struct tsdb_block *b, const char *path, struct bs_error *err)
{
    const uint8_t *p = b->index.p;
    size_t len = b->index.len;
    if (len < 8 + TSDB_INDEX_TOC_LEN || bs_get_be32(p) != TSDB_INDEX_MAGIC)
        return bs_error_set(err, BS_ECORRUPT, "%s: not a bongsu index (bad magic or size)", path);
    if (p[4] != 1 && p[4] != TSDB_INDEX_VERSION)
        return bs_error_set(err, BS_ECORRUPT, "%s: unsupported index version %u", path, p[4]);
    b->index_version = p[4];
    b->series_shift = p[4] == 1 ? 4 : 3;
    const uint8_t *toc = p + len - TSDB_INDEX_TOC_LEN;
    if (bs_crc32c(0, toc, 32) != bs_get_be32(toc + 32))
        return bs_error_set(err, BS_ECORRUPT, "%s: TOC checksum mismatch", path);
    uint64_t syms = bs_get_be64(toc), series = bs_get_be64(toc + 8),
             postings = bs_get_be64(toc + 16), table = bs_get_be64(toc + 24);
    uint64_t end = len - TSDB_INDEX_TOC_LEN;
    if (syms < 8 || syms + 8 > series || series > postings || postings > table || table + 8 > end)
        return bs_error_set(err, BS_ECORRUPT, "%s: TOC offsets out of order or bounds", path);
    /* symbols */
    uint64_t sl = bs_get_be32(p + syms);
    if (sl < 4 || syms + 4 + sl + 4 > series)
        return bs_error_set(err, BS_ECORRUPT, "%s: symbol table length out of bounds", path);
    if (bs_crc32c(0, p + syms + 4, sl) != bs_get_be32(p + syms + 4 + sl))
        return bs_error_set(err, BS_ECORRUPT, "%s: symbol table checksum mismatch", path);
    b->syms_off = syms + 4;
    b->syms_len = sl;
    b->series_off = series;
    b->series_end = postings;
    b->postings_off = postings;
    b->postings_end = table;
    b->all_off = postings;
    /* postings offset table */
    uint64_t tl = bs_get_be32(p + table);
    if (tl < 4 || table + 4 + tl + 4 > end)
        return bs_error_set(err, BS_ECORRUPT, "%s: postings table length out of bounds", path);
    const uint8_t *t = p + table + 4;
    if (bs_crc32c(0, t, tl) != bs_get_be32(t + tl))
        return bs_error_set(err, BS_ECORRUPT, "%s: postings table checksum mismatch", path);
    uint32_t cnt = bs_get_be32(t);
    if (cnt > tl / 3)
        return bs_error_set(err, BS_ECORRUPT, "%s: postings table count too large", path);
    b->po = malloc((cnt ? cnt : 1) * sizeof(*b->po));
    if (!b->po)
        return bs_error_set(err, BS_ENOMEM, "out of memory opening %s", path);
    size_t i = 4;
    for (uint32_t k = 0; k < cnt; k++) {
        uint64_t nref, vref, off;
        size_t a = bs_get_uvarint(t + i, tl - i, &nref);
        size_t c = a ? bs_get_uvarint(t + i + a, tl - i - a, &vref) : 0;
        size_t d = c ? bs_get_uvarint(t + i + a + c, tl - i - a - c, &off) : 0;
        if (!d)
            return bs_error_set(err, BS_ECORRUPT, "%s: postings table entry %u truncated", path, k);
        i += a + c + d;
        const char *name = symbol(b, nref), *value = symbol(b, vref);
        if (!name || !value || off < postings || off + postings_min_len(b) > table)
            return bs_error_set(err, BS_ECORRUPT, "%s: postings table entry %u is invalid", path,
                                k);
        b->po[k] = (struct tsdb_postings_entry){name, value, off};
        if (k > 0 && cmp_po(&b->po[k - 1], name, value) >= 0)
            return bs_error_set(err, BS_ECORRUPT, "%s: postings table is not sorted", path);
    }
    b->npo = cnt;
    return 0;
}

/* Decode the version 2 postings list at off (count, then id deltas, all
 * uvarints, then a CRC) into a malloc'd array of ids. */
static int read_postings_v2(const struct tsdb_block *b, uint64_t off, uint64_t **out, size_t *n)
{
    const uint8_t *p = b->index.p + off, *end = b->index.p + b->postings_end;
    uint64_t cnt;
    size_t k = bs_get_uvarint(p, (size_t)(end - p), &cnt);
    if (!k || cnt > (uint64_t)(end - p)) /* every delta takes a byte at least */
        return BS_ECORRUPT;
    const uint8_t *q = p + k;
    uint64_t *v = cnt ? malloc(cnt * sizeof(*v)) : NULL;
    if (cnt && !v)
        return BS_ENOMEM;
    uint64_t id = 0;
    for (uint64_t i = 0; i < cnt; i++) {
        uint64_t d;
        size_t dk = bs_get_uvarint(q, (size_t)(end - q), &d);
        if (!dk || (i > 0 && d == 0) || d > UINT32_MAX - id) {
            free(v);
            return BS_ECORRUPT;
        }
        q += dk;
        id += d;
        v[i] = id;
    }
    if (end - q < 4 || bs_crc32c(0, p, (size_t)(q - p)) != bs_get_be32(q)) {
        free(v);
        return BS_ECORRUPT;
    }
    *out = v;
    *n = (size_t)cnt;
    return 0;
}

/* Decode the postings list at off into a malloc'd array of ids. */
static int read_postings(const struct tsdb_block *b, uint64_t off, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (off < b->postings_off || off + postings_min_len(b) > b->postings_end)
        return BS_ECORRUPT;
    if (b->index_version != 1)
        return read_postings_v2(b, off, out, n);
    const uint8_t *p = b->index.p + off;
    uint64_t cnt = bs_get_be32(p);
    if (off + 4 + cnt * 4 + 4 > b->postings_end)
        return BS_ECORRUPT;
    if (bs_crc32c(0, p, 4 + cnt * 4) != bs_get_be32(p + 4 + cnt * 4))
        return BS_ECORRUPT;
    if (cnt == 0)
        return 0;
    uint64_t *v = malloc(cnt * sizeof(*v));
    if (!v)
        return BS_ENOMEM;
    for (uint64_t i = 0; i < cnt; i++) {
        v[i] = bs_get_be32(p + 4 + 4 * i);
        if (i > 0 && v[i] <= v[i - 1]) {
            free(v);
            return BS_ECORRUPT;
        }
    }
    *out = v;
    *n = (size_t)cnt;
    return 0;
}

int tsdb_block_postings_all(struct tsdb_block *b, uint64_t **out, size_t *n)
{
    return read_postings(b, b->all_off, out, n);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int tsdb_block_postings_for_matcher(struct tsdb_block *b, const struct labels_matcher *m,
                                    uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *name = labels_matcher_name(m);
    bool eq = labels_matcher_type(m) == LABELS_MATCH_EQ;
    const char *value = eq ? labels_matcher_value(m) : NULL;
    /* lower bound of (name, value) or of name */
    size_t lo = 0, hi = b->npo;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_po(&b->po[mid], name, value) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (eq) {
        if (lo < b->npo && cmp_po(&b->po[lo], name, value) == 0)
            return read_postings(b, b->po[lo].off, out, n);
        return 0;
    }
    uint64_t *r = NULL;
    size_t total = 0, cap = 0, nlists = 0;
    int rc = 0;
    for (size_t i = lo; i < b->npo && strcmp(b->po[i].name, name) == 0; i++) {
        if (!labels_matcher_matches(m, b->po[i].value))
            continue;
        uint64_t *l;
        size_t nl;
        rc = read_postings(b, b->po[i].off, &l, &nl);
        if (rc)
            break;
        if (total + nl > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            while (ncap < total + nl)
                ncap *= 2;
            uint64_t *nr = realloc(r, ncap * sizeof(*nr));
            if (!nr) {
                free(l);
                rc = BS_ENOMEM;
                break;
            }
            r = nr;
            cap = ncap;
        }
        if (nl)
            memcpy(r + total, l, nl * sizeof(*r));
        free(l);
        total += nl;
        nlists++;
    }
    if (rc) {
        free(r);
        return rc;
    }
    if (nlists > 1)
        qsort(r, total, sizeof(*r), cmp_u64); /* one value per name: lists are disjoint */
    if (total == 0) {
        free(r);
        r = NULL;
    }
    *out = r;
    *n = total;
    return 0;
}

int tsdb_block_series(struct tsdb_block *b, uint64_t id, struct bs_arena *arena, struct labels *ls,
                      struct tsdb_chunk_meta **chks, size_t *nchks, size_t *chks_cap)
{
    uint64_t off = id << b->series_shift;
    if (id > UINT32_MAX || off < b->series_off || off >= b->series_end)
        return BS_ECORRUPT;
    const uint8_t *base = b->index.p + off;
    size_t avail = (size_t)(b->series_end - off);
    uint64_t len;
    size_t k = bs_get_uvarint(base, avail, &len);
    if (!k || len + 4 > avail - k)
        return BS_ECORRUPT;
    const uint8_t *p = base + k;
    if (bs_crc32c(0, p, (size_t)len) != bs_get_be32(p + len))
        return BS_ECORRUPT;
    size_t i = 0, n = (size_t)len;
    uint64_t nl;
    if (!(k = bs_get_uvarint(p, n, &nl)) || nl > n)
        return BS_ECORRUPT;
    i += k;
    struct label *lv = NULL;
    if (ls) {
        lv = bs_arena_alloc(arena, (nl ? nl : 1) * sizeof(*lv));
        if (!lv)
            return BS_ENOMEM;
    }
    for (uint64_t j = 0; j < nl; j++) {
        uint64_t nr, vr;
        if (!(k = bs_get_uvarint(p + i, n - i, &nr)))
            return BS_ECORRUPT;
        i += k;
        if (!(k = bs_get_uvarint(p + i, n - i, &vr)))
            return BS_ECORRUPT;
        i += k;
        if (ls) {
            lv[j].name = symbol(b, nr);
            lv[j].value = symbol(b, vr);
            if (!lv[j].name || !lv[j].value)
                return BS_ECORRUPT;
        }
    }
    if (ls) {
        ls->v = lv;
        ls->n = (size_t)nl;
    }
    if (!chks)
        return 0;
    uint64_t nc;
    if (!(k = bs_get_uvarint(p + i, n - i, &nc)) || nc > n)
        return BS_ECORRUPT;
    i += k;
    if (nc > *chks_cap) {
        struct tsdb_chunk_meta *nv = realloc(*chks, nc * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        *chks = nv;
        *chks_cap = (size_t)nc;
    }
    int64_t prev_maxt = 0;
    uint64_t prev_ref = 0;
    for (uint64_t j = 0; j < nc; j++) {
        int64_t a, r;
        uint64_t d, ur;
        if (!(k = bs_get_varint(p + i, n - i, &a)))
            return BS_ECORRUPT;
        i += k;
        if (!(k = bs_get_uvarint(p + i, n - i, &d)))
            return BS_ECORRUPT;
        i += k;
        if (j == 0) {
            if (!(k = bs_get_uvarint(p + i, n - i, &ur)))
                return BS_ECORRUPT;
            r = 0;
        } else {
            if (!(k = bs_get_varint(p + i, n - i, &r)))
                return BS_ECORRUPT;
            ur = prev_ref + (uint64_t)r;
        }
        i += k;
        int64_t mint = j == 0 ? a : (int64_t)((uint64_t)prev_maxt + (uint64_t)a);
        int64_t maxt = (int64_t)((uint64_t)mint + d);
        if (maxt < mint)
            return BS_ECORRUPT;
        (*chks)[j] = (struct tsdb_chunk_meta){mint, maxt, ur};
        prev_maxt = maxt;
        prev_ref = ur;
    }
    *nchks = (size_t)nc;
    return 0;
}

int tsdb_block_chunk(struct tsdb_block *b, uint64_t ref, const uint8_t **out, size_t *outlen,
                     uint8_t *enc)
{
    uint64_t seg = ref >> 32, off = ref & UINT32_MAX;
    if (seg == 0 || seg > b->nsegs)
        return BS_ECORRUPT;
    const struct tsdb_map *m = &b->segs[seg - 1];
    if (off < 8 || off + 1 >= m->len)
        return BS_ECORRUPT;
    const uint8_t *p = m->p + off;
    size_t avail = m->len - (size_t)off;
    if (p[0] != TSDB_CHUNK_ENC_XOR && p[0] != TSDB_CHUNK_ENC_DENSE &&
        p[0] != TSDB_CHUNK_ENC_DENSE_ST)
        return BS_ECORRUPT;
    uint64_t len;
    size_t k = bs_get_uvarint(p + 1, avail - 1, &len);
    if (!k || len + 4 > avail - 1 - k)
        return BS_ECORRUPT;
    const uint8_t *data = p + 1 + k;
    if (bs_crc32c(0, p, 1 + k + (size_t)len) != bs_get_be32(data + len))
        return BS_ECORRUPT;
    *out = data;
    *outlen = (size_t)len;
    if (enc)
        *enc = p[0];
    return 0;
}

/* Resolving shared time columns. A TSDB_CHUNK_ENC_DENSE_ST chunk names
 * the TSDB_CHUNK_ENC_DENSE chunk of the same block whose time section it
 * uses; the reference is checked like any chunk reference (bounds, CRC),
 * and must lead to a plain dense chunk, so references never chain or
 * loop. The decoder then checks that sample count and first time agree. */
int tsdb_block_chunk_time(struct tsdb_block *b, const uint8_t *p, size_t len, const uint8_t **tp,
                          size_t *tlen, struct bs_error *err)
{
    uint64_t tref;
    uint8_t tenc;
    *tp = NULL;
    *tlen = 0;
    if (tsdb_dense_shared_ref(p, len, &tref) != 0)
        return bs_error_set(err, BS_ECORRUPT, "block %s: a shared-time chunk has a damaged header",
                            b->dir);
    int rc = tsdb_block_chunk(b, tref, tp, tlen, &tenc);
    if (rc)
        return bs_error_set(err, rc,
                            "block %s: a shared-time chunk refers to time column %llu (segment "
                            "%llu, offset %llu), which is out of range or damaged",
                            b->dir, (unsigned long long)tref, (unsigned long long)(tref >> 32),
                            (unsigned long long)(tref & UINT32_MAX));
    if (tenc != TSDB_CHUNK_ENC_DENSE) {
        *tp = NULL;
        *tlen = 0;
        return bs_error_set(err, BS_ECORRUPT,
                            "block %s: a shared-time chunk refers to chunk %llu of encoding %u, "
                            "not a dense chunk",
                            b->dir, (unsigned long long)tref, tenc);
    }
    return 0;
}

int tsdb_block_dense_init(struct tsdb_block *b, struct tsdb_dense_dec *d, uint8_t enc,
                          const uint8_t *p, size_t len, struct bs_error *err)
{
    int rc;
    const char *dir = b ? b->dir : "(none)";
    if (enc == TSDB_CHUNK_ENC_DENSE) {
        rc = tsdb_dense_dec_init(d, p, len);
    } else {
        const uint8_t *tp = NULL;
        size_t tlen = 0;
        if (enc != TSDB_CHUNK_ENC_DENSE_ST || !b) {
            memset(d, 0, sizeof(*d));
            d->err = enc != TSDB_CHUNK_ENC_DENSE_ST ? BS_EINVAL : BS_ECORRUPT;
            return bs_error_set(err, d->err,
                                enc != TSDB_CHUNK_ENC_DENSE_ST
                                    ? "block %s: chunk encoding %u is not dense"
                                    : "block %s: a shared-time chunk (encoding %u) outside a block",
                                dir, enc);
        }
        rc = tsdb_block_chunk_time(b, p, len, &tp, &tlen, err);
        if (rc) {
            memset(d, 0, sizeof(*d));
            d->err = rc;
            return rc;
        }
        rc = tsdb_dense_dec_init_shared(d, p, len, tp, tlen);
    }
    if (rc)
        return bs_error_set(err, rc, "block %s: a dense chunk is %s", dir,
                            rc == BS_ENOMEM ? "too large to decode now (out of memory)"
                                            : "damaged (header, sections or time column)");
    return 0;
}

/* ---------------------------------------------------------------- open */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int open_segments(struct tsdb_block *b, struct bs_error *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/chunks", b->dir);
    DIR *d = opendir(path);
    if (!d) {
        int e = errno;
        return bs_error_set(err, BS_ECORRUPT, "cannot read %s: %s", path, strerror(e));
    }
    uint32_t *idx = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strlen(de->d_name) != 6 || strspn(de->d_name, "0123456789") != 6)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            idx = bs_xrealloc(idx, cap * sizeof(*idx));
        }
        idx[n++] = (uint32_t)strtoul(de->d_name, NULL, 10);
    }
    closedir(d);
    if (n > 1)
        qsort(idx, n, sizeof(*idx), cmp_u32);
    int rc = 0;
    b->segs = bs_xcalloc(n ? n : 1, sizeof(*b->segs));
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (idx[i] != i + 1) {
            rc = bs_error_set(err, BS_ECORRUPT, "%s: chunk segment %06zu is missing", path, i + 1);
            break;
        }
        snprintf(path, sizeof(path), "%s/chunks/%06u", b->dir, idx[i]);
        rc = map_file(path, &b->segs[i], err);
        if (rc == 0) {
            b->nsegs++;
            b->bytes += b->segs[i].len;
            if (b->segs[i].len < 8 || bs_get_be32(b->segs[i].p) != TSDB_CHUNKS_MAGIC ||
                b->segs[i].p[4] != 1)
                rc = bs_error_set(err, BS_ECORRUPT, "%s: not a bongsu chunk segment", path);
        }
    }
    free(idx);
    return rc;
}

static void block_free(struct tsdb_block *b)
{
    unmap(&b->index);
    for (size_t i = 0; i < b->nsegs; i++)
        unmap(&b->segs[i]);
    free(b->segs);
    free(b->po);
    tsdb_block_meta_fini(&b->meta);
    free(b->dir);
    free(b);
}

int tsdb_block_open(const char *dir, struct tsdb_block **out, struct bs_error *err)
{
    *out = NULL;
    struct tsdb_block *b = bs_xcalloc(1, sizeof(*b));
    b->dir = bs_xstrdup(dir);
    b->refs = 1;
    char path[4200];
    int rc = tsdb_block_meta_read(dir, &b->meta, err);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/index", dir);
        rc = map_file(path, &b->index, err);
    }
    if (rc == 0) {
        b->bytes += b->index.len;
        rc = parse_index(b, path, err);
    }
    if (rc == 0)
        rc = open_segments(b, err);
    if (rc) {
        block_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void tsdb_block_ref(struct tsdb_block *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void tsdb_block_unref(struct tsdb_block *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        block_free(b);
}

/* --------------------------------------------------------------- rm -rf */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int tsdb_rmdir_all(const char *path)
{
    if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno ? errno : EIO;
    return 0;
}
