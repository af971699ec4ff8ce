/* SPDX-License-Identifier: Apache-2.0
 *
 * WAL replay: rebuild the head from the segments in <data>/wal/ on open.
 *
 * Segments are read in index order through one streaming buffer (1 MiB,
 * grown only for a record larger than that, up to the record cap); records
 * are decoded in place, so replay allocates per series and per chunk, never
 * per sample. Series records recreate series under their original refs;
 * samples records append through the same path as live commits (samples
 * that are out of order, or for refs never defined, are skipped).
 *
 * Checkpoints. When wal/checkpoint.NNNNNNNN exists (the newest one), its
 * files are replayed first, then only the segments after NNNNNNNN;
 * segments it covers (left by a crash between the checkpoint's rename and
 * their deletion) are deleted. Samples older than the head's min valid
 * time (the end of the newest block, which already holds them) are
 * skipped.
 *
 * Damage. A record that is cut short (torn write at a crash), has an
 * impossible header, a CRC mismatch or a payload that does not decode ends
 * the replay of its segment: the segment is truncated at the end of the
 * last good record, with one warning naming the file, offset and reason.
 * Replay then continues with the next segment: records there are
 * self-contained, and keeping them loses less than dropping them (samples
 * of series whose record was lost are skipped). New writes always go to a
 * fresh segment after the last one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"

#define REPLAY_BUF (1u << 20)
#define REPLAY_MAX_LABELS 65536u

/* ------------------------------------------------- head chunks to attach */

/* The chunks read from the head chunk files, waiting for their series to
 * be created by a series record: entries in scan order (so each series'
 * chunks oldest first), chained per series ref through `next`, found by
 * an open-addressing table ref -> (first, last). */
struct pending_chunk {
    struct tsdb_hchunk c;
    uint64_t last_v;
    uint32_t next; /* index + 1 of the series' next chunk; 0 = none */
};

struct pending_slot {
    uint64_t ref; /* 0 = empty */
    uint32_t first, last; /* index + 1 */
};

struct pending {
    struct pending_chunk *v;
    size_t n, cap;
    struct pending_slot *tab;
    size_t tab_n, tab_cap; /* tab_cap: a power of two */
    bool overflow;         /* more than UINT32_MAX - 1 chunks: the rest are dropped */
};

static size_t pending_hash(uint64_t ref, size_t cap)
{
    return (size_t)((ref * UINT64_C(0x9E3779B97F4A7C15)) >> 17) & (cap - 1);
}

static struct pending_slot *pending_slot(struct pending *pd, uint64_t ref, bool create)
{
    if (create && (pd->tab_n + 1) * 2 > pd->tab_cap) {
        size_t ncap = pd->tab_cap ? pd->tab_cap * 2 : 1024;
        struct pending_slot *nt = bs_xcalloc(ncap, sizeof(*nt));
        for (size_t i = 0; i < pd->tab_cap; i++) {
            if (!pd->tab[i].ref)
                continue;
            size_t j = pending_hash(pd->tab[i].ref, ncap);
            while (nt[j].ref)
                j = (j + 1) & (ncap - 1);
            nt[j] = pd->tab[i];
        }
        free(pd->tab);
        pd->tab = nt;
        pd->tab_cap = ncap;
    }
    if (pd->tab_cap == 0)
        return NULL;
    for (size_t j = pending_hash(ref, pd->tab_cap);; j = (j + 1) & (pd->tab_cap - 1)) {
        if (pd->tab[j].ref == ref)
            return &pd->tab[j];
        if (!pd->tab[j].ref) {
            if (!create)
                return NULL;
            pd->tab[j].ref = ref;
            pd->tab_n++;
            return &pd->tab[j];
        }
    }
}

static void pending_add(void *arg, uint64_t sref, const struct tsdb_hchunk *c, uint16_t nsamples,
                        uint64_t last_v)
{
    struct pending *pd = arg;
    (void)nsamples;
    if (sref == 0 || pd->n >= UINT32_MAX - 1) {
        pd->overflow = pd->overflow || sref != 0;
        return;
    }
    if (pd->n == pd->cap) {
        pd->cap = pd->cap ? pd->cap * 2 : 4096;
        pd->v = bs_xrealloc(pd->v, pd->cap * sizeof(*pd->v));
    }
    struct pending_slot *sl = pending_slot(pd, sref, true);
    uint32_t idx = (uint32_t)pd->n + 1;
    pd->v[pd->n++] = (struct pending_chunk){*c, last_v, 0};
    if (sl->last)
        pd->v[sl->last - 1].next = idx;
    else
        sl->first = idx;
    sl->last = idx;
}

/* Attach the pending chunks of ref to s (just created by a series record). */
static int pending_attach(struct tsdb_head *h, struct pending *pd, uint64_t ref,
                          struct tsdb_series *s, uint64_t *attached)
{
    struct pending_slot *sl = pending_slot(pd, ref, false);
    if (!sl)
        return 0;
    for (uint32_t i = sl->first; i; i = pd->v[i - 1].next) {
        int rc = tsdb_head_series_attach(h, s, &pd->v[i - 1].c, pd->v[i - 1].last_v);
        if (rc == BS_ENOMEM)
            return rc;
        if (rc == 0)
            (*attached)++;
    }
    sl->first = sl->last = 0;
    return 0;
}

static void pending_fini(struct pending *pd)
{
    free(pd->v);
    free(pd->tab);
    memset(pd, 0, sizeof(*pd));
}

struct replay {
    struct tsdb *db;
    /* streaming reader */
    int fd;
    uint8_t *buf;
    size_t cap, start, end;
    bool eof;
    int read_errno;
    uint64_t off; /* file offset of buf[start] */
    /* scratch for series records */
    char *strs;
    size_t strs_cap;
    struct label *lv;
    size_t lv_cap;
    struct pending pending; /* head chunks waiting for their series */
    /* totals */
    uint64_t series, samples, skipped, attached;
    int64_t mint, maxt;
};

/* Make n bytes available at buf[start]; false if the file has fewer. */
static bool need(struct replay *r, size_t n)
{
    if (r->end - r->start >= n)
        return true;
    if (n > r->cap) {
        size_t ncap = r->cap;
        while (ncap < n)
            ncap *= 2;
        uint8_t *nb = bs_xmalloc(ncap);
        memcpy(nb, r->buf + r->start, r->end - r->start);
        free(r->buf);
        r->buf = nb;
        r->cap = ncap;
        r->end -= r->start;
        r->start = 0;
    } else if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    while (!r->eof && r->end - r->start < n) {
        ssize_t k = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            r->read_errno = errno;
        if (k <= 0) {
            r->eof = true;
            break;
        }
        r->end += (size_t)k;
    }
    return r->end - r->start >= n;
}

static int decode_series(struct replay *r, const uint8_t *p, size_t len)
{
    struct tsdb_head *h = &r->db->head;
    if (r->strs_cap < 2 * len + 16) {
        free(r->strs);
        r->strs_cap = 2 * len + 16;
        r->strs = bs_xmalloc(r->strs_cap);
    }
    size_t i = 0;
    while (i < len) {
        uint64_t ref, n;
        size_t k = bs_get_uvarint(p + i, len - i, &ref);
        if (!k || ref == 0 || ref > TSDB_REF_MAX)
            return BS_ECORRUPT;
        i += k;
        k = bs_get_uvarint(p + i, len - i, &n);
        if (!k || n == 0 || n > REPLAY_MAX_LABELS)
            return BS_ECORRUPT;
        i += k;
        if (n > r->lv_cap) {
            free(r->lv);
            r->lv_cap = (size_t)n;
            r->lv = bs_xmalloc(r->lv_cap * sizeof(*r->lv));
        }
        size_t so = 0;
        for (uint64_t j = 0; j < 2 * n; j++) {
            uint64_t sl;
            k = bs_get_uvarint(p + i, len - i, &sl);
            if (!k || sl > len - i - k)
                return BS_ECORRUPT;
            i += k;
            char *dst = r->strs + so;
            memcpy(dst, p + i, (size_t)sl);
            dst[sl] = '\0';
            if (strlen(dst) != sl || sl == 0)
                return BS_ECORRUPT; /* embedded NUL or empty string */
            so += (size_t)sl + 1;
            i += (size_t)sl;
            if (j % 2 == 0)
                r->lv[j / 2].name = dst;
            else
                r->lv[j / 2].value = dst;
        }
        for (uint64_t j = 1; j < n; j++) {
            if (strcmp(r->lv[j - 1].name, r->lv[j].name) >= 0)
                return BS_ECORRUPT;
        }
        struct labels ls = {r->lv, (size_t)n};
        struct tsdb_series *s;
        bool created;
        int rc = tsdb_head_series_get_or_create(h, &ls, labels_hash(&ls), ref, &s, &created);
        if (rc == BS_ENOMEM)
            return rc;
        if (rc) {
            BS_DEBUG("tsdb",
                     "WAL replay: series ref %llu conflicts with an existing series; "
                     "skipped",
                     (unsigned long long)ref);
            continue;
        }
        s->wal_logged = true;
        if (created) {
            r->series++;
            if (r->pending.tab_n > 0 && s->ref == ref) {
                pthread_mutex_lock(&s->mu);
                rc = pending_attach(h, &r->pending, ref, s, &r->attached);
                if (s->has_samples && s->min_t < r->mint)
                    r->mint = s->min_t;
                if (s->has_samples && s->max_t > r->maxt)
                    r->maxt = s->max_t;
                pthread_mutex_unlock(&s->mu);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

static int decode_samples(struct replay *r, const uint8_t *p, size_t len)
{
    struct tsdb_head *h = &r->db->head;
    uint64_t ref = 0, t = 0;
    size_t i = 0;
    while (i < len) {
        int64_t dref, dt;
        size_t k = bs_get_varint(p + i, len - i, &dref);
        if (!k)
            return BS_ECORRUPT;
        i += k;
        k = bs_get_varint(p + i, len - i, &dt);
        if (!k || len - i - k < 8)
            return BS_ECORRUPT;
        i += k;
        uint64_t v = bs_get_be64(p + i);
        i += 8;
        ref += (uint64_t)dref;
        t += (uint64_t)dt;
        if ((int64_t)t < h->min_valid) {
            r->skipped++;
            continue;
        }
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (!s) {
            r->skipped++;
            continue;
        }
        pthread_mutex_lock(&s->mu);
        int rc = tsdb_head_series_append(h, s, (int64_t)t, v);
        pthread_mutex_unlock(&s->mu);
        if (rc == BS_ENOMEM)
            return rc;
        if (rc == 0) {
            r->samples++;
            if ((int64_t)t < r->mint)
                r->mint = (int64_t)t;
            if ((int64_t)t > r->maxt)
                r->maxt = (int64_t)t;
        } else {
            r->skipped++;
        }
    }
    return 0;
}

/* Open chunks of a head checkpoint: entries of ref, maxt, len, bytes. A
 * chunk becomes its series' open chunk when the series has none and the
 * chunk starts after everything the series holds (a later version of it
 * may have been cut and loaded from a head chunk file). */
static int decode_open_chunks(struct replay *r, const uint8_t *p, size_t len)
{
    struct tsdb_head *h = &r->db->head;
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        uint64_t ref, clen;
        int64_t maxt;
        size_t k = bs_get_uvarint(p + i, len - i, &ref), k2 = 0, k3 = 0;
        if (k)
            k2 = bs_get_varint(p + i + k, len - i - k, &maxt);
        if (k2)
            k3 = bs_get_uvarint(p + i + k + k2, len - i - k - k2, &clen);
        if (!k3 || clen > len - i - k - k2 - k3) {
            rc = BS_ECORRUPT;
            break;
        }
        const uint8_t *data = p + i + k + k2 + k3;
        i += k + k2 + k3 + (size_t)clen;
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (!s || s->ref != ref || maxt < h->min_valid) {
            r->skipped++;
            continue;
        }
        rc = tsdb_xor_enc_restore(&e, data, (size_t)clen);
        if (rc || e.t != maxt) {
            rc = rc == BS_ENOMEM ? rc : BS_ECORRUPT;
            break;
        }
        pthread_mutex_lock(&s->mu);
        if (s->open.n == 0 && (!s->has_samples || e.mint > s->max_t)) {
            struct tsdb_xor_enc tmp = s->open;
            s->open = e;
            e = tmp;
            if (!s->has_samples) {
                s->min_t = s->open.mint;
                s->has_samples = true;
            }
            s->max_t = s->open.t;
            s->last_v = s->open.v;
            __atomic_add_fetch(&h->num_chunks, 1, __ATOMIC_RELAXED);
            r->samples += s->open.n;
            if (s->open.mint < r->mint)
                r->mint = s->open.mint;
            if (s->open.t > r->maxt)
                r->maxt = s->open.t;
        } else {
            r->skipped += e.n;
        }
        pthread_mutex_unlock(&s->mu);
    }
    tsdb_xor_enc_fini(&e);
    return rc;
}

/* Replay one segment; truncates a damaged tail. Returns BS_ENOMEM or
 * BS_EIO (cannot open) only. */
static int replay_segment(struct replay *r, const char *path, struct bs_error *err)
{
    r->fd = open(path, O_RDWR | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot open WAL segment %s: %s", path, strerror(e));
    }
    r->start = r->end = 0;
    r->eof = false;
    r->read_errno = 0;
    r->off = 0;
    const char *why = NULL;
    int rc = 0;
    for (;;) {
        if (!need(r, TSDB_WAL_HEADER)) {
            if (r->end == r->start && !r->read_errno)
                break; /* clean end */
            why = r->read_errno ? "read error" : "torn record header";
            break;
        }
        const uint8_t *hd = r->buf + r->start;
        uint8_t type = hd[0];
        uint32_t len = bs_get_be32(hd + 1);
        uint32_t crc = bs_get_be32(hd + 5);
        if ((type != TSDB_WAL_REC_SERIES && type != TSDB_WAL_REC_SAMPLES &&
             type != TSDB_WAL_REC_OPEN_CHUNKS) ||
            len > TSDB_WAL_MAX_RECORD) {
            why = "invalid record header";
            break;
        }
        if (!need(r, TSDB_WAL_HEADER + (size_t)len)) {
            why = r->read_errno ? "read error" : "torn record";
            break;
        }
        hd = r->buf + r->start;
        const uint8_t *payload = hd + TSDB_WAL_HEADER;
        uint32_t got = bs_crc32c(bs_crc32c(0, hd, 5), payload, len);
        if (got != crc) {
            why = "CRC mismatch";
            break;
        }
        rc = type == TSDB_WAL_REC_SERIES    ? decode_series(r, payload, len)
             : type == TSDB_WAL_REC_SAMPLES ? decode_samples(r, payload, len)
                                            : decode_open_chunks(r, payload, len);
        if (rc == BS_ENOMEM) {
            bs_error_set(err, rc, "out of memory replaying WAL segment %s", path);
            break;
        }
        if (rc) {
            rc = 0;
            why = "undecodable record";
            break;
        }
        r->start += TSDB_WAL_HEADER + (size_t)len;
        r->off += TSDB_WAL_HEADER + (size_t)len;
    }
    if (why && rc == 0) {
        struct stat st;
        uint64_t size = fstat(r->fd, &st) == 0 ? (uint64_t)st.st_size : r->off;
        BS_WARN("tsdb",
                "WAL segment %s: %s at offset %llu; truncating the segment to %llu bytes "
                "(%llu bytes dropped), replay continues with the next segment",
                path, why, (unsigned long long)r->off, (unsigned long long)r->off,
                (unsigned long long)(size - r->off));
        if (ftruncate(r->fd, (off_t)r->off) != 0 || fsync(r->fd) != 0)
            BS_ERROR("tsdb", "cannot truncate WAL segment %s: %s", path, strerror(errno));
    }
    r->db->wal.total_bytes += r->off;
    close(r->fd);
    r->fd = -1;
    return rc;
}

int tsdb_wal_replay(struct tsdb *db, const char *waldir, uint32_t *next_seg, struct bs_error *err)
{
    uint32_t *segs, *csegs = NULL;
    size_t nsegs, ncsegs = 0;
    bool ck;
    uint32_t ck_idx;
    int rc = tsdb_checkpoint_find(waldir, &ck, &ck_idx, err);
    if (rc)
        return rc;
    rc = tsdb_wal_segments(waldir, &segs, &nsegs, err);
    if (rc)
        return rc;
    char ckdir[4096], path[4200];
    if (ck) {
        snprintf(ckdir, sizeof(ckdir), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u", waldir, ck_idx);
        rc = tsdb_wal_segments(ckdir, &csegs, &ncsegs, err);
        if (rc) {
            free(segs);
            return rc;
        }
        /* Segments the checkpoint covers are left over from a crash. */
        size_t k = 0;
        for (size_t i = 0; i < nsegs; i++) {
            if (segs[i] > ck_idx) {
                segs[k++] = segs[i];
                continue;
            }
            snprintf(path, sizeof(path), "%s/%08u", waldir, segs[i]);
            BS_INFO("tsdb", "deleting WAL segment %s, covered by checkpoint %s", path, ckdir);
            if (unlink(path) != 0)
                BS_WARN("tsdb", "cannot delete %s: %s", path, strerror(errno));
        }
        nsegs = k;
    }
    *next_seg = nsegs ? segs[nsegs - 1] + 1 : 0;
    if (ck && *next_seg <= ck_idx)
        *next_seg = ck_idx + 1;

    struct replay r = {.db = db, .fd = -1, .mint = INT64_MAX, .maxt = INT64_MIN};
    int64_t t0 = bs_monotonic_ns();
    /* Head chunk files first (always: their indices must be known before
     * new ones are written); their chunks wait in r.pending for the series
     * records that define their series. */
    if (db->head.hc) {
        rc = tsdb_hchunks_scan(db->head.hc, db->head.min_valid, pending_add, &r.pending, err);
        if (rc) {
            pending_fini(&r.pending);
            free(segs);
            free(csegs);
            return rc;
        }
        if (r.pending.overflow)
            BS_WARN("tsdb", "too many head chunks to load; the newest were left to WAL replay");
    }
    if (nsegs == 0 && ncsegs == 0) {
        pending_fini(&r.pending);
        free(segs);
        free(csegs);
        return 0;
    }

    r.cap = REPLAY_BUF;
    r.buf = bs_xmalloc(r.cap);
    for (size_t i = 0; i < ncsegs && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/%08u", ckdir, csegs[i]);
        rc = replay_segment(&r, path, err);
    }
    for (size_t i = 0; i < nsegs && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/%08u", waldir, segs[i]);
        rc = replay_segment(&r, path, err);
    }
    if (r.samples || r.attached) {
        tsdb_head_note_time(&db->head, r.mint);
        tsdb_head_note_time(&db->head, r.maxt);
    }
    if (rc == 0)
        BS_INFO("tsdb",
                "WAL replay completed: %s%zu segments, %llu series, %llu head chunks from "
                "files, %llu samples (%llu skipped) in %.3fs",
                ck ? "checkpoint, " : "", nsegs, (unsigned long long)r.series,
                (unsigned long long)r.attached, (unsigned long long)r.samples,
                (unsigned long long)r.skipped, (double)(bs_monotonic_ns() - t0) / 1e9);
    pending_fini(&r.pending);
    free(r.buf);
    free(r.strs);
    free(r.lv);
    free(segs);
    free(csegs);
    return rc;
}
