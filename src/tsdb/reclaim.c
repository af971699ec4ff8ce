/* SPDX-License-Identifier: Apache-2.0
 *
 * Epoch-based reclamation of head memory.
 *
 * Why. Queriers read closed head chunks and series structs without taking
 * the series lock (chunks are immutable), and keep pointers to them for as
 * long as the querier lives; appenders keep series pointers from add() to
 * commit(). Head truncation unlinks old chunks and empty series. A
 * read-write lock held by every querier for its whole life would also
 * work, but it would stall truncation behind a slow query and, with a
 * writer-preferring lock, deadlock a thread that opens a second querier
 * while the compactor waits. Reference counts on every chunk would put an
 * atomic on the hot read path. Epochs cost one short mutex section per
 * querier or appender, and truncation never waits for anybody.
 *
 * How. A reader enters with the current epoch E (counted in `active`, a
 * short array of (epoch, readers) in ascending order, since epochs only
 * grow) and exits with it. The truncator first makes objects unreachable
 * for new readers (removed from chunk arrays, stripes, the ref table and
 * the postings), then retires them: each is tagged with the current epoch
 * E, and advance() moves to E+1. A reader that entered at E or earlier may
 * still hold a pointer; one that enters at E+1 cannot find the object any
 * more. So garbage of epoch E is freed as soon as no reader with an epoch
 * <= E is active. Frees happen outside the mutex, in whichever thread
 * exits last or advances.
 */
#include <stdlib.h>
#include <string.h>

#include "tsdb/tsdb_int.h"

void tsdb_reclaim_init(struct tsdb_reclaim *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->epoch = 1;
}

static void free_list(struct tsdb_garbage *g)
{
    while (g) {
        struct tsdb_garbage *next = g->next;
        g->fn(g->p);
        free(g);
        g = next;
    }
}

void tsdb_reclaim_fini(struct tsdb_reclaim *r)
{
    free_list(r->garbage);
    free(r->active);
    pthread_mutex_destroy(&r->mu);
    memset(r, 0, sizeof(*r));
}

/* Unlink (under r->mu) the garbage no active reader can see; returns it. */
static struct tsdb_garbage *collect_locked(struct tsdb_reclaim *r)
{
    while (r->nactive > 0 && r->active[0].n == 0) {
        memmove(r->active, r->active + 1, (r->nactive - 1) * sizeof(*r->active));
        r->nactive--;
    }
    uint64_t oldest = r->nactive ? r->active[0].epoch : UINT64_MAX;
    struct tsdb_garbage *freeable = NULL, **pp = &r->garbage;
    while (*pp) {
        struct tsdb_garbage *g = *pp;
        if (g->epoch < oldest) {
            *pp = g->next;
            g->next = freeable;
            freeable = g;
            r->ngarbage--;
        } else {
            pp = &g->next;
        }
    }
    return freeable;
}

uint64_t tsdb_reclaim_enter(struct tsdb_reclaim *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t e = r->epoch;
    if (r->nactive > 0 && r->active[r->nactive - 1].epoch == e) {
        r->active[r->nactive - 1].n++;
    } else {
        if (r->nactive == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 8;
            r->active = bs_xrealloc(r->active, r->cap * sizeof(*r->active));
        }
        r->active[r->nactive++] = (struct tsdb_epoch_count){e, 1};
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

void tsdb_reclaim_exit(struct tsdb_reclaim *r, uint64_t epoch)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nactive; i++) {
        if (r->active[i].epoch == epoch) {
            r->active[i].n--;
            break;
        }
    }
    struct tsdb_garbage *g = r->garbage ? collect_locked(r) : NULL;
    pthread_mutex_unlock(&r->mu);
    free_list(g);
}

void tsdb_reclaim_retire(struct tsdb_reclaim *r, void *p, void (*fn)(void *p))
{
    struct tsdb_garbage *g = bs_xmalloc(sizeof(*g));
    g->p = p;
    g->fn = fn;
    pthread_mutex_lock(&r->mu);
    g->epoch = r->epoch;
    g->next = r->garbage;
    r->garbage = g;
    r->ngarbage++;
    pthread_mutex_unlock(&r->mu);
}

void tsdb_reclaim_advance(struct tsdb_reclaim *r)
{
    pthread_mutex_lock(&r->mu);
    r->epoch++;
    struct tsdb_garbage *g = collect_locked(r);
    pthread_mutex_unlock(&r->mu);
    free_list(g);
}
