/* SPDX-License-Identifier: Apache-2.0
 *
 * Targets: how a (job, static config, address) triple of the configuration
 * becomes a scrape target with Prometheus's label semantics, and how a
 * scraped series' labels are merged with the target's.
 *
 * Discovered labels are built as Prometheus's PopulateLabels does before
 * relabeling: __address__ from the target (it wins over a static label of
 * the same name), then the static config's labels, then job,
 * __scrape_interval__, __scrape_timeout__, __metrics_path__, __scheme__ and
 * __param_<name> only where a static label did not already set them. So a
 * static label "__metrics_path__" or "__scheme__" changes the scrape URL,
 * as it does in Prometheus. Target labels are the discovered labels without
 * the "__" ones, plus instance = __address__ unless a static label set it.
 */
#include <stdlib.h>
#include <string.h>

#include "scrape/scrape_int.h"

static const char *const report_names[SCRAPE_REPORT_COUNT] = {
    [SCRAPE_REPORT_UP] = "up",
    [SCRAPE_REPORT_DURATION] = "scrape_duration_seconds",
    [SCRAPE_REPORT_SAMPLES] = "scrape_samples_scraped",
    [SCRAPE_REPORT_POST_RELABEL] = "scrape_samples_post_metric_relabeling",
    [SCRAPE_REPORT_SERIES_ADDED] = "scrape_series_added",
};

/* ------------------------------------------------------------ label merge */

struct conflict {
    const char *name;  /* NUL-terminated, from the target labels */
    const char *value; /* scraped value, not NUL-terminated */
    size_t value_len;
};

/* The value of label name in the scraped series, or NULL if absent/empty. */
static const struct expfmt_label *scraped_get(const struct expfmt_series *s, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < s->nlabels; i++) {
        const struct expfmt_label *l = &s->labels[i];
        if (l->name_len == n && memcmp(l->name, name, n) == 0 && l->value_len > 0)
            return l;
    }
    return NULL;
}

int scrape_labels_merge(struct labels_builder *lb, const struct expfmt_series *s,
                        const struct labels *target, bool honor_labels, struct labels *out,
                        struct bs_error *err)
{
    int rc;
    labels_builder_reset(lb);
    rc = labels_builder_set(lb, LABELS_METRIC_NAME, strlen(LABELS_METRIC_NAME), s->name,
                            s->name_len);
    for (size_t i = 0; rc == 0 && i < s->nlabels; i++) {
        const struct expfmt_label *l = &s->labels[i];
        if (l->value_len > 0)
            rc = labels_builder_set(lb, l->name, l->name_len, l->value, l->value_len);
    }
    if (rc != 0)
        return bs_error_set(err, rc, "building series labels: %s", bs_strerror(rc));

    if (honor_labels) {
        for (size_t i = 0; rc == 0 && i < target->n; i++) {
            const char *cur = labels_builder_get(lb, target->v[i].name);
            if (!cur || !*cur)
                rc = labels_builder_set_str(lb, target->v[i].name, target->v[i].value);
        }
        if (rc != 0)
            return bs_error_set(err, rc, "building series labels: %s", bs_strerror(rc));
        return labels_builder_labels(lb, out, err);
    }

    struct conflict small[16];
    struct conflict *conf = small;
    size_t nconf = 0;
    if (target->n > 16) {
        conf = malloc(target->n * sizeof(*conf));
        if (!conf)
            return bs_error_set(err, BS_ENOMEM, "building series labels: out of memory");
    }
    for (size_t i = 0; i < target->n; i++) {
        const struct expfmt_label *l = scraped_get(s, target->v[i].name);
        if (l) {
            /* Insertion sort by name length, stable. */
            size_t nl = strlen(target->v[i].name), j = nconf;
            while (j > 0 && strlen(conf[j - 1].name) > nl) {
                conf[j] = conf[j - 1];
                j--;
            }
            conf[j] = (struct conflict){target->v[i].name, l->value, l->value_len};
            nconf++;
        }
    }
    for (size_t i = 0; rc == 0 && i < target->n; i++)
        rc = labels_builder_set_str(lb, target->v[i].name, target->v[i].value);

    struct bs_buf name;
    bs_buf_init(&name, 1 << 16);
    for (size_t i = 0; rc == 0 && i < nconf; i++) {
        bs_buf_reset(&name);
        rc = bs_buf_puts(&name, conf[i].name);
        while (rc == 0) {
            rc = bs_buf_reserve(&name, 9);
            if (rc != 0)
                break;
            memmove(name.data + 9, name.data, name.len + 1);
            memcpy(name.data, "exported_", 9);
            name.len += 9;
            const char *cur = labels_builder_get(lb, name.data);
            if (!cur || !*cur) {
                rc = labels_builder_set(lb, name.data, name.len, conf[i].value, conf[i].value_len);
                break;
            }
        }
    }
    bs_buf_fini(&name);
    if (conf != small)
        free(conf);
    if (rc != 0)
        return bs_error_set(err, rc, "building series labels: %s", bs_strerror(rc));
    return labels_builder_labels(lb, out, err);
}

/* ------------------------------------------------------------------- URL */

struct qpair {
    const char *key;
    size_t key_len;
    const char *value;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    /* Keep the order of values within a key: qsort is not stable, so the
     * pairs of one key are compared by their position in the array. */
    return x < y ? -1 : (x > y ? 1 : 0);
}

static int query_escape(struct bs_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            rc = bs_buf_putc(b, (char)c);
        } else if (c == ' ') {
            rc = bs_buf_putc(b, '+');
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = bs_buf_append(b, e, 3);
        }
    }
    return rc;
}

#define PARAM_PREFIX "__param_"

int scrape_url_query(const struct config_param *params, size_t nparams, const struct labels *disc,
                     struct bs_buf *b)
{
    size_t cap = disc ? disc->n : 0;
    for (size_t i = 0; i < nparams; i++)
        cap += params[i].nvalues;
    if (cap == 0)
        return 0;
    struct qpair *v = malloc(cap * sizeof(*v));
    if (!v)
        return BS_ENOMEM;
    size_t n = 0;
    struct bs_buf lname;
    bs_buf_init(&lname, 0);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nparams; i++) {
        const char *over = NULL;
        bs_buf_reset(&lname);
        rc = bs_buf_printf(&lname, PARAM_PREFIX "%s", params[i].name);
        if (rc == 0 && disc)
            over = labels_get(disc, lname.data);
        for (size_t j = 0; j < params[i].nvalues; j++) {
            const char *val = (j == 0 && over) ? over : params[i].values[j];
            v[n++] = (struct qpair){params[i].name, strlen(params[i].name), val};
        }
    }
    /* __param_ labels for parameters the job does not define. */
    for (size_t i = 0; rc == 0 && disc && i < disc->n; i++) {
        const char *ln = disc->v[i].name;
        if (strncmp(ln, PARAM_PREFIX, strlen(PARAM_PREFIX)) != 0)
            continue;
        const char *key = ln + strlen(PARAM_PREFIX);
        bool known = false;
        for (size_t j = 0; j < nparams && !known; j++)
            known = strcmp(params[j].name, key) == 0 && params[j].nvalues > 0;
        if (!known)
            v[n++] = (struct qpair){key, strlen(key), disc->v[i].value};
    }
    bs_buf_fini(&lname);
    if (n > 1)
        qsort(v, n, sizeof(*v), qpair_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = bs_buf_putc(b, '&');
        if (rc == 0)
            rc = query_escape(b, v[i].key, v[i].key_len);
        if (rc == 0)
            rc = bs_buf_putc(b, '=');
        if (rc == 0)
            rc = query_escape(b, v[i].value, strlen(v[i].value));
    }
    free(v);
    return rc;
}

/* ---------------------------------------------------------------- target */

void scrape_target_free(struct scrape_target *t)
{
    if (!t)
        return;
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    bs_buf_fini(&t->body);
    scrape_cache_fini(&t->cache);
    free(t->prev);
    free(t->cur);
    free(t->key);
    free(t->pool);
    free(t->url);
    free(t->labels);
    free(t->discovered);
    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
        free(t->report_ls[i]);
    free(t);
}

static bool address_valid(const char *a)
{
    if (!*a)
        return false;
    for (const char *p = a; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == '/' || c == '?' || c == '#' || c == '@' || c == 0x7f)
            return false;
    }
    return true;
}

/* Set name=value in b unless b already has it. */
static int set_absent(struct labels_builder *b, const char *name, const char *value)
{
    const char *cur = labels_builder_get(b, name);
    if (cur && *cur)
        return 0;
    return labels_builder_set_str(b, name, value);
}

static int key_field(struct bs_buf *b, const char *s)
{
    return bs_buf_append(b, s, strlen(s) + 1); /* NUL-separated */
}

int scrape_target_new(const struct config_scrape *sc, const struct config_static_config *st,
                      const char *address, struct scrape_target **out, struct bs_error *err)
{
    struct labels_builder lb;
    struct labels view;
    struct bs_buf tmp;
    char ibuf[48], tbuf[48];
    int rc = 0;

    *out = NULL;
    if (!address_valid(address))
        return bs_error_set(err, BS_EINVAL,
                            "job \"%s\": target \"%s\" is not a valid host:port address",
                            sc->job_name, address);

    struct scrape_target *t = calloc(1, sizeof(*t));
    if (!t)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    labels_builder_init(&lb);
    bs_buf_init(&tmp, 0);
    bs_buf_init(&t->body, SCRAPE_DEFAULT_BODY_SIZE_LIMIT);
    scrape_cache_init(&t->cache);
    t->interval_ms = sc->scrape_interval_ms;
    t->timeout_ms = sc->scrape_timeout_ms;
    t->honor_labels = sc->honor_labels;
    t->honor_timestamps = sc->honor_timestamps;
    bs_duration_format(t->interval_ms, ibuf, sizeof(ibuf));
    bs_duration_format(t->timeout_ms, tbuf, sizeof(tbuf));

    /* Discovered labels. */
    rc = labels_builder_set_str(&lb, "__address__", address);
    for (size_t i = 0; rc == 0 && st && st->labels && i < st->labels->n; i++)
        rc = set_absent(&lb, st->labels->v[i].name, st->labels->v[i].value);
    if (rc == 0)
        rc = set_absent(&lb, "job", sc->job_name);
    if (rc == 0)
        rc = set_absent(&lb, "__scrape_interval__", ibuf);
    if (rc == 0)
        rc = set_absent(&lb, "__scrape_timeout__", tbuf);
    if (rc == 0)
        rc = set_absent(&lb, "__metrics_path__", sc->metrics_path ? sc->metrics_path : "/metrics");
    if (rc == 0)
        rc = set_absent(&lb, "__scheme__", sc->scheme ? sc->scheme : "http");
    for (size_t i = 0; rc == 0 && i < sc->nparams; i++) {
        if (sc->params[i].nvalues == 0)
            continue;
        bs_buf_reset(&tmp);
        rc = bs_buf_printf(&tmp, PARAM_PREFIX "%s", sc->params[i].name);
        if (rc == 0)
            rc = set_absent(&lb, tmp.data, sc->params[i].values[0]);
    }
    if (rc == 0)
        rc = labels_builder_labels(&lb, &view, err);
    if (rc != 0)
        goto fail;
    t->discovered = labels_dup(&view);
    if (!t->discovered) {
        rc = BS_ENOMEM;
        goto fail;
    }

    /* URL. */
    const char *scheme = labels_get(t->discovered, "__scheme__");
    const char *path = labels_get(t->discovered, "__metrics_path__");
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        rc = bs_error_set(err, BS_EINVAL,
                          "job \"%s\", target \"%s\": scheme \"%s\" is not supported "
                          "(use http or https)",
                          sc->job_name, address, scheme ? scheme : "");
        goto fail;
    }
    bs_buf_reset(&tmp);
    rc = bs_buf_printf(&tmp, "%s://%s%s%s", scheme, address, (path && *path == '/') ? "" : "/",
                       path ? path : "");
    if (rc == 0) {
        size_t before = tmp.len;
        rc = bs_buf_putc(&tmp, '?');
        if (rc == 0)
            rc = scrape_url_query(sc->params, sc->nparams, t->discovered, &tmp);
        if (rc == 0 && tmp.len == before + 1) {
            tmp.len = before; /* no parameters: drop the '?' */
            tmp.data[before] = '\0';
        }
    }
    if (rc != 0)
        goto fail;
    t->url = bs_xstrdup(tmp.data);
    t->pool = bs_xstrdup(sc->job_name);

    /* Target labels: no "__" labels, instance defaults to the address. */
    labels_builder_reset(&lb);
    for (size_t i = 0; rc == 0 && i < t->discovered->n; i++) {
        if (strncmp(t->discovered->v[i].name, "__", 2) != 0)
            rc = labels_builder_set_str(&lb, t->discovered->v[i].name, t->discovered->v[i].value);
    }
    if (rc == 0)
        rc = set_absent(&lb, "instance", address);
    if (rc == 0)
        rc = labels_builder_labels(&lb, &view, err);
    if (rc != 0)
        goto fail;
    t->labels = labels_dup(&view);
    if (!t->labels) {
        rc = BS_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++) {
        rc = labels_builder_set_str(&lb, LABELS_METRIC_NAME, report_names[i]);
        if (rc == 0)
            rc = labels_builder_labels(&lb, &view, err);
        if (rc != 0)
            goto fail;
        t->report_ls[i] = labels_dup(&view);
        if (!t->report_ls[i]) {
            rc = BS_ENOMEM;
            goto fail;
        }
    }

    /* Identity: everything that changes what or how we scrape. */
    bs_buf_reset(&tmp);
    rc = key_field(&tmp, t->pool);
    if (rc == 0)
        rc = key_field(&tmp, t->url);
    if (rc == 0)
        rc = labels_format(t->labels, &tmp);
    if (rc == 0)
        rc =
            bs_buf_printf(&tmp, "%c%lld %lld %d %d", '\0', (long long)t->interval_ms,
                          (long long)t->timeout_ms, (int)t->honor_labels, (int)t->honor_timestamps);
    if (rc != 0)
        goto fail;
    t->key_len = tmp.len;
    t->key = bs_xmalloc(tmp.len + 1);
    memcpy(t->key, tmp.data, tmp.len + 1);
    /* The start offset within the interval depends on the target alone, so
     * a restart keeps each target's phase, as in Prometheus. */
    t->offset_hash = labels_hash(t->labels) ^ bs_hash64(t->url, strlen(t->url));

    labels_builder_fini(&lb);
    bs_buf_fini(&tmp);
    *out = t;
    return 0;

fail:
    if (rc != BS_EINVAL)
        bs_error_set(err, rc, "job \"%s\", target \"%s\": %s", sc->job_name, address,
                     bs_strerror(rc));
    labels_builder_fini(&lb);
    bs_buf_fini(&tmp);
    scrape_target_free(t);
    return rc;
}
