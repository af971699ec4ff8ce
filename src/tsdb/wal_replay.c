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
 * Two threads (see "the helper" below): the calling thread reads, checks
 * and decodes every record (interning the strings of series records) and
 * applies a third of the samples; a helper creates the series of series
 * records (while the caller decodes the next ones), applies the other two
 * thirds of the samples, and the open chunks of head checkpoints, which
 * carry their encoder state (record type 4) so that loading one is a
 * copy. A third thread scans the head chunk files while the leading
 * series records (a head checkpoint's first file) are turned into series
 * (see "head chunk file scan" below). A series record is decoded whole
 * before its series are created, so that the stripe slot each looks up
 * can be prefetched. The head does not fit in the caches, so applying a
 * sample is mostly waiting for memory: samples are decoded a batch ahead
 * and their series and chunk tails prefetched.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tsdb/tombstones.h"
#include "tsdb/tsdb_int.h"

#define REPLAY_BUF (1u << 20)
#define REPLAY_MAX_LABELS 65536u

/* ------------------------------------------------- head chunks to attach */

/* The chunks read from the head chunk files, waiting for their series to
 * be created by a series record: entries in scan order (so each series'
 * chunks oldest first), chained per series ref through `next`, found by
 * ref in a two-level table indexed by the ref itself (refs are dense, and
 * the scan meets them in nearly ascending order, so this is a few pages
 * walked in order where a hash table was a cache miss per chunk). */
struct pending_chunk {
    struct tsdb_hchunk c;
    uint64_t last_v;
    uint32_t next; /* index + 1 of the series' next chunk; 0 = none */
    uint32_t ref;  /* the series ref the chunk file names */
};

struct pending_slot {
    uint32_t first, last; /* index + 1; 0 = none waiting */
};

#define PENDING_PAGE_BITS 14
#define PENDING_PAGE_SIZE (1u << PENDING_PAGE_BITS)

struct pending {
    struct pending_chunk *v;
    size_t n, cap;
    struct pending_slot **pages; /* by ref >> PENDING_PAGE_BITS */
    size_t npages;
    size_t nrefs;  /* refs that ever had a chunk waiting */
    bool overflow; /* more than UINT32_MAX - 1 chunks: the rest are dropped */
};

/* The slot of ref, created when asked (NULL when absent and not asked). */
static struct pending_slot *pending_slot(struct pending *pd, uint64_t ref, bool create)
{
    size_t pi = (size_t)(ref >> PENDING_PAGE_BITS);
    if (pi >= pd->npages) {
        if (!create)
            return NULL;
        size_t n = pd->npages ? pd->npages : 64;
        while (n <= pi)
            n *= 2;
        pd->pages = bs_xrealloc(pd->pages, n * sizeof(*pd->pages));
        memset(pd->pages + pd->npages, 0, (n - pd->npages) * sizeof(*pd->pages));
        pd->npages = n;
    }
    if (!pd->pages[pi]) {
        if (!create)
            return NULL;
        pd->pages[pi] = bs_xcalloc(PENDING_PAGE_SIZE, sizeof(struct pending_slot));
    }
    return &pd->pages[pi][ref & (PENDING_PAGE_SIZE - 1)];
}

static void pending_add(void *arg, uint64_t sref, const struct tsdb_hchunk *c, uint16_t nsamples,
                        uint64_t last_v)
{
    struct pending *pd = arg;
    (void)nsamples;
    if (sref == 0 || sref > TSDB_REF_MAX || pd->n >= UINT32_MAX - 1) {
        pd->overflow = pd->overflow || (sref != 0 && sref <= TSDB_REF_MAX);
        return;
    }
    if (pd->n == pd->cap) {
        pd->cap = pd->cap ? pd->cap * 2 : 4096;
        pd->v = bs_xrealloc(pd->v, pd->cap * sizeof(*pd->v));
    }
    struct pending_slot *sl = pending_slot(pd, sref, true);
    uint32_t idx = (uint32_t)pd->n + 1;
    pd->v[pd->n++] = (struct pending_chunk){*c, last_v, 0, (uint32_t)sref};
    if (sl->last) {
        pd->v[sl->last - 1].next = idx;
    } else {
        sl->first = idx;
        pd->nrefs++;
    }
    sl->last = idx;
}

/* Attach the pending chunks of ref to s (just created by a series record). */
static int pending_attach(struct tsdb_head *h, struct pending *pd, uint64_t ref,
                          struct tsdb_series *s, uint64_t *attached)
{
    struct pending_slot *sl = pending_slot(pd, ref, false);
    if (!sl || !sl->first)
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
    for (size_t i = 0; i < pd->npages; i++)
        free(pd->pages[i]);
    free(pd->pages);
    memset(pd, 0, sizeof(*pd));
}

/* What applying records adds up (one per thread). */
struct replay_stats {
    uint64_t samples, skipped;
    uint64_t series, attached; /* created by series records; chunks attached to them */
    int64_t mint, maxt;
};

static void stats_time(struct replay_stats *st, int64_t mint, int64_t maxt)
{
    if (mint < st->mint)
        st->mint = mint;
    if (maxt > st->maxt)
        st->maxt = maxt;
}

struct replay_sample {
    struct tsdb_series *s;
    int64_t t;
    uint64_t v;
};

/* Work handed to the helper thread, in record order: the samples of a
 * batch that fall to its share, or a whole open chunks record (a copy). */
/* A decoded series record entry: labels lv[off .. off + n). */
struct series_ent {
    uint64_t ref, hash;
    size_t off, n;
};

#define REPLAY_JOB_ATTACH 0xa0 /* not a record type: the helper's share of attaching */

struct replay_job {
    uint8_t type; /* TSDB_WAL_REC_SAMPLES, _SERIES, an open chunks type or _ATTACH */
    struct replay_sample *v;
    size_t n, cap;
    uint8_t *payload;
    size_t len, pcap;
    struct series_ent *ents; /* series: ents[0..n), labels in lv */
    size_t ents_cap;
    struct label *lv;
    size_t lv_cap;
};

#define REPLAY_JOBS 8

struct replay_helper {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct replay_job jobs[REPLAY_JOBS];
    uint64_t posted, done; /* job sequence numbers (mu) */
    bool stop;
    int rc; /* first failure (mu) */
    struct replay_stats st; /* the thread's own; read after a drain */
    struct tsdb_head *h;
    struct replay *r; /* for series jobs: its pending chunks and scan state */
};

/* Strings of series records interned through the head's symtab, found
 * again without its lock (replay creates up to millions of series from a
 * few thousand distinct strings). Open addressing, load <= 1/2, at most
 * INTERN_CACHE_MAX entries (past that, strings go to the symtab only). */
#define INTERN_CACHE_MAX (1u << 20)

struct intern_slot {
    const char *s; /* interned; NULL = empty */
    uint64_t hash;
    size_t len;
};

struct intern_cache {
    struct intern_slot *v;
    size_t cap, n;
};

struct replay {
    struct tsdb *db;
    struct intern_cache icache;
    struct replay_helper *helper; /* NULL: everything on the calling thread */
    bool helper_samples;          /* jobs posted are samples (else open chunks) */
    struct replay_sample *mine;   /* this thread's batch of samples */
    size_t nmine, mine_cap;
    /* streaming reader */
    int fd;
    uint8_t *buf;
    size_t cap, start, end;
    bool eof;
    int read_errno;
    uint64_t off; /* file offset of buf[start] */
    /* scratch for series records: their entries, and the labels of all */
    struct series_ent *ents;
    size_t ents_cap;
    struct label *lv;
    size_t lv_cap;
    struct pending pending; /* head chunks waiting for their series */
    struct replay_scan *scan; /* head chunk file scan still running, or NULL */
    /* for the log line: seconds since t0 when the leading series records
     * were all made into series; the scan's time; the attaching's */
    int64_t t0;
    double series_wall, scan_wall, scan_cpu, attach_wall;
    /* totals */
    struct replay_stats st;
};

/* ------------------------------------------------ head chunk file scan */

/* The head chunk files are scanned (CRC checked, their chunks put in
 * r->pending) on a thread of their own while the calling thread creates
 * the series of the checkpoint's series records: neither needs the other
 * until the first record that is not a series record (a head checkpoint
 * writes all its series records first, in a file of their own). Then the
 * caller joins the scan and attaches, in one pass in scan order, the
 * chunks of every series created so far; chunks of series defined later
 * wait in r->pending as before. */
struct replay_scan {
    pthread_t th;
    struct tsdb_hchunks *hc;
    int64_t min_valid;
    struct pending *pd; /* written by the scan thread only until joined */
    struct bs_error err;
    int rc;
    double wall, cpu; /* seconds the scan took */
};

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *scan_main(void *arg)
{
    struct replay_scan *sc = arg;
    int64_t t0 = bs_monotonic_ns();
    double c0 = thread_cpu_seconds();
    sc->rc = tsdb_hchunks_scan(sc->hc, sc->min_valid, pending_add, sc->pd, &sc->err);
    sc->cpu = thread_cpu_seconds() - c0;
    sc->wall = (double)(bs_monotonic_ns() - t0) / 1e9;
    return NULL;
}

/* Start the scan of h's head chunk files into r->pending: on a thread, or
 * here when no thread can be created (r->scan stays NULL then). */
static int scan_start(struct replay *r, struct bs_error *err)
{
    struct tsdb_head *h = &r->db->head;
    struct replay_scan *sc = calloc(1, sizeof(*sc));
    if (sc) {
        sc->hc = h->hc;
        sc->min_valid = h->min_valid;
        sc->pd = &r->pending;
        if (pthread_create(&sc->th, NULL, scan_main, sc) == 0) {
            r->scan = sc;
            return 0;
        }
        free(sc);
    }
    int64_t t0 = bs_monotonic_ns();
    double c0 = thread_cpu_seconds();
    int rc = tsdb_hchunks_scan(h->hc, h->min_valid, pending_add, &r->pending, err);
    r->scan_cpu = thread_cpu_seconds() - c0;
    r->scan_wall = (double)(bs_monotonic_ns() - t0) / 1e9;
    return rc;
}

/* Wait for the scan (when it runs) and attach the waiting chunks of the
 * series that exist by now: all were created by series records of this
 * replay, none has samples yet. A chunk goes to the series its ref names
 * only (not to a series that ref is an alias of), as when attached at
 * creation. Returns the scan's failure (err set) or BS_ENOMEM. */
/* Attach the waiting chunks of the series that exist, for the refs whose
 * low bit is `part` (ATTACH_ALL: every ref), counting into st. Each series
 * gets its chunks from one pass, in scan order (oldest first). Returns 0
 * or BS_ENOMEM. */
#define ATTACH_ALL 2

static int attach_pass(struct replay *r, struct replay_stats *st, unsigned part)
{
    struct tsdb_head *h = &r->db->head;
    struct pending *pd = &r->pending;
    for (size_t i = 0; i < pd->n; i++) {
        const struct pending_chunk *pc = &pd->v[i];
        if (i + 8 < pd->n && (part == ATTACH_ALL || (pd->v[i + 8].ref & 1) == part))
            __builtin_prefetch(tsdb_head_series_by_ref(h, pd->v[i + 8].ref));
        if (part != ATTACH_ALL && (pc->ref & 1) != part)
            continue;
        struct tsdb_series *s = tsdb_head_series_by_ref(h, pc->ref);
        if (!s || s->ref != pc->ref)
            continue;
        int rc = tsdb_head_series_attach(h, s, &pc->c, pc->last_v);
        if (rc == BS_ENOMEM)
            return rc;
        if (rc == 0) {
            st->attached++;
            stats_time(st, pc->c.mint, pc->c.maxt);
        }
        struct pending_slot *sl = pending_slot(pd, pc->ref, false);
        sl->first = sl->last = 0;
    }
    return 0;
}

static int helper_drain(struct replay_helper *hp);
static struct replay_job *helper_slot(struct replay_helper *hp);
static void helper_post(struct replay_helper *hp);

static int scan_finish(struct replay *r, struct bs_error *err)
{
    struct replay_scan *sc = r->scan;
    if (!sc)
        return 0;
    /* Series jobs in flight read r->scan and must be done first. */
    int hrc = helper_drain(r->helper);
    r->series_wall = (double)(bs_monotonic_ns() - r->t0) / 1e9;
    pthread_join(sc->th, NULL);
    r->scan = NULL;
    r->scan_wall = sc->wall;
    r->scan_cpu = sc->cpu;
    int rc = sc->rc;
    if (rc && err)
        *err = sc->err;
    free(sc);
    if (rc)
        return rc;
    if (hrc)
        return bs_error_set(err, hrc, "out of memory replaying the WAL");
    if (r->pending.overflow)
        BS_WARN("tsdb", "too many head chunks to load; the newest were left to WAL replay");
    /* The series are all over memory, so attaching is mostly waiting for
     * it: the helper takes the odd refs, this thread the even ones. */
    int64_t t0 = bs_monotonic_ns();
    struct replay_helper *hp = r->helper;
    if (hp) {
        struct replay_job *j = helper_slot(hp);
        j->type = REPLAY_JOB_ATTACH;
        helper_post(hp);
    }
    rc = attach_pass(r, &r->st, hp ? 0 : ATTACH_ALL);
    hrc = helper_drain(hp);
    r->attach_wall = (double)(bs_monotonic_ns() - t0) / 1e9;
    if (rc == 0)
        rc = hrc;
    return rc ? bs_error_set(err, rc, "out of memory attaching head chunks") : 0;
}

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

static void icache_put(struct intern_cache *c, const char *str, uint64_t hash, size_t len)
{
    if (c->n >= INTERN_CACHE_MAX)
        return;
    if ((c->n + 1) * 2 > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 4096;
        struct intern_slot *nv = bs_xcalloc(ncap, sizeof(*nv));
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->v[i].s)
                continue;
            size_t j = (size_t)c->v[i].hash & (ncap - 1);
            while (nv[j].s)
                j = (j + 1) & (ncap - 1);
            nv[j] = c->v[i];
        }
        free(c->v);
        c->v = nv;
        c->cap = ncap;
    }
    size_t j = (size_t)hash & (c->cap - 1);
    while (c->v[j].s)
        j = (j + 1) & (c->cap - 1);
    c->v[j] = (struct intern_slot){str, hash, len};
    c->n++;
}

/* The interned copy of p[0..n) (no NUL inside), or NULL when out of
 * memory. */
static const char *replay_intern(struct replay *r, const uint8_t *p, size_t n)
{
    struct intern_cache *c = &r->icache;
    uint64_t hash = bs_hash64(p, n);
    if (c->cap) {
        for (size_t j = (size_t)hash & (c->cap - 1);; j = (j + 1) & (c->cap - 1)) {
            const struct intern_slot *sl = &c->v[j];
            if (!sl->s)
                break;
            if (sl->hash == hash && sl->len == n && memcmp(sl->s, p, n) == 0)
                return sl->s;
        }
    }
    const char *str = labels_symtab_intern(r->db->head.syms, (const char *)p, n);
    if (str)
        icache_put(c, str, hash, n);
    return str;
}

/* Create the series of entries e[0..n) (labels in lv), counting into st.
 * Runs on the helper when there is one (the caller meanwhile decodes the
 * next records); r->scan and r->pending are then only read and written
 * here until the caller drains the helper. The stripe slot each series
 * looks up (a cache miss: the stripe tables are far larger than the
 * caches) is prefetched a few series ahead. */
#define SERIES_AHEAD 6

static int create_series(struct replay *r, struct replay_stats *st, const struct series_ent *e,
                         struct label *lv, size_t n)
{
    struct tsdb_head *h = &r->db->head;
    for (size_t i = 0; i < n && i < SERIES_AHEAD; i++)
        tsdb_head_series_prefetch(h, e[i].hash);
    for (size_t i = 0; i < n; i++) {
        if (i + SERIES_AHEAD < n)
            tsdb_head_series_prefetch(h, e[i + SERIES_AHEAD].hash);
        struct labels ls = {lv + e[i].off, e[i].n};
        uint64_t ref = e[i].ref;
        struct tsdb_series *s;
        bool created;
        int rc = tsdb_head_series_get_or_create_interned(h, &ls, e[i].hash, ref, &s, &created);
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
            st->series++;
            if (!r->scan && r->pending.nrefs > 0 && s->ref == ref) {
                tsdb_series_lock(s);
                rc = pending_attach(h, &r->pending, ref, s, &st->attached);
                if (s->has_samples)
                    stats_time(st, s->min_t, s->max_t);
                tsdb_series_unlock(s);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

/* A series record: every entry is decoded first (labels interned), then
 * the series are created: by the helper when there is one (a job, which
 * runs while this thread reads on), else here. An entry that does not
 * decode ends the record: the entries before it are created, as they
 * would have been one by one, and BS_ECORRUPT is returned. */
static int decode_series(struct replay *r, const uint8_t *p, size_t len)
{
    struct replay_helper *hp = r->helper;
    struct replay_job *j = hp ? helper_slot(hp) : NULL;
    struct series_ent **ents = j ? &j->ents : &r->ents;
    size_t *ents_cap = j ? &j->ents_cap : &r->ents_cap;
    struct label **lvp = j ? &j->lv : &r->lv;
    size_t *lv_cap = j ? &j->lv_cap : &r->lv_cap;
    size_t i = 0, nents = 0, nlv = 0;
    int rc = 0;
    while (i < len) {
        uint64_t ref, n;
        size_t k = bs_get_uvarint(p + i, len - i, &ref);
        if (!k || ref == 0 || ref > TSDB_REF_MAX) {
            rc = BS_ECORRUPT;
            break;
        }
        i += k;
        k = bs_get_uvarint(p + i, len - i, &n);
        if (!k || n == 0 || n > REPLAY_MAX_LABELS) {
            rc = BS_ECORRUPT;
            break;
        }
        i += k;
        if (nlv + n > *lv_cap) {
            size_t ncap = *lv_cap ? *lv_cap * 2 : 4096;
            while (ncap < nlv + n)
                ncap *= 2;
            *lvp = bs_xrealloc(*lvp, ncap * sizeof(**lvp));
            *lv_cap = ncap;
        }
        struct label *lv = *lvp + nlv;
        for (uint64_t q = 0; q < 2 * n && rc == 0; q++) {
            uint64_t sl;
            k = bs_get_uvarint(p + i, len - i, &sl);
            if (!k || sl > len - i - k) {
                rc = BS_ECORRUPT;
                break;
            }
            i += k;
            if (sl == 0 || memchr(p + i, '\0', (size_t)sl)) {
                rc = BS_ECORRUPT; /* embedded NUL or empty string */
                break;
            }
            const char *dst = replay_intern(r, p + i, (size_t)sl);
            if (!dst)
                return BS_ENOMEM; /* the job slot, if any, is not posted */
            i += (size_t)sl;
            if (q % 2 == 0)
                lv[q / 2].name = dst;
            else
                lv[q / 2].value = dst;
        }
        for (uint64_t q = 1; q < n && rc == 0; q++) {
            if (strcmp(lv[q - 1].name, lv[q].name) >= 0)
                rc = BS_ECORRUPT;
        }
        if (rc)
            break;
        if (nents == *ents_cap) {
            *ents_cap = *ents_cap ? *ents_cap * 2 : 1024;
            *ents = bs_xrealloc(*ents, *ents_cap * sizeof(**ents));
        }
        struct labels ls = {lv, (size_t)n};
        (*ents)[nents++] = (struct series_ent){ref, labels_hash(&ls), nlv, (size_t)n};
        nlv += (size_t)n;
    }
    if (j) {
        if (nents > 0) {
            j->type = TSDB_WAL_REC_SERIES;
            j->n = nents;
            r->helper_samples = false; /* samples after this wait for it */
            helper_post(hp);
        }
        return rc;
    }
    int crc = create_series(r, &r->st, r->ents, r->lv, nents);
    return crc ? crc : rc;
}

/* Apply the decoded samples b[0..n), without taking series locks (see
 * below). The head is far larger than the caches and consecutive samples
 * belong to different series, so each sample would wait for two misses
 * (the series, then its open chunk's tail): the series is prefetched
 * 3 * REPLAY_AHEAD samples ahead, and its chunk's tail REPLAY_AHEAD
 * samples ahead (reading the series, in the cache by then). */
#define REPLAY_BATCH 8192 /* TSDB_WAL_SAMPLES_PER_RECORD */
#define REPLAY_AHEAD 12

static int apply_samples(struct tsdb_head *h, struct replay_stats *st,
                         const struct replay_sample *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 3 * REPLAY_AHEAD < n) {
            /* What append reads and writes spans up to three lines. */
            const char *ps = (const char *)b[i + 3 * REPLAY_AHEAD].s;
            __builtin_prefetch(ps, 1);
            __builtin_prefetch(ps + 64, 1);
            __builtin_prefetch(ps + 128, 1);
        }
        if (i + REPLAY_AHEAD < n) {
            const struct tsdb_series *ps = b[i + REPLAY_AHEAD].s;
            if (ps->open.buf)
                __builtin_prefetch(ps->open.buf + (ps->open.nbits >> 3), 1);
        }
        struct tsdb_series *s = b[i].s;
        /* No series lock: nothing reads the head before replay ends, and
         * each series is written by one thread only (the hand-over of
         * jobs orders the rest). Its atomic operations would wait for the
         * stores of every sample before, which are cache misses, and
         * defeat the prefetching. */
        int rc = tsdb_head_series_append(h, s, b[i].t, b[i].v);
        if (rc == BS_ENOMEM)
            return rc;
        if (rc == 0) {
            st->samples++;
            stats_time(st, b[i].t, b[i].t);
        } else {
            st->skipped++;
        }
    }
    return 0;
}

size_t tsdb_open_entry_parse(uint8_t type, const uint8_t *p, size_t len,
                             struct tsdb_open_entry *e)
{
    uint64_t clen;
    size_t i = bs_get_uvarint(p, len, &e->ref), k;
    if (!i || !(k = bs_get_varint(p + i, len - i, &e->maxt)))
        return 0;
    i += k;
    if (!(k = bs_get_uvarint(p + i, len - i, &clen)) || clen > len - i - k)
        return 0;
    i += k;
    e->data = p + i;
    e->len = (size_t)clen;
    i += (size_t)clen;
    if (type != TSDB_WAL_REC_OPEN_STATE)
        return i;
    if (len - i < 3)
        return 0;
    e->st.tail = p[i];
    e->st.leading = p[i + 1];
    e->st.trailing = p[i + 2];
    i += 3;
    if (!(k = bs_get_varint(p + i, len - i, &e->st.tdelta)) || len - i - k < 8)
        return 0;
    i += k;
    e->st.v = bs_get_be64(p + i);
    e->st.t = e->maxt;
    return i + 8;
}

/* Make the encoder now in s->open the series' open chunk (caller holds
 * the series lock, s->open.n > 0). */
static void open_adopted(struct tsdb_head *h, struct replay_stats *st, struct tsdb_series *s)
{
    if (!s->has_samples) {
        s->min_t = s->open.mint;
        s->has_samples = true;
    }
    s->max_t = s->open.t;
    s->last_v = s->open.v;
    __atomic_add_fetch(&h->num_chunks, 1, __ATOMIC_RELAXED);
    st->samples += s->open.n;
    stats_time(st, s->open.mint, s->open.t);
}

/* Open chunks of a head checkpoint (record type 3: chunk bytes only, the
 * encoder state is recovered by decoding them; type 4: with the state).
 * A chunk becomes its series' open chunk when the series has none and the
 * chunk starts after everything the series holds (a later version of it
 * may have been cut and loaded from a head chunk file). */
static int decode_open_chunks(struct tsdb_head *h, struct replay_stats *st, uint8_t type,
                              const uint8_t *p, size_t len)
{
    struct tsdb_xor_enc e;
    tsdb_xor_enc_init(&e);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        struct tsdb_open_entry oe;
        size_t el = tsdb_open_entry_parse(type, p + i, len - i, &oe);
        if (!el) {
            rc = BS_ECORRUPT;
            break;
        }
        i += el;
        struct tsdb_series *s = tsdb_head_series_by_ref(h, oe.ref);
        if (!s || s->ref != oe.ref || oe.maxt < h->min_valid) {
            st->skipped++;
            continue;
        }
        tsdb_series_lock(s);
        if (type == TSDB_WAL_REC_OPEN_STATE && s->open.n == 0 && !s->has_samples) {
            /* The usual case (a series just created by the checkpoint):
             * load straight into the series. */
            rc = tsdb_xor_enc_load(&s->open, oe.data, oe.len, &oe.st);
            if (rc == 0)
                open_adopted(h, st, s);
            tsdb_series_unlock(s);
            continue;
        }
        tsdb_series_unlock(s);
        rc = type == TSDB_WAL_REC_OPEN_STATE ? tsdb_xor_enc_load(&e, oe.data, oe.len, &oe.st)
                                              : tsdb_xor_enc_restore(&e, oe.data, oe.len);
        if (rc || e.t != oe.maxt) {
            rc = rc == BS_ENOMEM ? rc : BS_ECORRUPT;
            break;
        }
        tsdb_series_lock(s);
        if (s->open.n == 0 && (!s->has_samples || e.mint > s->max_t)) {
            struct tsdb_xor_enc tmp = s->open;
            s->open = e;
            e = tmp;
            open_adopted(h, st, s);
        } else {
            st->skipped += e.n;
        }
        tsdb_series_unlock(s);
    }
    tsdb_xor_enc_fini(&e);
    return rc;
}

/* ---------------------------------------------------------- the helper */

/* Replay runs on two threads: the caller reads, checks and decodes
 * records, creates series and applies a third of the samples (by series);
 * the helper applies the other two thirds and whole open chunks records.
 * A series belongs to one thread, so its samples are applied in WAL
 * order. Series records run on the caller only; they touch no series the
 * helper works on. The caller drains the helper (waits until it has done everything
 * posted) before applying samples itself after open chunks records (a
 * series' open chunk must be in place before its samples), at the end of
 * each segment and at the end. */

static void *helper_main(void *arg)
{
    struct replay_helper *hp = arg;
    pthread_mutex_lock(&hp->mu);
    for (;;) {
        while (!hp->stop && hp->done == hp->posted)
            pthread_cond_wait(&hp->cond, &hp->mu);
        if (hp->done == hp->posted)
            break; /* stop, and nothing left */
        struct replay_job *j = &hp->jobs[hp->done % REPLAY_JOBS];
        bool failed = hp->rc != 0;
        pthread_mutex_unlock(&hp->mu);
        int rc = 0;
        if (!failed)
            rc = j->type == TSDB_WAL_REC_SAMPLES ? apply_samples(hp->h, &hp->st, j->v, j->n)
                 : j->type == TSDB_WAL_REC_SERIES
                     ? create_series(hp->r, &hp->st, j->ents, j->lv, j->n)
                 : j->type == REPLAY_JOB_ATTACH
                     ? attach_pass(hp->r, &hp->st, 1)
                     : decode_open_chunks(hp->h, &hp->st, j->type, j->payload, j->len);
        pthread_mutex_lock(&hp->mu);
        if (rc && !hp->rc)
            hp->rc = rc;
        hp->done++;
        pthread_cond_broadcast(&hp->cond);
    }
    pthread_mutex_unlock(&hp->mu);
    return NULL;
}

/* A free job slot (waiting for the helper when all are queued). */
static struct replay_job *helper_slot(struct replay_helper *hp)
{
    pthread_mutex_lock(&hp->mu);
    while (hp->posted - hp->done >= REPLAY_JOBS)
        pthread_cond_wait(&hp->cond, &hp->mu);
    struct replay_job *j = &hp->jobs[hp->posted % REPLAY_JOBS];
    pthread_mutex_unlock(&hp->mu);
    return j;
}

static void helper_post(struct replay_helper *hp)
{
    pthread_mutex_lock(&hp->mu);
    hp->posted++;
    pthread_cond_broadcast(&hp->cond);
    pthread_mutex_unlock(&hp->mu);
}

/* Wait until the helper has done every job; returns its first failure. */
static int helper_drain(struct replay_helper *hp)
{
    if (!hp)
        return 0;
    pthread_mutex_lock(&hp->mu);
    while (hp->done != hp->posted)
        pthread_cond_wait(&hp->cond, &hp->mu);
    int rc = hp->rc;
    pthread_mutex_unlock(&hp->mu);
    return rc;
}

static struct replay_helper *helper_start(struct replay *r)
{
    struct replay_helper *hp = calloc(1, sizeof(*hp));
    if (!hp)
        return NULL;
    hp->h = &r->db->head;
    hp->r = r;
    hp->st.mint = INT64_MAX;
    hp->st.maxt = INT64_MIN;
    pthread_mutex_init(&hp->mu, NULL);
    pthread_cond_init(&hp->cond, NULL);
    if (pthread_create(&hp->th, NULL, helper_main, hp) != 0) {
        pthread_cond_destroy(&hp->cond);
        pthread_mutex_destroy(&hp->mu);
        free(hp);
        return NULL; /* replay runs on one thread */
    }
    return hp;
}

/* Drain, stop and free the helper, adding its totals to r. */
static void helper_stop(struct replay *r)
{
    struct replay_helper *hp = r->helper;
    if (!hp)
        return;
    pthread_mutex_lock(&hp->mu);
    hp->stop = true;
    pthread_cond_broadcast(&hp->cond);
    pthread_mutex_unlock(&hp->mu);
    pthread_join(hp->th, NULL);
    r->st.samples += hp->st.samples;
    r->st.skipped += hp->st.skipped;
    r->st.series += hp->st.series;
    r->st.attached += hp->st.attached;
    stats_time(&r->st, hp->st.mint, hp->st.maxt);
    for (size_t i = 0; i < REPLAY_JOBS; i++) {
        free(hp->jobs[i].v);
        free(hp->jobs[i].payload);
        free(hp->jobs[i].ents);
        free(hp->jobs[i].lv);
    }
    pthread_cond_destroy(&hp->cond);
    pthread_mutex_destroy(&hp->mu);
    free(hp);
    r->helper = NULL;
}

/* An open chunks record: to the helper when there is one and the record
 * has the encoder states (checked here first, so that the helper cannot
 * meet a damaged entry and the record is rejected whole, ending its
 * segment); else applied here. */
static int replay_open_chunks(struct replay *r, uint8_t type, const uint8_t *p, size_t len)
{
    struct replay_helper *hp = r->helper;
    if (hp && type == TSDB_WAL_REC_OPEN_STATE) {
        for (size_t i = 0; i < len;) {
            struct tsdb_open_entry oe;
            int64_t mint;
            size_t el = tsdb_open_entry_parse(type, p + i, len - i, &oe);
            if (!el || !tsdb_xor_state_valid(oe.data, oe.len, &oe.st, &mint))
                return BS_ECORRUPT;
            i += el;
        }
    } else {
        int rc = helper_drain(hp);
        return rc ? rc : decode_open_chunks(&r->db->head, &r->st, type, p, len);
    }
    pthread_mutex_lock(&hp->mu);
    int hrc = hp->rc;
    pthread_mutex_unlock(&hp->mu);
    if (hrc)
        return hrc;
    struct replay_job *j = helper_slot(hp);
    if (j->pcap < len) {
        free(j->payload);
        j->pcap = len;
        j->payload = bs_xmalloc(len);
    }
    memcpy(j->payload, p, len);
    j->len = len;
    j->type = type;
    r->helper_samples = false;
    helper_post(hp);
    return 0;
}

static void sample_push(struct replay_sample **v, size_t *n, size_t *cap, struct replay_sample x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = bs_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

/* A samples record: decoded into this thread's batch and, with a helper,
 * the helper's (split by ref, so that neither thread touches the other's
 * series), applied a batch at a time. */
static int decode_samples(struct replay *r, const uint8_t *p, size_t len)
{
    struct tsdb_head *h = &r->db->head;
    struct replay_helper *hp = r->helper;
    if (hp && !r->helper_samples) {
        /* Open chunks in flight must be in place before samples. */
        int rc = helper_drain(hp);
        if (rc)
            return rc;
        r->helper_samples = true;
    }
    struct replay_job *j = hp ? helper_slot(hp) : NULL;
    if (j) {
        j->n = 0;
        j->type = TSDB_WAL_REC_SAMPLES;
    }
    r->nmine = 0;
    uint64_t ref = 0, t = 0;
    size_t i = 0;
    int rc = 0;
    while (i < len) {
        int64_t dref, dt;
        size_t k = bs_get_varint(p + i, len - i, &dref);
        if (!k) {
            rc = BS_ECORRUPT;
            break;
        }
        i += k;
        k = bs_get_varint(p + i, len - i, &dt);
        if (!k || len - i - k < 8) {
            rc = BS_ECORRUPT;
            break;
        }
        i += k;
        uint64_t v = bs_get_be64(p + i);
        i += 8;
        ref += (uint64_t)dref;
        t += (uint64_t)dt;
        if ((int64_t)t < h->min_valid) {
            r->st.skipped++;
            continue;
        }
        struct tsdb_series *s = tsdb_head_series_by_ref(h, ref);
        if (!s) {
            r->st.skipped++;
            continue;
        }
        struct replay_sample x = {s, (int64_t)t, v};
        /* Split by the series' address (not by the record's ref, which
         * may be an alias): a series always goes to the same thread, and
         * deciding does not read it. The helper gets two thirds: this
         * thread also reads, checks and decodes every record. */
        if (j && ((uintptr_t)s >> 8) % 3 != 0) {
            sample_push(&j->v, &j->n, &j->cap, x);
            if (j->n == REPLAY_BATCH) {
                helper_post(hp);
                j = helper_slot(hp);
                j->n = 0;
                j->type = TSDB_WAL_REC_SAMPLES;
            }
            continue;
        }
        sample_push(&r->mine, &r->nmine, &r->mine_cap, x);
        if (r->nmine == REPLAY_BATCH) {
            rc = apply_samples(h, &r->st, r->mine, r->nmine);
            r->nmine = 0;
            if (rc)
                break;
        }
    }
    /* A record that does not decode ends its segment: what came before
     * it in the record is applied, as it would have been sample by
     * sample. */
    if (j)
        helper_post(hp);
    int arc = 0;
    if (rc == 0 || rc == BS_ECORRUPT)
        arc = apply_samples(h, &r->st, r->mine, r->nmine);
    r->nmine = 0;
    return arc ? arc : rc;
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
             type != TSDB_WAL_REC_OPEN_CHUNKS && type != TSDB_WAL_REC_OPEN_STATE &&
             type != TSDB_WAL_REC_TOMBSTONES) ||
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
        if (r->scan && type != TSDB_WAL_REC_SERIES) {
            rc = scan_finish(r, err); /* the head chunks go in first */
            if (rc)
                break;
            hd = r->buf + r->start;
        }
        if (type == TSDB_WAL_REC_TOMBSTONES) { /* tombstones hook */
            /* after every record before it, the helper's share included */
            rc = helper_drain(r->helper);
            if (rc == 0)
                rc = tsdb_tomb_replay(r->db, payload, len);
        } else {
            rc = type == TSDB_WAL_REC_SERIES    ? decode_series(r, payload, len)
                 : type == TSDB_WAL_REC_SAMPLES ? decode_samples(r, payload, len)
                                                : replay_open_chunks(r, type, payload, len);
        }
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
    int hrc = helper_drain(r->helper); /* only BS_ENOMEM */
    if (hrc && rc == 0)
        rc = bs_error_set(err, hrc, "out of memory replaying WAL segment %s", path);
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

/* CPU time of the process so far, in seconds (for the replay log line:
 * on a busy machine, wall time alone does not tell replay's cost). */
static double cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

    struct replay r = {.db = db, .fd = -1, .st = {.mint = INT64_MAX, .maxt = INT64_MIN}};
    int64_t t0 = bs_monotonic_ns();
    r.t0 = t0;
    /* Head chunk files first (always: their indices must be known before
     * new ones are written), on a thread of their own while series
     * records are read; their chunks wait in r.pending for their series. */
    if (db->head.hc) {
        rc = scan_start(&r, err);
        if (rc == 0 && nsegs == 0 && ncsegs == 0)
            rc = scan_finish(&r, err);
        if (rc) {
            pending_fini(&r.pending);
            free(segs);
            free(csegs);
            return rc;
        }
        if (!r.scan && r.pending.overflow)
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
    r.helper = helper_start(&r);
    int64_t t1 = bs_monotonic_ns();
    double cpu1 = cpu_seconds();
    for (size_t i = 0; i < ncsegs && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/%08u", ckdir, csegs[i]);
        rc = replay_segment(&r, path, err);
    }
    int64_t t2 = bs_monotonic_ns();
    double cpu2 = cpu_seconds();
    /* The WAL's size when the checkpoint was written is what it holds now
     * without the segments after it: the compactor writes the next head
     * checkpoint when those grow past its limit, as if there had been no
     * restart (not at once because the process is new). */
    if (ck) {
        db->ck_bytes = db->wal.total_bytes;
        db->ck_wal_bytes = db->wal.total_bytes;
    }
    for (size_t i = 0; i < nsegs && rc == 0; i++) {
        snprintf(path, sizeof(path), "%s/%08u", waldir, segs[i]);
        rc = replay_segment(&r, path, err);
    }
    /* A WAL of series records only (or a failure) leaves the scan to join. */
    int src = scan_finish(&r, rc ? NULL : err);
    if (rc == 0)
        rc = src;
    helper_stop(&r);
    if (r.st.samples || r.st.attached) {
        tsdb_head_note_time(&db->head, r.st.mint);
        tsdb_head_note_time(&db->head, r.st.maxt);
    }
    if (rc == 0)
        BS_INFO("tsdb",
                "WAL replay completed: %s%zu segments, %llu series, %llu head chunks from "
                "files, %llu samples (%llu skipped) in %.3fs (leading series records made "
                "into series at %.3fs, head chunk file scan beside them %.3fs / %.3f CPU s, "
                "chunks attached in %.3fs; checkpoint %.3fs / %.3f CPU s, segments %.3fs / "
                "%.3f CPU s)",
                ck ? "checkpoint, " : "", nsegs, (unsigned long long)r.st.series,
                (unsigned long long)r.st.attached, (unsigned long long)r.st.samples,
                (unsigned long long)r.st.skipped, (double)(bs_monotonic_ns() - t0) / 1e9,
                r.series_wall, r.scan_wall, r.scan_cpu, r.attach_wall, (double)(t2 - t1) / 1e9,
                cpu2 - cpu1, (double)(bs_monotonic_ns() - t2) / 1e9, cpu_seconds() - cpu2);
    pending_fini(&r.pending);
    free(r.buf);
    free(r.icache.v);
    free(r.mine);
    free(r.lv);
    free(r.ents);
    free(segs);
    free(csegs);
    return rc;
}
