/* SPDX-License-Identifier: Apache-2.0
 *
 * Scrape jobs: the settings one scrape_configs entry gives to all of its
 * targets (metric relabeling, limits, HTTP client and TLS options), copied
 * out of the configuration once per apply and shared by the job's targets
 * through a reference count, so a configuration can be freed right after it
 * was applied and a job with 2,000 targets compiles its regexes once.
 *
 * The fingerprint is a byte string of every setting that changes how a
 * target is scraped or what is stored from it. It is part of each target's
 * identity (scrape_target.key), so a reload that changes, say, a
 * metric_relabel_config or a password file restarts the job's targets,
 * while an unchanged job keeps them running with their state.
 */
#include <stdlib.h>
#include <string.h>

#include "scrape/scrape_int.h"

static char *dup_opt(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *c = strdup(s);
    if (!c)
        *ok = false;
    return c;
}

/* Compile a copy of a validated relabel config. The spec is rebuilt from
 * the effective values in a form that passes validation again: absent
 * source labels stay absent, and a default regex is passed as absent
 * (keepequal and dropequal refuse an explicit one). */
static int relabel_copy(struct labels_relabel_config *dst, const struct labels_relabel_config *src,
                        struct bs_error *err)
{
    struct labels_relabel_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.action = labels_relabel_action_name(src->action);
    spec.source_labels = src->nsource_labels ? (const char *const *)src->source_labels : NULL;
    spec.nsource_labels = src->nsource_labels;
    spec.separator = src->separator;
    spec.regex = strcmp(src->regex, "(.*)") == 0 ? NULL : src->regex;
    spec.modulus = src->modulus;
    spec.target_label = src->target_label;
    spec.replacement = src->replacement;
    return labels_relabel_config_init(dst, &spec, err);
}

static int fp_str(struct bs_buf *b, const char *tag, const char *s)
{
    int rc = bs_buf_puts(b, tag);
    if (rc == 0 && s)
        rc = bs_buf_append(b, s, strlen(s) + 1);
    else if (rc == 0)
        rc = bs_buf_putc(b, '\x01'); /* absent differs from "" */
    return rc;
}

/* Serialise everything that matters into job->fingerprint. */
static int job_fingerprint(struct scrape_job *j)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    int rc = bs_buf_printf(
        &b, "L%llu %llu %llu %llu %llu %lld|", (unsigned long long)j->limits.sample_limit,
        (unsigned long long)j->limits.target_limit, (unsigned long long)j->limits.label_limit,
        (unsigned long long)j->limits.label_name_length_limit,
        (unsigned long long)j->limits.label_value_length_limit,
        (long long)j->limits.body_size_limit);
    for (size_t i = 0; rc == 0 && i < j->protocols.n; i++)
        rc = bs_buf_printf(&b, "P%d|", (int)j->protocols.list[i]);
    if (rc == 0)
        rc = bs_buf_printf(&b, "F%d|", (int)j->protocols.fallback);
    for (size_t i = 0; rc == 0 && i < j->nmrc; i++) {
        const struct labels_relabel_config *c = &j->mrc[i];
        rc = bs_buf_printf(&b, "R%d %llu %zu|", (int)c->action, (unsigned long long)c->modulus,
                           c->nsource_labels);
        for (size_t k = 0; rc == 0 && k < c->nsource_labels; k++)
            rc = fp_str(&b, "s", c->source_labels[k]);
        if (rc == 0)
            rc = fp_str(&b, "p", c->separator);
        if (rc == 0)
            rc = fp_str(&b, "x", c->regex);
        if (rc == 0)
            rc = fp_str(&b, "t", c->target_label);
        if (rc == 0)
            rc = fp_str(&b, "r", c->replacement);
    }
    const struct config_http_client *h = &j->http;
    if (rc == 0)
        rc = bs_buf_printf(&b, "H%d %d %d %d %d %d %d|", (int)h->has_basic_auth,
                           (int)h->has_authorization, (int)h->follow_redirects,
                           (int)h->enable_http2, (int)h->tls.insecure_skip_verify,
                           (int)h->tls.min_version, (int)h->tls.max_version);
    const char *strs[] = {h->username,      h->password,         h->password_file,
                          h->auth_type,     h->auth_credentials, h->auth_credentials_file,
                          h->proxy_url,     h->tls.ca_file,      h->tls.ca,
                          h->tls.cert_file, h->tls.cert,         h->tls.key_file,
                          h->tls.key,       h->tls.server_name};
    for (size_t i = 0; rc == 0 && i < sizeof(strs) / sizeof(strs[0]); i++)
        rc = fp_str(&b, "h", strs[i]);
    if (rc != 0) {
        bs_buf_fini(&b);
        return rc;
    }
    j->fingerprint_len = b.len;
    j->fingerprint = bs_buf_steal(&b, NULL);
    return 0;
}

int scrape_job_new(const struct config_scrape *sc, struct scrape_job **out, struct bs_error *err)
{
    *out = NULL;
    struct scrape_job *j = calloc(1, sizeof(*j));
    if (!j)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    atomic_init(&j->refs, 1);
    j->limits = sc->limits;
    j->protocols = sc->protocols;
    bool ok = true;
    j->name = dup_opt(sc->job_name, &ok);
    const struct config_http_client *h = &sc->http;
    struct config_http_client *c = &j->http;
    c->has_basic_auth = h->has_basic_auth;
    c->has_authorization = h->has_authorization;
    c->follow_redirects = h->follow_redirects;
    c->enable_http2 = h->enable_http2;
    c->tls.insecure_skip_verify = h->tls.insecure_skip_verify;
    c->tls.min_version = h->tls.min_version;
    c->tls.max_version = h->tls.max_version;
    c->username = dup_opt(h->username, &ok);
    c->password = dup_opt(h->password, &ok);
    c->password_file = dup_opt(h->password_file, &ok);
    c->auth_type = dup_opt(h->auth_type, &ok);
    c->auth_credentials = dup_opt(h->auth_credentials, &ok);
    c->auth_credentials_file = dup_opt(h->auth_credentials_file, &ok);
    c->proxy_url = dup_opt(h->proxy_url, &ok);
    c->tls.ca_file = dup_opt(h->tls.ca_file, &ok);
    c->tls.ca = dup_opt(h->tls.ca, &ok);
    c->tls.cert_file = dup_opt(h->tls.cert_file, &ok);
    c->tls.cert = dup_opt(h->tls.cert, &ok);
    c->tls.key_file = dup_opt(h->tls.key_file, &ok);
    c->tls.key = dup_opt(h->tls.key, &ok);
    c->tls.server_name = dup_opt(h->tls.server_name, &ok);
    int rc = 0;
    if (!ok) {
        rc = bs_error_set(err, BS_ENOMEM, "out of memory");
        goto fail;
    }
    if (sc->nmetric_relabel_configs) {
        j->mrc = calloc(sc->nmetric_relabel_configs, sizeof(*j->mrc));
        if (!j->mrc) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < sc->nmetric_relabel_configs; i++) {
            if ((rc = relabel_copy(&j->mrc[i], &sc->metric_relabel_configs[i], err)) != 0)
                goto fail;
            j->nmrc = i + 1;
        }
    }
    if ((rc = job_fingerprint(j)) != 0) {
        bs_error_set(err, rc, "out of memory");
        goto fail;
    }
    *out = j;
    return 0;
fail:
    scrape_job_unref(j);
    return rc;
}

struct scrape_job *scrape_job_ref(struct scrape_job *j)
{
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
    return j;
}

void scrape_job_unref(struct scrape_job *j)
{
    if (!j || atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < j->nmrc; i++)
        labels_relabel_config_fini(&j->mrc[i]);
    free(j->mrc);
    struct config_http_client *c = &j->http;
    char *strs[] = {c->username,      c->password,         c->password_file,
                    c->auth_type,     c->auth_credentials, c->auth_credentials_file,
                    c->proxy_url,     c->tls.ca_file,      c->tls.ca,
                    c->tls.cert_file, c->tls.cert,         c->tls.key_file,
                    c->tls.key,       c->tls.server_name};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    free(j->fingerprint);
    free(j->name);
    free(j);
}
