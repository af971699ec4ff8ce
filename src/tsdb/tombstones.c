/* SPDX-License-Identifier: Apache-2.0
 *
 * Tombstones: interval lists, the series -> intervals set, the per-block
 * tombstones file (docs/format/tombstones.md) and the chunk helpers that
 * drop deleted samples.
 *
 * An interval list is kept sorted, disjoint and non-adjacent: adding
 * [a, b] swallows every interval that overlaps or touches it, so a lookup
 * is a binary search and a file never holds redundant entries. The set
 * is an open-addressing table keyed by series id (a block's series id or
 * a head series ref); its entries own their interval arrays.
 *
 * The file is written whole (tmp + fsync + rename) and never changed in
 * place, so a snapshot may hard-link it. A file that does not decode
 * exactly (magic, version, CRC, varints, intervals in order) is refused:
 * guessing which samples were deleted is not an option.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsdb/chunk_dense.h"
#include "tsdb/tombstones.h"

/* ------------------------------------------------------------ intervals */

int tsdb_intervals_add(struct tsdb_intervals *iv, int64_t mint, int64_t maxt)
{
    if (mint > maxt)
        return BS_EINVAL;
    /* first interval that may merge: the first whose maxt >= mint - 1 */
    size_t lo = 0, hi = iv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (iv->v[mid].maxt < mint && iv->v[mid].maxt + 1 < mint)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo; /* one past the last interval that merges */
    while (end < iv->n && (iv->v[end].mint <= maxt || iv->v[end].mint - 1 <= maxt))
        end++;
    if (end > lo) {
        if (iv->v[lo].mint < mint)
            mint = iv->v[lo].mint;
        if (iv->v[end - 1].maxt > maxt)
            maxt = iv->v[end - 1].maxt;
        iv->v[lo] = (struct tsdb_interval){mint, maxt};
        memmove(iv->v + lo + 1, iv->v + end, (iv->n - end) * sizeof(*iv->v));
        iv->n -= end - lo - 1;
        return 0;
    }
    if (iv->n == iv->cap) {
        size_t ncap = iv->cap ? iv->cap * 2 : 2;
        struct tsdb_interval *nv = realloc(iv->v, ncap * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        iv->v = nv;
        iv->cap = ncap;
    }
    memmove(iv->v + lo + 1, iv->v + lo, (iv->n - lo) * sizeof(*iv->v));
    iv->v[lo] = (struct tsdb_interval){mint, maxt};
    iv->n++;
    return 0;
}

bool tsdb_intervals_cover(const struct tsdb_interval *v, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].maxt < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].mint <= t;
}

void tsdb_intervals_fini(struct tsdb_intervals *iv)
{
    free(iv->v);
    memset(iv, 0, sizeof(*iv));
}

/* ------------------------------------------------------ tombstone sets */

struct tomb_slot {
    uint64_t id; /* valid when used */
    bool used;
    struct tsdb_intervals iv;
};

struct tsdb_tombs {
    struct tomb_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

static size_t tomb_hash(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= UINT64_C(0xff51afd7ed558ccd);
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

struct tsdb_tombs *tsdb_tombs_new(void)
{
    return calloc(1, sizeof(struct tsdb_tombs));
}

void tsdb_tombs_free(struct tsdb_tombs *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].used)
            tsdb_intervals_fini(&t->slots[i].iv);
    free(t->slots);
    free(t);
}

static struct tomb_slot *tomb_find(const struct tsdb_tombs *t, uint64_t id)
{
    if (t->cap == 0)
        return NULL;
    for (size_t i = tomb_hash(id, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i].used)
            return NULL;
        if (t->slots[i].id == id)
            return &t->slots[i];
    }
}

static int tomb_grow(struct tsdb_tombs *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 16;
    struct tomb_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return BS_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].used)
            continue;
        size_t j = tomb_hash(t->slots[i].id, ncap);
        while (ns[j].used)
            j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

int tsdb_tombs_add(struct tsdb_tombs *t, uint64_t id, int64_t mint, int64_t maxt)
{
    if (mint > maxt)
        return BS_EINVAL;
    struct tomb_slot *s = tomb_find(t, id);
    if (!s) {
        if ((t->n + 1) * 4 > t->cap * 3) {
            int rc = tomb_grow(t);
            if (rc)
                return rc;
        }
        size_t j = tomb_hash(id, t->cap);
        while (t->slots[j].used)
            j = (j + 1) & (t->cap - 1);
        struct tsdb_intervals iv = {0};
        int rc = tsdb_intervals_add(&iv, mint, maxt);
        if (rc)
            return rc;
        t->slots[j] = (struct tomb_slot){id, true, iv};
        t->n++;
        return 0;
    }
    return tsdb_intervals_add(&s->iv, mint, maxt);
}

const struct tsdb_intervals *tsdb_tombs_get(const struct tsdb_tombs *t, uint64_t id)
{
    const struct tomb_slot *s = t ? tomb_find(t, id) : NULL;
    return s ? &s->iv : NULL;
}

size_t tsdb_tombs_count(const struct tsdb_tombs *t)
{
    return t ? t->n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int tsdb_tombs_ids(const struct tsdb_tombs *t, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!t || t->n == 0)
        return 0;
    uint64_t *v = malloc(t->n * sizeof(*v));
    if (!v)
        return BS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].used)
            v[k++] = t->slots[i].id;
    qsort(v, k, sizeof(*v), cmp_u64);
    *ids = v;
    *n = k;
    return 0;
}

int tsdb_tombs_merge(struct tsdb_tombs *dst, const struct tsdb_tombs *src)
{
    for (size_t i = 0; src && i < src->cap; i++) {
        const struct tomb_slot *s = &src->slots[i];
        for (size_t j = 0; s->used && j < s->iv.n; j++) {
            int rc = tsdb_tombs_add(dst, s->id, s->iv.v[j].mint, s->iv.v[j].maxt);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ file */

int tsdb_tombs_encode(const struct tsdb_tombs *t, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    uint64_t *ids;
    size_t nids;
    int rc = tsdb_tombs_ids(t, &ids, &nids);
    if (rc)
        return rc;
    size_t cap = 9 + 4;
    for (size_t i = 0; i < nids; i++)
        cap += 20 + tsdb_tombs_get(t, ids[i])->n * 20;
    uint8_t *b = malloc(cap);
    if (!b) {
        free(ids);
        return BS_ENOMEM;
    }
    size_t n = 0;
    bs_put_be32(b, TSDB_TOMBSTONES_MAGIC);
    b[4] = TSDB_TOMBSTONES_VERSION;
    n = 5;
    n += bs_put_uvarint(b + n, nids);
    for (size_t i = 0; i < nids; i++) {
        const struct tsdb_intervals *iv = tsdb_tombs_get(t, ids[i]);
        n += bs_put_uvarint(b + n, ids[i]);
        n += bs_put_uvarint(b + n, iv->n);
        for (size_t j = 0; j < iv->n; j++) {
            n += bs_put_varint(b + n, iv->v[j].mint);
            n += bs_put_uvarint(b + n, (uint64_t)iv->v[j].maxt - (uint64_t)iv->v[j].mint);
        }
    }
    bs_put_be32(b + n, bs_crc32c(0, b, n));
    n += 4;
    free(ids);
    *out = b;
    *len = n;
    return 0;
}

static int corrupt(char *why, size_t cap, const char *fmt, size_t off)
{
    if (why && cap)
        snprintf(why, cap, fmt, off);
    return BS_ECORRUPT;
}

int tsdb_tombs_decode(const uint8_t *p, size_t len, struct tsdb_tombs **out, char *why,
                      size_t why_cap)
{
    *out = NULL;
    if (len < 5 + 1 + 4)
        return corrupt(why, why_cap, "file too short (%zu bytes)", len);
    if (bs_get_be32(p) != TSDB_TOMBSTONES_MAGIC)
        return corrupt(why, why_cap, "bad magic number at offset %zu", 0);
    if (p[4] != TSDB_TOMBSTONES_VERSION)
        return corrupt(why, why_cap, "unsupported version at offset %zu", 4);
    size_t end = len - 4;
    if (bs_crc32c(0, p, end) != bs_get_be32(p + end))
        return corrupt(why, why_cap, "CRC mismatch over the first %zu bytes", end);
    struct tsdb_tombs *t = tsdb_tombs_new();
    if (!t)
        return BS_ENOMEM;
    size_t off = 5, k;
    uint64_t nser;
    int rc = 0;
    if ((k = bs_get_uvarint(p + off, end - off, &nser)) == 0) {
        rc = corrupt(why, why_cap, "bad series count at offset %zu", off);
        goto fail;
    }
    off += k;
    uint64_t prev_id = 0;
    for (uint64_t s = 0; s < nser; s++) {
        uint64_t id, niv;
        size_t at = off;
        if ((k = bs_get_uvarint(p + off, end - off, &id)) == 0) {
            rc = corrupt(why, why_cap, "bad series id at offset %zu", at);
            goto fail;
        }
        off += k;
        if (s > 0 && id <= prev_id) {
            rc = corrupt(why, why_cap, "series ids out of order at offset %zu", at);
            goto fail;
        }
        prev_id = id;
        at = off;
        if ((k = bs_get_uvarint(p + off, end - off, &niv)) == 0 || niv == 0 ||
            niv > TSDB_TOMBSTONES_MAX_INTERVALS) {
            rc = corrupt(why, why_cap, "bad interval count at offset %zu", at);
            goto fail;
        }
        off += k;
        int64_t prev_max = 0;
        for (uint64_t j = 0; j < niv; j++) {
            int64_t mint;
            uint64_t d;
            at = off;
            if ((k = bs_get_varint(p + off, end - off, &mint)) == 0) {
                rc = corrupt(why, why_cap, "bad interval start at offset %zu", at);
                goto fail;
            }
            off += k;
            if ((k = bs_get_uvarint(p + off, end - off, &d)) == 0) {
                rc = corrupt(why, why_cap, "bad interval length at offset %zu", off);
                goto fail;
            }
            off += k;
            /* maxt = mint + d must not pass INT64_MAX (the room is exact
             * in unsigned arithmetic) */
            int64_t maxt = (int64_t)((uint64_t)mint + d);
            if (d > (uint64_t)INT64_MAX - (uint64_t)mint ||
                (j > 0 && (prev_max == INT64_MAX || mint <= prev_max + 1))) {
                rc = corrupt(why, why_cap, "interval out of range or order at offset %zu", at);
                goto fail;
            }
            prev_max = maxt;
            rc = tsdb_tombs_add(t, id, mint, maxt);
            if (rc)
                goto fail;
        }
    }
    if (off != end) {
        rc = corrupt(why, why_cap, "unexpected bytes at offset %zu", off);
        goto fail;
    }
    *out = t;
    return 0;
fail:
    tsdb_tombs_free(t);
    return rc;
}

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? BS_ENOSPC : BS_EIO;
}

int tsdb_tombs_read(const char *blockdir, struct tsdb_tombs **out, struct bs_error *err)
{
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof(path), "%s/" TSDB_TOMBSTONES_FILE, blockdir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return 0;
        return bs_error_set(err, BS_EIO, "cannot open tombstones file %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > TSDB_TOMBSTONES_MAX_FILE) {
        close(fd);
        return bs_error_set(err, BS_ECORRUPT,
                            "tombstones file %s is damaged: larger than %llu bytes (or "
                            "unreadable); restore it or delete it (which undeletes the data)",
                            path, (unsigned long long)TSDB_TOMBSTONES_MAX_FILE);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return bs_error_set(err, BS_ENOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t k = read(fd, buf + got, len - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return bs_error_set(err, BS_EIO, "cannot read tombstones file %s: %s", path,
                                strerror(e));
        }
        got += (size_t)k;
    }
    close(fd);
    char why[160];
    int rc = tsdb_tombs_decode(buf, len, out, why, sizeof(why));
    free(buf);
    if (rc == BS_ECORRUPT)
        return bs_error_set(err, rc,
                            "tombstones file %s is damaged: %s; restore it from a backup or "
                            "delete it (which undeletes the data it hid)",
                            path, why);
    if (rc)
        return bs_error_set(err, rc, "out of memory reading %s", path);
    return 0;
}

int tsdb_tombs_write(const char *blockdir, const struct tsdb_tombs *t, struct bs_error *err)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof(path), "%s/" TSDB_TOMBSTONES_FILE, blockdir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (tsdb_tombs_count(t) == 0) {
        if (unlink(path) != 0 && errno != ENOENT) {
            int e = errno;
            return bs_error_set(err, BS_EIO, "cannot delete %s: %s", path, strerror(e));
        }
        tsdb_fsync_dir(blockdir);
        return 0;
    }
    uint8_t *buf;
    size_t len;
    if (tsdb_tombs_encode(t, &buf, &len) != 0)
        return bs_error_set(err, BS_ENOMEM, "out of memory encoding %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        size_t done = 0;
        while (done < len && e == 0) {
            ssize_t k = write(fd, buf + done, len - done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                e = k < 0 ? errno : EIO;
            else
                done += (size_t)k;
        }
        if (e == 0 && fsync(fd) != 0)
            e = errno;
        if (close(fd) != 0 && e == 0)
            e = errno;
    }
    free(buf);
    if (e == 0 && rename(tmp, path) != 0)
        e = errno;
    if (e == 0)
        e = tsdb_fsync_dir(blockdir);
    if (e) {
        unlink(tmp);
        return bs_error_set(err, errno_code(e), "cannot write tombstones file %s: %s", path,
                            strerror(e));
    }
    return 0;
}

/* --------------------------------------------------------- chunk helpers */

static int push_sample(int64_t **ts, uint64_t **vs, size_t *n, size_t *cap, int64_t t, uint64_t v)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        int64_t *nt = realloc(*ts, ncap * sizeof(*nt));
        if (!nt)
            return BS_ENOMEM;
        *ts = nt;
        uint64_t *nv = realloc(*vs, ncap * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        *vs = nv;
        *cap = ncap;
    }
    (*ts)[*n] = t;
    (*vs)[*n] = v;
    (*n)++;
    return 0;
}

int tsdb_tomb_chunk_samples(struct tsdb_block *b, uint8_t enc, const uint8_t *p, size_t len,
                            const struct tsdb_interval *iv, size_t niv, int64_t **ts, uint64_t **vs,
                            size_t *n, size_t *cap)
{
    int rc = 0;
    if (enc == TSDB_CHUNK_ENC_DENSE || enc == TSDB_CHUNK_ENC_DENSE_ST) {
        struct tsdb_dense_dec d;
        rc = tsdb_block_dense_init(b, &d, enc, p, len, NULL);
        while (rc == 0 && tsdb_dense_dec_next(&d)) {
            if (!tsdb_intervals_cover(iv, niv, d.t))
                rc = push_sample(ts, vs, n, cap, d.t, d.v);
        }
        if (rc == 0 && d.err)
            rc = d.err;
        tsdb_dense_dec_fini(&d);
        return rc;
    }
    struct tsdb_xor_dec d;
    tsdb_xor_dec_init(&d, p, len);
    while (rc == 0 && tsdb_xor_dec_next(&d)) {
        if (!tsdb_intervals_cover(iv, niv, d.t))
            rc = push_sample(ts, vs, n, cap, d.t, d.v);
    }
    if (rc == 0 && d.err)
        rc = BS_ECORRUPT;
    return rc;
}

int tsdb_tomb_xor_encode(const int64_t *ts, const uint64_t *vs, size_t n, uint8_t **out,
                         size_t *len)
{
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tsdb_xor_enc_append(&e, ts[i], vs[i]);
    if (rc == 0) {
        size_t l = tsdb_xor_enc_bytes(&e);
        uint8_t *b = malloc(l ? l : 1);
        if (!b) {
            rc = BS_ENOMEM;
        } else {
            memcpy(b, e.buf, l);
            *out = b;
            *len = l;
        }
    }
    tsdb_xor_enc_fini(&e);
    return rc;
}
