/* SPDX-License-Identifier: Apache-2.0
 *
 * config entry points: reading the file (with a size cap), parsing it into a
 * libyaml document with syntax errors turned into "name:line:col: problem"
 * messages, handing the document to the decoder (config_decode.c), and
 * releasing a loaded configuration. Also holds the embedded default
 * configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

const char config_default_yaml[] =
    "# bongsu default configuration, like Prometheus's stock prometheus.yml.\n"
    "global:\n"
    "  scrape_interval: 15s\n"
    "  evaluation_interval: 15s\n"
    "\n"
    "scrape_configs:\n"
    "  - job_name: prometheus\n"
    "    static_configs:\n"
    "      - targets: [\"localhost:9090\"]\n";

/* Line and column (1-based) of byte offset off in text[0..len). */
static void offset_position(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Describe a failed yaml_parser_load() in err and return the code. */
static int yaml_failure(const yaml_parser_t *p, const char *name, const char *text, size_t len,
                        struct bs_error *err)
{
    const char *problem = p->problem ? p->problem : "unknown YAML error";
    if (p->error == YAML_MEMORY_ERROR)
        return bs_error_set(err, BS_ENOMEM, "%s: out of memory while parsing YAML", name);
    if (p->error == YAML_READER_ERROR) {
        size_t line, col;
        offset_position(text, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            return bs_error_set(err, BS_EPARSE, "%s:%zu:%zu: yaml: %s (byte 0x%02X)", name, line,
                                col, problem, (unsigned)p->problem_value & 0xffu);
        return bs_error_set(err, BS_EPARSE, "%s:%zu:%zu: yaml: %s", name, line, col, problem);
    }
    if (p->context)
        return bs_error_set(err, BS_EPARSE, "%s:%zu:%zu: yaml: %s %s (line %zu, column %zu)", name,
                            p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
                            p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return bs_error_set(err, BS_EPARSE, "%s:%zu:%zu: yaml: %s", name, p->problem_mark.line + 1,
                        p->problem_mark.column + 1, problem);
}

/* Load from a heap copy of the text that becomes config->source. Takes
 * ownership of text in all cases. */
static int load_owned(char *text, size_t len, const char *name, const char *base_dir,
                      struct config **out, struct bs_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct config *c = calloc(1, sizeof *c);
    int rc;

    if (!c || !(c->path = strdup(name))) {
        free(text);
        free(c);
        return bs_error_set(err, BS_ENOMEM, "%s: out of memory while loading the configuration",
                            name);
    }
    c->source = text;
    atomic_init(&c->refs, 1);
    if (!yaml_parser_initialize(&parser)) {
        config_free(c);
        return bs_error_set(err, BS_ENOMEM, "%s: out of memory while parsing YAML", name);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_failure(&parser, name, text, len, err);
        yaml_parser_delete(&parser);
        config_free(c);
        return rc;
    }
    rc = config_decode(&doc, name, base_dir, c, err);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int config_load_string(const char *yaml, size_t len, const char *name, struct config **out,
                       struct bs_error *err)
{
    *out = NULL;
    if (!name)
        name = "<string>";
    if (len > CONFIG_MAX_SIZE)
        return bs_error_set(err, BS_ELIMIT,
                            "%s: configuration is %zu bytes, more than the %u allowed", name, len,
                            (unsigned)CONFIG_MAX_SIZE);
    char *text = malloc(len + 1);
    if (!text)
        return bs_error_set(err, BS_ENOMEM, "%s: out of memory while loading the configuration",
                            name);
    if (len)
        memcpy(text, yaml, len);
    text[len] = '\0';
    return load_owned(text, len, name, NULL, out, err);
}

int config_load_default(struct config **out, struct bs_error *err)
{
    return config_load_string(config_default_yaml, strlen(config_default_yaml), "<default>", out,
                              err);
}

int config_load_file(const char *path, struct config **out, struct bs_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return bs_error_set(err, e == ENOENT ? BS_ENOENT : BS_EIO,
                            "cannot open config file \"%s\": %s", path, strerror(e));
    }
    size_t cap = 16384, len = 0;
    char *text = malloc(cap);
    int rc = 0;
    if (!text) {
        rc = bs_error_set(err, BS_ENOMEM, "%s: out of memory while reading", path);
        goto fail;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > CONFIG_MAX_SIZE) {
                rc = bs_error_set(err, BS_ELIMIT,
                                  "config file \"%s\" is larger than the %u bytes allowed", path,
                                  (unsigned)CONFIG_MAX_SIZE);
                goto fail;
            }
            char *nt = realloc(text, cap * 2);
            if (!nt) {
                rc = bs_error_set(err, BS_ENOMEM, "%s: out of memory while reading", path);
                goto fail;
            }
            text = nt;
            cap *= 2;
        }
        size_t n = fread(text + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = bs_error_set(err, BS_EIO, "cannot read config file \"%s\": %s", path,
                          strerror(errno ? errno : EIO));
        goto fail;
    }
    fclose(f);
    if (len > CONFIG_MAX_SIZE) {
        free(text);
        return bs_error_set(err, BS_ELIMIT,
                            "config file \"%s\" is larger than the %u bytes allowed", path,
                            (unsigned)CONFIG_MAX_SIZE);
    }
    text[len] = '\0';
    /* The directory relative file names in the configuration refer to. */
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        free(text);
        return bs_error_set(err, BS_ENOMEM, "%s: out of memory while reading", path);
    }
    rc = load_owned(text, len, path, dir, out, err);
    free(dir);
    return rc;
fail:
    free(text);
    fclose(f);
    return rc;
}

const struct config_scrape *config_scrape_find(const struct config *c, const char *job_name)
{
    for (size_t i = 0; c && i < c->nscrape_configs; i++)
        if (c->scrape_configs[i].job_name && strcmp(c->scrape_configs[i].job_name, job_name) == 0)
            return &c->scrape_configs[i];
    return NULL;
}

static void http_client_fini(struct config_http_client *h)
{
    char *strs[] = {h->username,      h->password,         h->password_file,
                    h->auth_type,     h->auth_credentials, h->auth_credentials_file,
                    h->proxy_url,     h->tls.ca_file,      h->tls.ca,
                    h->tls.cert_file, h->tls.cert,         h->tls.key_file,
                    h->tls.key,       h->tls.server_name};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(strs[i]);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The service discovery lists of a scrape or an IPMI job. */
static void sd_configs_free(struct config_file_sd *f, size_t nf, struct config_http_sd *h,
                            size_t nh, struct config_dns_sd *dn, size_t nd)
{
    for (size_t i = 0; i < nf; i++)
        strv_free(f[i].files, f[i].nfiles);
    free(f);
    for (size_t i = 0; i < nh; i++) {
        free(h[i].url);
        http_client_fini(&h[i].http);
    }
    free(h);
    for (size_t i = 0; i < nd; i++)
        strv_free(dn[i].names, dn[i].nnames);
    free(dn);
}

static void scrape_fini(struct config_scrape *s)
{
    free(s->job_name);
    free(s->metrics_path);
    free(s->scheme);
    for (size_t i = 0; i < s->nparams; i++) {
        free(s->params[i].name);
        for (size_t j = 0; j < s->params[i].nvalues; j++)
            free(s->params[i].values[j]);
        free(s->params[i].values);
    }
    free(s->params);
    for (size_t i = 0; i < s->nstatic_configs; i++) {
        struct config_static_config *sc = &s->static_configs[i];
        for (size_t j = 0; j < sc->ntargets; j++)
            free(sc->targets[j]);
        free(sc->targets);
        free(sc->labels);
    }
    free(s->static_configs);
    sd_configs_free(s->file_sd_configs, s->nfile_sd_configs, s->http_sd_configs,
                    s->nhttp_sd_configs, s->dns_sd_configs, s->ndns_sd_configs);
    for (size_t i = 0; i < s->nrelabel_configs; i++)
        labels_relabel_config_fini(&s->relabel_configs[i]);
    free(s->relabel_configs);
    for (size_t i = 0; i < s->nmetric_relabel_configs; i++)
        labels_relabel_config_fini(&s->metric_relabel_configs[i]);
    free(s->metric_relabel_configs);
    http_client_fini(&s->http);
}

static void static_configs_free(struct config_static_config *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        strv_free(v[i].targets, v[i].ntargets);
        free(v[i].labels);
    }
    free(v);
}

static void relabels_free(struct labels_relabel_config *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        labels_relabel_config_fini(&v[i]);
    free(v);
}

static void ipmi_fini(struct config_ipmi *ic)
{
    free(ic->job_name);
    free(ic->username);
    free(ic->password);
    free(ic->password_file);
    strv_free(ic->workaround_flags, ic->nworkaround_flags);
    static_configs_free(ic->static_configs, ic->nstatic_configs);
    sd_configs_free(ic->file_sd_configs, ic->nfile_sd_configs, ic->http_sd_configs,
                    ic->nhttp_sd_configs, ic->dns_sd_configs, ic->ndns_sd_configs);
    relabels_free(ic->relabel_configs, ic->nrelabel_configs);
}

static void alertmanager_fini(struct config_alertmanager *am)
{
    free(am->scheme);
    free(am->path_prefix);
    static_configs_free(am->static_configs, am->nstatic_configs);
    http_client_fini(&am->http);
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_free(struct config *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->nscrape_configs; i++)
        scrape_fini(&c->scrape_configs[i]);
    free(c->scrape_configs);
    strv_free(c->rule_files, c->nrule_files);
    for (size_t i = 0; i < c->nalertmanagers; i++)
        alertmanager_fini(&c->alertmanagers[i]);
    free(c->alertmanagers);
    relabels_free(c->alert_relabel_configs, c->nalert_relabel_configs);
    for (size_t i = 0; i < c->nipmi_configs; i++)
        ipmi_fini(&c->ipmi_configs[i]);
    free(c->ipmi_configs);
    free(c->external_labels);
    for (size_t i = 0; i < c->nwarnings; i++)
        free(c->warnings[i]);
    free(c->warnings);
    free(c->source);
    free(c->path);
    free(c);
}
