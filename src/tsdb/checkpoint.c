/* SPDX-License-Identifier: Apache-2.0
 *
 * WAL checkpoints: after head truncation, the segments written before the
 * truncation are condensed into wal/checkpoint.NNNNNNNN (NNNNNNNN = the
 * last segment covered) and deleted, which keeps the WAL bounded by what
 * the head still holds (docs/format/wal.md).
 *
 * The checkpoint is built by re-reading the previous checkpoint and the
 * covered segments, record by record, in their original order: from series
 * records it keeps the entries whose ref still resolves in the head (head
 * truncation cut the WAL in the same critical section in which it removed
 * series, so every ref in these segments that is not in the head now is
 * gone for good), from samples records the samples of such refs with
 * t >= the truncation time. Kept entries are re-emitted as records of the
 * same types, so replay reads a checkpoint exactly like a segment.
 *
 * Atomicity: written in checkpoint.NNNNNNNN.tmp, fsynced, renamed, the WAL
 * directory fsynced; only then are the covered segments and older
 * checkpoints deleted. A crash before the rename leaves a .tmp directory
 * (deleted at the next open, the segments are still there); a crash after
 * it leaves segments that the checkpoint covers, which replay skips and
 * deletes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsdb/tombstones.h"
#include "tsdb/tsdb_int.h"

#define CK_SEGMENT "00000000"
#define CK_SEGMENT_OPEN "00000001" /* a head checkpoint's open chunks */

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? BS_ENOSPC : BS_EIO;
}

/* "checkpoint.NNNNNNNN" (no suffix) -> true and *idx. */
static bool parse_checkpoint_name(const char *name, uint32_t *idx)
{
    size_t pl = strlen(TSDB_WAL_CHECKPOINT_PREFIX);
    if (strncmp(name, TSDB_WAL_CHECKPOINT_PREFIX, pl) != 0)
        return false;
    const char *d = name + pl;
    if (strlen(d) != 8 || strspn(d, "0123456789") != 8)
        return false;
    *idx = (uint32_t)strtoul(d, NULL, 10);
    return true;
}

int tsdb_checkpoint_find(const char *waldir, bool *found, uint32_t *idx, struct bs_error *err)
{
    *found = false;
    *idx = 0;
    DIR *d = opendir(waldir);
    if (!d) {
        int e = errno;
        return bs_error_set(err, errno_code(e), "cannot read WAL directory %s: %s", waldir,
                            strerror(e));
    }
    struct dirent *de;
    char path[4200];
    size_t pl = strlen(TSDB_WAL_CHECKPOINT_PREFIX);
    while ((de = readdir(d)) != NULL) {
        uint32_t k;
        if (parse_checkpoint_name(de->d_name, &k)) {
            if (!*found || k > *idx)
                *idx = k;
            *found = true;
        } else if (strncmp(de->d_name, TSDB_WAL_CHECKPOINT_PREFIX, pl) == 0 &&
                   strlen(de->d_name) > 4 &&
                   strcmp(de->d_name + strlen(de->d_name) - 4, ".tmp") == 0) {
            snprintf(path, sizeof(path), "%s/%s", waldir, de->d_name);
            BS_WARN("tsdb", "deleting %s, left by an interrupted WAL checkpoint", path);
            tsdb_rmdir_all(path);
        }
    }
    closedir(d);
    return 0;
}

/* ------------------------------------------------------------- builder */

struct ck_writer {
    int fd;
    const char *path;
    uint8_t *buf;
    size_t len, cap;
    size_t rec_start;
    uint64_t series, samples;
};

static void ck_reserve(struct ck_writer *w, size_t n)
{
    if (w->len + n <= w->cap)
        return;
    size_t ncap = w->cap ? w->cap : 1 << 16;
    while (ncap < w->len + n)
        ncap *= 2;
    w->buf = bs_xrealloc(w->buf, ncap);
    w->cap = ncap;
}

static void ck_begin(struct ck_writer *w, uint8_t type)
{
    ck_reserve(w, TSDB_WAL_HEADER);
    w->rec_start = w->len;
    w->buf[w->len] = type;
    w->len += TSDB_WAL_HEADER;
}

/* Frame the open record; an empty one is dropped. */
static void ck_end(struct ck_writer *w)
{
    size_t plen = w->len - w->rec_start - TSDB_WAL_HEADER;
    if (plen == 0) {
        w->len = w->rec_start;
        return;
    }
    uint8_t *h = w->buf + w->rec_start;
    bs_put_be32(h + 1, (uint32_t)plen);
    bs_put_be32(h + 5, bs_crc32c(bs_crc32c(0, h, 5), h + TSDB_WAL_HEADER, plen));
}

static int ck_flush(struct ck_writer *w, struct bs_error *err)
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

/* Tombstones hook: one record with the head's tombstones of the series
 * still in the head, clipped to t >= mint (tombstones records of the
 * covered segments are not copied: the head holds all of them). */
static int ck_put_tombstones(struct tsdb *db, struct ck_writer *w, int64_t mint,
                             struct bs_error *err)
{
    uint8_t *p;
    size_t len;
    if (tsdb_tomb_head_payload(db, mint, &p, &len) != 0)
        return bs_error_set(err, BS_ENOMEM, "out of memory writing tombstones to %s", w->path);
    if (len > 0) {
        ck_begin(w, TSDB_WAL_REC_TOMBSTONES);
        ck_reserve(w, len);
        memcpy(w->buf + w->len, p, len);
        w->len += len;
        ck_end(w);
    }
    free(p);
    return 0;
}

/* Length of one series entry at p (ref, n, n x (name, value)); 0 if bad. */
static size_t series_entry_len(const uint8_t *p, size_t len, uint64_t *ref)
{
    uint64_t n;
    size_t i = bs_get_uvarint(p, len, ref);
    if (!i)
        return 0;
    size_t k = bs_get_uvarint(p + i, len - i, &n);
    if (!k || n > len)
        return 0;
    i += k;
    for (uint64_t j = 0; j < 2 * n; j++) {
        uint64_t sl;
        k = bs_get_uvarint(p + i, len - i, &sl);
        if (!k || sl > len - i - k)
            return 0;
        i += k + (size_t)sl;
    }
    return i;
}

static bool live(struct tsdb_head *h, uint64_t ref)
{
    return ref != 0 && ref <= TSDB_REF_MAX && tsdb_head_series_by_ref(h, ref) != NULL;
}

/* Filter the records of one file into w. Damage ends the file quietly:
 * replay at the next open reports and repairs it. */
static int ck_file(struct tsdb *db, struct ck_writer *w, const char *path, int64_t mint,
                   struct bs_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) {
        close(fd);
        return 0;
    }
    size_t flen = (size_t)st.st_size;
    uint8_t *m = mmap(NULL, flen, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot map %s: %s", path, strerror(e));
    }
    struct tsdb_head *h = &db->head;
    int rc = 0;
    size_t off = 0;
    while (off + TSDB_WAL_HEADER <= flen && rc == 0) {
        const uint8_t *hd = m + off;
        uint8_t type = hd[0];
        uint32_t len = bs_get_be32(hd + 1);
        if ((type != TSDB_WAL_REC_SERIES && type != TSDB_WAL_REC_SAMPLES &&
             type != TSDB_WAL_REC_OPEN_CHUNKS && type != TSDB_WAL_REC_OPEN_STATE &&
             type != TSDB_WAL_REC_TOMBSTONES) ||
            len > TSDB_WAL_MAX_RECORD || len > flen - off - TSDB_WAL_HEADER)
            break;
        const uint8_t *p = hd + TSDB_WAL_HEADER;
        if (bs_crc32c(bs_crc32c(0, hd, 5), p, len) != bs_get_be32(hd + 5))
            break;
        if (type == TSDB_WAL_REC_TOMBSTONES) {
            /* tombstones hook: written from the head by ck_put_tombstones */
        } else if (type == TSDB_WAL_REC_SERIES) {
            ck_begin(w, TSDB_WAL_REC_SERIES);
            for (size_t i = 0; i < len;) {
                uint64_t ref;
                size_t el = series_entry_len(p + i, len - i, &ref);
                if (!el)
                    break;
                if (live(h, ref)) {
                    ck_reserve(w, el);
                    memcpy(w->buf + w->len, p + i, el);
                    w->len += el;
                    w->series++;
                }
                i += el;
            }
            ck_end(w);
        } else if (type == TSDB_WAL_REC_OPEN_CHUNKS || type == TSDB_WAL_REC_OPEN_STATE) {
            /* A head checkpoint's open chunks, kept in their format. */
            ck_begin(w, type);
            for (size_t i = 0; i < len;) {
                struct tsdb_open_entry oe;
                size_t el = tsdb_open_entry_parse(type, p + i, len - i, &oe);
                if (!el)
                    break;
                if (oe.maxt >= mint && live(h, oe.ref)) {
                    ck_reserve(w, el);
                    memcpy(w->buf + w->len, p + i, el);
                    w->len += el;
                }
                i += el;
            }
            ck_end(w);
        } else {
            ck_begin(w, TSDB_WAL_REC_SAMPLES);
            uint64_t ref = 0, t = 0, pref = 0, pt = 0;
            for (size_t i = 0; i < len;) {
                int64_t dref, dt;
                size_t k = bs_get_varint(p + i, len - i, &dref);
                if (!k)
                    break;
                size_t k2 = bs_get_varint(p + i + k, len - i - k, &dt);
                if (!k2 || len - i - k - k2 < 8)
                    break;
                const uint8_t *v = p + i + k + k2;
                i += k + k2 + 8;
                ref += (uint64_t)dref;
                t += (uint64_t)dt;
                if ((int64_t)t < mint || !live(h, ref))
                    continue;
                ck_reserve(w, 28);
                w->len += bs_put_varint(w->buf + w->len, (int64_t)(ref - pref));
                w->len += bs_put_varint(w->buf + w->len, (int64_t)(t - pt));
                memcpy(w->buf + w->len, v, 8);
                w->len += 8;
                pref = ref;
                pt = t;
                w->samples++;
            }
            ck_end(w);
        }
        off += TSDB_WAL_HEADER + len;
        if (w->len >= (8u << 20))
            rc = ck_flush(w, err);
    }
    munmap(m, flen);
    return rc;
}

int tsdb_checkpoint_write(struct tsdb *db, const char *waldir, uint32_t last, int64_t mint,
                          uint64_t *bytes_dropped, struct bs_error *err)
{
    char tmp[4200], final[4200], path[4300];
    *bytes_dropped = 0;
    bool prev_found;
    uint32_t prev;
    int rc = tsdb_checkpoint_find(waldir, &prev_found, &prev, err);
    if (rc)
        return rc;
    if (prev_found && prev >= last)
        return 0; /* nothing new to cover */
    uint32_t *segs = NULL, *csegs = NULL;
    size_t nsegs = 0, ncsegs = 0;
    rc = tsdb_wal_segments(waldir, &segs, &nsegs, err);
    if (rc)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u.tmp", waldir, last);
    snprintf(final, sizeof(final), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u", waldir, last);
    int64_t t0 = bs_monotonic_ns();
    struct ck_writer w = {.fd = -1};
    tsdb_rmdir_all(tmp);
    if (mkdir(tmp, 0755) != 0) {
        int e = errno;
        rc = bs_error_set(err, errno_code(e), "cannot create %s: %s", tmp, strerror(e));
        goto done;
    }
    snprintf(path, sizeof(path), "%s/" CK_SEGMENT, tmp);
    w.path = path;
    w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        int e = errno;
        rc = bs_error_set(err, errno_code(e), "cannot create %s: %s", path, strerror(e));
        goto done;
    }
    char prevdir[4200];
    if (prev_found) {
        snprintf(prevdir, sizeof(prevdir), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u", waldir, prev);
        rc = tsdb_wal_segments(prevdir, &csegs, &ncsegs, err);
        for (size_t i = 0; i < ncsegs && rc == 0; i++) {
            char p2[4300];
            snprintf(p2, sizeof(p2), "%s/%08u", prevdir, csegs[i]);
            rc = ck_file(db, &w, p2, mint, err);
        }
    }
    for (size_t i = 0; i < nsegs && rc == 0; i++) {
        if (segs[i] > last)
            break;
        if (prev_found && segs[i] <= prev)
            continue;
        char p2[4300];
        snprintf(p2, sizeof(p2), "%s/%08u", waldir, segs[i]);
        rc = ck_file(db, &w, p2, mint, err);
    }
    if (rc == 0)
        rc = ck_put_tombstones(db, &w, mint, err);
    if (rc == 0)
        rc = ck_flush(&w, err);
    if (rc == 0 && fsync(w.fd) != 0) {
        int e = errno;
        rc = bs_error_set(err, errno_code(e), "fsync of %s failed: %s", path, strerror(e));
    }
    close(w.fd);
    w.fd = -1;
    if (rc)
        goto done;
    int e = tsdb_fsync_dir(tmp);
    if (e == 0 && rename(tmp, final) != 0)
        e = errno;
    if (e == 0)
        e = tsdb_fsync_dir(waldir);
    if (e) {
        rc =
            bs_error_set(err, errno_code(e), "cannot commit checkpoint %s: %s", final, strerror(e));
        goto done;
    }
    /* The checkpoint is durable: drop what it covers. */
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i] > last)
            break;
        snprintf(path, sizeof(path), "%s/%08u", waldir, segs[i]);
        struct stat st;
        if (stat(path, &st) == 0)
            *bytes_dropped += (uint64_t)st.st_size;
        if (unlink(path) != 0)
            BS_WARN("tsdb", "cannot delete WAL segment %s: %s", path, strerror(errno));
    }
    if (prev_found) {
        if (tsdb_rmdir_all(prevdir) != 0)
            BS_WARN("tsdb", "cannot delete old checkpoint %s", prevdir);
    }
    BS_INFO("tsdb",
            "WAL checkpoint %s written: %llu series, %llu samples kept, segments up to %08u "
            "deleted, in %.3fs",
            final, (unsigned long long)w.series, (unsigned long long)w.samples, last,
            (double)(bs_monotonic_ns() - t0) / 1e9);
done:
    if (w.fd >= 0)
        close(w.fd);
    if (rc)
        tsdb_rmdir_all(tmp);
    free(w.buf);
    free(segs);
    free(csegs);
    return rc;
}

/* ------------------------------------------------------ head checkpoint */

/* Series entry of s under ref (the WAL's series record layout). */
static void ck_put_series(struct ck_writer *w, const struct tsdb_series *s, uint64_t ref)
{
    size_t need = 20;
    for (size_t i = 0; i < s->lset.n; i++)
        need += 20 + strlen(s->lset.v[i].name) + strlen(s->lset.v[i].value);
    ck_reserve(w, need);
    w->len += bs_put_uvarint(w->buf + w->len, ref);
    w->len += bs_put_uvarint(w->buf + w->len, s->lset.n);
    for (size_t i = 0; i < s->lset.n; i++) {
        const char *str[2] = {s->lset.v[i].name, s->lset.v[i].value};
        for (size_t j = 0; j < 2; j++) {
            size_t n = strlen(str[j]);
            w->len += bs_put_uvarint(w->buf + w->len, n);
            memcpy(w->buf + w->len, str[j], n);
            w->len += n;
        }
    }
    w->series++;
}

int tsdb_checkpoint_head(struct tsdb *db, struct bs_error *err)
{
    struct tsdb_head *h = &db->head;
    const char *waldir = db->waldir;
    char tmp[4200], final[4200], path[4300], opath[4300];
    int64_t t0 = bs_monotonic_ns();

    pthread_mutex_lock(&db->wal.mu);
    uint32_t last = db->wal.seg;
    bool empty = db->wal.seg_off == 0;
    int rc = empty ? 0 : tsdb_wal_cut_locked(&db->wal, err);
    pthread_mutex_unlock(&db->wal.mu);
    if (rc)
        return rc;
    if (empty) {
        if (last == 0)
            return 0; /* nothing was ever written */
        last--;       /* the current segment is empty: cover up to the one before */
    }
    bool prev_found;
    uint32_t prev;
    rc = tsdb_checkpoint_find(waldir, &prev_found, &prev, err);
    if (rc)
        return rc;
    if (prev_found && prev >= last)
        return 0;

    snprintf(tmp, sizeof(tmp), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u.tmp", waldir, last);
    snprintf(final, sizeof(final), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u", waldir, last);
    /* Two files: every series record in 00000000, every open chunks
     * record in 00000001. Replay creates all series before it needs the
     * head chunk files' contents (the first open chunks record), so it
     * scans those files on another thread meanwhile. */
    struct ck_writer w = {.fd = -1}, wo = {.fd = -1};
    uint32_t *segs = NULL;
    size_t nsegs = 0;
    uint64_t chunks = 0, bytes = 0;
    tsdb_rmdir_all(tmp);
    if (mkdir(tmp, 0755) != 0) {
        int e = errno;
        return bs_error_set(err, errno_code(e), "cannot create %s: %s", tmp, strerror(e));
    }
    snprintf(path, sizeof(path), "%s/" CK_SEGMENT, tmp);
    snprintf(opath, sizeof(opath), "%s/" CK_SEGMENT_OPEN, tmp);
    w.path = path;
    wo.path = opath;
    w.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd >= 0)
        wo.fd = open(opath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0 || wo.fd < 0) {
        int e = errno;
        rc = bs_error_set(err, errno_code(e), "cannot create %s: %s", w.fd < 0 ? path : opath,
                          strerror(e));
        goto done;
    }

    /* The head as of now: everything the segments up to `last` put there
     * (and possibly later samples, which replay then skips as repeats). */
    uint64_t epoch = tsdb_reclaim_enter(&h->reclaim);
    pthread_rwlock_rdlock(&h->postings.lock);
    tsdb_ref maxref = h->next_ref;
    pthread_rwlock_unlock(&h->postings.lock);
    uint8_t *cbuf = NULL;
    size_t ccap = 0;
    for (tsdb_ref lo = 1; lo < maxref && rc == 0; lo += 4096) {
        tsdb_ref hi = lo + 4096 < maxref ? lo + 4096 : maxref;
        ck_begin(&w, TSDB_WAL_REC_SERIES);
        for (tsdb_ref ref = lo; ref < hi; ref++) {
            struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
            if (s && !s->removed)
                ck_put_series(&w, s, ref);
        }
        ck_end(&w);
        ck_begin(&wo, TSDB_WAL_REC_OPEN_STATE);
        for (tsdb_ref ref = lo; ref < hi && rc == 0; ref++) {
            struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
            if (!s || s->ref != ref || s->removed)
                continue;
            tsdb_series_lock(s);
            for (size_t i = 0; i < s->nchunks; i++) {
                if (s->chunks[i].ref & TSDB_HCHUNK_MEM)
                    rc = BS_ELIMIT;
            }
            size_t len = s->open.n > 0 ? tsdb_xor_enc_bytes(&s->open) : 0;
            struct tsdb_xor_state st;
            tsdb_xor_enc_state(&s->open, &st);
            if (rc == 0 && len > 0) {
                if (len > ccap) {
                    ccap = len * 2;
                    cbuf = bs_xrealloc(cbuf, ccap);
                }
                memcpy(cbuf, s->open.buf, len);
            }
            tsdb_series_unlock(s);
            if (rc || len == 0)
                continue;
            ck_reserve(&wo, 50 + len);
            wo.len += bs_put_uvarint(wo.buf + wo.len, ref);
            wo.len += bs_put_varint(wo.buf + wo.len, st.t);
            wo.len += bs_put_uvarint(wo.buf + wo.len, len);
            memcpy(wo.buf + wo.len, cbuf, len);
            wo.len += len;
            wo.buf[wo.len++] = st.tail;
            wo.buf[wo.len++] = st.leading;
            wo.buf[wo.len++] = st.trailing;
            wo.len += bs_put_varint(wo.buf + wo.len, st.tdelta);
            bs_put_be64(wo.buf + wo.len, st.v);
            wo.len += 8;
            chunks++;
        }
        ck_end(&wo);
        if (rc == 0 && w.len >= (8u << 20)) {
            bytes += w.len;
            rc = ck_flush(&w, err);
        }
        if (rc == 0 && wo.len >= (8u << 20)) {
            bytes += wo.len;
            rc = ck_flush(&wo, err);
        }
    }
    tsdb_reclaim_exit(&h->reclaim, epoch);
    free(cbuf);
    if (rc == BS_ELIMIT) {
        bs_error_set(err, rc,
                     "head checkpoint skipped: some closed chunks are held in memory after a "
                     "failed head chunk file write; the WAL keeps them");
        goto done;
    }
    if (rc == 0)
        rc = ck_put_tombstones(db, &w, INT64_MIN, err);
    bytes += w.len + wo.len;
    if (rc == 0)
        rc = ck_flush(&w, err);
    if (rc == 0)
        rc = ck_flush(&wo, err);
    /* The closed chunks must be durable before the segments holding their
     * samples go. */
    if (rc == 0 && h->hc)
        rc = tsdb_hchunks_sync(h->hc, err);
    struct ck_writer *ws[2] = {&w, &wo};
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        if (fsync(ws[i]->fd) != 0) {
            int e = errno;
            rc = bs_error_set(err, errno_code(e), "fsync of %s failed: %s", ws[i]->path,
                              strerror(e));
        }
    }
    close(w.fd);
    w.fd = -1;
    close(wo.fd);
    wo.fd = -1;
    if (rc)
        goto done;
    int e = tsdb_fsync_dir(tmp);
    if (e == 0 && rename(tmp, final) != 0)
        e = errno;
    if (e == 0)
        e = tsdb_fsync_dir(waldir);
    if (e) {
        rc = bs_error_set(err, errno_code(e), "cannot commit checkpoint %s: %s", final,
                          strerror(e));
        goto done;
    }
    uint64_t dropped = 0;
    rc = tsdb_wal_segments(waldir, &segs, &nsegs, err);
    for (size_t i = 0; i < nsegs && rc == 0; i++) {
        if (segs[i] > last)
            break;
        snprintf(path, sizeof(path), "%s/%08u", waldir, segs[i]);
        struct stat st;
        if (stat(path, &st) == 0)
            dropped += (uint64_t)st.st_size;
        if (unlink(path) != 0)
            BS_WARN("tsdb", "cannot delete WAL segment %s: %s", path, strerror(errno));
    }
    if (prev_found) {
        char prevdir[4200];
        snprintf(prevdir, sizeof(prevdir), "%s/" TSDB_WAL_CHECKPOINT_PREFIX "%08u", waldir, prev);
        if (tsdb_rmdir_all(prevdir) != 0)
            BS_WARN("tsdb", "cannot delete old checkpoint %s", prevdir);
    }
    pthread_mutex_lock(&db->wal.mu);
    db->wal.total_bytes = db->wal.total_bytes > dropped ? db->wal.total_bytes - dropped : 0;
    db->wal.total_bytes += bytes;
    db->ck_wal_bytes = db->wal.total_bytes;
    db->ck_bytes = bytes;
    pthread_mutex_unlock(&db->wal.mu);
    __atomic_add_fetch(&db->head_checkpoints, 1, __ATOMIC_RELAXED);
    BS_INFO("tsdb",
            "head checkpoint %s written: %llu series, %llu open chunks (%.1f MiB), WAL segments "
            "up to %08u deleted, in %.3fs",
            final, (unsigned long long)w.series, (unsigned long long)chunks,
            (double)bytes / 1048576.0, last, (double)(bs_monotonic_ns() - t0) / 1e9);
done:
    if (w.fd >= 0)
        close(w.fd);
    if (wo.fd >= 0)
        close(wo.fd);
    if (rc)
        tsdb_rmdir_all(tmp);
    free(w.buf);
    free(wo.buf);
    free(segs);
    return rc;
}
