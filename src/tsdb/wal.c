/* SPDX-License-Identifier: Apache-2.0
 *
 * The WAL writer: one mutex-protected writer appending framed, CRC32C-
 * checked records to numbered segment files (docs/format/wal.md).
 *
 * A commit builds its records in a userspace buffer (under the mutex),
 * then writes them with write(2) before any sample becomes visible. A
 * failed write cuts the segment back to its previous length so a batch is
 * all-or-nothing on disk too. A batch never straddles two segments: when
 * the current segment would grow past its size limit, it is fsynced and
 * closed first, and the batch starts a new one.
 *
 * Full disk. A write that fails (ENOSPC, EIO) is cut back with ftruncate
 * to where the segment ended before the batch, the commit fails and
 * nothing of it is visible. The writer stays usable: when the cut back
 * itself fails, or an fsync failed (after which Linux does not say which
 * pages reached the disk), the segment is abandoned and the next flush
 * starts a new one; a segment that could not be created (rotation on a
 * full disk) is created by the next flush. So commits resume by
 * themselves once space returns, and replay sees at worst a torn tail in
 * an abandoned segment, which it cuts with one warning and goes on.
 *
 * fsync policy: with wal_fsync_interval_ms == 0 every commit fsyncs before
 * returning. Otherwise a background thread fsyncs a dup() of the segment's
 * descriptor at that interval when something was written, outside the
 * mutex so commits are not stalled by the disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/tsdb_int.h"

static void seg_path(char *dst, size_t cap, const char *dir, uint32_t seg)
{
    snprintf(dst, cap, "%s/%08u", dir, seg);
}

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? BS_ENOSPC : BS_EIO;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int segment_create(struct tsdb_wal *w, uint32_t seg, struct bs_error *err)
{
    char path[4096];
    seg_path(path, sizeof(path), w->dir, seg);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return bs_error_set(err, errno_code(e), "cannot create WAL segment %s: %s", path,
                            strerror(e));
    }
    fsync_dir(w->dir);
    w->fd = fd;
    w->seg = seg;
    w->seg_off = 0;
    return 0;
}

static void *fsync_thread(void *arg)
{
    struct tsdb_wal *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (w->fsync_interval_ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(w->fsync_interval_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&w->cond, &w->mu, &ts);
        if (w->stopping)
            break;
        if (w->dirty && w->fd >= 0) {
            int fd = dup(w->fd);
            w->dirty = false;
            pthread_mutex_unlock(&w->mu);
            if (fd >= 0) {
                if (fsync(fd) != 0)
                    BS_ERROR("tsdb", "fsync of WAL segment failed: %s", strerror(errno));
                close(fd);
            }
            pthread_mutex_lock(&w->mu);
            w->fsyncs++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int tsdb_wal_open(struct tsdb_wal *w, const char *waldir, uint64_t seg_max,
                  int64_t fsync_interval_ms, uint32_t first_seg, struct bs_error *err)
{
    uint64_t carried = w->total_bytes; /* set by replay before open */
    memset(w, 0, sizeof(*w));
    w->total_bytes = carried;
    w->fd = -1;
    w->dir = bs_xstrdup(waldir);
    w->seg_max = seg_max ? seg_max : TSDB_WAL_DEFAULT_SEGMENT;
    w->fsync_interval_ms = fsync_interval_ms > 0 ? fsync_interval_ms : 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);

    int rc = segment_create(w, first_seg, err);
    if (rc)
        goto fail;
    if (w->fsync_interval_ms > 0) {
        if (pthread_create(&w->thread, NULL, fsync_thread, w) != 0) {
            rc = bs_error_set(err, BS_ENOMEM, "cannot start the WAL fsync thread");
            goto fail;
        }
        w->thread_started = true;
    }
    return 0;
fail:
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    w->dir = NULL;
    return rc;
}

void tsdb_wal_close(struct tsdb_wal *w)
{
    if (!w->dir)
        return;
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
    pthread_mutex_lock(&w->mu);
    if (w->len > 0) {
        struct bs_error err;
        if (tsdb_wal_flush_locked(w, &err) != 0)
            BS_ERROR("tsdb", "%s", err.msg);
    }
    if (w->fd >= 0) {
        if (fsync(w->fd) != 0)
            BS_ERROR("tsdb", "fsync of WAL segment %08u in %s failed: %s", w->seg, w->dir,
                     strerror(errno));
        close(w->fd);
        w->fd = -1;
    }
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w->buf);
    free(w->dir);
    w->buf = NULL;
    w->dir = NULL;
}

/* -------------------------------------------------------------- records */

static int reserve(struct tsdb_wal *w, size_t extra)
{
    if (w->len + extra <= w->cap)
        return 0;
    size_t ncap = w->cap ? w->cap : 4096;
    while (ncap < w->len + extra)
        ncap *= 2;
    uint8_t *nb = realloc(w->buf, ncap);
    if (!nb)
        return BS_ENOMEM;
    w->buf = nb;
    w->cap = ncap;
    return 0;
}

int tsdb_wal_rec_begin(struct tsdb_wal *w, uint8_t type)
{
    int rc = reserve(w, TSDB_WAL_HEADER);
    if (rc)
        return rc;
    w->rec_start = w->len;
    w->buf[w->len] = type;
    w->len += TSDB_WAL_HEADER;
    return 0;
}

int tsdb_wal_put(struct tsdb_wal *w, const void *p, size_t n)
{
    int rc = reserve(w, n);
    if (rc)
        return rc;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

int tsdb_wal_put_uvarint(struct tsdb_wal *w, uint64_t v)
{
    int rc = reserve(w, 10);
    if (rc)
        return rc;
    w->len += bs_put_uvarint(w->buf + w->len, v);
    return 0;
}

int tsdb_wal_put_varint(struct tsdb_wal *w, int64_t v)
{
    int rc = reserve(w, 10);
    if (rc)
        return rc;
    w->len += bs_put_varint(w->buf + w->len, v);
    return 0;
}

size_t tsdb_wal_rec_payload_len(const struct tsdb_wal *w)
{
    return w->len - w->rec_start - TSDB_WAL_HEADER;
}

void tsdb_wal_rec_end(struct tsdb_wal *w)
{
    uint8_t *h = w->buf + w->rec_start;
    size_t plen = tsdb_wal_rec_payload_len(w);
    bs_put_be32(h + 1, (uint32_t)plen);
    uint32_t crc = bs_crc32c(0, h, 5);
    crc = bs_crc32c(crc, h + TSDB_WAL_HEADER, plen);
    bs_put_be32(h + 5, crc);
}

void tsdb_wal_discard(struct tsdb_wal *w)
{
    w->len = 0;
    w->rec_start = 0;
}

int tsdb_wal_log_series(struct tsdb_wal *w, const struct tsdb_series *s)
{
    int rc = tsdb_wal_put_uvarint(w, s->ref);
    if (rc == 0)
        rc = tsdb_wal_put_uvarint(w, s->lset.n);
    for (size_t i = 0; i < s->lset.n && rc == 0; i++) {
        size_t nl = strlen(s->lset.v[i].name), vl = strlen(s->lset.v[i].value);
        rc = tsdb_wal_put_uvarint(w, nl);
        if (rc == 0)
            rc = tsdb_wal_put(w, s->lset.v[i].name, nl);
        if (rc == 0)
            rc = tsdb_wal_put_uvarint(w, vl);
        if (rc == 0)
            rc = tsdb_wal_put(w, s->lset.v[i].value, vl);
    }
    return rc;
}

/* --------------------------------------------------------------- flush */

int tsdb_wal_cut_locked(struct tsdb_wal *w, struct bs_error *err)
{
    if (w->fd < 0)
        return bs_error_set(err, BS_ECLOSED, "the WAL in %s is closed",
                            w->dir ? w->dir : "(unknown)");
    if (fsync(w->fd) != 0) {
        int e = errno;
        return bs_error_set(err, errno_code(e), "fsync of WAL segment %s/%08u failed: %s", w->dir,
                            w->seg, strerror(e));
    }
    close(w->fd);
    w->fd = -1;
    w->dirty = false;
    return segment_create(w, w->seg + 1, err);
}

/* Make the writer usable again after a failed flush or cut: abandon a
 * segment whose tail is in doubt (best-effort cut back first) and create
 * the next segment when there is none. Caller holds w->mu. */
static int wal_recover_locked(struct tsdb_wal *w, struct bs_error *err)
{
    if (w->fd >= 0 && w->repair) {
        if (ftruncate(w->fd, (off_t)w->seg_off) != 0)
            BS_WARN("tsdb", "WAL segment %s/%08u keeps a torn tail; replay will cut it", w->dir,
                    w->seg);
        close(w->fd);
        w->fd = -1;
        w->dirty = false;
    }
    if (w->fd >= 0)
        return 0;
    int rc = segment_create(w, w->seg + 1, err);
    if (rc == 0) {
        w->repair = false;
        BS_INFO("tsdb", "WAL writing resumes in segment %s/%08u", w->dir, w->seg);
    }
    return rc;
}

/* A flush failed: count it, drop the batch. */
static int flush_failed(struct tsdb_wal *w, int rc)
{
    __atomic_add_fetch(&w->write_failures, 1, __ATOMIC_RELAXED);
    tsdb_wal_discard(w);
    return rc;
}

int tsdb_wal_flush_locked(struct tsdb_wal *w, struct bs_error *err)
{
    if (w->len == 0)
        return 0;
    int rc;
    if (!w->dir) {
        tsdb_wal_discard(w);
        return bs_error_set(err, BS_ECLOSED, "the WAL is closed");
    }
    if (w->fd < 0 || w->repair) {
        rc = wal_recover_locked(w, err);
        if (rc)
            return flush_failed(w, rc);
    }
    if (w->seg_off > 0 && w->seg_off + w->len > w->seg_max) {
        rc = tsdb_wal_cut_locked(w, err);
        if (rc)
            return flush_failed(w, rc);
    }
    size_t done = 0;
    while (done < w->len) {
        ssize_t k = write(w->fd, w->buf + done, w->len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            if (ftruncate(w->fd, (off_t)w->seg_off) != 0) {
                BS_ERROR("tsdb", "cannot cut WAL segment %s/%08u back after a failed write: %s",
                         w->dir, w->seg, strerror(errno));
                w->repair = true;
            }
            bs_error_set(err, errno_code(e), "writing WAL segment %s/%08u failed: %s", w->dir,
                         w->seg, strerror(e));
            return flush_failed(w, errno_code(e));
        }
        done += (size_t)k;
    }
    if (w->fsync_interval_ms == 0) {
        if (fsync(w->fd) != 0) {
            int e = errno;
            if (ftruncate(w->fd, (off_t)w->seg_off) != 0)
                BS_ERROR("tsdb", "cannot cut WAL segment %s/%08u back after a failed fsync: %s",
                         w->dir, w->seg, strerror(errno));
            w->repair = true; /* what reached the disk is unknown: new segment */
            bs_error_set(err, errno_code(e), "fsync of WAL segment %s/%08u failed: %s", w->dir,
                         w->seg, strerror(e));
            return flush_failed(w, errno_code(e));
        }
        w->fsyncs++;
    } else {
        w->dirty = true;
    }
    w->seg_off += w->len;
    w->total_bytes += w->len;
    tsdb_wal_discard(w);
    return 0;
}

/* ------------------------------------------------------------ segments */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int tsdb_wal_segments(const char *waldir, uint32_t **out, size_t *n, struct bs_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(waldir);
    if (!d) {
        int e = errno;
        return bs_error_set(err, errno_code(e), "cannot read WAL directory %s: %s", waldir,
                            strerror(e));
    }
    uint32_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strlen(name) != 8 || strspn(name, "0123456789") != 8)
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = bs_xrealloc(v, cap * sizeof(*v));
        }
        v[cnt++] = (uint32_t)strtoul(name, NULL, 10);
    }
    closedir(d);
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), cmp_u32);
    *out = v;
    *n = cnt;
    return 0;
}
