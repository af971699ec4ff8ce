/* SPDX-License-Identifier: Apache-2.0
 *
 * The Pushgateway API: groups of pushed metrics, their consistency checks,
 * and how they reach the store.
 *
 * Model. A group is keyed by its grouping labels (job plus the label pairs
 * of the path, sorted; a value may be empty). It holds metric families
 * (name, type, help, the time they were pushed) and their series. A series
 * keeps two views of its labels: `all`, as the Pushgateway exposes it (the
 * grouping labels written over the pushed ones, instance="" added when
 * absent, empty values kept), for the JSON listing; and `store`, the same
 * without empty values, which is what the tsdb holds (an empty label and an
 * absent label are the same thing there).
 *
 * Requests. PUT replaces all families of the group, POST the families of
 * the same names; DELETE drops the group. A push is checked against the
 * state it would produce, as the Pushgateway does by gathering: a family
 * pushed with another type than the same name has in another group, a
 * series that already exists (in this push or another group), a histogram
 * or summary whose _count/_sum/_bucket names clash with other families,
 * and timestamps on samples are all refused with 400 and the Pushgateway's
 * words; the group then records push_failure_time_seconds (and is created
 * if it did not exist, as the Pushgateway does). Inconsistent help is not an
 * error in the Pushgateway 1.5 (the newest push's help wins) and is not
 * here either.
 *
 * Store. The Pushgateway keeps no history: Prometheus scrapes it (with
 * honor_labels: true) and sees the latest values every scrape. We get the
 * same picture by appending every group's series, plus push_time_seconds
 * and push_failure_time_seconds, at the current time: once right after each
 * change, and every interval_ms from a background thread, so the 5m lookback
 * never loses them. When a push removes series (PUT, or POST over a family)
 * or a group is deleted, the removed series get a staleness marker, as a
 * scrape that no longer sees them would write. Every append batch uses a
 * timestamp strictly after the previous batch, so two pushes in the same
 * millisecond cannot collide as duplicates.
 *
 * Concurrency. One mutex guards the groups; requests and the re-append
 * thread take it for their whole work (parse, check, apply, append, persist),
 * which keeps the append order equal to the change order.
 *
 * Persistence. Every change rewrites <data_dir>/pushgateway.groups
 * atomically (temporary file, fsync, rename, fsync of the directory); the
 * format is in push_persist.c.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "expfmt/expfmt.h"
#include "ingest/push_store.h"

#define PUSH_ERR_PREFIX "pushed metrics are invalid or inconsistent with existing metrics: "
#define PUSH_MAX_ERRORS 100

/* ----------------------------------------------------------------- series */

static int pair_cmp(const void *a, const void *b)
{
    const struct push_pair *x = a, *y = b;
    size_t m = x->nl < y->nl ? x->nl : y->nl;
    int c = memcmp(x->n, y->n, m);
    if (c)
        return c;
    return x->nl < y->nl ? -1 : x->nl > y->nl;
}

struct push_series *push_series_new(struct push_pair *pairs, size_t n, double v)
{
    qsort(pairs, n, sizeof(*pairs), pair_cmp);
    size_t bytes = sizeof(struct push_series) + 2 * n * sizeof(struct label);
    for (size_t i = 0; i < n; i++)
        bytes += pairs[i].nl + pairs[i].vl + 2;
    struct push_series *s = calloc(1, bytes);
    if (!s)
        return NULL;
    struct label *all = (struct label *)(s + 1), *st = all + n;
    char *str = (char *)(st + n);
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(str, pairs[i].n, pairs[i].nl);
        str[pairs[i].nl] = '\0';
        all[i].name = str;
        str += pairs[i].nl + 1;
        memcpy(str, pairs[i].v, pairs[i].vl);
        str[pairs[i].vl] = '\0';
        all[i].value = str;
        str += pairs[i].vl + 1;
        if (pairs[i].vl)
            st[ns++] = all[i];
    }
    s->all = (struct labels){all, n};
    s->store = (struct labels){st, ns};
    s->hash = labels_hash(&s->store);
    s->v = v;
    return s;
}

void push_family_free(struct push_family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->s[i]);
    free(f->s);
    free(f->name);
    free(f->help);
    free(f);
}

int push_family_add(struct push_family *f, struct push_series *s)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? 2 * f->cap : 4;
        struct push_series **ns = realloc(f->s, nc * sizeof(*ns));
        if (!ns)
            return BS_ENOMEM;
        f->s = ns;
        f->cap = nc;
    }
    f->s[f->n++] = s;
    return 0;
}

/* The synthetic push_time_seconds / push_failure_time_seconds series. */
static struct push_series *group_meta_series(const struct push_group *g, const char *name)
{
    struct push_pair pairs[g->ngl + 2];
    size_t n = 0;
    bool inst = false;
    pairs[n++] = (struct push_pair){LABELS_METRIC_NAME, 8, name, strlen(name)};
    for (size_t i = 0; i < g->ngl; i++) {
        pairs[n++] = (struct push_pair){g->gl[i].name, strlen(g->gl[i].name), g->gl[i].value,
                                        strlen(g->gl[i].value)};
        inst |= !strcmp(g->gl[i].name, "instance");
    }
    if (!inst)
        pairs[n++] = (struct push_pair){"instance", 8, "", 0};
    return push_series_new(pairs, n, 0);
}

void push_group_free(struct push_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nf; i++)
        push_family_free(g->f[i]);
    free(g->f);
    push_glabels_free(g->gl, g->ngl);
    free(g->key);
    free(g->meta[0]);
    free(g->meta[1]);
    free(g);
}

/* Key: name 0xff value 0xff ... over the sorted grouping labels. */
static char *group_key(const struct push_glabel *gl, size_t n)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        bs_buf_puts(&b, gl[i].name);
        bs_buf_putc(&b, '\xff');
        bs_buf_puts(&b, gl[i].value);
        bs_buf_putc(&b, '\xff');
    }
    if (!b.data)
        bs_buf_putc(&b, '\0'), b.len = 0;
    return bs_buf_steal(&b, NULL);
}

struct push_group *push_group_new(struct push_glabel *gl, size_t ngl)
{
    struct push_group *g = bs_xcalloc(1, sizeof(*g));
    g->gl = gl;
    g->ngl = ngl;
    g->key = group_key(gl, ngl);
    g->meta[0] = group_meta_series(g, "push_time_seconds");
    g->meta[1] = group_meta_series(g, "push_failure_time_seconds");
    if (!g->key || !g->meta[0] || !g->meta[1]) {
        push_group_free(g);
        return NULL;
    }
    return g;
}

static struct push_group *find_group(struct ingest_push *pg, const char *key, size_t *idx)
{
    for (size_t i = 0; i < pg->ng; i++) {
        int c = strcmp(pg->g[i]->key, key);
        if (c == 0) {
            *idx = i;
            return pg->g[i];
        }
        if (c > 0) {
            *idx = i;
            return NULL;
        }
    }
    *idx = pg->ng;
    return NULL;
}

int push_insert_group(struct ingest_push *pg, struct push_group *g)
{
    size_t idx;
    if (find_group(pg, g->key, &idx))
        return BS_EINVAL;
    if (pg->ng == pg->gcap) {
        size_t nc = pg->gcap ? 2 * pg->gcap : 8;
        struct push_group **ng = realloc(pg->g, nc * sizeof(*ng));
        if (!ng)
            return BS_ENOMEM;
        pg->g = ng;
        pg->gcap = nc;
    }
    memmove(pg->g + idx + 1, pg->g + idx, (pg->ng - idx) * sizeof(*pg->g));
    pg->g[idx] = g;
    pg->ng++;
    return 0;
}

static struct push_family *group_family(const struct push_group *g, const char *name)
{
    for (size_t i = 0; i < g->nf; i++)
        if (!strcmp(g->f[i]->name, name))
            return g->f[i];
    return NULL;
}

/* ------------------------------------------------------------------- parse */

void push_body_fini(struct push_body *b)
{
    for (size_t i = 0; i < b->nf; i++)
        push_family_free(b->f[i]);
    free(b->f);
    memset(b, 0, sizeof(*b));
}

struct push_family *push_body_family(struct push_body *b, const char *name, size_t n)
{
    for (size_t i = 0; i < b->nf; i++)
        if (strlen(b->f[i]->name) == n && !memcmp(b->f[i]->name, name, n))
            return b->f[i];
    if (b->nf == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 8;
        struct push_family **nf = realloc(b->f, nc * sizeof(*nf));
        if (!nf)
            return NULL;
        b->f = nf;
        b->cap = nc;
    }
    struct push_family *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->name = bs_xstrndup(name, n);
    f->type = EXPFMT_TYPE_UNTYPED;
    b->f[b->nf++] = f;
    return f;
}

void push_body_drop_empty(struct push_body *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->nf; i++) {
        if (b->f[i]->n == 0)
            push_family_free(b->f[i]);
        else
            b->f[k++] = b->f[i];
    }
    b->nf = k;
}

int push_body_add(struct ingest_push *pg, const struct push_group *g, struct push_body *out,
                  struct push_family *f, const char *name, size_t nl,
                  const struct push_pair *pushed, size_t np, double v, struct push_pair *scratch,
                  char *msg, size_t msgcap)
{
    size_t n = 0;
    bool inst = false;
    scratch[n++] = (struct push_pair){LABELS_METRIC_NAME, 8, name, nl};
    for (size_t i = 0; i < g->ngl; i++) {
        scratch[n++] = (struct push_pair){g->gl[i].name, strlen(g->gl[i].name), g->gl[i].value,
                                          strlen(g->gl[i].value)};
        inst |= !strcmp(g->gl[i].name, "instance");
    }
    for (size_t i = 0; i < np; i++) {
        /* Grouping labels win over pushed ones, as in the Pushgateway. */
        bool grouped = false;
        for (size_t j = 0; j < g->ngl && !grouped; j++)
            grouped = strlen(g->gl[j].name) == pushed[i].nl &&
                      !memcmp(g->gl[j].name, pushed[i].n, pushed[i].nl);
        if (grouped)
            continue;
        if (pushed[i].nl == 8 && !memcmp(pushed[i].n, "instance", 8))
            inst = true;
        scratch[n++] = pushed[i];
    }
    if (!inst)
        scratch[n++] = (struct push_pair){"instance", 8, "", 0};
    if (pg->lim.max_series_per_request && out->nseries >= pg->lim.max_series_per_request) {
        snprintf(msg, msgcap, "push has more than %zu series, the limit",
                 pg->lim.max_series_per_request);
        return BS_ELIMIT;
    }
    struct push_series *ps = push_series_new(scratch, n, v);
    if (!ps || push_family_add(f, ps) != 0) {
        free(ps);
        return BS_ENOMEM;
    }
    out->nseries++;
    return 0;
}

/* Parse a text-format body for group g into out. On a syntax error fills
 * msg and returns BS_EPARSE; BS_ELIMIT over the series cap; BS_ENOMEM. */
static int parse_body(struct ingest_push *pg, const struct push_group *g, const char *text,
                      size_t len, struct push_body *out, char *msg, size_t msgcap)
{
    struct expfmt_parser p;
    expfmt_parser_init(&p, text, len);
    struct bs_error err = {0};
    int rc = 0;
    char *type_name = NULL; /* family of the last TYPE line */
    struct push_pair *pairs = NULL;
    size_t pairs_cap = 0;
    for (;;) {
        enum expfmt_entry kind;
        rc = expfmt_parser_next(&p, &kind, &err);
        if (rc) {
            if (rc == BS_EPARSE || rc == BS_ELIMIT) {
                snprintf(msg, msgcap, "text format parsing error in %s", err.msg);
                rc = BS_EPARSE;
            }
            break;
        }
        if (kind == EXPFMT_EOF)
            break;
        if (kind == EXPFMT_COMMENT)
            continue;
        if (kind == EXPFMT_HELP || kind == EXPFMT_TYPE) {
            const char *name, *text2 = NULL;
            size_t nl, tl = 0;
            enum expfmt_metric_type type = EXPFMT_TYPE_UNTYPED;
            if (kind == EXPFMT_HELP)
                expfmt_parser_help(&p, &name, &nl, &text2, &tl);
            else
                expfmt_parser_type(&p, &name, &nl, &type);
            if (!labels_metric_name_valid(name, nl)) {
                snprintf(msg, msgcap, "text format parsing error in line %zu: invalid metric name \"%.*s\"",
                         expfmt_parser_lineno(&p), (int)(nl > 200 ? 200 : nl), name);
                rc = BS_EPARSE;
                break;
            }
            struct push_family *f = push_body_family(out, name, nl);
            if (!f) {
                rc = BS_ENOMEM;
                break;
            }
            if (kind == EXPFMT_HELP) {
                free(f->help);
                f->help = bs_xstrndup(text2, tl);
            } else {
                f->type = type == EXPFMT_TYPE_UNKNOWN ? EXPFMT_TYPE_UNTYPED : type;
                free(type_name);
                type_name = bs_xstrndup(name, nl);
            }
            continue;
        }
        const struct expfmt_series *s = expfmt_parser_series(&p);
        if (!labels_metric_name_valid(s->name, s->name_len)) {
            snprintf(msg, msgcap, "text format parsing error in line %zu: invalid metric name \"%.*s\"",
                     expfmt_parser_lineno(&p), (int)(s->name_len > 200 ? 200 : s->name_len),
                     s->name);
            rc = BS_EPARSE;
            break;
        }
        if (s->has_timestamp)
            out->has_timestamp = true;
        const char *fam = s->name;
        size_t faml = s->name_len;
        if (s->type != EXPFMT_TYPE_UNKNOWN && type_name) {
            fam = type_name;
            faml = strlen(type_name);
        }
        struct push_family *f = push_body_family(out, fam, faml);
        if (!f) {
            rc = BS_ENOMEM;
            break;
        }
        size_t need = 2 * s->nlabels + g->ngl + 2;
        if (need > pairs_cap) {
            free(pairs);
            pairs_cap = need * 2;
            pairs = malloc(pairs_cap * sizeof(*pairs));
            if (!pairs) {
                rc = BS_ENOMEM;
                break;
            }
        }
        /* pairs[0..np): the pushed labels; the rest is push_body_add()'s. */
        size_t np = 0, nnum = 0;
        char numbuf[2][32];
        bool bad = false;
        for (size_t i = 0; i < s->nlabels; i++) {
            const struct expfmt_label *l = &s->labels[i];
            if (!labels_name_valid(l->name, l->name_len) ||
                (l->name_len == 8 && !memcmp(l->name, LABELS_METRIC_NAME, 8))) {
                snprintf(msg, msgcap,
                         "text format parsing error in line %zu: invalid label name \"%.*s\"",
                         expfmt_parser_lineno(&p), (int)(l->name_len > 200 ? 200 : l->name_len),
                         l->name);
                bad = true;
                break;
            }
            pairs[np++] = (struct push_pair){l->name, l->name_len, l->value, l->value_len};
            /* Bucket bounds and quantiles are numbers to the Pushgateway:
             * it exposes le="1.0" as le="1". */
            bool le = f->type == EXPFMT_TYPE_HISTOGRAM && l->name_len == 2 &&
                      !memcmp(l->name, "le", 2);
            bool qu = f->type == EXPFMT_TYPE_SUMMARY && l->name_len == 8 &&
                      !memcmp(l->name, "quantile", 8);
            double bound;
            if ((le || qu) && nnum < 2 &&
                bs_float_parse(l->value, l->value_len, false, &bound) == 0) {
                size_t nl = bs_float_format_short(bound, numbuf[nnum]);
                pairs[np - 1].v = numbuf[nnum++];
                pairs[np - 1].vl = nl;
            }
        }
        if (bad) {
            rc = BS_EPARSE;
            break;
        }
        rc = push_body_add(pg, g, out, f, s->name, s->name_len, pairs, np, s->value, pairs + np,
                           msg, msgcap);
        if (rc)
            break;
    }
    free(type_name);
    free(pairs);
    expfmt_parser_fini(&p);
    /* Families that only had HELP or TYPE lines are not kept. */
    push_body_drop_empty(out);
    return rc;
}

/* ------------------------------------------------------------------ checks */

static const char *type_upper(enum expfmt_metric_type t)
{
    switch (t) {
    case EXPFMT_TYPE_COUNTER: return "COUNTER";
    case EXPFMT_TYPE_GAUGE: return "GAUGE";
    case EXPFMT_TYPE_HISTOGRAM: return "HISTOGRAM";
    case EXPFMT_TYPE_SUMMARY: return "SUMMARY";
    case EXPFMT_TYPE_GAUGEHISTOGRAM: return "GAUGE_HISTOGRAM";
    default: return "UNTYPED";
    }
}

const char *push_type_upper(enum expfmt_metric_type t)
{
    return type_upper(t);
}

/* A series in the Go protobuf text form the Pushgateway's messages use:
 * label:<name:"a" value:"b" > ... counter:<value:1 > */
static void dto_text(struct bs_buf *b, const struct push_family *f, const struct push_series *s)
{
    for (size_t i = 0; i < s->all.n; i++) {
        const struct label *l = &s->all.v[i];
        if (!strcmp(l->name, LABELS_METRIC_NAME))
            continue;
        bs_buf_printf(b, "label:<name:\"%s\" value:\"", l->name);
        for (const char *c = l->value; *c; c++) {
            if (*c == '"' || *c == '\\')
                bs_buf_putc(b, '\\');
            if (*c == '\n')
                bs_buf_puts(b, "\\n");
            else
                bs_buf_putc(b, *c);
        }
        bs_buf_puts(b, "\" > ");
    }
    char num[32];
    bs_float_format_short(s->v, num);
    const char *t = "untyped";
    switch (f->type) {
    case EXPFMT_TYPE_COUNTER: t = "counter"; break;
    case EXPFMT_TYPE_GAUGE: t = "gauge"; break;
    case EXPFMT_TYPE_HISTOGRAM: t = "histogram"; break;
    case EXPFMT_TYPE_SUMMARY: t = "summary"; break;
    default: break;
    }
    bs_buf_printf(b, "%s:<value:%s > ", t, num);
}

struct errlist {
    struct bs_buf text;
    size_t n;
};

static void err_add(struct errlist *e, const char *fmt, ...) BS_PRINTF(2, 3);
static void err_add(struct errlist *e, const char *fmt, ...)
{
    if (e->n++ >= PUSH_MAX_ERRORS)
        return;
    if (e->text.len)
        bs_buf_putc(&e->text, '\x1e');
    va_list ap;
    va_start(ap, fmt);
    bs_buf_vprintf(&e->text, fmt, ap);
    va_end(ap);
}

static void err_series(struct errlist *e, const struct push_family *f, const struct push_series *s,
                       const char *what)
{
    if (e->n >= PUSH_MAX_ERRORS) {
        e->n++;
        return;
    }
    struct bs_buf b;
    bs_buf_init(&b, 0);
    dto_text(&b, f, s);
    const char *name = labels_get(&s->store, LABELS_METRIC_NAME);
    err_add(e, "collected metric \"%s\" { %s} %s", name ? name : f->name, b.data ? b.data : "",
            what);
    bs_buf_fini(&b);
}

/* A small open-addressing set of series by store-label hash. */
struct series_set {
    const struct push_series **v;
    size_t cap, n;
};

static int set_add(struct series_set *set, const struct push_series *s, bool *dup)
{
    *dup = false;
    if (2 * (set->n + 1) > set->cap) {
        size_t nc = set->cap ? 2 * set->cap : 64;
        const struct push_series **nv = calloc(nc, sizeof(*nv));
        if (!nv)
            return BS_ENOMEM;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->v[i])
                continue;
            size_t j = set->v[i]->hash & (nc - 1);
            while (nv[j])
                j = (j + 1) & (nc - 1);
            nv[j] = set->v[i];
        }
        free(set->v);
        set->v = nv;
        set->cap = nc;
    }
    size_t j = s->hash & (set->cap - 1);
    while (set->v[j]) {
        if (set->v[j]->hash == s->hash && labels_equal(&set->v[j]->store, &s->store)) {
            *dup = true;
            return 0;
        }
        j = (j + 1) & (set->cap - 1);
    }
    set->v[j] = s;
    set->n++;
    return 0;
}

static const struct push_family *find_other_family(struct ingest_push *pg,
                                                   const struct push_group *self, const char *name)
{
    for (size_t i = 0; i < pg->ng; i++) {
        if (pg->g[i] == self)
            continue;
        const struct push_family *f = group_family(pg->g[i], name);
        if (f)
            return f;
    }
    return NULL;
}

static bool has_suffix(const char *s, const char *suf, size_t *base)
{
    size_t n = strlen(s), m = strlen(suf);
    if (n <= m || strcmp(s + n - m, suf) != 0)
        return false;
    *base = n - m;
    return true;
}

/* The family of name in the prospective state: another group's or one of
 * the new families. */
static const struct push_family *state_family(struct ingest_push *pg, const struct push_group *self,
                                              struct push_family *const *nf, size_t nnf,
                                              const char *name)
{
    for (size_t i = 0; i < nnf; i++)
        if (!strcmp(nf[i]->name, name))
            return nf[i];
    return find_other_family(pg, self, name);
}

/* Check the families the group would hold (nf[0..nnf)) against each other
 * and against every other group. Errors go to e. */
static int check_state(struct ingest_push *pg, const struct push_group *self,
                       struct push_family *const *nf, size_t nnf, struct errlist *e)
{
    int rc = 0;
    /* Types, and the reserved suffixes of histograms and summaries. */
    for (size_t i = 0; i < nnf; i++) {
        const struct push_family *f = nf[i];
        const struct push_family *o = find_other_family(pg, self, f->name);
        if (o && o->type != f->type) {
            for (size_t k = 0; k < f->n; k++) {
                char what[64];
                snprintf(what, sizeof(what), "is not a %s", type_upper(o->type));
                err_series(e, f, f->s[k], what);
            }
        }
        size_t bl;
        static const char *const sufs[] = {"_count", "_sum", "_bucket"};
        for (size_t k = 0; k < 3; k++) {
            if (!has_suffix(f->name, sufs[k], &bl))
                continue;
            char base[bl + 1];
            memcpy(base, f->name, bl);
            base[bl] = '\0';
            const struct push_family *b = state_family(pg, self, nf, nnf, base);
            if (b && (b->type == EXPFMT_TYPE_HISTOGRAM ||
                      (b->type == EXPFMT_TYPE_SUMMARY && k != 2)))
                err_add(e, "collected metric named \"%s\" collides with previously collected %s "
                           "named \"%s\"",
                        f->name, b->type == EXPFMT_TYPE_HISTOGRAM ? "histogram" : "summary",
                        base);
        }
        if (f->type == EXPFMT_TYPE_HISTOGRAM || f->type == EXPFMT_TYPE_SUMMARY) {
            for (size_t k = 0; k < 3; k++) {
                if (k == 2 && f->type != EXPFMT_TYPE_HISTOGRAM)
                    continue;
                char other[strlen(f->name) + 8];
                snprintf(other, sizeof(other), "%s%s", f->name, sufs[k]);
                if (state_family(pg, self, nf, nnf, other))
                    err_add(e, "collected histogram or summary named \"%s\" collides with "
                               "previously collected metric named \"%s\"",
                            f->name, other);
            }
        }
    }
    /* Duplicate series: the other groups' series of the same families
     * first, then the group's own. */
    struct series_set set = {0};
    for (size_t i = 0; i < nnf && rc == 0; i++) {
        for (size_t gi = 0; gi < pg->ng && rc == 0; gi++) {
            if (pg->g[gi] == self)
                continue;
            const struct push_family *o = group_family(pg->g[gi], nf[i]->name);
            for (size_t k = 0; o && k < o->n && rc == 0; k++) {
                bool dup;
                rc = set_add(&set, o->s[k], &dup);
            }
        }
    }
    for (size_t i = 0; i < nnf && rc == 0; i++) {
        for (size_t k = 0; k < nf[i]->n && rc == 0; k++) {
            bool dup;
            rc = set_add(&set, nf[i]->s[k], &dup);
            if (dup)
                err_series(e, nf[i], nf[i]->s[k],
                           "was collected before with the same name and label values");
        }
    }
    free(set.v);
    return rc;
}

/* ------------------------------------------------------------------ store */

/* A timestamp after every earlier batch. Caller holds pg->mu. */
static int64_t next_time(struct ingest_push *pg)
{
    int64_t t = bs_now_ms();
    if (t <= pg->last_t)
        t = pg->last_t + 1;
    pg->last_t = t;
    return t;
}

static void append_one(struct tsdb_appender *app, struct push_series *s, int64_t t, double v)
{
    tsdb_ref ref = 0;
    if (s->store.n == 0)
        return;
    int rc = tsdb_appender_add(app, s->ref, &s->store, t, v, &ref);
    if (rc == 0)
        s->ref = ref;
}

static void append_group(struct tsdb_appender *app, struct push_group *g, int64_t t)
{
    for (size_t i = 0; i < g->nf; i++)
        for (size_t k = 0; k < g->f[i]->n; k++)
            append_one(app, g->f[i]->s[k], t, g->f[i]->s[k]->v);
    append_one(app, g->meta[0], t, (double)g->push_ns / 1e9);
    append_one(app, g->meta[1], t, (double)g->fail_ns / 1e9);
}

static void append_stale(struct tsdb_appender *app, struct push_series *s, int64_t t)
{
    append_one(app, s, t, bs_stale_nan());
}

static int commit(struct tsdb_appender *app)
{
    struct bs_error err = {0};
    int rc = tsdb_appender_commit(app, &err);
    if (rc)
        BS_WARN("push", "appending pushed metrics failed: %s", err.msg);
    return rc;
}

int ingest_push_tick(struct ingest_push *pg)
{
    pthread_mutex_lock(&pg->mu);
    int rc = 0;
    if (pg->ng) {
        struct tsdb_appender *app = tsdb_appender_new(pg->db);
        if (!app) {
            rc = BS_ENOMEM;
        } else {
            int64_t t = next_time(pg);
            for (size_t i = 0; i < pg->ng; i++)
                append_group(app, pg->g[i], t);
            rc = commit(app);
        }
    }
    pthread_mutex_unlock(&pg->mu);
    return rc;
}

size_t ingest_push_group_count(struct ingest_push *pg)
{
    pthread_mutex_lock(&pg->mu);
    size_t n = pg->ng;
    pthread_mutex_unlock(&pg->mu);
    return n;
}

/* ------------------------------------------------------------------- apply */

static bool series_in(const struct push_series *s, struct push_family *const *fs, size_t nf)
{
    const char *name = labels_get(&s->store, LABELS_METRIC_NAME);
    for (size_t i = 0; i < nf; i++) {
        for (size_t k = 0; k < fs[i]->n; k++) {
            const struct push_series *o = fs[i]->s[k];
            if (o->hash == s->hash && labels_equal(&o->store, &s->store))
                return true;
        }
    }
    (void)name;
    return false;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void respond_text(struct ingest_response *r, int status, const char *msg)
{
    ingest_response_text(r, status, "%s", msg);
}

static int do_delete(struct ingest_push *pg, struct push_glabel *gl, size_t ngl,
                     struct ingest_response *resp)
{
    char *key = group_key(gl, ngl);
    push_glabels_free(gl, ngl);
    size_t idx;
    struct push_group *g = find_group(pg, key, &idx);
    free(key);
    if (g) {
        struct tsdb_appender *app = tsdb_appender_new(pg->db);
        if (app) {
            int64_t t = next_time(pg);
            for (size_t i = 0; i < g->nf; i++)
                for (size_t k = 0; k < g->f[i]->n; k++)
                    append_stale(app, g->f[i]->s[k], t);
            append_stale(app, g->meta[0], t);
            append_stale(app, g->meta[1], t);
            commit(app);
        }
        memmove(pg->g + idx, pg->g + idx + 1, (pg->ng - idx - 1) * sizeof(*pg->g));
        pg->ng--;
        push_group_free(g);
        if (push_persist(pg) != 0) {
            respond_text(resp, 500, "deleting the group worked but saving the groups file failed");
            return 0;
        }
    }
    resp->status = 202;
    return 0;
}

static int do_push(struct ingest_push *pg, bool replace, bool protobuf, struct push_glabel *gl,
                   size_t ngl, const char *text, size_t tlen, struct ingest_response *resp)
{
    char *key = group_key(gl, ngl);
    size_t idx;
    struct push_group *g = find_group(pg, key, &idx);
    free(key);
    bool created = false;
    if (!g) {
        g = push_group_new(gl, ngl);
        if (!g) {
            respond_text(resp, 500, "out of memory");
            return 0;
        }
        created = true;
    } else {
        push_glabels_free(gl, ngl);
    }

    char msg[1024];
    struct push_body body = {0};
    int rc = protobuf ? push_pb_parse(pg, g, text, tlen, &body, msg, sizeof(msg))
                      : parse_body(pg, g, text, tlen, &body, msg, sizeof(msg));
    if (rc) {
        push_body_fini(&body);
        if (created)
            push_group_free(g);
        if (rc == BS_ENOMEM)
            respond_text(resp, 500, "out of memory");
        else
            respond_text(resp, rc == BS_ELIMIT ? 413 : 400, msg);
        return 0;
    }

    /* The families the group would hold. */
    size_t cap = body.nf + (replace ? 0 : g->nf);
    struct push_family **nf = malloc((cap ? cap : 1) * sizeof(*nf));
    if (!nf) {
        push_body_fini(&body);
        if (created)
            push_group_free(g);
        respond_text(resp, 500, "out of memory");
        return 0;
    }
    size_t nnf = 0;
    if (!replace)
        for (size_t i = 0; i < g->nf; i++) {
            bool over = false;
            for (size_t k = 0; k < body.nf && !over; k++)
                over = !strcmp(body.f[k]->name, g->f[i]->name);
            if (!over)
                nf[nnf++] = g->f[i];
        }
    for (size_t i = 0; i < body.nf; i++)
        nf[nnf++] = body.f[i];

    struct errlist e = {0};
    bs_buf_init(&e.text, 0);
    if (body.has_timestamp)
        err_add(&e, "pushed metrics must not have timestamps");
    else
        rc = check_state(pg, g, nf, nnf, &e);

    int64_t tns = now_ns();
    struct tsdb_appender *app = tsdb_appender_new(pg->db);
    int64_t t = next_time(pg);
    if (rc == 0 && e.n == 0) {
        /* Staleness markers for the series this push removes. */
        for (size_t i = 0; i < g->nf; i++)
            for (size_t k = 0; k < g->f[i]->n; k++)
                if (!series_in(g->f[i]->s[k], nf, nnf)) {
                    if (app)
                        append_stale(app, g->f[i]->s[k], t);
                }
        /* Keep the refs of series that stay, so appends skip the lookup. */
        for (size_t i = 0; i < body.nf; i++) {
            body.f[i]->time_ns = tns;
            const struct push_family *old = group_family(g, body.f[i]->name);
            for (size_t k = 0; old && k < body.f[i]->n; k++)
                for (size_t j = 0; j < old->n; j++)
                    if (old->s[j]->hash == body.f[i]->s[k]->hash) {
                        body.f[i]->s[k]->ref = old->s[j]->ref;
                        break;
                    }
        }
        for (size_t i = 0; i < g->nf; i++) {
            bool kept = false;
            for (size_t k = 0; k < nnf && !kept; k++)
                kept = nf[k] == g->f[i];
            if (!kept)
                push_family_free(g->f[i]);
        }
        free(g->f);
        g->f = nf;
        g->nf = nnf;
        nf = NULL;
        free(body.f); /* families now belong to g */
        memset(&body, 0, sizeof(body));
        g->push_ns = tns;
        g->ok = true;
    } else {
        g->fail_ns = tns;
        g->ok = false;
    }
    g->time_ns = tns;
    if (created && push_insert_group(pg, g) != 0) {
        push_group_free(g);
        g = NULL;
    }
    if (app) {
        if (g)
            append_group(app, g, t);
        commit(app);
    }
    free(nf);
    push_body_fini(&body);
    int prc = push_persist(pg);

    if (rc == BS_ENOMEM || !g) {
        respond_text(resp, 500, "out of memory");
    } else if (e.n) {
        struct bs_buf out;
        bs_buf_init(&out, 0);
        bs_buf_puts(&out, PUSH_ERR_PREFIX);
        if (e.n > 1)
            bs_buf_printf(&out, "%zu error(s) occurred:\n* ", e.n);
        for (size_t i = 0; i < e.text.len; i++) {
            if (e.text.data[i] == '\x1e')
                bs_buf_puts(&out, "\n* ");
            else
                bs_buf_putc(&out, e.text.data[i]);
        }
        if (e.n > PUSH_MAX_ERRORS)
            bs_buf_printf(&out, "\n* (and %zu more errors)", e.n - PUSH_MAX_ERRORS);
        bs_buf_putc(&out, '\n');
        ingest_response_take(resp, 400, &out);
    } else if (prc != 0) {
        respond_text(resp, 500, "the push was applied but saving the groups file failed");
    } else {
        resp->status = 200;
    }
    bs_buf_fini(&e.text);
    return 0;
}

/* ------------------------------------------------------------------ handle */

/* How the body is encoded, from the Content-Type. As in the Pushgateway,
 * the protobuf delimited format needs the media type and both parameters
 * (in any order, any case, values optionally quoted); anything not
 * protobuf is read as the text format. */
enum body_kind { BODY_TEXT, BODY_PROTOBUF, BODY_OTHER_PROTOBUF };

static bool ct_param(const char *p, const char *end, const char *name, const char *want)
{
    size_t nl = strlen(name), wl = strlen(want);
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        const char *e = p;
        while (e < end && *e != ';')
            e++;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq) {
            const char *k = p, *ke = eq;
            while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
                ke--;
            const char *v = eq + 1, *ve = e;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
                v++, ve--;
            if ((size_t)(ke - k) == nl && !strncasecmp(k, name, nl) && (size_t)(ve - v) == wl &&
                !strncasecmp(v, want, wl))
                return true;
        }
        p = e;
    }
    return false;
}

static enum body_kind body_kind(const char *ct)
{
    static const char media[] = "application/vnd.google.protobuf";
    if (!ct)
        return BODY_TEXT;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t ml = sizeof(media) - 1;
    if (strncasecmp(ct, media, ml) != 0 ||
        (ct[ml] && ct[ml] != ';' && ct[ml] != ' ' && ct[ml] != '\t'))
        return BODY_TEXT;
    const char *p = ct + ml, *end = ct + strlen(ct);
    if (ct_param(p, end, "proto", "io.prometheus.client.MetricFamily") &&
        ct_param(p, end, "encoding", "delimited"))
        return BODY_PROTOBUF;
    return BODY_OTHER_PROTOBUF;
}

int ingest_push_handle(struct ingest_push *pg, const char *method, const char *path,
                       const char *content_type, const char *content_encoding, const void *body,
                       size_t len, struct ingest_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (!strcmp(path, "/api/v1/metrics")) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            respond_text(resp, 405, "Method Not Allowed");
            return resp->body || resp->status ? 0 : BS_ENOMEM;
        }
        struct bs_buf b;
        bs_buf_init(&b, 0);
        pthread_mutex_lock(&pg->mu);
        int rc = push_json(pg, &b);
        pthread_mutex_unlock(&pg->mu);
        if (rc) {
            bs_buf_fini(&b);
            resp->status = 500;
            return BS_ENOMEM;
        }
        ingest_response_take(resp, 200, &b);
        resp->content_type = "application/json";
        return 0;
    }
    struct push_glabel *gl;
    size_t ngl;
    char msg[512];
    if (push_path_parse(path, &gl, &ngl, msg, sizeof(msg)) != 0) {
        if (!strcmp(msg, "not a push path"))
            respond_text(resp, 404, "404 page not found");
        else
            respond_text(resp, 400, msg);
        return 0;
    }
    bool put = !strcmp(method, "PUT"), post = !strcmp(method, "POST");
    bool del = !strcmp(method, "DELETE");
    if (!put && !post && !del) {
        push_glabels_free(gl, ngl);
        respond_text(resp, 405, "Method Not Allowed");
        return 0;
    }
    if (del) {
        pthread_mutex_lock(&pg->mu);
        int rc = do_delete(pg, gl, ngl, resp);
        pthread_mutex_unlock(&pg->mu);
        return rc;
    }
    enum body_kind kind = body_kind(content_type);
    if (kind == BODY_OTHER_PROTOBUF) {
        push_glabels_free(gl, ngl);
        respond_text(resp, 415,
                     "unsupported protobuf Content-Type; bongsu reads "
                     "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                     "encoding=delimited, or the text format");
        return 0;
    }
    if (pg->lim.max_body_bytes && len > pg->lim.max_body_bytes) {
        push_glabels_free(gl, ngl);
        ingest_response_text(resp, 413, "request body of %zu bytes exceeds the limit of %zu bytes",
                             len, pg->lim.max_body_bytes);
        return 0;
    }
    char *plain = NULL;
    const char *text = body;
    size_t tlen = len;
    if (content_encoding && *content_encoding && strcasecmp(content_encoding, "identity") != 0) {
        if (strcasecmp(content_encoding, "gzip") != 0) {
            push_glabels_free(gl, ngl);
            ingest_response_text(resp, 415, "unsupported Content-Encoding \"%.64s\"",
                                 content_encoding);
            return 0;
        }
        int rc = ingest_gunzip(body, len, pg->lim.max_decoded_bytes, &plain, &tlen);
        if (rc) {
            push_glabels_free(gl, ngl);
            if (rc == BS_ELIMIT)
                ingest_response_text(resp, 413,
                                     "decompressed request exceeds the limit of %zu bytes",
                                     pg->lim.max_decoded_bytes);
            else
                ingest_response_text(resp, rc == BS_ENOMEM ? 500 : 400, "%s",
                                     rc == BS_ENOMEM ? "out of memory" : "invalid gzip data");
            return 0;
        }
        text = plain;
    }
    pthread_mutex_lock(&pg->mu);
    int rc = do_push(pg, put, kind == BODY_PROTOBUF, gl, ngl, text ? text : "", text ? tlen : 0,
                     resp);
    pthread_mutex_unlock(&pg->mu);
    free(plain);
    return rc;
}

/* ------------------------------------------------------------- life cycle */

static void *push_thread(void *arg)
{
    struct ingest_push *pg = arg;
    pthread_mutex_lock(&pg->stop_mu);
    while (!pg->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (pg->interval_ms % 1000) * 1000000;
        ts.tv_sec += pg->interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&pg->stop_cv, &pg->stop_mu, &ts);
        if (pg->stop)
            break;
        pthread_mutex_unlock(&pg->stop_mu);
        ingest_push_tick(pg);
        pthread_mutex_lock(&pg->stop_mu);
    }
    pthread_mutex_unlock(&pg->stop_mu);
    return NULL;
}

int ingest_push_new(struct ingest_push **out, struct tsdb *db, const char *data_dir,
                    int64_t interval_ms, const struct ingest_limits *lim, struct bs_error *err)
{
    *out = NULL;
    struct ingest_push *pg = calloc(1, sizeof(*pg));
    if (!pg)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    pthread_mutex_init(&pg->mu, NULL);
    pthread_mutex_init(&pg->stop_mu, NULL);
    pthread_cond_init(&pg->stop_cv, NULL);
    pg->db = db;
    pg->interval_ms = interval_ms;
    if (lim)
        pg->lim = *lim;
    else
        ingest_limits_default(&pg->lim);
    if (data_dir) {
        size_t n = strlen(data_dir) + sizeof("/" PUSH_GROUPS_FILE);
        pg->file = bs_xmalloc(n);
        snprintf(pg->file, n, "%s/%s", data_dir, PUSH_GROUPS_FILE);
        pg->dir = bs_xstrdup(data_dir);
        int rc = push_load(pg, err);
        if (rc) {
            ingest_push_free(pg);
            return rc;
        }
    }
    /* Make loaded groups visible at once rather than an interval later. */
    ingest_push_tick(pg);
    if (interval_ms > 0) {
        if (pthread_create(&pg->thread, NULL, push_thread, pg) != 0) {
            ingest_push_free(pg);
            return bs_error_set(err, BS_ENOMEM, "cannot start the push re-append thread");
        }
        pg->running = true;
    }
    *out = pg;
    return 0;
}

void ingest_push_free(struct ingest_push *pg)
{
    if (!pg)
        return;
    if (pg->running) {
        pthread_mutex_lock(&pg->stop_mu);
        pg->stop = true;
        pthread_cond_signal(&pg->stop_cv);
        pthread_mutex_unlock(&pg->stop_mu);
        pthread_join(pg->thread, NULL);
    }
    for (size_t i = 0; i < pg->ng; i++)
        push_group_free(pg->g[i]);
    free(pg->g);
    free(pg->file);
    free(pg->dir);
    pthread_mutex_destroy(&pg->mu);
    pthread_mutex_destroy(&pg->stop_mu);
    pthread_cond_destroy(&pg->stop_cv);
    free(pg);
}
