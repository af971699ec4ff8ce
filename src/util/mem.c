/* SPDX-License-Identifier: Apache-2.0
 *
 * Memory: aborting allocation wrappers for small bookkeeping, and the arena,
 * a bump allocator for per-request and per-scrape work.
 *
 * The arena is a singly linked list of blocks, newest first. An allocation
 * is carved from the newest block; when it does not fit, a new block of
 * block_size bytes (or larger, for a big request) is pushed. reset() frees
 * every block but the oldest one, so an arena reused for each scrape settles
 * at one malloc per scrape or less. The cap `max` counts bytes handed out
 * (after rounding to 16), which is what input controls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static void oom(size_t n)
{
    BS_ERROR("util", "out of memory allocating %zu bytes", n);
    abort();
}

void *bs_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *bs_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *bs_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *bs_xstrdup(const char *s)
{
    return bs_xstrndup(s, strlen(s));
}

char *bs_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = bs_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ------------------------------------------------------------------ arena */

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_BLOCK 65536

struct bs_arena_block {
    struct bs_arena_block *next;
    size_t size;   /* usable bytes after the header */
    size_t used;
};

/* The header rounded up so the payload starts 16-byte aligned (malloc gives
 * at least 16 on the platforms we build for). */
#define BLOCK_HDR ((sizeof(struct bs_arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static inline unsigned char *block_data(struct bs_arena_block *b)
{
    return (unsigned char *)b + BLOCK_HDR;
}

void bs_arena_init(struct bs_arena *a, size_t block_size, size_t max)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
    a->total = 0;
    a->max = max;
}

void bs_arena_fini(struct bs_arena *a)
{
    struct bs_arena_block *b = a->head;
    while (b) {
        struct bs_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

void bs_arena_reset(struct bs_arena *a)
{
    struct bs_arena_block *b = a->head;
    if (!b)
        return;
    while (b->next) {
        struct bs_arena_block *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
    a->total = 0;
}

void *bs_arena_alloc(struct bs_arena *a, size_t n)
{
    struct bs_arena_block *b;
    size_t need;

    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - ARENA_ALIGN - BLOCK_HDR)
        return NULL;
    need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (a->max && (need > a->max || a->total > a->max - need))
        return NULL;

    b = a->head;
    if (!b || b->size - b->used < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        struct bs_arena_block *nb = malloc(BLOCK_HDR + size);
        if (!nb)
            return NULL;
        nb->size = size;
        nb->used = 0;
        if (b && size > a->block_size && b->size - b->used >= ARENA_ALIGN * 4) {
            /* A big one-off request: slot it behind the current block so the
             * current block's free space stays usable. */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = block_data(b) + b->used;
    b->used += need;
    a->total += need;
    return p;
}

char *bs_arena_strndup(struct bs_arena *a, const char *s, size_t n)
{
    char *p = bs_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
