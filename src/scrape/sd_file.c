/* SPDX-License-Identifier: Apache-2.0
 *
 * file_sd_configs, and the target group documents that file_sd and
 * http_sd read.
 *
 * Documents: a list of {"targets": [...], "labels": {...}}. JSON is read
 * as Go's encoding/json reads it into Prometheus's targetgroup.Group
 * (unknown keys ignored, keys matched ignoring case, a later "targets"
 * replacing an earlier one, "labels" merged, null meaning empty), YAML as
 * yaml.v2's UnmarshalStrict does (unknown keys and repeated keys are
 * errors). Label names must be valid; empty values mean absent. Errors
 * name the document and the line and column.
 *
 * The file provider: every refresh expands the patterns with glob(3) and
 * reads each file (by extension: .json is JSON, .yml/.yaml YAML, any case).
 * Each file remembers its last good groups: a file that cannot be read or
 * parsed keeps contributing them, and its error is logged once (again only
 * when the error changes). A file that no longer exists contributes
 * nothing. Every group gets __meta_filepath, the file's name. Output is in
 * file name order, groups in file order.
 */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "scrape/sd_int.h"

#define JSON_MAX_DEPTH 64

/* A group under construction. */
struct gbuild {
    struct labels_builder lb; /* group labels */
    struct labels **targets;
    size_t n, cap;
};

static void gbuild_init(struct gbuild *g)
{
    labels_builder_init(&g->lb);
    g->targets = NULL;
    g->n = g->cap = 0;
}

static void gbuild_clear_targets(struct gbuild *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->targets[i]);
    g->n = 0;
}

static void gbuild_fini(struct gbuild *g)
{
    gbuild_clear_targets(g);
    free(g->targets);
    labels_builder_fini(&g->lb);
}

static int gbuild_target(struct gbuild *g, const char *addr, size_t len)
{
    struct labels_builder b;
    struct labels view;
    labels_builder_init(&b);
    int rc = labels_builder_set(&b, "__address__", strlen("__address__"), addr, len);
    if (rc == 0)
        rc = labels_builder_labels(&b, &view, NULL);
    struct labels *t = rc == 0 ? labels_dup(&view) : NULL;
    labels_builder_fini(&b);
    if (!t)
        return BS_ENOMEM;
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 8;
        struct labels **nv = realloc(g->targets, ncap * sizeof(*nv));
        if (!nv) {
            free(t);
            return BS_ENOMEM;
        }
        g->targets = nv;
        g->cap = ncap;
    }
    g->targets[g->n++] = t;
    return 0;
}

/* Move the group into out (the builder is reset for the next one). */
static int gbuild_finish(struct gbuild *g, const char *meta_name, const char *meta_value,
                         struct sd_groups *out)
{
    struct labels view;
    int rc = 0;
    if (meta_name)
        rc = labels_builder_set_str(&g->lb, meta_name, meta_value);
    if (rc == 0)
        rc = labels_builder_labels(&g->lb, &view, NULL);
    struct sd_group grp = {0};
    if (rc == 0 && !(grp.labels = labels_dup(&view)))
        rc = BS_ENOMEM;
    if (rc != 0)
        return BS_ENOMEM;
    grp.targets = g->targets;
    grp.ntargets = g->n;
    g->targets = NULL;
    g->n = g->cap = 0;
    labels_builder_reset(&g->lb);
    return sd_groups_push(out, &grp);
}

/* ------------------------------------------------------------------ JSON */

struct jp {
    const char *s;
    size_t n, i;
    const char *name;
    struct bs_error *err;
    size_t items;
    struct bs_buf str; /* last decoded string */
};

static int jp_fail(struct jp *p, int code, const char *fmt, ...) BS_PRINTF(3, 4);

static int jp_fail(struct jp *p, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t line = 1, col = 1;
    for (size_t k = 0; k < p->i && k < p->n; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return bs_error_set(p->err, code, "%s:%zu:%zu: %s", p->name, line, col, msg);
}

static void jp_ws(struct jp *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int jp_unexpected(struct jp *p, const char *ctx)
{
    if (p->i >= p->n)
        return jp_fail(p, BS_EPARSE, "unexpected end of JSON input");
    unsigned char c = (unsigned char)p->s[p->i];
    if (c >= 0x20 && c < 0x7f)
        return jp_fail(p, BS_EPARSE, "invalid character '%c' %s", c, ctx);
    return jp_fail(p, BS_EPARSE, "invalid character 0x%02x %s", c, ctx);
}

static int jp_count(struct jp *p)
{
    if (++p->items > SD_DOC_MAX_ITEMS)
        return jp_fail(p, BS_ELIMIT, "more than %zu groups, targets and labels",
                       (size_t)SD_DOC_MAX_ITEMS);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int jp_hex4(struct jp *p, uint32_t *out)
{
    if (p->i + 4 > p->n)
        return jp_fail(p, BS_EPARSE, "unexpected end of JSON input");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0) {
            p->i += (size_t)k;
            return jp_unexpected(p, "in \\u hexadecimal character escape");
        }
        v = v << 4 | (uint32_t)h;
    }
    p->i += 4;
    *out = v;
    return 0;
}

/* A string at p->i (the opening quote) into p->str, NUL-terminated. NUL
 * characters (\u0000) are refused: label values cannot hold them. */
static int jp_string(struct jp *p)
{
    bs_buf_reset(&p->str);
    p->i++;
    for (;;) {
        if (p->i >= p->n)
            return jp_fail(p, BS_EPARSE, "unexpected end of JSON input");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20)
            return jp_unexpected(p, "in string literal");
        if (c != '\\') {
            if (bs_buf_putc(&p->str, (char)c) != 0)
                return jp_fail(p, BS_ENOMEM, "out of memory");
            p->i++;
            continue;
        }
        p->i++;
        if (p->i >= p->n)
            return jp_fail(p, BS_EPARSE, "unexpected end of JSON input");
        char e = p->s[p->i++];
        const char *simple = strchr("\"\\/bfnrt", e);
        int rc = 0;
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            rc = bs_buf_putc(&p->str, map[simple - "\"\\/bfnrt"]);
        } else if (e == 'u') {
            uint32_t cp;
            if ((rc = jp_hex4(p, &cp)) != 0)
                return rc;
            if (cp >= 0xd800 && cp < 0xdc00 && p->i + 6 <= p->n && p->s[p->i] == '\\' &&
                p->s[p->i + 1] == 'u') {
                size_t save = p->i;
                uint32_t lo;
                p->i += 2;
                if ((rc = jp_hex4(p, &lo)) != 0)
                    return rc;
                if (lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    p->i = save; /* unpaired: U+FFFD, then the next escape */
            }
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 0xfffd;
            if (cp == 0)
                return jp_fail(p, BS_EPARSE, "string holds a NUL character");
            rc = bs_buf_put_utf8(&p->str, cp);
        } else {
            p->i--;
            return jp_unexpected(p, "in string escape code");
        }
        if (rc != 0)
            return jp_fail(p, BS_ENOMEM, "out of memory");
    }
    if (bs_buf_reserve(&p->str, 1) != 0)
        return jp_fail(p, BS_ENOMEM, "out of memory");
    p->str.data[p->str.len] = '\0';
    return 0;
}

static bool jp_word(struct jp *p, const char *w)
{
    size_t l = strlen(w);
    if (p->n - p->i >= l && memcmp(p->s + p->i, w, l) == 0) {
        p->i += l;
        return true;
    }
    return false;
}

/* Skip any value (for unknown keys); *kind names what it was. */
static int jp_skip(struct jp *p, int depth, const char **kind)
{
    jp_ws(p);
    if (depth > JSON_MAX_DEPTH)
        return jp_fail(p, BS_ELIMIT, "exceeded max depth");
    if (p->i >= p->n)
        return jp_fail(p, BS_EPARSE, "unexpected end of JSON input");
    char c = p->s[p->i];
    int rc;
    if (c == '"') {
        *kind = "string";
        return jp_string(p);
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        *kind = c == '{' ? "object" : "array";
        p->i++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return 0;
        }
        for (;;) {
            const char *k;
            jp_ws(p);
            if (c == '{') {
                if (p->i >= p->n || p->s[p->i] != '"')
                    return jp_unexpected(p, "looking for beginning of object key string");
                if ((rc = jp_string(p)) != 0)
                    return rc;
                jp_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':')
                    return jp_unexpected(p, "after object key");
                p->i++;
            }
            if ((rc = jp_skip(p, depth + 1, &k)) != 0)
                return rc;
            jp_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == close) {
                p->i++;
                return 0;
            }
            return jp_unexpected(p,
                                 c == '{' ? "after object key:value pair" : "after array element");
        }
    }
    if (jp_word(p, "true") || jp_word(p, "false")) {
        *kind = "bool";
        return 0;
    }
    if (jp_word(p, "null")) {
        *kind = "null";
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        *kind = "number";
        size_t st = p->i;
        if (p->s[p->i] == '-')
            p->i++;
        if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9'))
            return jp_unexpected(p, "in numeric literal");
        if (p->s[p->i] == '0')
            p->i++;
        else
            while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
                p->i++;
        if (p->i < p->n && p->s[p->i] == '.') {
            p->i++;
            if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9'))
                return jp_unexpected(p, "after decimal point in numeric literal");
            while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
                p->i++;
        }
        if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
            p->i++;
            if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
                p->i++;
            if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9'))
                return jp_unexpected(p, "in exponent of numeric literal");
            while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
                p->i++;
        }
        (void)st;
        return 0;
    }
    return jp_unexpected(p, "looking for beginning of value");
}

/* A value that must be a string (or null: ""); for Go's type errors. */
static int jp_expect_string(struct jp *p, const char *field, bool *is_null)
{
    jp_ws(p);
    *is_null = false;
    if (p->i < p->n && p->s[p->i] == '"')
        return jp_string(p);
    if (jp_word(p, "null")) {
        *is_null = true;
        bs_buf_reset(&p->str);
        if (bs_buf_reserve(&p->str, 1) != 0)
            return jp_fail(p, BS_ENOMEM, "out of memory");
        p->str.data[0] = '\0';
        return 0;
    }
    size_t at = p->i;
    const char *kind = "value";
    int rc = jp_skip(p, 1, &kind);
    if (rc != 0)
        return rc;
    p->i = at;
    return jp_fail(p, BS_EPARSE, "json: cannot unmarshal %s into Go struct field %s of type string",
                   kind, field);
}

static int jp_targets(struct jp *p, struct gbuild *g)
{
    int rc;
    gbuild_clear_targets(g);
    jp_ws(p);
    if (jp_word(p, "null"))
        return 0;
    if (p->i >= p->n || p->s[p->i] != '[') {
        const char *kind = "value";
        size_t at = p->i;
        if ((rc = jp_skip(p, 1, &kind)) != 0)
            return rc;
        p->i = at;
        return jp_fail(p, BS_EPARSE,
                       "json: cannot unmarshal %s into Go struct field .targets of type []string",
                       kind);
    }
    p->i++;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return 0;
    }
    for (;;) {
        bool is_null;
        if ((rc = jp_expect_string(p, ".targets", &is_null)) != 0)
            return rc;
        if ((rc = jp_count(p)) != 0)
            return rc;
        if ((rc = gbuild_target(g, p->str.data, p->str.len)) != 0)
            return jp_fail(p, rc, "out of memory");
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return 0;
        }
        return jp_unexpected(p, "after array element");
    }
}

static int jp_labels(struct jp *p, struct gbuild *g)
{
    int rc;
    jp_ws(p);
    if (jp_word(p, "null"))
        return 0;
    if (p->i >= p->n || p->s[p->i] != '{') {
        const char *kind = "value";
        size_t at = p->i;
        if ((rc = jp_skip(p, 1, &kind)) != 0)
            return rc;
        p->i = at;
        return jp_fail(p, BS_EPARSE,
                       "json: cannot unmarshal %s into Go struct field .labels of type "
                       "model.LabelSet",
                       kind);
    }
    p->i++;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return 0;
    }
    struct bs_buf name;
    bs_buf_init(&name, 0);
    for (;;) {
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"') {
            rc = jp_unexpected(p, "looking for beginning of object key string");
            break;
        }
        size_t key_at = p->i;
        if ((rc = jp_string(p)) != 0)
            break;
        bs_buf_reset(&name);
        if (bs_buf_append(&name, p->str.data, p->str.len + 1) != 0) {
            rc = jp_fail(p, BS_ENOMEM, "out of memory");
            break;
        }
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
            rc = jp_unexpected(p, "after object key");
            break;
        }
        p->i++;
        bool is_null;
        if ((rc = jp_expect_string(p, ".labels", &is_null)) != 0)
            break;
        if (!labels_name_valid(name.data, name.len - 1)) {
            p->i = key_at;
            rc = jp_fail(p, BS_EINVAL, "\"%s\" is not a valid label name", name.data);
            break;
        }
        if ((rc = jp_count(p)) != 0)
            break;
        if (labels_builder_set(&g->lb, name.data, name.len - 1, p->str.data, p->str.len) != 0) {
            rc = jp_fail(p, BS_ENOMEM, "out of memory");
            break;
        }
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        rc = jp_unexpected(p, "after object key:value pair");
        break;
    }
    bs_buf_fini(&name);
    return rc;
}

static int jp_group(struct jp *p, struct gbuild *g)
{
    int rc;
    p->i++; /* '{' */
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return 0;
    }
    for (;;) {
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"')
            return jp_unexpected(p, "looking for beginning of object key string");
        if ((rc = jp_string(p)) != 0)
            return rc;
        bool is_targets = strcasecmp(p->str.data, "targets") == 0;
        bool is_labels = strcasecmp(p->str.data, "labels") == 0;
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':')
            return jp_unexpected(p, "after object key");
        p->i++;
        const char *kind;
        if (is_targets)
            rc = jp_targets(p, g);
        else if (is_labels)
            rc = jp_labels(p, g);
        else
            rc = jp_skip(p, 1, &kind);
        if (rc != 0)
            return rc;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return 0;
        }
        return jp_unexpected(p, "after object key:value pair");
    }
}

static int parse_json(struct jp *p, const char *meta_name, const char *meta_value,
                      struct sd_groups *out)
{
    struct gbuild g;
    gbuild_init(&g);
    int rc = 0;
    jp_ws(p);
    if (jp_word(p, "null"))
        goto end;
    if (p->i >= p->n || p->s[p->i] != '[') {
        const char *kind = "value";
        size_t at = p->i;
        if ((rc = jp_skip(p, 0, &kind)) == 0) {
            p->i = at;
            rc = jp_fail(p, BS_EPARSE,
                         "json: cannot unmarshal %s into Go value of type []*targetgroup.Group",
                         kind);
        }
        goto done;
    }
    p->i++;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        goto end;
    }
    for (;;) {
        jp_ws(p);
        if (jp_word(p, "null")) {
            p->i -= 4;
            rc = jp_fail(p, BS_EINVAL, "nil target group item found");
            goto done;
        }
        if (p->i >= p->n || p->s[p->i] != '{') {
            const char *kind = "value";
            size_t at = p->i;
            if ((rc = jp_skip(p, 1, &kind)) == 0) {
                p->i = at;
                rc = jp_fail(p, BS_EPARSE,
                             "json: cannot unmarshal %s into Go value of type targetgroup.Group",
                             kind);
            }
            goto done;
        }
        if ((rc = jp_count(p)) != 0 || (rc = jp_group(p, &g)) != 0)
            goto done;
        if ((rc = gbuild_finish(&g, meta_name, meta_value, out)) != 0) {
            rc = jp_fail(p, rc, "out of memory");
            goto done;
        }
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            break;
        }
        rc = jp_unexpected(p, "after array element");
        goto done;
    }
end:
    jp_ws(p);
    if (p->i < p->n)
        rc = jp_unexpected(p, "after top-level value");
done:
    gbuild_fini(&g);
    return rc;
}

/* ------------------------------------------------------------------ YAML */

struct yp {
    yaml_document_t *doc;
    const char *name;
    struct bs_error *err;
    size_t items;
};

static int yp_fail(struct yp *p, const yaml_node_t *at, int code, const char *fmt, ...)
    BS_PRINTF(4, 5);

static int yp_fail(struct yp *p, const yaml_node_t *at, int code, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return bs_error_set(p->err, code, "%s:%zu:%zu: %s", p->name, at->start_mark.line + 1,
                        at->start_mark.column + 1, msg);
}

static bool y_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->tag && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    return l == 0 || (l == 1 && v[0] == '~') ||
           (l == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static int yp_count(struct yp *p, const yaml_node_t *at)
{
    if (++p->items > SD_DOC_MAX_ITEMS)
        return yp_fail(p, at, BS_ELIMIT, "more than %zu groups, targets and labels (after aliases)",
                       (size_t)SD_DOC_MAX_ITEMS);
    return 0;
}

/* A scalar's text; null is "". Refuses NUL characters. */
static int yp_text(struct yp *p, const yaml_node_t *n, const char *what, const char **s,
                   size_t *len)
{
    if (n->type != YAML_SCALAR_NODE)
        return yp_fail(p, n, BS_EPARSE, "cannot unmarshal %s into %s",
                       n->type == YAML_MAPPING_NODE ? "!!map" : "!!seq", what);
    if (y_null(n)) {
        *s = "";
        *len = 0;
        return 0;
    }
    *s = (const char *)n->data.scalar.value;
    *len = n->data.scalar.length;
    if (memchr(*s, '\0', *len))
        return yp_fail(p, n, BS_EPARSE, "string holds a NUL character");
    return 0;
}

static const char yaml_group_type[] =
    "struct { Targets []string \"yaml:\\\"targets\\\"\"; Labels model.LabelSet "
    "\"yaml:\\\"labels\\\"\" }";

static int yp_group(struct yp *p, yaml_node_t *n, struct gbuild *g)
{
    int rc;
    bool seen_targets = false, seen_labels = false;
    for (yaml_node_pair_t *it = n->data.mapping.pairs.start; it < n->data.mapping.pairs.top; it++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, it->key);
        yaml_node_t *v = yaml_document_get_node(p->doc, it->value);
        const char *ks;
        size_t kl;
        if (!k || !v)
            return yp_fail(p, n, BS_EPARSE, "malformed mapping");
        if ((rc = yp_text(p, k, "string", &ks, &kl)) != 0)
            return rc;
        bool *seen = strcmp(ks, "targets") == 0  ? &seen_targets
                     : strcmp(ks, "labels") == 0 ? &seen_labels
                                                 : NULL;
        if (!seen)
            return yp_fail(p, k, BS_EPARSE, "field %.*s not found in type %s",
                           (int)(kl > 128 ? 128 : kl), ks, yaml_group_type);
        if (*seen)
            return yp_fail(p, k, BS_EPARSE, "mapping key \"%s\" already defined", ks);
        *seen = true;
        if (seen == &seen_targets) {
            if (y_null(v))
                continue;
            if (v->type != YAML_SEQUENCE_NODE)
                return yp_fail(p, v, BS_EPARSE, "cannot unmarshal %s into []string",
                               v->type == YAML_MAPPING_NODE ? "!!map" : "!!str");
            for (yaml_node_item_t *s = v->data.sequence.items.start; s < v->data.sequence.items.top;
                 s++) {
                yaml_node_t *t = yaml_document_get_node(p->doc, *s);
                const char *ts;
                size_t tl;
                if (!t)
                    return yp_fail(p, v, BS_EPARSE, "malformed sequence");
                if ((rc = yp_text(p, t, "string", &ts, &tl)) != 0 || (rc = yp_count(p, t)) != 0)
                    return rc;
                if (gbuild_target(g, ts, tl) != 0)
                    return yp_fail(p, t, BS_ENOMEM, "out of memory");
            }
        } else {
            if (y_null(v))
                continue;
            if (v->type != YAML_MAPPING_NODE)
                return yp_fail(p, v, BS_EPARSE, "cannot unmarshal %s into model.LabelSet",
                               v->type == YAML_SEQUENCE_NODE ? "!!seq" : "!!str");
            for (yaml_node_pair_t *lp = v->data.mapping.pairs.start; lp < v->data.mapping.pairs.top;
                 lp++) {
                yaml_node_t *lk = yaml_document_get_node(p->doc, lp->key);
                yaml_node_t *lv = yaml_document_get_node(p->doc, lp->value);
                const char *ln, *val;
                size_t lnl, vl;
                if (!lk || !lv)
                    return yp_fail(p, v, BS_EPARSE, "malformed mapping");
                if ((rc = yp_text(p, lk, "model.LabelName", &ln, &lnl)) != 0 ||
                    (rc = yp_text(p, lv, "model.LabelValue", &val, &vl)) != 0 ||
                    (rc = yp_count(p, lk)) != 0)
                    return rc;
                if (!labels_name_valid(ln, lnl))
                    return yp_fail(p, lk, BS_EINVAL, "\"%.*s\" is not a valid label name",
                                   (int)(lnl > 128 ? 128 : lnl), ln);
                for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < lp; q++) {
                    yaml_node_t *qk = yaml_document_get_node(p->doc, q->key);
                    if (qk && qk->type == YAML_SCALAR_NODE && qk->data.scalar.length == lnl &&
                        memcmp(qk->data.scalar.value, ln, lnl) == 0)
                        return yp_fail(p, lk, BS_EPARSE, "mapping key \"%.*s\" already defined",
                                       (int)(lnl > 128 ? 128 : lnl), ln);
                }
                if (labels_builder_set(&g->lb, ln, lnl, val, vl) != 0)
                    return yp_fail(p, lk, BS_ENOMEM, "out of memory");
            }
        }
    }
    return 0;
}

static int parse_yaml(const char *text, size_t len, const char *name, const char *meta_name,
                      const char *meta_value, struct sd_groups *out, struct bs_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return bs_error_set(err, BS_ENOMEM, "%s: out of memory", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = parser.error == YAML_MEMORY_ERROR
                     ? bs_error_set(err, BS_ENOMEM, "%s: out of memory", name)
                     : bs_error_set(err, BS_EPARSE, "%s:%zu:%zu: yaml: %s", name,
                                    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                    parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return rc;
    }
    struct yp p = {.doc = &doc, .name = name, .err = err};
    struct gbuild g;
    gbuild_init(&g);
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !y_null(root)) {
        if (root->type != YAML_SEQUENCE_NODE) {
            rc = yp_fail(&p, root, BS_EPARSE, "cannot unmarshal %s into []*targetgroup.Group",
                         root->type == YAML_MAPPING_NODE ? "!!map" : "!!str");
        }
        for (yaml_node_item_t *s = root->data.sequence.items.start;
             rc == 0 && s < root->data.sequence.items.top; s++) {
            yaml_node_t *n = yaml_document_get_node(&doc, *s);
            if (y_null(n))
                rc = yp_fail(&p, n ? n : root, BS_EINVAL, "nil target group item found");
            else if (n->type != YAML_MAPPING_NODE)
                rc = yp_fail(&p, n, BS_EPARSE, "cannot unmarshal %s into targetgroup.Group",
                             n->type == YAML_SEQUENCE_NODE ? "!!seq" : "!!str");
            else if ((rc = yp_count(&p, n)) == 0 && (rc = yp_group(&p, n, &g)) == 0 &&
                     gbuild_finish(&g, meta_name, meta_value, out) != 0)
                rc = bs_error_set(err, BS_ENOMEM, "%s: out of memory", name);
        }
    }
    gbuild_fini(&g);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int sd_groups_parse(const char *text, size_t len, enum sd_format fmt, const char *name,
                    const char *meta_name, const char *meta_value, struct sd_groups *out,
                    struct bs_error *err)
{
    size_t before = out->n;
    int rc;
    if (fmt == SD_FORMAT_JSON) {
        struct jp p = {.s = text, .n = len, .name = name, .err = err};
        bs_buf_init(&p.str, 0);
        rc = parse_json(&p, meta_name, meta_value, out);
        bs_buf_fini(&p.str);
    } else {
        rc = parse_yaml(text, len, name, meta_name, meta_value, out, err);
    }
    if (rc != 0) {
        while (out->n > before)
            sd_group_fini(&out->v[--out->n]);
    }
    return rc;
}

/* -------------------------------------------------------------- provider */

struct file_entry {
    char *path;
    struct sd_groups groups; /* last good */
    char *error;             /* last error logged, or NULL */
    bool seen;
};

struct file_state {
    struct file_entry *v;
    size_t n, cap;
    char **dirs;  /* per pattern: its directory */
    char **bases; /* per pattern: its last component */
    size_t ndirs;
};

static void file_state_free(void *priv)
{
    struct file_state *st = priv;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        free(st->v[i].path);
        sd_groups_fini(&st->v[i].groups);
        free(st->v[i].error);
    }
    free(st->v);
    for (size_t i = 0; i < st->ndirs; i++) {
        free(st->dirs[i]);
        free(st->bases[i]);
    }
    free(st->dirs);
    free(st->bases);
    free(st);
}

/* Read a whole file, at most SD_DOC_MAX_SIZE bytes. */
static int read_file(const char *path, char **out, size_t *len, struct bs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bs_error_set(err, errno == ENOENT ? BS_ENOENT : BS_EIO, "open %s: %s", path,
                            strerror(errno));
    struct bs_buf b;
    bs_buf_init(&b, SD_DOC_MAX_SIZE + 1);
    char chunk[16384];
    int rc = 0;
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = bs_buf_append(&b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = bs_error_set(err, BS_EIO, "read %s: %s", path, strerror(errno ? errno : EIO));
    else if (rc == BS_ELIMIT)
        rc = bs_error_set(err, BS_ELIMIT, "%s: larger than %zu bytes", path, SD_DOC_MAX_SIZE);
    else if (rc != 0)
        rc = bs_error_set(err, rc, "%s: %s", path, bs_strerror(rc));
    fclose(f);
    if (rc != 0) {
        bs_buf_fini(&b);
        return rc;
    }
    *len = b.len;
    *out = bs_buf_steal(&b, NULL);
    if (!*out) {
        *out = strdup("");
        if (!*out)
            return bs_error_set(err, BS_ENOMEM, "out of memory");
    }
    return 0;
}

static bool ext_is(const char *path, const char *ext)
{
    size_t n = strlen(path), l = strlen(ext);
    return n >= l && strcasecmp(path + n - l, ext) == 0;
}

/* Read and parse one file into out. */
static int file_load(const char *path, struct sd_groups *out, struct bs_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc != 0)
        return rc;
    enum sd_format fmt = ext_is(path, ".json") ? SD_FORMAT_JSON : SD_FORMAT_YAML;
    if (!ext_is(path, ".json") && !ext_is(path, ".yml") && !ext_is(path, ".yaml"))
        rc = bs_error_set(err, BS_EINVAL, "%s: retrieved file has an unknown extension", path);
    else
        rc = sd_groups_parse(text, len, fmt, path, "__meta_filepath", path, out, err);
    free(text);
    return rc;
}

static struct file_entry *entry_get(struct file_state *st, const char *path)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->v[i].path, path) == 0)
            return &st->v[i];
    if (st->n == st->cap) {
        size_t ncap = st->cap ? st->cap * 2 : 8;
        struct file_entry *nv = realloc(st->v, ncap * sizeof(*nv));
        if (!nv)
            return NULL;
        st->v = nv;
        st->cap = ncap;
    }
    struct file_entry *e = &st->v[st->n];
    memset(e, 0, sizeof(*e));
    if (!(e->path = strdup(path)))
        return NULL;
    st->n++;
    return e;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct file_entry *)a)->path, ((const struct file_entry *)b)->path);
}

static void file_visit(struct sd_provider *p, struct file_state *st, const char *path)
{
    struct file_entry *e = entry_get(st, path);
    if (!e) {
        BS_ERROR(SD_COMPONENT, "file_sd (job %s): out of memory reading %s", p->job, path);
        return;
    }
    if (e->seen)
        return; /* matched by two patterns */
    e->seen = true;
    struct sd_groups g = {0};
    struct bs_error err;
    bs_error_clear(&err);
    if (file_load(path, &g, &err) == 0) {
        sd_groups_fini(&e->groups);
        e->groups = g;
        if (e->error) {
            BS_INFO(SD_COMPONENT, "file_sd (job %s): %s is valid again", p->job, path);
            free(e->error);
            e->error = NULL;
        }
        return;
    }
    sd_groups_fini(&g);
    if (!e->error || strcmp(e->error, err.msg) != 0) {
        BS_ERROR(SD_COMPONENT,
                 "file_sd (job %s): error reading file %s, keeping its last good targets: %s",
                 p->job, path, err.msg);
        free(e->error);
        e->error = strdup(err.msg);
    }
}

static int file_refresh(struct sd_provider *p, struct sd_groups *out)
{
    struct file_state *st = p->priv;
    const struct config_file_sd *fc = p->conf.file;
    for (size_t i = 0; i < st->n; i++)
        st->v[i].seen = false;
    for (size_t i = 0; i < fc->nfiles; i++) {
        glob_t gl;
        memset(&gl, 0, sizeof(gl));
        int g = glob(fc->files[i], 0, NULL, &gl);
        if (g == 0) {
            for (size_t k = 0; k < gl.gl_pathc; k++)
                file_visit(p, st, gl.gl_pathv[k]);
        } else if (g != GLOB_NOMATCH) {
            BS_ERROR(SD_COMPONENT, "file_sd (job %s): cannot expand %s", p->job, fc->files[i]);
            /* Keep what the pattern had: mark its files seen. */
            for (size_t k = 0; k < st->n; k++)
                if (fnmatch(fc->files[i], st->v[k].path, FNM_PATHNAME) == 0)
                    st->v[k].seen = true;
        }
        globfree(&gl);
    }
    /* Files that are gone take their targets with them. */
    size_t w = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->v[i].seen) {
            st->v[w++] = st->v[i];
        } else {
            free(st->v[i].path);
            sd_groups_fini(&st->v[i].groups);
            free(st->v[i].error);
        }
    }
    st->n = w;
    if (st->n > 1)
        qsort(st->v, st->n, sizeof(*st->v), entry_cmp);
    for (size_t i = 0; i < st->n; i++) {
        if (sd_groups_append_copy(out, &st->v[i].groups) != 0) {
            BS_ERROR(SD_COMPONENT, "file_sd (job %s): out of memory", p->job);
            return BS_ENOMEM;
        }
    }
    return 0;
}

int sd_file_init(struct sd_provider *p)
{
    struct file_state *st = calloc(1, sizeof(*st));
    if (!st)
        return BS_ENOMEM;
    size_t n = p->conf.file->nfiles;
    st->dirs = calloc(n ? n : 1, sizeof(*st->dirs));
    st->bases = calloc(n ? n : 1, sizeof(*st->bases));
    if (!st->dirs || !st->bases) {
        file_state_free(st);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *f = p->conf.file->files[i];
        const char *slash = strrchr(f, '/');
        st->dirs[i] = slash ? strndup(f, slash == f ? 1 : (size_t)(slash - f)) : strdup(".");
        st->bases[i] = strdup(slash ? slash + 1 : f);
        st->ndirs = i + 1;
        if (!st->dirs[i] || !st->bases[i]) {
            file_state_free(st);
            return BS_ENOMEM;
        }
    }
    p->priv = st;
    p->priv_free = file_state_free;
    p->refresh = file_refresh;
    return 0;
}

size_t sd_file_ndirs(const struct sd_provider *p)
{
    return ((const struct file_state *)p->priv)->ndirs;
}

const char *sd_file_dir(const struct sd_provider *p, size_t i)
{
    return ((const struct file_state *)p->priv)->dirs[i];
}

bool sd_file_matches(const struct sd_provider *p, const char *dir, const char *name)
{
    const struct file_state *st = p->priv;
    for (size_t i = 0; i < st->ndirs; i++)
        if (strcmp(st->dirs[i], dir) == 0 && (!name || fnmatch(st->bases[i], name, 0) == 0))
            return true;
    return false;
}
