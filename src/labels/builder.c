/* SPDX-License-Identifier: Apache-2.0
 *
 * Label set builder. Pairs live in a growable array whose strings are
 * copied into the builder's arena, so callers may pass transient input.
 * Replaced values are not reclaimed until reset(): a builder is meant for
 * building one set (or a short edit of one) at a time.
 *
 * set()/del() keep names unique; add_raw() appends blindly so that a parser
 * can report duplicate names, which labels() detects after sorting. Empty
 * values mean "absent": set() with one deletes, and labels() drops any that
 * add_raw() let in.
 */
#include <stdlib.h>
#include <string.h>

#include "labels/labels_int.h"

#define BUILDER_ARENA_BLOCK 4096

void labels_builder_init(struct labels_builder *b)
{
    b->v = NULL;
    b->n = 0;
    b->cap = 0;
    bs_arena_init(&b->arena, BUILDER_ARENA_BLOCK, 0);
    b->sorted = true;
}

void labels_builder_fini(struct labels_builder *b)
{
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
    bs_arena_fini(&b->arena);
}

void labels_builder_reset(struct labels_builder *b)
{
    b->n = 0;
    b->sorted = true;
    bs_arena_reset(&b->arena);
}

static int grow(struct labels_builder *b)
{
    if (b->n < b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap * 2 : 16;
    struct label *nv = realloc(b->v, ncap * sizeof(*nv));
    if (!nv)
        return BS_ENOMEM;
    b->v = nv;
    b->cap = ncap;
    return 0;
}

static int append(struct labels_builder *b, const char *name, size_t name_len, const char *value,
                  size_t value_len)
{
    char *n, *v;
    if (grow(b))
        return BS_ENOMEM;
    n = bs_arena_strndup(&b->arena, name, name_len);
    v = bs_arena_strndup(&b->arena, value, value_len);
    if (!n || !v)
        return BS_ENOMEM;
    if (b->n > 0 && b->sorted && strcmp(b->v[b->n - 1].name, n) >= 0)
        b->sorted = false;
    b->v[b->n].name = n;
    b->v[b->n].value = v;
    b->n++;
    return 0;
}

/* Index of the first pair named name[0..len), or -1. */
static ptrdiff_t find(const struct labels_builder *b, const char *name, size_t len)
{
    for (size_t i = 0; i < b->n; i++)
        if (strncmp(b->v[i].name, name, len) == 0 && b->v[i].name[len] == '\0')
            return (ptrdiff_t)i;
    return -1;
}

static void remove_at(struct labels_builder *b, size_t i)
{
    memmove(b->v + i, b->v + i + 1, (b->n - i - 1) * sizeof(*b->v));
    b->n--;
}

static void del_n(struct labels_builder *b, const char *name, size_t len)
{
    ptrdiff_t i;
    while ((i = find(b, name, len)) >= 0)
        remove_at(b, (size_t)i);
}

int labels_builder_from(struct labels_builder *b, const struct labels *ls)
{
    labels_builder_reset(b);
    for (size_t i = 0; i < ls->n; i++) {
        const char *v = ls->v[i].value;
        if (v[0] == '\0')
            continue;
        int rc = append(b, ls->v[i].name, strlen(ls->v[i].name), v, strlen(v));
        if (rc)
            return rc;
    }
    return 0;
}

int labels_builder_set(struct labels_builder *b, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    ptrdiff_t i;

    if (memchr(name, '\0', name_len) || memchr(value, '\0', value_len))
        return BS_EINVAL;
    if (value_len == 0) {
        del_n(b, name, name_len);
        return 0;
    }
    i = find(b, name, name_len);
    if (i < 0)
        return append(b, name, name_len, value, value_len);
    char *v = bs_arena_strndup(&b->arena, value, value_len);
    if (!v)
        return BS_ENOMEM;
    b->v[i].value = v;
    /* Drop any later duplicates add_raw() left behind. */
    for (size_t j = (size_t)i + 1; j < b->n;) {
        if (strcmp(b->v[j].name, b->v[i].name) == 0)
            remove_at(b, j);
        else
            j++;
    }
    return 0;
}

int labels_builder_set_str(struct labels_builder *b, const char *name, const char *value)
{
    return labels_builder_set(b, name, strlen(name), value ? value : "", value ? strlen(value) : 0);
}

void labels_builder_del(struct labels_builder *b, const char *name)
{
    del_n(b, name, strlen(name));
}

const char *labels_builder_get(const struct labels_builder *b, const char *name)
{
    ptrdiff_t i = find(b, name, strlen(name));
    return i < 0 ? NULL : b->v[i].value;
}

int labels_builder_add_raw(struct labels_builder *b, const char *name, size_t name_len,
                           const char *value, size_t value_len)
{
    if (memchr(name, '\0', name_len) || memchr(value, '\0', value_len))
        return BS_EINVAL;
    return append(b, name, name_len, value, value_len);
}

static int cmp_label(const void *x, const void *y)
{
    return strcmp(((const struct label *)x)->name, ((const struct label *)y)->name);
}

static void sort_labels(struct label *v, size_t n)
{
    if (n > 32) {
        qsort(v, n, sizeof(*v), cmp_label);
        return;
    }
    /* Insertion sort: stable, and input is usually almost sorted. */
    for (size_t i = 1; i < n; i++) {
        struct label t = v[i];
        size_t j = i;
        while (j > 0 && strcmp(v[j - 1].name, t.name) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
}

int labels_builder_labels(struct labels_builder *b, struct labels *out, struct bs_error *err)
{
    size_t w = 0;

    if (!b->sorted) {
        sort_labels(b->v, b->n);
        b->sorted = true;
    }
    for (size_t i = 1; i < b->n; i++)
        if (strcmp(b->v[i - 1].name, b->v[i].name) == 0)
            return bs_error_set(err, BS_EINVAL, "label name \"%s\" is not unique", b->v[i].name);
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].value[0] != '\0')
            b->v[w++] = b->v[i];
    b->n = w;
    out->v = b->v;
    out->n = b->n;
    return 0;
}
