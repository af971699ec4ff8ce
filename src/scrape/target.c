/* SPDX-License-Identifier: Apache-2.0
 *
 * Targets: how a (job, static config, address) triple of the configuration,
 * or a discovered target with its group's labels, becomes a scrape target
 * with Prometheus's label semantics, and how a scraped series' labels are
 * merged with the target's.
 *
 * Targets follow Prometheus 2.42's PopulateLabels step by step:
 *  1. Discovered labels: __address__ from the target (it wins over a static
 *     label of the same name), then the static config's labels (for a
 *     discovered target: its own labels, __address__ and __meta_*, then its
 *     group's labels where absent), then job,
 *     __scrape_interval__, __scrape_timeout__, __metrics_path__ and
 *     __scheme__ where no static label set them, then __param_<name> = the
 *     first value of each of the job's params (always: a static label of
 *     that name is overwritten, as in Prometheus).
 *  2. relabel_configs run over them. A dropped target keeps only its
 *     discovered labels, for droppedTargets in /api/v1/targets.
 *  3. Checks, each failing the target with Prometheus's message (it is
 *     logged and skipped, not dropped): __address__ must be set; a missing
 *     port becomes :80 or :443 after the scheme; the address must not hold
 *     '/'; __scrape_interval__ and __scrape_timeout__ must parse, be
 *     non-zero, and the timeout must not exceed the interval.
 *  4. __meta_* labels are deleted, instance defaults to __address__, and
 *     every value must be valid UTF-8.
 * The result ("full") keeps the other "__" labels: the URL is built from
 * __scheme__, __address__, __metrics_path__ and the __param_* labels (which
 * override the job's first value of that parameter), and the interval and
 * timeout come from their labels. Target labels are full without the "__"
 * ones. An unsupported scheme is not checked here: like Prometheus, such a
 * target is active and each scrape fails.
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
    curl_slist_free_all(t->connect_to);
    bs_buf_fini(&t->body);
    scrape_cache_fini(&t->cache);
    free(t->key);
    free(t->pool);
    free(t->url);
    free(t->connect_url);
    free(t->full);
    free(t->labels);
    free(t->discovered);
    for (size_t i = 0; i < SCRAPE_REPORT_COUNT; i++)
        free(t->report_ls[i]);
    scrape_job_unref(t->job);
    free(t);
}

/* Would Go's net.SplitHostPort accept s[0..n)? */
static bool split_host_port_ok(const char *s, size_t n)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    if (!colon)
        return false; /* missing port */
    size_t i = (size_t)(colon - s), j = 0, k = 0;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end)
            return false;
        size_t e = (size_t)(end - s);
        if (e + 1 != i)
            return false; /* missing port or too many colons */
        j = 1;
        k = e + 1;
    } else {
        if (memchr(s, ':', i))
            return false; /* too many colons */
    }
    if (memchr(s + j, '[', n - j) || memchr(s + k, ']', n - k))
        return false;
    return true;
}

/* PopulateLabels's addPort: the address has no port and adding one makes
 * it valid. */
static bool address_needs_port(const char *a)
{
    size_t n = strlen(a);
    if (split_host_port_ok(a, n))
        return false;
    char *tmp = malloc(n + 6);
    if (!tmp)
        return false;
    memcpy(tmp, a, n);
    memcpy(tmp + n, ":1234", 6);
    bool ok = split_host_port_ok(tmp, n + 5);
    free(tmp);
    return ok;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += len;
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

/* model.ParseDuration on a label value, with Prometheus's messages. */
static int label_duration(const char *v, const char *what, int64_t *ms, struct bs_error *err)
{
    if (!v || !*v)
        return bs_error_set(err, BS_EINVAL, "error parsing scrape %s: empty duration string", what);
    if (bs_duration_parse(v, strlen(v), ms, NULL) != 0 || *ms < 0)
        return bs_error_set(err, BS_EINVAL,
                            "error parsing scrape %s: not a valid duration string: \"%s\"", what,
                            v);
    if (*ms == 0)
        return bs_error_set(err, BS_EINVAL, "scrape %s cannot be 0", what);
    return 0;
}

int scrape_target_new(struct scrape_job *job, const struct config_scrape *sc,
                      const struct config_static_config *st, const char *address,
                      struct scrape_target **out, struct labels **dropped, struct bs_error *err)
{
    struct label one = {.name = "__address__", .value = address};
    struct labels target = {&one, 1};
    return scrape_target_new_discovered(job, sc, st ? st->labels : NULL, &target, out, dropped,
                                        err);
}

int scrape_target_new_discovered(struct scrape_job *job, const struct config_scrape *sc,
                                 const struct labels *group, const struct labels *target,
                                 struct scrape_target **out, struct labels **dropped,
                                 struct bs_error *err)
{
    struct labels_builder lb;
    struct labels view;
    struct bs_buf tmp;
    char ibuf[48], tbuf[48];
    int rc = 0;

    *out = NULL;
    *dropped = NULL;
    struct scrape_target *t = calloc(1, sizeof(*t));
    if (!t)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    labels_builder_init(&lb);
    bs_buf_init(&tmp, 0);
    bs_buf_init(&t->body, SCRAPE_DEFAULT_BODY_SIZE_LIMIT);
    scrape_cache_init(&t->cache);
    t->job = scrape_job_ref(job);
    t->honor_labels = sc->honor_labels;
    t->honor_timestamps = sc->honor_timestamps;
    bs_duration_format(sc->scrape_interval_ms, ibuf, sizeof(ibuf));
    bs_duration_format(sc->scrape_timeout_ms, tbuf, sizeof(tbuf));

    /* 1. Discovered labels: the target's own, then the group's. */
    for (size_t i = 0; rc == 0 && i < target->n; i++)
        rc = labels_builder_set_str(&lb, target->v[i].name, target->v[i].value);
    for (size_t i = 0; rc == 0 && group && i < group->n; i++)
        rc = set_absent(&lb, group->v[i].name, group->v[i].value);
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
            rc = labels_builder_set_str(&lb, tmp.data, sc->params[i].values[0]);
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

    /* 2. Relabeling. */
    bool keep = true;
    rc = labels_relabel_apply(sc->relabel_configs, sc->nrelabel_configs, t->discovered, &lb, &keep);
    if (rc != 0)
        goto fail;
    if (!keep) {
        *dropped = t->discovered;
        t->discovered = NULL;
        goto done;
    }

    /* 3. Checks. */
    const char *addr = labels_builder_get(&lb, "__address__");
    if (!addr || !*addr) {
        rc = bs_error_set(err, BS_EINVAL, "no address");
        goto fail;
    }
    if (address_needs_port(addr)) {
        const char *scheme = labels_builder_get(&lb, "__scheme__");
        const char *port;
        if (!scheme || !*scheme || strcmp(scheme, "http") == 0) {
            port = ":80";
        } else if (strcmp(scheme, "https") == 0) {
            port = ":443";
        } else {
            /* Prometheus names the job's scheme here, not the label's. */
            rc = bs_error_set(err, BS_EINVAL, "invalid scheme: \"%s\"", sc->scheme);
            goto fail;
        }
        bs_buf_reset(&tmp);
        if ((rc = bs_buf_printf(&tmp, "%s%s", addr, port)) != 0 ||
            (rc = labels_builder_set_str(&lb, "__address__", tmp.data)) != 0)
            goto fail;
        addr = labels_builder_get(&lb, "__address__");
    }
    if (strchr(addr, '/')) {
        rc = bs_error_set(err, BS_EINVAL, "\"%s\" is not a valid hostname", addr);
        goto fail;
    }
    const char *iv = labels_builder_get(&lb, "__scrape_interval__");
    const char *tv = labels_builder_get(&lb, "__scrape_timeout__");
    if ((rc = label_duration(iv, "interval", &t->interval_ms, err)) != 0 ||
        (rc = label_duration(tv, "timeout", &t->timeout_ms, err)) != 0)
        goto fail;
    if (t->timeout_ms > t->interval_ms) {
        rc = bs_error_set(err, BS_EINVAL,
                          "scrape timeout cannot be greater than scrape interval (\"%s\" > \"%s\")",
                          tv, iv);
        goto fail;
    }

    /* 4. Meta labels go, instance defaults to the address. */
    if ((rc = labels_builder_labels(&lb, &view, err)) != 0)
        goto fail;
    bs_buf_reset(&tmp); /* the names to delete, NUL-separated */
    for (size_t i = 0; rc == 0 && i < view.n; i++)
        if (strncmp(view.v[i].name, "__meta_", 7) == 0)
            rc = key_field(&tmp, view.v[i].name);
    if (rc != 0)
        goto fail;
    for (size_t off = 0; off < tmp.len; off += strlen(tmp.data + off) + 1)
        labels_builder_del(&lb, tmp.data + off);
    addr = labels_builder_get(&lb, "__address__");
    bs_buf_reset(&tmp);
    if ((rc = bs_buf_puts(&tmp, addr)) != 0 || (rc = set_absent(&lb, "instance", tmp.data)) != 0 ||
        (rc = labels_builder_labels(&lb, &view, err)) != 0)
        goto fail;
    for (size_t i = 0; i < view.n; i++) {
        if (!utf8_valid(view.v[i].value)) {
            rc = bs_error_set(err, BS_EINVAL, "invalid label value for \"%s\": \"%s\"",
                              view.v[i].name, view.v[i].value);
            goto fail;
        }
    }
    t->full = labels_dup(&view);
    if (!t->full) {
        rc = BS_ENOMEM;
        goto fail;
    }

    /* URL: scheme://address/path?params, as Target.URL() builds it. */
    const char *scheme = labels_get(t->full, "__scheme__");
    const char *path = labels_get(t->full, "__metrics_path__");
    addr = labels_get(t->full, "__address__");
    bs_buf_reset(&tmp);
    rc = bs_buf_printf(&tmp, "%s%s%s%s%s", scheme ? scheme : "", scheme ? "://" : "//", addr,
                       (path && *path == '/') ? "" : "/", path ? path : "");
    if (rc == 0) {
        size_t before = tmp.len;
        rc = bs_buf_putc(&tmp, '?');
        if (rc == 0)
            rc = scrape_url_query(sc->params, sc->nparams, t->full, &tmp);
        if (rc == 0 && tmp.len == before + 1) {
            tmp.len = before; /* no parameters: drop the '?' */
            tmp.data[before] = '\0';
        }
    }
    if (rc != 0)
        goto fail;
    t->url = bs_xstrdup(tmp.data);
    t->pool = bs_xstrdup(sc->job_name);

    /* Target labels: no "__" labels. */
    labels_builder_reset(&lb);
    for (size_t i = 0; rc == 0 && i < t->full->n; i++) {
        if (strncmp(t->full->v[i].name, "__", 2) != 0)
            rc = labels_builder_set_str(&lb, t->full->v[i].name, t->full->v[i].value);
    }
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
        rc = bs_buf_printf(&tmp, "%c%lld %lld %d %d%c", '\0', (long long)t->interval_ms,
                           (long long)t->timeout_ms, (int)t->honor_labels, (int)t->honor_timestamps,
                           '\0');
    if (rc == 0)
        rc = bs_buf_append(&tmp, job->fingerprint, job->fingerprint_len);
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

done:
    labels_builder_fini(&lb);
    bs_buf_fini(&tmp);
    scrape_target_free(t);
    return 0;

fail:
    if (rc != BS_EINVAL)
        bs_error_set(err, rc, "%s", bs_strerror(rc));
    labels_builder_fini(&lb);
    bs_buf_fini(&tmp);
    scrape_target_free(t);
    return rc;
}
