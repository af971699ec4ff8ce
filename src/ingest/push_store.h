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
