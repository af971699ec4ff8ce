/* SPDX-License-Identifier: Apache-2.0
 *
 * Rule files: Prometheus's rulefmt, read with libyaml's document API and
 * validated as Prometheus 2.42 (promtool check rules) validates them. Every
 * error is collected (promtool prints them all), each prefixed with the
 * file name, and most with the line:column of the offending YAML node:
 *
 *   rules.yml: 5:11: group "x", rule 2, "y": could not parse expression: ...
 *
 * Rule-level messages are Prometheus's own texts (RuleNode.Validate); as in
 * Prometheus a rule key that is absent reports position 0:0. Unknown keys
 * are errors in yaml.v3's words ("field foo not found in type ..."), since
 * Prometheus decodes rule files strictly. Alias expansion is bounded by
 * RULES_FILE_MAX_ITEMS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "rules/rules_int.h"

/* ------------------------------------------------------------------- kv */

void rules_kv_free(struct rules_kv *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free((char *)kv->v[i].name);
        free((char *)kv->v[i].value);
    }
    free(kv->v);
    kv->v = NULL;
    kv->n = 0;
}

int rules_kv_copy(struct rules_kv *dst, const struct rules_kv *src)
{
    dst->n = 0;
    dst->v = NULL;
    if (!src->n)
        return 0;
    dst->v = bs_xcalloc(src->n, sizeof(*dst->v));
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i].name = bs_xstrdup(src->v[i].name);
        dst->v[i].value = bs_xstrdup(src->v[i].value);
    }
    dst->n = src->n;
    return 0;
}

const char *rules_kv_get(const struct rules_kv *kv, const char *name)
{
    for (size_t i = 0; i < kv->n; i++)
        if (strcmp(kv->v[i].name, name) == 0)
            return kv->v[i].value;
    return NULL;
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* ------------------------------------------------------------- parsing */

struct pctx {
    yaml_document_t *doc;
    const char *path;
    char **errs;
    size_t nerrs, cerrs;
    int first_code;
    size_t items;
};

static void add_err(struct pctx *c, int code, const char *fmt, ...) BS_PRINTF(3, 4);
static void add_err(struct pctx *c, int code, const char *fmt, ...)
{
    struct bs_buf b;
    va_list ap;
    bs_buf_init(&b, 0);
    bs_buf_printf(&b, "%s: ", c->path);
    va_start(ap, fmt);
    bs_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (c->nerrs == c->cerrs) {
        c->cerrs = c->cerrs ? 2 * c->cerrs : 4;
        c->errs = bs_xrealloc(c->errs, c->cerrs * sizeof(*c->errs));
    }
    c->errs[c->nerrs++] = b.data ? b.data : bs_xstrdup("");
    if (!c->first_code)
        c->first_code = code;
}

static yaml_node_t *node_at(struct pctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static int ln(const yaml_node_t *n) { return n ? (int)n->start_mark.line + 1 : 0; }
static int co(const yaml_node_t *n) { return n ? (int)n->start_mark.column + 1 : 0; }

static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *kind_name(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "!!map";
    if (n->type == YAML_SEQUENCE_NODE)
        return "!!seq";
    return "!!str";
}

/* A scalar as a string; NULL (with an error) for collections. Null -> "". */
static char *scalar_dup(struct pctx *c, yaml_node_t *n, const char *into)
{
    if (is_null(n))
        return bs_xstrdup("");
    if (n->type != YAML_SCALAR_NODE) {
        add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into %s",
                ln(n), kind_name(n), into);
        return NULL;
    }
    return bs_xstrndup((const char *)n->data.scalar.value, n->data.scalar.length);
}

static bool count_item(struct pctx *c)
{
    if (++c->items > RULES_FILE_MAX_ITEMS) {
        if (c->first_code != BS_ELIMIT)
            add_err(c, BS_ELIMIT, "more than %u items after alias expansion",
                    (unsigned)RULES_FILE_MAX_ITEMS);
        return false;
    }
    return true;
}

static bool parse_duration(struct pctx *c, yaml_node_t *n, int64_t *out)
{
    *out = 0;
    if (is_null(n))
        return true;
    char *s = scalar_dup(c, n, "model.Duration");
    if (!s)
        return false;
    struct bs_error e = {0};
    bool ok = bs_duration_parse(s, strlen(s), out, &e) == 0;
    if (!ok)
        add_err(c, BS_EINVAL, "%d:%d: not a valid duration string: \"%s\"", ln(n), co(n), s);
    free(s);
    return ok;
}

/* map[string]string */
static bool parse_kv(struct pctx *c, yaml_node_t *n, struct rules_kv *out)
{
    out->v = NULL;
    out->n = 0;
    if (is_null(n))
        return true;
    if (n->type != YAML_MAPPING_NODE) {
        add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into map[string]string",
                ln(n), kind_name(n));
        return false;
    }
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (!cnt)
        return true;
    out->v = bs_xcalloc(cnt, sizeof(*out->v));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        if (!count_item(c))
            return false;
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        char *ks = scalar_dup(c, k, "string");
        char *vs = ks ? scalar_dup(c, v, "string") : NULL;
        if (!ks || !vs) {
            free(ks);
            return false;
        }
        /* A repeated key: yaml.v3 reports it; keep the last value. */
        size_t j;
        for (j = 0; j < out->n; j++)
            if (strcmp(out->v[j].name, ks) == 0)
                break;
        if (j < out->n) {
            add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: mapping key \"%s\" already defined",
                    ln(k), ks);
            free(ks);
            free(vs);
            return false;
        }
        out->v[out->n].name = ks;
        out->v[out->n].value = vs;
        out->n++;
    }
    qsort(out->v, out->n, sizeof(*out->v), kv_cmp);
    return true;
}

static bool valid_label_value(const char *s)
{
    /* UTF-8 validity, as model.LabelValue.IsValid. */
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (!n)
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

struct rule_nodes {
    yaml_node_t *record, *alert, *expr, *forn, *kff, *labels, *annotations;
};

/* RuleNode.Validate plus the template parse test, reported the way
 * rulefmt.Error prints them. */
static void rule_err(struct pctx *c, int code, const char *group, size_t idx, const char *rname,
                     const yaml_node_t *node, const yaml_node_t *alt, bool with_node, const char *fmt,
                     ...) BS_PRINTF(9, 10);
static void rule_err(struct pctx *c, int code, const char *group, size_t idx, const char *rname,
                     const yaml_node_t *node, const yaml_node_t *alt, bool with_node, const char *fmt,
                     ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (with_node && alt)
        add_err(c, code, "%d:%d: %d:%d: group \"%s\", rule %zu, \"%s\": %s", ln(node), co(node),
                ln(alt), co(alt), group, idx, rname, msg);
    else if (with_node)
        add_err(c, code, "%d:%d: group \"%s\", rule %zu, \"%s\": %s", ln(node), co(node), group,
                idx, rname, msg);
    else
        add_err(c, code, "group \"%s\", rule %zu, \"%s\": %s", group, idx, rname, msg);
}

static void validate_rule(struct pctx *c, const char *group, size_t idx, struct rulefile_rule *r,
                          const char *record, const char *alert, const struct rule_nodes *rn)
{
    const char *rname = alert[0] ? alert : record;
    if (record[0] && alert[0])
        rule_err(c, BS_EINVAL, group, idx, rname, rn->record, rn->alert, true,
                 "only one of 'record' and 'alert' must be set");
    if (!record[0] && !alert[0])
        rule_err(c, BS_EINVAL, group, idx, rname, rn->record, NULL, true,
                 "one of 'record' or 'alert' must be set");
    if (!r->expr[0]) {
        rule_err(c, BS_EINVAL, group, idx, rname, rn->expr, NULL, true,
                 "field 'expr' must be set in rule");
    } else {
        struct promql_expr *x = NULL;
        struct bs_error e = {0};
        if (promql_parse(r->expr, &x, &e) != 0)
            rule_err(c, BS_EPARSE, group, idx, rname, rn->expr, NULL, true,
                     "could not parse expression: %s", e.msg);
        promql_expr_free(x);
    }
    if (record[0]) {
        if (r->annotations.n)
            rule_err(c, BS_EINVAL, group, idx, rname, rn->record, NULL, true,
                     "invalid field 'annotations' in recording rule");
        if (r->for_ms)
            rule_err(c, BS_EINVAL, group, idx, rname, rn->record, NULL, true,
                     "invalid field 'for' in recording rule");
        if (r->keep_firing_for_ms)
            rule_err(c, BS_EINVAL, group, idx, rname, rn->record, NULL, true,
                     "invalid field 'keep_firing_for' in recording rule");
        if (!labels_metric_name_valid(record, strlen(record)))
            rule_err(c, BS_EINVAL, group, idx, rname, rn->record, NULL, true,
                     "invalid recording rule name: %s", record);
    }
    for (size_t i = 0; i < r->labels.n; i++) {
        const char *k = r->labels.v[i].name;
        if (!labels_name_valid(k, strlen(k)) || strcmp(k, LABELS_METRIC_NAME) == 0)
            rule_err(c, BS_EINVAL, group, idx, rname, NULL, NULL, false, "invalid label name: %s", k);
        if (!valid_label_value(r->labels.v[i].value))
            rule_err(c, BS_EINVAL, group, idx, rname, NULL, NULL, false, "invalid label value: %s",
                     r->labels.v[i].value);
    }
    for (size_t i = 0; i < r->annotations.n; i++) {
        const char *k = r->annotations.v[i].name;
        if (!labels_name_valid(k, strlen(k)))
            rule_err(c, BS_EINVAL, group, idx, rname, NULL, NULL, false,
                     "invalid annotation name: %s", k);
    }
    if (!alert[0])
        return;
    char tname[600];
    snprintf(tname, sizeof(tname), "__alert_%s", alert);
    for (int pass = 0; pass < 2; pass++) {
        const struct rules_kv *kv = pass ? &r->annotations : &r->labels;
        for (size_t i = 0; i < kv->n; i++) {
            struct bs_error e = {0};
            if (rules_template_check(tname, kv->v[i].value, &e) != 0)
                rule_err(c, BS_EINVAL, group, idx, rname, NULL, NULL, false, "%s \"%s\": %s",
                         pass ? "annotation" : "label", kv->v[i].name, e.msg);
        }
    }
}

static bool parse_rule(struct pctx *c, yaml_node_t *n, const char *group, size_t idx,
                       struct rulefile_rule *r)
{
    struct rule_nodes rn = {0};
    memset(r, 0, sizeof(*r));
    r->line = ln(n);
    r->col = co(n);
    if (n->type != YAML_MAPPING_NODE) {
        add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into rulefmt.RuleNode",
                ln(n), kind_name(n));
        return false;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        yaml_node_t **slot = strcmp(key, "record") == 0          ? &rn.record
                             : strcmp(key, "alert") == 0         ? &rn.alert
                             : strcmp(key, "expr") == 0          ? &rn.expr
                             : strcmp(key, "for") == 0           ? &rn.forn
                             : strcmp(key, "keep_firing_for") == 0 ? &rn.kff
                             : strcmp(key, "labels") == 0        ? &rn.labels
                             : strcmp(key, "annotations") == 0   ? &rn.annotations
                                                                 : NULL;
        if (!slot) {
            add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: field %s not found in type rulefmt.RuleNode",
                    ln(k), key);
            return false;
        }
        *slot = v;
    }
    char *record = rn.record ? scalar_dup(c, rn.record, "string") : bs_xstrdup("");
    char *alert = rn.alert ? scalar_dup(c, rn.alert, "string") : bs_xstrdup("");
    r->expr = rn.expr ? scalar_dup(c, rn.expr, "string") : bs_xstrdup("");
    bool ok = record && alert && r->expr && parse_duration(c, rn.forn, &r->for_ms) &&
              parse_duration(c, rn.kff, &r->keep_firing_for_ms) &&
              parse_kv(c, rn.labels, &r->labels) && parse_kv(c, rn.annotations, &r->annotations);
    if (ok) {
        validate_rule(c, group, idx, r, record, alert, &rn);
        r->alerting = alert[0] != 0;
        r->name = bs_xstrdup(alert[0] ? alert : record);
    }
    free(record);
    free(alert);
    if (!r->expr)
        r->expr = bs_xstrdup("");
    return ok;
}

static void rule_fini(struct rulefile_rule *r)
{
    free(r->name);
    free(r->expr);
    rules_kv_free(&r->labels);
    rules_kv_free(&r->annotations);
}

static void group_fini(struct rulefile_group *g)
{
    free(g->name);
    free(g->file);
    rules_kv_free(&g->labels);
    for (size_t i = 0; i < g->nrules; i++)
        rule_fini(&g->rules[i]);
    free(g->rules);
}

static bool parse_group(struct pctx *c, yaml_node_t *n, struct rulefile_group *g)
{
    yaml_node_t *name = NULL, *interval = NULL, *limit = NULL, *offset = NULL, *labels = NULL,
                *rules = NULL;
    memset(g, 0, sizeof(*g));
    g->file = bs_xstrdup(c->path);
    if (n->type != YAML_MAPPING_NODE) {
        add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into rulefmt.RuleGroup",
                ln(n), kind_name(n));
        return false;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        if (strcmp(key, "name") == 0)
            name = v;
        else if (strcmp(key, "interval") == 0)
            interval = v;
        else if (strcmp(key, "limit") == 0)
            limit = v;
        else if (strcmp(key, "query_offset") == 0)
            offset = v;
        else if (strcmp(key, "labels") == 0)
            labels = v;
        else if (strcmp(key, "rules") == 0)
            rules = v;
        else {
            add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: field %s not found in type rulefmt.RuleGroup",
                    ln(k), key);
            return false;
        }
    }
    g->name = name ? scalar_dup(c, name, "string") : bs_xstrdup("");
    if (!g->name)
        return false;
    if (!parse_duration(c, interval, &g->interval_ms) ||
        !parse_duration(c, offset, &g->query_offset_ms) || !parse_kv(c, labels, &g->labels))
        return false;
    if (limit && !is_null(limit)) {
        char *s = scalar_dup(c, limit, "int");
        if (!s)
            return false;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || !s[0] || *end) {
            add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal !!str `%s` into int",
                    ln(limit), s);
            free(s);
            return false;
        }
        free(s);
        g->limit = v;
    }
    for (size_t i = 0; i < g->labels.n; i++) {
        const char *k = g->labels.v[i].name;
        if (!labels_name_valid(k, strlen(k)) || strcmp(k, LABELS_METRIC_NAME) == 0)
            add_err(c, BS_EINVAL, "%d:%d: group \"%s\": invalid label name: %s", ln(labels),
                    co(labels), g->name, k);
    }
    if (rules && !is_null(rules)) {
        if (rules->type != YAML_SEQUENCE_NODE) {
            add_err(c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into []rulefmt.RuleNode",
                    ln(rules), kind_name(rules));
            return false;
        }
        size_t cnt = (size_t)(rules->data.sequence.items.top - rules->data.sequence.items.start);
        g->rules = bs_xcalloc(cnt ? cnt : 1, sizeof(*g->rules));
        for (size_t i = 0; i < cnt; i++) {
            if (!count_item(c))
                return false;
            yaml_node_t *rn = node_at(c, rules->data.sequence.items.start[i]);
            bool ok = parse_rule(c, rn, g->name, i + 1, &g->rules[i]);
            g->nrules++;
            if (!ok)
                return false;
        }
    }
    return true;
}

static int yaml_err(struct pctx *c, const yaml_parser_t *p)
{
    const yaml_mark_t *mk = p->problem ? &p->problem_mark : &p->context_mark;
    add_err(c, BS_EPARSE, "%zu:%zu: yaml: %s%s%s", mk->line + 1, mk->column + 1,
            p->context ? p->context : "", p->context ? " " : "",
            p->problem ? p->problem : "syntax error");
    return BS_EPARSE;
}

int rulefile_parse(const char *text, size_t len, const char *path, struct rulefile **out,
                   char ***errs, size_t *nerrs)
{
    struct pctx c = {0};
    yaml_parser_t parser;
    yaml_document_t doc;
    struct rulefile *f = bs_xcalloc(1, sizeof(*f));
    f->path = bs_xstrdup(path);
    c.path = path;
    c.doc = &doc;
    *out = NULL;

    if (len > RULES_FILE_MAX_SIZE) {
        add_err(&c, BS_ELIMIT, "file larger than %u bytes", (unsigned)RULES_FILE_MAX_SIZE);
        goto done;
    }
    if (!yaml_parser_initialize(&parser)) {
        add_err(&c, BS_ENOMEM, "cannot initialise the YAML parser");
        goto done;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_err(&c, &parser);
        yaml_parser_delete(&parser);
        goto done;
    }
    yaml_parser_delete(&parser);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            add_err(&c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into rulefmt.RuleGroups",
                    ln(root), kind_name(root));
        } else {
            yaml_node_t *groups = NULL;
            for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
                 p < root->data.mapping.pairs.top; p++) {
                yaml_node_t *k = node_at(&c, p->key);
                const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
                if (strcmp(key, "groups") == 0) {
                    groups = node_at(&c, p->value);
                } else {
                    add_err(&c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: field %s not found in type rulefmt.RuleGroups",
                            ln(k), key);
                    break;
                }
            }
            if (!c.nerrs && groups && !is_null(groups)) {
                if (groups->type != YAML_SEQUENCE_NODE) {
                    add_err(&c, BS_EPARSE, "yaml: unmarshal errors:\n  line %d: cannot unmarshal %s into []rulefmt.RuleGroup",
                            ln(groups), kind_name(groups));
                } else {
                    size_t cnt = (size_t)(groups->data.sequence.items.top -
                                          groups->data.sequence.items.start);
                    f->groups = bs_xcalloc(cnt ? cnt : 1, sizeof(*f->groups));
                    for (size_t i = 0; i < cnt; i++) {
                        if (!count_item(&c))
                            break;
                        yaml_node_t *gn = node_at(&c, groups->data.sequence.items.start[i]);
                        bool ok = parse_group(&c, gn, &f->groups[i]);
                        f->ngroups++;
                        if (!ok)
                            break;
                        struct rulefile_group *g = &f->groups[i];
                        if (!g->name[0])
                            add_err(&c, BS_EINVAL, "%d:%d: Groupname must not be empty", ln(gn), co(gn));
                        for (size_t j = 0; j < i; j++)
                            if (strcmp(f->groups[j].name, g->name) == 0) {
                                add_err(&c, BS_EINVAL,
                                        "%d:%d: groupname: \"%s\" is repeated in the same file",
                                        ln(gn), co(gn), g->name);
                                break;
                            }
                    }
                }
            }
        }
    }
    yaml_document_delete(&doc);
done:
    if (c.nerrs) {
        rulefile_free(f);
        *errs = c.errs;
        *nerrs = c.nerrs;
        return c.first_code ? c.first_code : BS_EINVAL;
    }
    *errs = NULL;
    *nerrs = 0;
    *out = f;
    return 0;
}

int rulefile_load(const char *path, struct rulefile **out, char ***errs, size_t *nerrs)
{
    *out = NULL;
    *errs = NULL;
    *nerrs = 0;
    FILE *fp = fopen(path, "rb");
    struct bs_buf b;
    char chunk[65536];
    size_t n;
    int code = 0;
    if (!fp) {
        code = errno == ENOENT ? BS_ENOENT : BS_EIO;
        struct bs_buf e;
        bs_buf_init(&e, 0);
        bs_buf_printf(&e, "%s: open %s: %s", path, path, errno == ENOENT ? "no such file or directory" : strerror(errno));
        *errs = bs_xmalloc(sizeof(char *));
        (*errs)[0] = e.data;
        *nerrs = 1;
        return code;
    }
    bs_buf_init(&b, RULES_FILE_MAX_SIZE);
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        if (bs_buf_append(&b, chunk, n) != 0) {
            code = BS_ELIMIT;
            break;
        }
    if (!code && ferror(fp))
        code = BS_EIO;
    fclose(fp);
    if (code) {
        bs_buf_fini(&b);
        struct bs_buf e;
        bs_buf_init(&e, 0);
        bs_buf_printf(&e, "%s: %s", path,
                      code == BS_ELIMIT ? "file too large" : "read error");
        *errs = bs_xmalloc(sizeof(char *));
        (*errs)[0] = e.data;
        *nerrs = 1;
        return code;
    }
    int rc = rulefile_parse(b.data ? b.data : "", b.len, path, out, errs, nerrs);
    bs_buf_fini(&b);
    return rc;
}

void rulefile_free(struct rulefile *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->ngroups; i++)
        group_fini(&f->groups[i]);
    free(f->groups);
    free(f->path);
    free(f);
}

/* ------------------------------------------------------ promtool check */

int rules_check_file(const char *path, struct bs_buf *report, struct bs_error *err)
{
    struct rulefile *f = NULL;
    char **errs = NULL;
    size_t nerrs = 0;
    bs_buf_printf(report, "Checking %s\n", path);
    int rc = rulefile_load(path, &f, &errs, &nerrs);
    if (rc) {
        bs_buf_puts(report, "  FAILED:\n");
        for (size_t i = 0; i < nerrs; i++) {
            bs_buf_printf(report, "%s\n", errs[i]);
            if (i == 0)
                bs_error_set(err, rc, "%s", errs[i]);
            free(errs[i]);
        }
        free(errs);
        bs_buf_puts(report, "\n");
        return rc;
    }
    size_t nrules = 0;
    for (size_t i = 0; i < f->ngroups; i++)
        nrules += f->groups[i].nrules;
    bs_buf_printf(report, "  SUCCESS: %zu rules found\n", nrules);
    /* promtool's duplicate check: same name and same labels in one file. */
    size_t dups = 0;
    for (size_t gi = 0; gi < f->ngroups; gi++)
        for (size_t ri = 0; ri < f->groups[gi].nrules; ri++) {
            const struct rulefile_rule *a = &f->groups[gi].rules[ri];
            for (size_t gj = gi; gj < f->ngroups; gj++)
                for (size_t rj = gj == gi ? ri + 1 : 0; rj < f->groups[gj].nrules; rj++) {
                    const struct rulefile_rule *b = &f->groups[gj].rules[rj];
                    if (strcmp(a->name, b->name) || a->labels.n != b->labels.n)
                        continue;
                    bool same = true;
                    for (size_t k = 0; k < a->labels.n && same; k++)
                        same = !strcmp(a->labels.v[k].name, b->labels.v[k].name) &&
                               !strcmp(a->labels.v[k].value, b->labels.v[k].value);
                    if (same)
                        dups++;
                }
        }
    if (dups)
        bs_buf_printf(report, "  WARNING: %zu duplicate rule(s) found.\n", dups);
    bs_buf_puts(report, "\n");
    rulefile_free(f);
    return 0;
}
