/* SPDX-License-Identifier: Apache-2.0
 *
 * The IPMI event log and the per-BMC SEL cursors.
 *
 * events.log is one append-only file for every BMC: a 16-byte header
 * ("BSIPMEV1" and the first sequence number the file may use), then framed
 * records [u32 length][u32 CRC32C][payload] (docs/ipmi.md has the payload
 * layout). Each event gets a sequence number one above the last; a
 * follower's cursor is such a number, so "everything after my cursor" is a
 * suffix of the file. On open the file is replayed into a small in-memory
 * index (sequence, times, offset, interned instance/BMC/sensor type,
 * severity) and a set of (BMC, SEL timestamp, content hash) keys used for
 * deduplication; a torn or corrupt tail is cut off with one log line.
 * Retention rewrites the file without the old records (temporary file,
 * fsync, rename), keeping the sequence going through the header.
 *
 * A cursor file (<bmc>.cursor) is small text, rewritten atomically after
 * every poll that read new events: the SEL record reading resumes from (id,
 * timestamp, content hash), the event-log sequence it accounts for, and
 * the counters behind ipmi_sel_events_total. Events are appended (and
 * fsynced) before the cursor is written; a crash in between leaves events
 * in the log that the cursor does not count yet, which the collector
 * reconciles on start-up with ipmi_eventlog_replay_bmc().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipmi/ipmi_int.h"

#define LOG_MAGIC "BSIPMEV1"
#define LOG_HEADER_LEN 16
#define REC_MAX_PAYLOAD 4096
#define REC_VERSION 1
#define QUERY_MAX_LIMIT 10000
/* Sequence numbers are 1..SEQ_MAX; the header's base may be SEQ_MAX + 1
 * (the next one to use). Keeping them below 2^63 means next_seq = seq + 1
 * never wraps to 0, whatever a corrupt file claims. */
#define SEQ_MAX ((uint64_t)INT64_MAX)

/* --------------------------------------------------------- small helpers */

static const char *const sev_names[] = {"nominal", "warning", "critical", "unknown"};

const char *ipmi_severity_name(enum ipmi_severity s)
{
    return (unsigned)s < 4 ? sev_names[s] : "unknown";
}

int ipmi_severity_parse(const char *s, enum ipmi_severity *out)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, sev_names[i]) == 0) {
            *out = (enum ipmi_severity)i;
            return 0;
        }
    return BS_EINVAL;
}

void ipmi_events_filter_default(struct ipmi_events_filter *f)
{
    memset(f, 0, sizeof(*f));
    f->start_ms = INT64_MIN;
    f->end_ms = INT64_MAX;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == ENOSPC ? BS_ENOSPC : BS_EIO;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return BS_EIO;
    int rc = fsync(fd) == 0 ? 0 : BS_EIO;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------ record codec */

static size_t put_str(uint8_t *dst, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (at + 10 + n > cap)
        return 0;
    at += bs_put_uvarint(dst + at, n);
    memcpy(dst + at, s, n);
    return at + n;
}

size_t ipmi_event_encode(const struct ipmi_event *ev, uint8_t *dst, size_t cap)
{
    uint8_t pl[REC_MAX_PAYLOAD];
    size_t at = 0;
    pl[at++] = REC_VERSION;
    at += bs_put_uvarint(pl + at, ev->seq);
    at += bs_put_varint(pl + at, ev->time_ms);
    at += bs_put_varint(pl + at, ev->ingest_ms);
    at += bs_put_uvarint(pl + at, ev->sel_timestamp);
    at += bs_put_uvarint(pl + at, ev->record_id);
    pl[at++] = ev->record_type;
    pl[at++] = ev->sensor_type;
    pl[at++] = ev->sensor_number;
    pl[at++] = ev->direction;
    pl[at++] = ev->severity;
    bs_put_be64(pl + at, ev->content_hash);
    at += 8;
    pl[at++] = ev->raw_len;
    memcpy(pl + at, ev->raw, ev->raw_len);
    at += ev->raw_len;
    const char *strs[] = {ev->bmc,         ev->instance, ev->job,        ev->sensor_type_name,
                          ev->sensor_name, ev->event,    ev->description};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        at = put_str(pl, at, sizeof(pl), strs[i]);
        if (at == 0)
            return 0;
    }
    if (8 + at > cap)
        return 0;
    bs_put_be32(dst, (uint32_t)at);
    bs_put_be32(dst + 4, bs_crc32c(0, pl, at));
    memcpy(dst + 8, pl, at);
    return 8 + at;
}

static bool get_str(const uint8_t *p, size_t n, size_t *at, char *dst, size_t cap)
{
    uint64_t len;
    size_t k = bs_get_uvarint(p + *at, n - *at, &len);
    if (k == 0 || len >= cap || len > n - *at - k)
        return false;
    *at += k;
    memcpy(dst, p + *at, len);
    dst[len] = '\0';
    if (memchr(dst, '\0', len))
        return false;
    *at += len;
    return true;
}

long ipmi_event_decode(const uint8_t *p, size_t n, struct ipmi_event *ev)
{
    if (n < 8)
        return 0;
    uint32_t len = bs_get_be32(p);
    if (len == 0 || len > REC_MAX_PAYLOAD)
        return -1;
    if (n - 8 < len)
        return 0;
    const uint8_t *pl = p + 8;
    if (bs_get_be32(p + 4) != bs_crc32c(0, pl, len))
        return -1;
    memset(ev, 0, sizeof(*ev));
    size_t at = 0, k;
    uint64_t u;
    int64_t v;
    if (pl[at++] != REC_VERSION)
        return -1;
#define GETU(dst)                                                                                  \
    do {                                                                                           \
        if ((k = bs_get_uvarint(pl + at, len - at, &u)) == 0)                                      \
            return -1;                                                                             \
        at += k;                                                                                   \
        dst = u;                                                                                   \
    } while (0)
#define GETV(dst)                                                                                  \
    do {                                                                                           \
        if ((k = bs_get_varint(pl + at, len - at, &v)) == 0)                                       \
            return -1;                                                                             \
        at += k;                                                                                   \
        dst = v;                                                                                   \
    } while (0)
    GETU(ev->seq);
    GETV(ev->time_ms);
    GETV(ev->ingest_ms);
    GETU(u);
    if (u > UINT32_MAX)
        return -1;
    ev->sel_timestamp = (uint32_t)u;
    GETU(u);
    if (u > UINT16_MAX)
        return -1;
    ev->record_id = (uint16_t)u;
#undef GETU
#undef GETV
    if (len - at < 5 + 8 + 1)
        return -1;
    ev->record_type = pl[at++];
    ev->sensor_type = pl[at++];
    ev->sensor_number = pl[at++];
    ev->direction = pl[at++];
    ev->severity = pl[at++];
    if (ev->direction > 1 || ev->severity > IPMI_SEV_UNKNOWN)
        return -1;
    ev->content_hash = bs_get_be64(pl + at);
    at += 8;
    ev->raw_len = pl[at++];
    if (ev->raw_len > IPMI_SEL_RECORD_LEN || len - at < ev->raw_len)
        return -1;
    memcpy(ev->raw, pl + at, ev->raw_len);
    at += ev->raw_len;
    if (!get_str(pl, len, &at, ev->bmc, sizeof(ev->bmc)) ||
        !get_str(pl, len, &at, ev->instance, sizeof(ev->instance)) ||
        !get_str(pl, len, &at, ev->job, sizeof(ev->job)) ||
        !get_str(pl, len, &at, ev->sensor_type_name, sizeof(ev->sensor_type_name)) ||
        !get_str(pl, len, &at, ev->sensor_name, sizeof(ev->sensor_name)) ||
        !get_str(pl, len, &at, ev->event, sizeof(ev->event)) ||
        !get_str(pl, len, &at, ev->description, sizeof(ev->description)))
        return -1;
    if (at != len || ev->seq == 0 || ev->seq > SEQ_MAX)
        return -1;
    return (long)(8 + len);
}

int ipmi_event_json(const struct ipmi_event *ev, struct bs_buf *b)
{
    char when[64], hex[2 * IPMI_SEL_RECORD_LEN + 1];
    bs_time_format_rfc3339(ev->time_ms, when, sizeof(when));
    for (unsigned i = 0; i < ev->raw_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", ev->raw[i]);
    hex[2 * ev->raw_len] = '\0';
    int rc = bs_buf_printf(b, "{\"seq\":\"%" PRIu64 "\",\"instance\":", ev->seq);
#define STR(key, s)                                                                                \
    if (rc == 0)                                                                                   \
        rc = bs_buf_puts(b, key);                                                                  \
    if (rc == 0)                                                                                   \
    rc = bs_json_string(b, s, strlen(s))
    if (rc == 0)
        rc = bs_json_string(b, ev->instance, strlen(ev->instance));
    STR(",\"job\":", ev->job);
    STR(",\"bmc\":", ev->bmc);
    if (rc == 0)
        rc = bs_buf_printf(b, ",\"record_id\":%u,\"time\":\"%s\",\"timestamp\":%u", ev->record_id,
                           when, ev->sel_timestamp);
    STR(",\"sensor_type\":", ev->sensor_type_name);
    if (rc == 0)
        rc = bs_buf_printf(b, ",\"sensor_number\":%u", ev->sensor_number);
    STR(",\"sensor_name\":", ev->sensor_name);
    STR(",\"event\":", ev->event);
    STR(",\"description\":", ev->description);
#undef STR
    if (rc == 0)
        rc = bs_buf_printf(b, ",\"direction\":\"%s\",\"severity\":\"%s\",\"raw\":\"%s\"}",
                           ev->direction ? "Deasserted" : "Asserted",
                           ipmi_severity_name((enum ipmi_severity)ev->severity), hex);
    return rc;
}

/* ---------------------------------------------------------------- the log */

struct idx_entry {
    uint64_t seq;
    int64_t time_ms;
    int64_t ingest_ms;
    uint64_t off;
    uint32_t len;
    uint8_t severity;
    const char *instance; /* interned in l->syms */
    const char *bmc;
    const char *stype;
};

struct ipmi_eventlog {
    pthread_mutex_t mu;
    char *path;
    int fd;
    uint64_t size;     /* bytes of valid content */
    uint64_t base_seq; /* from the header */
    uint64_t next_seq;
    int64_t retention_ms;
    struct idx_entry *v;
    size_t n, cap;
    uint64_t *set; /* open addressing; 0 = empty */
    size_t set_cap, set_n;
    struct labels_symtab *syms;
};

static uint64_t dedupe_key(const char *bmc, uint32_t ts, uint64_t h)
{
    uint8_t buf[256];
    size_t n = strlen(bmc);
    if (n > sizeof(buf) - 12)
        n = sizeof(buf) - 12;
    memcpy(buf, bmc, n);
    bs_put_be32(buf + n, ts);
    bs_put_be64(buf + n + 4, h);
    uint64_t k = bs_hash64(buf, n + 12);
    return k ? k : 1;
}

static bool set_has(const struct ipmi_eventlog *l, uint64_t k)
{
    if (l->set_cap == 0)
        return false;
    for (size_t i = k & (l->set_cap - 1);; i = (i + 1) & (l->set_cap - 1)) {
        if (l->set[i] == 0)
            return false;
        if (l->set[i] == k)
            return true;
    }
}

static int set_add(struct ipmi_eventlog *l, uint64_t k)
{
    if ((l->set_n + 1) * 2 > l->set_cap) {
        size_t ncap = l->set_cap ? l->set_cap * 2 : 1024;
        uint64_t *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return BS_ENOMEM;
        for (size_t i = 0; i < l->set_cap; i++) {
            uint64_t x = l->set[i];
            if (!x)
                continue;
            size_t j = x & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = x;
        }
        free(l->set);
        l->set = ns;
        l->set_cap = ncap;
    }
    size_t i = k & (l->set_cap - 1);
    while (l->set[i] && l->set[i] != k)
        i = (i + 1) & (l->set_cap - 1);
    if (!l->set[i]) {
        l->set[i] = k;
        l->set_n++;
    }
    return 0;
}

static int index_add(struct ipmi_eventlog *l, const struct ipmi_event *ev, uint64_t off,
                     uint32_t len)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        struct idx_entry *nv = realloc(l->v, ncap * sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    struct idx_entry *e = &l->v[l->n];
    e->seq = ev->seq;
    e->time_ms = ev->time_ms;
    e->ingest_ms = ev->ingest_ms;
    e->off = off;
    e->len = len;
    e->severity = ev->severity;
    e->instance = labels_symtab_intern(l->syms, ev->instance, strlen(ev->instance));
    e->bmc = labels_symtab_intern(l->syms, ev->bmc, strlen(ev->bmc));
    e->stype = labels_symtab_intern(l->syms, ev->sensor_type_name, strlen(ev->sensor_type_name));
    if (!e->instance || !e->bmc || !e->stype)
        return BS_ENOMEM;
    int rc = set_add(l, dedupe_key(ev->bmc, ev->sel_timestamp, ev->content_hash));
    if (rc)
        return rc;
    l->n++;
    if (ev->seq >= l->next_seq)
        l->next_seq = ev->seq + 1;
    return 0;
}

static void index_reset(struct ipmi_eventlog *l)
{
    l->n = 0;
    free(l->set);
    l->set = NULL;
    l->set_cap = l->set_n = 0;
}

static int read_file(int fd, uint8_t **out, size_t *n)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return BS_EIO;
    size_t sz = (size_t)st.st_size;
    uint8_t *buf = malloc(sz ? sz : 1);
    if (!buf)
        return BS_ENOMEM;
    size_t got = 0;
    while (got < sz) {
        ssize_t r = pread(fd, buf + got, sz - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return BS_EIO;
        }
        got += (size_t)r;
    }
    *out = buf;
    *n = sz;
    return 0;
}

static int write_header(int fd, uint64_t base)
{
    uint8_t h[LOG_HEADER_LEN];
    memcpy(h, LOG_MAGIC, 8);
    bs_put_be64(h + 8, base);
    if (pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return BS_EIO;
    return 0;
}

/* Replay l->fd into the index; cut a torn/corrupt tail. */
static int replay(struct ipmi_eventlog *l, struct bs_error *err)
{
    uint8_t *buf;
    size_t n;
    int rc = read_file(l->fd, &buf, &n);
    if (rc)
        return bs_error_set(err, rc, "%s: cannot read: %s", l->path, strerror(errno));
    index_reset(l);
    if (n < LOG_HEADER_LEN) {
        /* New, or torn while writing the header: start afresh. */
        free(buf);
        if (ftruncate(l->fd, 0) < 0 || write_header(l->fd, 1) < 0 || fdatasync(l->fd) < 0)
            return bs_error_set(err, BS_EIO, "%s: cannot write header: %s", l->path,
                                strerror(errno));
        l->base_seq = l->next_seq = 1;
        l->size = LOG_HEADER_LEN;
        return 0;
    }
    if (memcmp(buf, LOG_MAGIC, 8) != 0) {
        free(buf);
        return bs_error_set(err, BS_ECORRUPT, "%s: not a bongsu IPMI event log (bad magic)",
                            l->path);
    }
    l->base_seq = bs_get_be64(buf + 8);
    if (l->base_seq > SEQ_MAX + 1) {
        free(buf);
        return bs_error_set(err, BS_ECORRUPT, "%s: corrupt header (base sequence %" PRIu64 ")",
                            l->path, l->base_seq);
    }
    if (l->base_seq == 0)
        l->base_seq = 1;
    l->next_seq = l->base_seq;
    size_t at = LOG_HEADER_LEN;
    struct ipmi_event ev;
    while (at < n) {
        long k = ipmi_event_decode(buf + at, n - at, &ev);
        if (k <= 0 || ev.seq < l->next_seq) {
            BS_WARN("ipmi", "%s: %s record at offset %zu; dropping the %zu bytes from there",
                    l->path, k == 0 ? "torn" : "corrupt", at, n - at);
            if (ftruncate(l->fd, (off_t)at) < 0) {
                free(buf);
                return bs_error_set(err, BS_EIO, "%s: cannot truncate: %s", l->path,
                                    strerror(errno));
            }
            n = at;
            break;
        }
        rc = index_add(l, &ev, at, (uint32_t)k);
        if (rc) {
            free(buf);
            return bs_error_set(err, rc, "%s: %s", l->path, bs_strerror(rc));
        }
        at += (size_t)k;
    }
    l->size = n;
    free(buf);
    return 0;
}

static int rewrite_without_old(struct ipmi_eventlog *l, int64_t cutoff_ms, struct bs_error *err)
{
    size_t first = 0;
    while (first < l->n && l->v[first].ingest_ms < cutoff_ms)
        first++;
    if (first == 0)
        return 0;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", l->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return bs_error_set(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    int rc = write_header(fd, l->next_seq);
    uint8_t rec[8 + REC_MAX_PAYLOAD];
    for (size_t i = first; rc == 0 && i < l->n; i++) {
        if (pread(l->fd, rec, l->v[i].len, (off_t)l->v[i].off) != (ssize_t)l->v[i].len) {
            rc = BS_EIO;
            break;
        }
        if (lseek(fd, 0, SEEK_END) < 0)
            rc = BS_EIO;
        else
            rc = write_all(fd, rec, l->v[i].len);
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = BS_EIO;
    close(fd);
    if (rc == 0 && rename(tmp, l->path) < 0)
        rc = BS_EIO;
    if (rc) {
        unlink(tmp);
        return bs_error_set(err, rc, "%s: applying retention: %s", l->path, strerror(errno));
    }
    fsync_dir_of(l->path);
    int nfd = open(l->path, O_RDWR | O_CLOEXEC);
    if (nfd < 0)
        return bs_error_set(err, BS_EIO, "%s: reopen: %s", l->path, strerror(errno));
    close(l->fd);
    l->fd = nfd;
    BS_INFO("ipmi", "%s: dropped %zu events past the retention", l->path, first);
    return replay(l, err);
}

int ipmi_eventlog_open(struct ipmi_eventlog **out, const char *path, int64_t retention_ms,
                       struct bs_error *err)
{
    struct ipmi_eventlog *l = calloc(1, sizeof(*l));
    if (!l)
        return BS_ENOMEM;
    pthread_mutex_init(&l->mu, NULL);
    l->path = bs_xstrdup(path);
    l->retention_ms = retention_ms;
    l->syms = labels_symtab_new();
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc;
    if (!l->syms) {
        rc = BS_ENOMEM;
        goto fail;
    }
    if (l->fd < 0) {
        rc = bs_error_set(err, BS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    rc = replay(l, err);
    if (rc == 0 && retention_ms > 0)
        rc = rewrite_without_old(l, bs_now_ms() - retention_ms, err);
    if (rc)
        goto fail;
    *out = l;
    return 0;
fail:
    ipmi_eventlog_close(l);
    return rc;
}

void ipmi_eventlog_close(struct ipmi_eventlog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l->v);
    free(l->set);
    if (l->syms)
        labels_symtab_free(l->syms);
    free(l->path);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int ipmi_eventlog_apply_retention(struct ipmi_eventlog *l, struct bs_error *err)
{
    if (l->retention_ms <= 0)
        return 0;
    pthread_mutex_lock(&l->mu);
    int rc = rewrite_without_old(l, bs_now_ms() - l->retention_ms, err);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

size_t ipmi_eventlog_count(struct ipmi_eventlog *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

bool ipmi_eventlog_contains(struct ipmi_eventlog *l, const char *bmc, uint32_t ts, uint64_t h)
{
    pthread_mutex_lock(&l->mu);
    bool has = set_has(l, dedupe_key(bmc, ts, h));
    pthread_mutex_unlock(&l->mu);
    return has;
}

int ipmi_eventlog_append(struct ipmi_eventlog *l, struct ipmi_event *evs, size_t n,
                         struct bs_error *err)
{
    pthread_mutex_lock(&l->mu);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    int rc = 0;
    uint64_t seq = l->next_seq;
    uint64_t *keys = n ? calloc(n, sizeof(*keys)) : NULL;
    if (n && !keys)
        rc = BS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t k = dedupe_key(evs[i].bmc, evs[i].sel_timestamp, evs[i].content_hash);
        bool dup = set_has(l, k);
        for (size_t j = 0; !dup && j < i; j++)
            dup = keys[j] == k && evs[j].seq != 0;
        keys[i] = k;
        if (dup) {
            evs[i].seq = 0;
            continue;
        }
        if (seq > SEQ_MAX) {
            rc = BS_ELIMIT; /* 2^63 events: never in practice */
            break;
        }
        evs[i].seq = seq++;
        uint8_t rec[8 + REC_MAX_PAYLOAD];
        size_t len = ipmi_event_encode(&evs[i], rec, sizeof(rec));
        if (len == 0)
            rc = BS_ELIMIT;
        else
            rc = bs_buf_append(&b, rec, len);
    }
    if (rc == 0 && b.len > 0) {
        if (lseek(l->fd, (off_t)l->size, SEEK_SET) < 0)
            rc = BS_EIO;
        if (rc == 0)
            rc = write_all(l->fd, b.data, b.len);
        if (rc == 0 && fdatasync(l->fd) < 0)
            rc = BS_EIO;
        if (rc) {
            /* Leave no partial batch behind. */
            if (ftruncate(l->fd, (off_t)l->size) < 0)
                BS_ERROR("ipmi", "%s: cannot truncate after a failed write: %s", l->path,
                         strerror(errno));
        }
    }
    if (rc == 0) {
        uint64_t off = l->size;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (evs[i].seq == 0)
                continue;
            uint8_t rec[8 + REC_MAX_PAYLOAD];
            size_t len = ipmi_event_encode(&evs[i], rec, sizeof(rec));
            rc = index_add(l, &evs[i], off, (uint32_t)len);
            off += len;
        }
        l->size = off;
    } else {
        for (size_t i = 0; i < n; i++)
            evs[i].seq = 0;
        bs_error_set(err, rc, "%s: appending %zu events: %s", l->path, n,
                     rc == BS_EIO ? strerror(errno) : bs_strerror(rc));
    }
    free(keys);
    bs_buf_fini(&b);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int read_at(struct ipmi_eventlog *l, const struct idx_entry *e, struct ipmi_event *ev)
{
    uint8_t rec[8 + REC_MAX_PAYLOAD];
    if (e->len > sizeof(rec) || pread(l->fd, rec, e->len, (off_t)e->off) != (ssize_t)e->len)
        return BS_EIO;
    return ipmi_event_decode(rec, e->len, ev) == (long)e->len ? 0 : BS_ECORRUPT;
}

/* First index position with seq > after. */
static size_t lower_bound(const struct ipmi_eventlog *l, uint64_t after)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ipmi_eventlog_replay_bmc(struct ipmi_eventlog *l, const char *bmc, uint64_t after_seq,
                             void (*fn)(const struct ipmi_event *ev, void *arg), void *arg,
                             struct bs_error *err)
{
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    const char *ib = labels_symtab_intern(l->syms, bmc, strlen(bmc));
    for (size_t i = lower_bound(l, after_seq); ib && rc == 0 && i < l->n; i++) {
        if (l->v[i].bmc != ib)
            continue;
        struct ipmi_event ev;
        rc = read_at(l, &l->v[i], &ev);
        if (rc == 0)
            fn(&ev, arg);
    }
    pthread_mutex_unlock(&l->mu);
    if (rc)
        bs_error_set(err, rc, "%s: reading events of %s: %s", l->path, bmc, bs_strerror(rc));
    return rc;
}

static int parse_cursor(const char *s, uint64_t *out)
{
    if (!s || !*s) {
        *out = 0;
        return 0;
    }
    if (s[0] != 'e' || s[1] < '0' || s[1] > '9')
        return BS_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s + 1, &end, 10);
    if (errno || *end)
        return BS_EINVAL;
    *out = v;
    return 0;
}

int ipmi_eventlog_query(struct ipmi_eventlog *l, const struct ipmi_events_filter *f,
                        const char *cursor_in, struct bs_buf *out, char *cursor_out,
                        struct bs_error *err)
{
    uint64_t after;
    if (parse_cursor(cursor_in, &after) != 0)
        return bs_error_set(err, BS_EINVAL, "invalid events cursor \"%s\"", cursor_in);
    enum ipmi_severity sev = IPMI_SEV_UNKNOWN;
    if (f->severity && *f->severity && ipmi_severity_parse(f->severity, &sev) != 0)
        return bs_error_set(err, BS_EINVAL,
                            "invalid severity \"%s\": one of nominal, warning, critical, unknown",
                            f->severity);
    if (f->start_ms > f->end_ms)
        return bs_error_set(err, BS_EINVAL, "end time is before start time");
    size_t limit = f->limit ? f->limit : 1000;
    if (limit > QUERY_MAX_LIMIT)
        limit = QUERY_MAX_LIMIT;
    pthread_mutex_lock(&l->mu);
    if (after >= l->next_seq) {
        pthread_mutex_unlock(&l->mu);
        return bs_error_set(err, BS_EINVAL, "events cursor \"%s\" is not from this server",
                            cursor_in);
    }
    uint64_t last = after;
    size_t emitted = 0;
    int rc = bs_buf_putc(out, '[');
    size_t i = lower_bound(l, after);
    for (; rc == 0 && i < l->n && emitted < limit; i++) {
        const struct idx_entry *e = &l->v[i];
        last = e->seq;
        if (f->instance && *f->instance && strcmp(f->instance, e->instance) != 0)
            continue;
        if (f->severity && *f->severity && e->severity != sev)
            continue;
        if (f->sensor_type && *f->sensor_type && strcasecmp(f->sensor_type, e->stype) != 0)
            continue;
        if (e->time_ms < f->start_ms || e->time_ms > f->end_ms)
            continue;
        struct ipmi_event ev;
        rc = read_at(l, e, &ev);
        if (rc == 0 && emitted > 0)
            rc = bs_buf_putc(out, ',');
        if (rc == 0)
            rc = ipmi_event_json(&ev, out);
        emitted++;
    }
    /* Fewer than limit matched: everything up to the end was examined. */
    if (rc == 0 && emitted < limit && l->n > 0 && l->v[l->n - 1].seq > last)
        last = l->v[l->n - 1].seq;
    pthread_mutex_unlock(&l->mu);
    if (rc == 0)
        rc = bs_buf_putc(out, ']');
    if (rc)
        return bs_error_set(err, rc, "reading the event log: %s", bs_strerror(rc));
    snprintf(cursor_out, IPMI_EVENTS_CURSOR_MAX, "e%" PRIu64, last);
    return 0;
}

/* ---------------------------------------------------------------- cursors */

void ipmi_cursor_count(struct ipmi_cursor *cur, const struct ipmi_event *ev)
{
    if (ev->seq > cur->last_seq)
        cur->last_seq = ev->seq;
    if (ev->time_ms > cur->last_event_ms)
        cur->last_event_ms = ev->time_ms;
    cur->valid = true;
    cur->record_id = ev->record_id;
    cur->sel_timestamp = ev->sel_timestamp;
    cur->content_hash = ev->content_hash;
    for (size_t i = 0; i < cur->ncounters; i++) {
        struct ipmi_event_counter *c = &cur->counters[i];
        if (c->severity == ev->severity && strcmp(c->sensor_type, ev->sensor_type_name) == 0) {
            c->count++;
            return;
        }
    }
    if (cur->ncounters == IPMI_CURSOR_MAX_COUNTERS)
        return; /* 64 (type, severity) pairs: more would be a broken BMC */
    struct ipmi_event_counter *c = &cur->counters[cur->ncounters++];
    snprintf(c->sensor_type, sizeof(c->sensor_type), "%s", ev->sensor_type_name);
    c->severity = ev->severity;
    c->count = 1;
}

int ipmi_cursor_save(const char *path, const char *bmc, const struct ipmi_cursor *cur,
                     struct bs_error *err)
{
    struct bs_buf b;
    bs_buf_init(&b, 1 << 20);
    int rc = bs_buf_printf(&b,
                           "bongsu-ipmi-cursor 1\nbmc %s\nvalid %d\nrecord_id %u\n"
                           "sel_timestamp %u\nhash %016" PRIx64 "\nlast_seq %" PRIu64
                           "\nlast_event_ms %" PRId64 "\n",
                           bmc, cur->valid ? 1 : 0, cur->record_id, cur->sel_timestamp,
                           cur->content_hash, cur->last_seq, cur->last_event_ms);
    for (size_t i = 0; rc == 0 && i < cur->ncounters; i++)
        rc = bs_buf_printf(&b, "count %u %" PRIu64 " %s\n", cur->counters[i].severity,
                           cur->counters[i].count, cur->counters[i].sensor_type);
    if (rc == 0)
        rc = bs_buf_printf(&b, "crc32c %08x\n", bs_crc32c(0, b.data, b.len));
    if (rc) {
        bs_buf_fini(&b);
        return bs_error_set(err, rc, "%s: %s", path, bs_strerror(rc));
    }
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        bs_buf_fini(&b);
        return bs_error_set(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    }
    rc = write_all(fd, b.data, b.len);
    if (rc == 0 && fsync(fd) < 0)
        rc = BS_EIO;
    close(fd);
    bs_buf_fini(&b);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = BS_EIO;
    if (rc) {
        unlink(tmp);
        return bs_error_set(err, rc, "%s: %s", path, strerror(errno));
    }
    return fsync_dir_of(path);
}

int ipmi_cursor_load(const char *path, struct ipmi_cursor *cur, struct bs_error *err)
{
    memset(cur, 0, sizeof(*cur));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return bs_error_set(err, BS_EIO, "%s: %s", path, strerror(errno));
    }
    uint8_t *buf;
    size_t n;
    int rc = read_file(fd, &buf, &n);
    close(fd);
    if (rc)
        return bs_error_set(err, rc, "%s: cannot read", path);
    char *text = bs_xstrndup((const char *)buf, n);
    free(buf);
    rc = BS_ECORRUPT;
    /* The checksum line is the last line ("crc32c " and 8 hex digits); it
     * covers everything before it, and only that is parsed. (Taking the
     * first "crc32c " instead accepted unchecked lines after it, found by
     * fuzz/fuzz_ipmi_ipmi_cursor.c.) */
    size_t tl = strlen(text);
    if (tl > 0 && text[tl - 1] == '\n')
        text[--tl] = '\0';
    char *crcline = strrchr(text, '\n');
    crcline = crcline ? crcline + 1 : text;
    if (strncmp(crcline, "crc32c ", 7) == 0 &&
        strspn(crcline + 7, "0123456789abcdefABCDEF") == 8 && crcline[15] == '\0') {
        unsigned long want = strtoul(crcline + 7, NULL, 16);
        if (bs_crc32c(0, text, (size_t)(crcline - text)) == want) {
            rc = 0;
            *crcline = '\0';
        }
    }
    if (rc == 0 && strncmp(text, "bongsu-ipmi-cursor 1\n", 21) != 0)
        rc = BS_ECORRUPT;
    for (char *line = text, *next; rc == 0 && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        unsigned u, sev;
        unsigned long long ull;
        long long ll;
        int off = 0;
        if (sscanf(line, "valid %u", &u) == 1)
            cur->valid = u != 0;
        else if (sscanf(line, "record_id %u", &u) == 1)
            cur->record_id = (uint16_t)u;
        else if (sscanf(line, "sel_timestamp %u", &u) == 1)
            cur->sel_timestamp = u;
        else if (sscanf(line, "hash %llx", &ull) == 1)
            cur->content_hash = ull;
        else if (sscanf(line, "last_seq %llu", &ull) == 1)
            cur->last_seq = ull;
        else if (sscanf(line, "last_event_ms %lld", &ll) == 1)
            cur->last_event_ms = ll;
        else if (sscanf(line, "count %u %llu %n", &sev, &ull, &off) == 2 && off > 0) {
            if (cur->ncounters < IPMI_CURSOR_MAX_COUNTERS && sev <= IPMI_SEV_UNKNOWN) {
                struct ipmi_event_counter *c = &cur->counters[cur->ncounters++];
                snprintf(c->sensor_type, sizeof(c->sensor_type), "%s", line + off);
                c->severity = (uint8_t)sev;
                c->count = ull;
            }
        }
    }
    free(text);
    if (rc) {
        memset(cur, 0, sizeof(*cur));
        return bs_error_set(err, rc, "%s: corrupt cursor file (checksum or format)", path);
    }
    return 0;
}
