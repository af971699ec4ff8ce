/* SPDX-License-Identifier: Apache-2.0
 *
 * promqltest: reading eval-index.tsv, the per-eval table written next to
 * the .test files (file, header line, kind, native-histogram flags, features
 * found by text search, expression). The runner uses it to classify evals
 * the engine cannot run yet, and --parse-only cross-checks its own parse
 * against it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptest.h"

/* Split line at tabs into at most max fields (in place). */
static size_t split_tabs(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *p = line;

    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = '\0';
        p = t + 1;
    }
    return n;
}

int pt_index_load(struct pt_index *ix, const char *path, struct bs_error *err)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;

    memset(ix, 0, sizeof(*ix));
    if (!fp)
        return bs_error_set(err, BS_ENOENT, "%s: cannot open", path);
    while ((len = getline(&line, &cap, fp)) >= 0) {
        char *f[7];
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (lineno == 1 && strncmp(line, "file\t", 5) == 0)
            continue;
        if (len == 0)
            continue;
        if (split_tabs(line, f, 7) != 7) {
            rc = bs_error_set(err, BS_EPARSE, "%s:%zu: expected 7 tab-separated fields", path,
                              lineno);
            break;
        }
        ix->rows = bs_xrealloc(ix->rows, (ix->n + 1) * sizeof(*ix->rows));
        struct pt_index_row *r = &ix->rows[ix->n++];
        r->file = bs_xstrdup(f[0]);
        r->line = (int)strtol(f[1], NULL, 10);
        r->range = strcmp(f[2], "range") == 0;
        r->nh_strict = strcmp(f[3], "1") == 0;
        r->nh_heuristic = strcmp(f[4], "1") == 0;
        r->features = bs_xstrdup(f[5]);
        r->expr = bs_xstrdup(f[6]);
    }
    free(line);
    fclose(fp);
    return rc;
}

void pt_index_fini(struct pt_index *ix)
{
    for (size_t i = 0; i < ix->n; i++) {
        free(ix->rows[i].file);
        free(ix->rows[i].features);
        free(ix->rows[i].expr);
    }
    free(ix->rows);
    memset(ix, 0, sizeof(*ix));
}

const struct pt_index_row *pt_index_find(const struct pt_index *ix, const char *file, int line)
{
    for (size_t i = 0; i < ix->n; i++)
        if (ix->rows[i].line == line && strcmp(ix->rows[i].file, file) == 0)
            return &ix->rows[i];
    return NULL;
}

size_t pt_index_count_file(const struct pt_index *ix, const char *file)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n; i++)
        if (strcmp(ix->rows[i].file, file) == 0)
            n++;
    return n;
}
