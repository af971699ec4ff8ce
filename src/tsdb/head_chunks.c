/* SPDX-License-Identifier: Apache-2.0
 *
 * Head chunk files: closed head chunks on disk, read through mmap(2), so
 * that resident memory holds little more than the series, the postings
 * and the open chunks (byte layout in docs/format/head_chunks.md).
 *
 * Writing. When a series cuts its open chunk (head.c, under the series
 * mutex), the chunk is appended to the current file of <dir>/chunks_head/
 * with one pwrite(2) under this writer's mutex, and the series keeps only
 * a 24-byte reference (mint, maxt, file << 32 | offset). A chunk cut is a
 * rare event (once per 120 samples of a series), so a syscall per chunk
 * is cheap, and the bytes are in the page cache as soon as it returns:
 * they survive kill -9 without any fsync. Power loss is covered by the
 * WAL, whose segments are deleted only after tsdb_hchunks_sync(). When a
 * write fails (full disk, or no file available), the caller keeps the
 * chunk in memory instead; nothing is lost.
 *
 * Reading. Each file is mapped once, read-only and shared, over the
 * whole TSDB_HCF_SIZE it may grow to (pages past the end of the file are
 * never touched: every reference points below the size written). The
 * kernel pages the mapping in on a query and out under memory pressure;
 * writes go through pwrite, so ingestion never makes the pages resident
 * in this process. Mappings are found by file index in a ring of
 * TSDB_HCF_SLOTS slots, published with release stores and read without
 * locks; a reader that got a chunk pointer is protected from the
 * unmapping by its reclaim epoch (see reclaim.c): truncation retires the
 * unmapping through the head's reclaimer.
 *
 * Deletion. Each file remembers the newest maxt of its chunks; head
 * truncation at time mint deletes every file but the current one whose
 * chunks all end before mint, which are exactly the files none of whose
 * chunks the head still references.
 *
 * Open. tsdb_hchunks_scan() reads every file in index order, checks each
 * record's bounds and CRC32C and hands the good ones to a callback (WAL
 * replay attaches them to their series). A damaged record ends its file:
 * the file is truncated there with one warning, as a torn WAL tail is.
 * After scanning a file its pages are dropped from this process's page
 * tables (MADV_DONTNEED), so the scan does not count as resident memory.
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

#include "tsdb/tsdb_int.h"

struct hcf {
    uint8_t *map;  /* TSDB_HCF_SIZE bytes, read-only */
    uint32_t idx;  /* file index: <dir>/chunks_head/NNNNNN */
    int64_t maxt;  /* newest maxt of its chunks; INT64_MIN when none */
};

struct tsdb_hchunks {
    char *dir; /* <data>/chunks_head */
    pthread_mutex_t mu;
    struct hcf *slots[TSDB_HCF_SLOTS]; /* by idx % TSDB_HCF_SLOTS (atomic loads) */
    struct hcf *cur;                   /* file being written, NULL before the first write */
    int cur_fd;
    uint64_t cur_size;
    bool dirty;            /* cur written since the last sync */
    uint32_t next_idx;     /* index of the next file to create */
    bool write_failed;     /* logged once per failure streak */
    uint64_t chunks_written; /* atomics */
    uint64_t write_failures;
};

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static int errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? BS_ENOSPC : BS_EIO;
}

static void file_path(const struct tsdb_hchunks *hc, uint32_t idx, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%06u", hc->dir, idx);
}

/* Map path read-only over TSDB_HCF_SIZE bytes. */
static uint8_t *map_file(int fd)
{
    void *p = mmap(NULL, TSDB_HCF_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void hcf_free(void *p)
{
    struct hcf *f = p;
    munmap(f->map, TSDB_HCF_SIZE);
    free(f);
}

/* "NNNNNN" (digits only) -> true and *idx. */
static bool parse_name(const char *name, uint32_t *idx)
{
    size_t n = strlen(name);
    if (n == 0 || n > 9 || strspn(name, "0123456789") != n)
        return false;
    *idx = (uint32_t)strtoul(name, NULL, 10);
    return true;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted indices of the files in hc->dir; *out malloc'd. */
static int list_files(const struct tsdb_hchunks *hc, uint32_t **out, size_t *n,
                      struct bs_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(hc->dir);
    if (!d) {
        int e = errno;
        return bs_error_set(err, BS_EIO, "cannot read %s: %s", hc->dir, strerror(e));
    }
    uint32_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint32_t idx;
        if (!parse_name(de->d_name, &idx))
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = bs_xrealloc(v, cap * sizeof(*v));
        }
        v[cnt++] = idx;
    }
    closedir(d);
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), cmp_u32);
    *out = v;
    *n = cnt;
    return 0;
}

int tsdb_hchunks_open(const char *datadir, struct tsdb_hchunks **out, struct bs_error *err)
{
    *out = NULL;
    struct tsdb_hchunks *hc = bs_xcalloc(1, sizeof(*hc));
    size_t n = strlen(datadir) + sizeof("/chunks_head");
    hc->dir = bs_xmalloc(n);
    snprintf(hc->dir, n, "%s/chunks_head", datadir);
    hc->cur_fd = -1;
    pthread_mutex_init(&hc->mu, NULL);
    if (mkdir(hc->dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        int rc = bs_error_set(err, errno_code(e), "cannot create %s: %s", hc->dir, strerror(e));
        tsdb_hchunks_close(hc);
        return rc;
    }
    *out = hc;
    return 0;
}

void tsdb_hchunks_close(struct tsdb_hchunks *hc)
{
    if (!hc)
        return;
    if (hc->cur_fd >= 0) {
        if (hc->dirty && fsync(hc->cur_fd) != 0)
            BS_WARN("tsdb", "fsync of head chunk file %s/%06u failed: %s", hc->dir, hc->cur->idx,
                    strerror(errno));
        close(hc->cur_fd);
    }
    for (size_t i = 0; i < TSDB_HCF_SLOTS; i++) {
        if (hc->slots[i])
            hcf_free(hc->slots[i]);
    }
    pthread_mutex_destroy(&hc->mu);
    free(hc->dir);
    free(hc);
}

/* ----------------------------------------------------------------- scan */

/* Check the record at f[off..size): 0 and *reclen when whole and its CRC
 * matches, else a static reason. */
static const char *check_record(const uint8_t *p, uint64_t avail, size_t *reclen)
{
    if (avail < TSDB_HCF_REC_HEADER + 4)
        return "torn record header";
    uint32_t len = bs_get_be32(p + 35);
    if (p[32] != TSDB_CHUNK_ENC_XOR || len == 0 || len > TSDB_HCF_MAX_CHUNK)
        return "invalid record header";
    if (avail < (uint64_t)TSDB_HCF_REC_HEADER + len + 4)
        return "torn record";
    uint32_t crc = bs_crc32c(0, p, TSDB_HCF_REC_HEADER + (size_t)len);
    if (crc != bs_get_be32(p + TSDB_HCF_REC_HEADER + len))
        return "CRC mismatch";
    *reclen = TSDB_HCF_REC_HEADER + (size_t)len + 4;
    return NULL;
}

int tsdb_hchunks_scan(struct tsdb_hchunks *hc, int64_t min_valid, tsdb_hchunks_scan_fn fn,
                      void *arg, struct bs_error *err)
{
    uint32_t *idx;
    size_t n;
    int rc = list_files(hc, &idx, &n, err);
    if (rc)
        return rc;
    char path[4200];
    uint64_t chunks = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        file_path(hc, idx[i], path, sizeof(path));
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            int e = errno;
            rc = bs_error_set(err, BS_EIO, "cannot open head chunk file %s: %s", path,
                              strerror(e));
            if (fd >= 0)
                close(fd);
            break;
        }
        uint64_t size = (uint64_t)st.st_size;
        uint8_t *map = size > 0 ? map_file(fd) : NULL;
        if (size > 0 && !map) {
            int e = errno;
            close(fd);
            rc = bs_error_set(err, BS_EIO, "cannot map head chunk file %s: %s", path,
                              strerror(e));
            break;
        }
        if (size > TSDB_HCF_SIZE)
            size = TSDB_HCF_SIZE;
        const char *why = NULL;
        uint64_t off = TSDB_HCF_HEADER;
        if (size < TSDB_HCF_HEADER || bs_get_be32(map) != TSDB_HCF_MAGIC ||
            map[4] != TSDB_HCF_VERSION) {
            why = "missing or invalid file header";
            off = 0;
        }
        int64_t fmaxt = INT64_MIN;
#ifdef MADV_POPULATE_READ
        /* Every page is read once: map them in one call rather than one
         * fault each (an older kernel refuses, and faults do the work). */
        if (map && !why)
            madvise(map, size, MADV_POPULATE_READ);
#endif
        while (!why && off < size) {
            const uint8_t *p = map + off;
            size_t reclen;
            why = check_record(p, size - off, &reclen);
            if (why)
                break;
            struct tsdb_hchunk c = {(int64_t)bs_get_be64(p + 8), (int64_t)bs_get_be64(p + 16),
                                    (uint64_t)idx[i] << 32 | off};
            if (c.maxt < c.mint) {
                why = "invalid record header";
                break;
            }
            if (c.maxt > fmaxt)
                fmaxt = c.maxt;
            if (c.maxt >= min_valid)
                fn(arg, bs_get_be64(p), &c, get_be16(p + 33), bs_get_be64(p + 24));
            chunks++;
            off += reclen;
        }
        if (why) {
            BS_WARN("tsdb",
                    "head chunk file %s: %s at offset %llu; truncating the file to %llu bytes "
                    "(%llu bytes dropped)",
                    path, why, (unsigned long long)off, (unsigned long long)off,
                    (unsigned long long)((uint64_t)st.st_size - off));
            if (ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0)
                BS_ERROR("tsdb", "cannot truncate head chunk file %s: %s", path,
                         strerror(errno));
            size = off;
        }
        bytes += size;
        if (map)
            madvise(map, size, MADV_DONTNEED);
        close(fd);
        if (size < TSDB_HCF_HEADER) {
            /* Nothing usable (an empty file left by a crash at creation). */
            if (map)
                munmap(map, TSDB_HCF_SIZE);
            unlink(path);
            continue;
        }
        struct hcf *f = bs_xcalloc(1, sizeof(*f));
        f->map = map;
        f->idx = idx[i];
        f->maxt = fmaxt;
        struct hcf *old = hc->slots[f->idx % TSDB_HCF_SLOTS];
        if (old) { /* more live files than slots: should never happen */
            hcf_free(f);
            rc = bs_error_set(err, BS_ELIMIT, "too many head chunk files in %s", hc->dir);
            break;
        }
        __atomic_store_n(&hc->slots[f->idx % TSDB_HCF_SLOTS], f, __ATOMIC_RELEASE);
        hc->next_idx = f->idx + 1;
    }
    if (n > 0 && rc == 0)
        BS_INFO("tsdb", "loaded %llu head chunks (%.1f MiB) from %zu files in %s",
                (unsigned long long)chunks, (double)bytes / 1048576.0, n, hc->dir);
    free(idx);
    return rc;
}

/* ---------------------------------------------------------------- write */

/* Start file hc->next_idx; caller holds hc->mu. The previous file is
 * fsynced and closed (its mapping stays). */
static int rotate_locked(struct tsdb_hchunks *hc)
{
    char path[4200];
    if (hc->cur_fd >= 0) {
        if (hc->dirty && fsync(hc->cur_fd) != 0)
            return errno_code(errno);
        close(hc->cur_fd);
        hc->cur_fd = -1;
        hc->cur = NULL;
        hc->dirty = false;
    }
    uint32_t idx = hc->next_idx;
    if (hc->slots[idx % TSDB_HCF_SLOTS])
        return BS_ELIMIT;
    file_path(hc, idx, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno_code(errno);
    uint8_t hdr[TSDB_HCF_HEADER] = {0};
    bs_put_be32(hdr, TSDB_HCF_MAGIC);
    hdr[4] = TSDB_HCF_VERSION;
    uint8_t *map = NULL;
    int rc = 0;
    if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
        rc = errno ? errno_code(errno) : BS_ENOSPC;
    else if (!(map = map_file(fd)))
        rc = BS_ENOMEM;
    if (rc) {
        close(fd);
        unlink(path);
        return rc;
    }
    struct hcf *f = bs_xcalloc(1, sizeof(*f));
    f->map = map;
    f->idx = idx;
    f->maxt = INT64_MIN;
    __atomic_store_n(&hc->slots[idx % TSDB_HCF_SLOTS], f, __ATOMIC_RELEASE);
    hc->cur = f;
    hc->cur_fd = fd;
    hc->cur_size = TSDB_HCF_HEADER;
    hc->next_idx = idx + 1;
    hc->dirty = true;
    return 0;
}

int tsdb_hchunks_write(struct tsdb_hchunks *hc, uint64_t sref, int64_t mint, int64_t maxt,
                       uint16_t nsamples, uint64_t last_v, const uint8_t *data, uint32_t len,
                       uint64_t *ref)
{
    if (len == 0 || len > TSDB_HCF_MAX_CHUNK)
        return BS_EINVAL;
    uint8_t stackbuf[TSDB_HCF_REC_HEADER + 4096 + 4];
    size_t reclen = TSDB_HCF_REC_HEADER + (size_t)len + 4;
    uint8_t *rec = reclen <= sizeof(stackbuf) ? stackbuf : malloc(reclen);
    if (!rec)
        return BS_ENOMEM;
    bs_put_be64(rec, sref);
    bs_put_be64(rec + 8, (uint64_t)mint);
    bs_put_be64(rec + 16, (uint64_t)maxt);
    bs_put_be64(rec + 24, last_v);
    rec[32] = TSDB_CHUNK_ENC_XOR;
    put_be16(rec + 33, nsamples);
    bs_put_be32(rec + 35, len);
    memcpy(rec + TSDB_HCF_REC_HEADER, data, len);
    bs_put_be32(rec + TSDB_HCF_REC_HEADER + len, bs_crc32c(0, rec, TSDB_HCF_REC_HEADER + len));

    int rc = 0;
    pthread_mutex_lock(&hc->mu);
    if (!hc->cur || hc->cur_size + reclen > TSDB_HCF_SIZE)
        rc = rotate_locked(hc);
    if (rc == 0) {
        ssize_t k = pwrite(hc->cur_fd, rec, reclen, (off_t)hc->cur_size);
        if (k != (ssize_t)reclen) {
            rc = k < 0 ? errno_code(errno) : BS_ENOSPC;
            if (k > 0 && ftruncate(hc->cur_fd, (off_t)hc->cur_size) != 0)
                hc->cur_size += (uint64_t)k; /* cannot cut back: skip the torn bytes */
        }
    }
    if (rc == 0) {
        *ref = (uint64_t)hc->cur->idx << 32 | hc->cur_size;
        hc->cur_size += reclen;
        hc->dirty = true;
        if (maxt > hc->cur->maxt)
            hc->cur->maxt = maxt;
        hc->chunks_written++;
        if (hc->write_failed) {
            hc->write_failed = false;
            BS_INFO("tsdb", "writing head chunks to %s works again", hc->dir);
        }
    } else {
        hc->write_failures++;
        if (!hc->write_failed) {
            hc->write_failed = true;
            BS_WARN("tsdb", "cannot write a head chunk to %s: %s; keeping chunks in memory "
                    "until writes succeed again", hc->dir, bs_strerror(rc));
        }
    }
    pthread_mutex_unlock(&hc->mu);
    if (rec != stackbuf)
        free(rec);
    return rc;
}

const uint8_t *tsdb_hchunks_data(struct tsdb_hchunks *hc, uint64_t ref, uint32_t *len,
                                 uint16_t *nsamples)
{
    uint32_t idx = (uint32_t)(ref >> 32);
    struct hcf *f = __atomic_load_n(&hc->slots[idx % TSDB_HCF_SLOTS], __ATOMIC_ACQUIRE);
    if (!f || f->idx != idx)
        return NULL;
    const uint8_t *p = f->map + (uint32_t)ref;
    *len = bs_get_be32(p + 35);
    if (nsamples)
        *nsamples = get_be16(p + 33);
    return p + TSDB_HCF_REC_HEADER;
}

int tsdb_hchunks_sync(struct tsdb_hchunks *hc, struct bs_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&hc->mu);
    if (hc->cur_fd >= 0 && hc->dirty) {
        if (fsync(hc->cur_fd) != 0) {
            int e = errno;
            rc = bs_error_set(err, errno_code(e), "fsync of head chunk file %s/%06u failed: %s",
                              hc->dir, hc->cur->idx, strerror(e));
        } else {
            hc->dirty = false;
        }
    }
    pthread_mutex_unlock(&hc->mu);
    if (rc == 0 && tsdb_fsync_dir(hc->dir) != 0)
        rc = bs_error_set(err, BS_EIO, "fsync of %s failed", hc->dir);
    return rc;
}

size_t tsdb_hchunks_truncate(struct tsdb_hchunks *hc, int64_t mint, struct tsdb_reclaim *r)
{
    size_t deleted = 0;
    char path[4200];
    pthread_mutex_lock(&hc->mu);
    for (size_t i = 0; i < TSDB_HCF_SLOTS; i++) {
        struct hcf *f = hc->slots[i];
        if (!f || f == hc->cur || f->maxt >= mint)
            continue;
        __atomic_store_n(&hc->slots[i], NULL, __ATOMIC_RELEASE);
        file_path(hc, f->idx, path, sizeof(path));
        if (unlink(path) != 0)
            BS_WARN("tsdb", "cannot delete head chunk file %s: %s", path, strerror(errno));
        if (r)
            tsdb_reclaim_retire(r, f, hcf_free);
        else
            hcf_free(f);
        deleted++;
    }
    pthread_mutex_unlock(&hc->mu);
    return deleted;
}

void tsdb_hchunks_stats(struct tsdb_hchunks *hc, uint64_t *written, uint64_t *failures,
                        size_t *files)
{
    pthread_mutex_lock(&hc->mu);
    *written = hc->chunks_written;
    *failures = hc->write_failures;
    size_t n = 0;
    for (size_t i = 0; i < TSDB_HCF_SLOTS; i++)
        n += hc->slots[i] != NULL;
    *files = n;
    pthread_mutex_unlock(&hc->mu);
}
