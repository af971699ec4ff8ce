/* SPDX-License-Identifier: Apache-2.0
 *
 * The Pushgateway store's structures, shared by push.c (requests, checks,
 * appends), push_json.c (the /api/v1/metrics listing) and push_persist.c
 * (the groups file). Private to src/ingest and its unit tests.
 */
#ifndef BONGSU_INGEST_PUSH_STORE_H
#define BONGSU_INGEST_PUSH_STORE_H

#include <pthread.h>

#include "expfmt/expfmt.h"
#include "ingest/push_int.h"
#include "labels/labels.h"

#define PUSH_GROUPS_FILE "pushgateway.groups"

/* Longest MetricFamily message of a protobuf delimited push (413 past it). */
#define PUSH_PB_MAX_MESSAGE ((size_t)16 << 20)

/* One exposed series. all: sorted labels as the Pushgateway shows them
 * (__name__ included, empty values kept); store: the same without empty
 * values, as the tsdb holds it. Both views and their strings live in the
 * same allocation as the struct; free() releases everything. */
struct push_series {
    struct labels all;
    struct labels store;
    uint64_t hash;        /* labels_hash(&store) */
    double v;
    tsdb_ref ref;         /* hint for the appender; 0 when unknown */
};

struct push_family {
    char *name;
    char *help;           /* NULL when the push had no HELP line */
    enum expfmt_metric_type type;   /* never EXPFMT_TYPE_UNKNOWN: UNTYPED */
    int64_t time_ns;      /* when it was pushed */
    struct push_series **s;
    size_t n, cap;
};

struct push_group {
    struct push_glabel *gl;   /* sorted grouping labels, job included */
    size_t ngl;
    char *key;                /* name 0xff value 0xff ... of gl */
    struct push_family **f;   /* in push order */
    size_t nf;
    int64_t push_ns, fail_ns; /* last success / failure, 0 = never */
    int64_t time_ns;          /* last change of either */
    bool ok;                  /* last_push_successful */
    struct push_series *meta[2];   /* push_time_seconds, push_failure_time_seconds */
};

struct ingest_push {
    pthread_mutex_t mu;       /* guards everything below but the thread fields */
    struct tsdb *db;
    char *file, *dir;         /* NULL: no persistence */
    int64_t interval_ms;
    struct ingest_limits lim;
    struct push_group **g;    /* sorted by key */
    size_t ng, gcap;
    int64_t last_t;           /* timestamp of the last append batch */
    pthread_t thread;
    bool running;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
};

/* One label for push_series_new(); not NUL-terminated. */
struct push_pair {
    const char *n;
    size_t nl;
    const char *v;
    size_t vl;
};

/* The families of one push body, as the text or the protobuf parser made
 * them, before they are checked and applied. nseries counts the series of
 * every family (the max_series_per_request cap). */
struct push_body {
    struct push_family **f;
    size_t nf, cap;
    size_t nseries;
    bool has_timestamp;   /* some sample carried a timestamp: refused later */
};

/* Free the families and zero b. */
void push_body_fini(struct push_body *b);
/* The family called name[0..n) in b, created (UNTYPED, no help, no series)
 * when absent. Borrowed from b. NULL when out of memory. */
struct push_family *push_body_family(struct push_body *b, const char *name, size_t n);
/* Remove and free the families without series: the Pushgateway keeps no
 * empty family. */
void push_body_drop_empty(struct push_body *b);
/* Add one series of family f to out the way the Pushgateway exposes it:
 * __name__ = name[0..nl), the group's grouping labels, pushed[0..np) except
 * the names the grouping labels already hold (those win), and instance=""
 * when no label is called instance. pushed must already be valid (names,
 * no duplicates, no __name__); values may be empty. scratch holds at least
 * np + g->ngl + 2 pairs. Returns 0; BS_ELIMIT with msg filled when out
 * already holds max_series_per_request series; BS_ENOMEM. */
int push_body_add(struct ingest_push *pg, const struct push_group *g, struct push_body *out,
                  struct push_family *f, const char *name, size_t nl,
                  const struct push_pair *pushed, size_t np, double v, struct push_pair *scratch,
                  char *msg, size_t msgcap);

/* Parse a protobuf delimited body (varint length, MetricFamily message,
 * repeated; push_pb.c) for group g into out, converting each family into
 * the series the text format would give (histograms as _bucket{le}/_sum/
 * _count with the implicit +Inf bucket, summaries as {quantile}/_sum/
 * _count). A family name given twice: the last one wins, as in the
 * Pushgateway. Families without metrics are dropped. Returns 0; BS_EPARSE
 * with msg filled for a truncated length or message, a message that does
 * not decode, an unknown or unsupported type, a metric without the value
 * of its family's type, an invalid name, label or UTF-8; BS_ELIMIT with msg
 * when a message is longer than PUSH_PB_MAX_MESSAGE, decoding would take
 * more than max_decode_memory in all, or over max_series_per_request;
 * BS_ENOMEM. out may hold families on error: push_body_fini() it. */
int push_pb_parse(struct ingest_push *pg, const struct push_group *g, const void *buf, size_t len,
                  struct push_body *out, char *msg, size_t msgcap);

/* pairs are sorted in place; the series copies them. NULL when out of
 * memory. */
struct push_series *push_series_new(struct push_pair *pairs, size_t n, double v);
int push_family_add(struct push_family *f, struct push_series *s);
void push_family_free(struct push_family *f);
/* Takes ownership of gl. NULL when out of memory (gl is then freed). */
struct push_group *push_group_new(struct push_glabel *gl, size_t ngl);
void push_group_free(struct push_group *g);
/* Insert g at its sorted place; BS_EINVAL when the key exists. */
int push_insert_group(struct ingest_push *pg, struct push_group *g);
const char *push_type_upper(enum expfmt_metric_type t);

/* Append the JSON of GET /api/v1/metrics. Caller holds pg->mu. */
int push_json(struct ingest_push *pg, struct bs_buf *b);

/* Rewrite the groups file (no-op without a data dir). Caller holds pg->mu.
 * Returns 0 or BS_EIO (logged). */
int push_persist(struct ingest_push *pg);
/* Load the groups file into pg (empty). A missing file is no error. */
int push_load(struct ingest_push *pg, struct bs_error *err);

#endif
