/* SPDX-License-Identifier: Apache-2.0
 *
 * Label sets: hashing, ordering, lookup, copying and text forms.
 *
 * The hash is XXH3-64 over "name\xffvalue\xff" for each pair in order. Small
 * sets are laid out in a stack buffer and hashed in one call; large ones are
 * fed to a streaming XXH3 state, which yields the same value.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "labels/labels_int.h"

#define SEP '\xff'
#define HASH_STACK 1024

/* keep(i) decides which pairs take part in the hash. */
struct hash_filter {
    const char *const *names;
    size_t n;
    bool only;   /* true: keep listed names; false: drop them */
};

static bool filter_keep(const struct hash_filter *f, const char *name)
{
    bool listed = false;
    if (!f)
        return true;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) {
            listed = true;
            break;
        }
    return f->only ? listed : !listed;
}

static uint64_t hash_filtered(const struct labels *ls, const struct hash_filter *f)
{
    char stack[HASH_STACK];
    size_t len = 0;
    XXH3_state_t state;
    bool streaming = false;

    for (size_t i = 0; i < ls->n; i++) {
        const char *name = ls->v[i].name, *value = ls->v[i].value;
        if (!filter_keep(f, name))
            continue;
        size_t nl = strlen(name), vl = strlen(value);
        if (!streaming && len + nl + vl + 2 <= sizeof(stack)) {
            memcpy(stack + len, name, nl);
            len += nl;
            stack[len++] = SEP;
            memcpy(stack + len, value, vl);
            len += vl;
            stack[len++] = SEP;
            continue;
        }
        if (!streaming) {
            XXH3_64bits_reset(&state);
            XXH3_64bits_update(&state, stack, len);
            streaming = true;
        }
        XXH3_64bits_update(&state, name, nl);
        XXH3_64bits_update(&state, "\xff", 1);
        XXH3_64bits_update(&state, value, vl);
        XXH3_64bits_update(&state, "\xff", 1);
    }
    return streaming ? XXH3_64bits_digest(&state) : XXH3_64bits(stack, len);
}

uint64_t labels_hash(const struct labels *ls)
{
    return hash_filtered(ls, NULL);
}

uint64_t labels_hash_without(const struct labels *ls, const char *const *skip, size_t nskip)
{
    struct hash_filter f = {skip, nskip, false};
    return hash_filtered(ls, &f);
}

uint64_t labels_hash_only(const struct labels *ls, const char *const *only, size_t nonly)
{
    struct hash_filter f = {only, nonly, true};
    return hash_filtered(ls, &f);
}

int labels_cmp(const struct labels *a, const struct labels *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    /* Interned strings (the head's) are equal when their pointers are,
     * which spares most calls to strcmp when sorting series. */
    for (size_t i = 0; i < n; i++) {
        const struct label *x = &a->v[i], *y = &b->v[i];
        int c = x->name == y->name ? 0 : strcmp(x->name, y->name);
        if (c == 0 && x->value != y->value)
            c = strcmp(x->value, y->value);
        if (c)
            return c < 0 ? -1 : 1;
    }
    return a->n < b->n ? -1 : a->n > b->n;
}

bool labels_equal(const struct labels *a, const struct labels *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct label *x = &a->v[i], *y = &b->v[i];
        if ((x->name != y->name && strcmp(x->name, y->name) != 0) ||
            (x->value != y->value && strcmp(x->value, y->value) != 0))
            return false;
    }
    return true;
}

const char *labels_get(const struct labels *ls, const char *name)
{
    size_t lo = 0, hi = ls->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ls->v[mid].name, name);
        if (c == 0)
            return ls->v[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t labels_size(const struct labels *ls)
{
    size_t sz = sizeof(struct labels) + ls->n * sizeof(struct label);
    for (size_t i = 0; i < ls->n; i++)
        sz += strlen(ls->v[i].name) + 1 + strlen(ls->v[i].value) + 1;
    return sz;
}

struct labels *labels_dup(const struct labels *ls)
{
    struct labels *out = malloc(labels_size(ls));
    char *s;
    if (!out)
        return NULL;
    out->n = ls->n;
    out->v = (struct label *)(out + 1);
    s = (char *)(out->v + ls->n);
    for (size_t i = 0; i < ls->n; i++) {
        size_t nl = strlen(ls->v[i].name) + 1, vl = strlen(ls->v[i].value) + 1;
        memcpy(s, ls->v[i].name, nl);
        out->v[i].name = s;
        s += nl;
        memcpy(s, ls->v[i].value, vl);
        out->v[i].value = s;
        s += vl;
    }
    return out;
}

size_t labels_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

bool labels_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = labels_utf8_len(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

int labels_quote(struct bs_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int rc = bs_buf_putc(out, '"');

    while (rc == 0 && i < n) {
        unsigned char c = p[i];
        char esc[8];
        const char *e = NULL;

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = labels_utf8_len(p + i, n - i);
            if (l) {
                i += l;
                continue;
            }
        }
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\a': e = "\\a"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\v': e = "\\v"; break;
        default: {
            static const char hex[] = "0123456789abcdef";
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            esc[4] = '\0';
            e = esc;
        }
        }
        if (i > run)
            rc = bs_buf_append(out, s + run, i - run);
        if (rc == 0)
            rc = bs_buf_puts(out, e);
        i++;
        run = i;
    }
    if (rc == 0 && i > run)
        rc = bs_buf_append(out, s + run, i - run);
    if (rc == 0)
        rc = bs_buf_putc(out, '"');
    return rc;
}

int labels_put_name(struct bs_buf *out, const char *s)
{
    size_t n = strlen(s);
    if (labels_name_valid(s, n))
        return bs_buf_append(out, s, n);
    return labels_quote(out, s, n);
}

int labels_format(const struct labels *ls, struct bs_buf *out)
{
    const char *name = labels_get(ls, LABELS_METRIC_NAME);
    bool name_outside = name && labels_metric_name_valid(name, strlen(name));
    bool first = true;
    int rc = 0;

    if (name_outside) {
        if (ls->n == 1)
            return bs_buf_puts(out, name);
        rc = bs_buf_puts(out, name);
    }
    if (rc == 0)
        rc = bs_buf_putc(out, '{');
    if (rc == 0 && name && !name_outside) {
        /* A UTF-8 metric name goes first inside the braces, quoted. */
        rc = labels_quote(out, name, strlen(name));
        first = false;
    }
    for (size_t i = 0; i < ls->n && rc == 0; i++) {
        if (strcmp(ls->v[i].name, LABELS_METRIC_NAME) == 0)
            continue;
        if (!first)
            rc = bs_buf_puts(out, ", ");
        first = false;
        if (rc == 0)
            rc = labels_put_name(out, ls->v[i].name);
        if (rc == 0)
            rc = bs_buf_putc(out, '=');
        if (rc == 0)
            rc = labels_quote(out, ls->v[i].value, strlen(ls->v[i].value));
    }
    if (rc == 0)
        rc = bs_buf_putc(out, '}');
    return rc;
}

int labels_format_json(const struct labels *ls, struct bs_buf *out)
{
    int rc = bs_buf_putc(out, '{');
    for (size_t i = 0; i < ls->n && rc == 0; i++) {
        if (i)
            rc = bs_buf_putc(out, ',');
        if (rc == 0)
            rc = bs_json_string(out, ls->v[i].name, strlen(ls->v[i].name));
        if (rc == 0)
            rc = bs_buf_putc(out, ':');
        if (rc == 0)
            rc = bs_json_string(out, ls->v[i].value, strlen(ls->v[i].value));
    }
    if (rc == 0)
        rc = bs_buf_putc(out, '}');
    return rc;
}

static bool name_valid(const char *s, size_t n, bool colon)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

bool labels_name_valid(const char *s, size_t n)
{
    return name_valid(s, n, false);
}

bool labels_metric_name_valid(const char *s, size_t n)
{
    return name_valid(s, n, true);
}
