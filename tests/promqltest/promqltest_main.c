/* SPDX-License-Identifier: Apache-2.0
 *
 * promqltest: the PromQL conformance runner's command line.
 *
 *   promqltest [-v] [-f SUBSTR] [--expect-file PATH] [--parse-only]
 *              [--tsv PATH] [--index PATH] [--features-ok LIST] [--all]
 *              [--ignore-annotations] [--ignore-messages] DIR
 *   promqltest --self-test
 *
 * Runs every *.test file of DIR (sorted by name) and prints one line per
 * file, "name.test: P passed, F failed, U unsupported", then the totals as
 * the last line, "P passed, F failed, U unsupported". With -v every failure
 * and every unsupported eval is listed with file:line, the query and why.
 *
 * Exit status: 0 when nothing failed. With --expect-file, a list of known
 * failing "file:line" entries (one per line, '#' comments), it is 0 unless
 * an eval fails that is not on the list; listed evals that now pass are
 * printed as "unexpectedly passing" so the list can be pruned. 2 on usage
 * or I/O errors.
 *
 * --parse-only reads the files without running anything and cross-checks
 * the evals found against eval-index.tsv (count per file, line, kind,
 * expression and the strict native-histogram flag).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptest.h"

/* The index features that run by default: core PromQL and the runner's
 * own assertions. Experimental functions, anchored/smoothed, fill
 * modifiers, __type__/__unit__ and start timestamps are reported as
 * unsupported (see docs/promql-compat.md). */
#define PT_DEFAULT_FEATURES_OK                                                          \
    "subquery,at_modifier,expect_warn_or_info,expect_fail,ordered,expect_string,"       \
    "expect_range_vector"

struct expect_entry {
    char *key;        /* "file:line" */
    bool seen_fail, seen_pass;
};

struct main_state {
    struct expect_entry *exp;
    size_t nexp;
    bool have_expect;
    size_t unlisted_failures;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: promqltest [-v] [-f FILE_SUBSTRING] [--expect-file PATH] [--parse-only]\n"
            "                  [--tsv PATH] [--index PATH] [--features-ok LIST] [--all]\n"
            "                  [--ignore-annotations] [--ignore-messages] DIR\n"
            "       promqltest --self-test\n");
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    struct bs_buf b;
    char tmp[65536];
    size_t n;

    if (!fp)
        return BS_ENOENT;
    bs_buf_init(&b, 0);
    while ((n = fread(tmp, 1, sizeof(tmp), fp)) > 0)
        if (bs_buf_append(&b, tmp, n)) {
            fclose(fp);
            bs_buf_fini(&b);
            return BS_ENOMEM;
        }
    fclose(fp);
    if (!b.data)
        bs_buf_putc(&b, '\0'), b.len = 0;
    *out = bs_buf_steal(&b, len);
    return 0;
}

static int load_expect(struct main_state *ms, const char *path)
{
    char *text, *p;
    size_t len;

    if (read_file(path, &text, &len)) {
        fprintf(stderr, "promqltest: cannot read %s\n", path);
        return -1;
    }
    ms->have_expect = true;
    for (p = text; p && *p;) {
        char *nl = strchr(p, '\n'), *e;
        if (nl)
            *nl = '\0';
        char *h = strchr(p, '#');
        if (h)
            *h = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            *--e = '\0';
        if (*p) {
            ms->exp = bs_xrealloc(ms->exp, (ms->nexp + 1) * sizeof(*ms->exp));
            ms->exp[ms->nexp].key = bs_xstrdup(p);
            ms->exp[ms->nexp].seen_fail = ms->exp[ms->nexp].seen_pass = false;
            ms->nexp++;
        }
        p = nl ? nl + 1 : NULL;
    }
    free(text);
    return 0;
}

static void on_result(void *arg, const char *file, int line, enum pt_status st)
{
    struct main_state *ms = arg;
    char key[512];

    if (st == PT_UNSUPPORTED)
        return;
    snprintf(key, sizeof(key), "%s:%d", file, line);
    for (size_t i = 0; i < ms->nexp; i++)
        if (strcmp(ms->exp[i].key, key) == 0) {
            if (st == PT_FAIL)
                ms->exp[i].seen_fail = true;
            else
                ms->exp[i].seen_pass = true;
            return;
        }
    if (st == PT_FAIL)
        ms->unlisted_failures++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the *.test files of dir matching filter. */
static int list_tests(const char *dir, const char *filter, char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    *out = NULL;
    *n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".test") != 0)
            continue;
        if (filter && !strstr(de->d_name, filter))
            continue;
        *out = bs_xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = bs_xstrdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof(**out), cmp_str);
    return 0;
}

/* --parse-only: figures of one parsed file and its agreement with the
 * index. Returns the number of disagreements. */
static size_t parse_report(const struct pt_file *f, const struct pt_index *ix, bool verbose)
{
    size_t loads = 0, series = 0, st = 0, clears = 0, evals = 0, inst = 0, range = 0,
           broken = 0, bad = 0, nh = 0;
    bool nh_loaded = false;

    for (size_t i = 0; i < f->ncmds; i++) {
        const struct pt_cmd *c = &f->cmds[i];
        switch (c->kind) {
        case PT_CMD_LOAD:
            loads++;
            series += c->load.nseries;
            st += c->load.n_st_lines;
            if (c->load.nhcb)
                nh_loaded = true;
            for (size_t k = 0; k < c->load.nseries; k++)
                if (c->load.series[k].has_hist)
                    nh_loaded = true;
            break;
        case PT_CMD_CLEAR:
            clears++;
            nh_loaded = false;
            break;
        case PT_CMD_BROKEN:
            broken++;
            printf("%s:%d: parse error: %s\n", f->name, c->line, c->error);
            if (c->broken_eval)
                evals++;
            break;
        case PT_CMD_EVAL: {
            const struct pt_eval *ev = &c->eval;
            bool strict = nh_loaded || ev->hist_expected;
            const struct pt_index_row *row = ix ? pt_index_find(ix, f->name, c->line) : NULL;
            evals++;
            if (ev->range)
                range++;
            else
                inst++;
            if (strict)
                nh++;
            if (!ix)
                break;
            if (!row) {
                printf("%s:%d: eval not in index\n", f->name, c->line);
                bad++;
            } else if (row->range != ev->range || row->nh_strict != strict ||
                       strcmp(row->expr, ev->expr) != 0) {
                printf("%s:%d: index disagrees (kind %d/%d, nh_strict %d/%d, expr %s)\n",
                       f->name, c->line, row->range, ev->range, row->nh_strict, strict,
                       strcmp(row->expr, ev->expr) ? "differs" : "same");
                bad++;
            } else if (verbose) {
                printf("%s:%d: %s %zu series%s%s%s %s\n", f->name, c->line,
                       ev->range ? "range" : "instant", ev->nseries,
                       ev->want_scalar ? " scalar" : "", ev->want_fail ? " fail" : "",
                       ev->ordered ? " ordered" : "", ev->expr);
            }
            break;
        }
        }
    }
    size_t want = ix ? pt_index_count_file(ix, f->name) : evals;
    if (ix && want != evals)
        bad++;
    printf("%s: %zu loads (%zu series, %zu @st lines), %zu clears, %zu evals (%zu instant, "
           "%zu range, %zu need NH), %zu broken; index %zu evals%s\n",
           f->name, loads, series, st, clears, evals, inst, range, nh, broken, want,
           bad ? " MISMATCH" : " ok");
    return bad + broken;
}

int main(int argc, char **argv)
{
    struct pt_options o;
    struct main_state ms;
    struct pt_index ix;
    struct pt_counts total = {0};
    const char *dir = NULL, *filter = NULL, *expect_path = NULL, *tsv_path = NULL,
               *index_path = NULL;
    bool parse_only = false, have_index = false;
    char **names = NULL;
    size_t nnames = 0, problems = 0;
    int status = 0;

    memset(&o, 0, sizeof(o));
    memset(&ms, 0, sizeof(ms));
    memset(&ix, 0, sizeof(ix));
    o.features_ok = PT_DEFAULT_FEATURES_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-v") == 0)
            o.verbose = true;
        else if (strcmp(a, "-f") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strcmp(a, "--expect-file") == 0 && i + 1 < argc)
            expect_path = argv[++i];
        else if (strcmp(a, "--tsv") == 0 && i + 1 < argc)
            tsv_path = argv[++i];
        else if (strcmp(a, "--index") == 0 && i + 1 < argc)
            index_path = argv[++i];
        else if (strcmp(a, "--features-ok") == 0 && i + 1 < argc)
            o.features_ok = argv[++i];
        else if (strcmp(a, "--self-test") == 0)
            return pt_self_test() ? 1 : 0;
        else if (strcmp(a, "--parse-only") == 0)
            parse_only = true;
        else if (strcmp(a, "--all") == 0)
            o.run_all = true;
        else if (strcmp(a, "--ignore-annotations") == 0)
            o.ignore_annotations = true;
        else if (strcmp(a, "--ignore-messages") == 0)
            o.ignore_messages = true;
        else if (a[0] == '-' || dir) {
            usage();
            return 2;
        } else
            dir = a;
    }
    if (!dir) {
        usage();
        return 2;
    }

    /* The index lives next to the tests unless given. */
    {
        char def[4096];
        struct bs_error err;
        bs_error_clear(&err);
        if (!index_path) {
            snprintf(def, sizeof(def), "%s/eval-index.tsv", dir);
            index_path = def;
        }
        int rc = pt_index_load(&ix, index_path, &err);
        if (rc == 0)
            have_index = true;
        else
            fprintf(stderr, "promqltest: no eval index (%s); classifying from the files only\n",
                    err.msg);
        index_path = NULL;
    }
    o.index = have_index ? &ix : NULL;
    if (expect_path && load_expect(&ms, expect_path)) {
        status = 2;
        goto out;
    }
    if (tsv_path) {
        o.tsv = fopen(tsv_path, "w");
        if (!o.tsv) {
            fprintf(stderr, "promqltest: cannot write %s\n", tsv_path);
            status = 2;
            goto out;
        }
        fprintf(o.tsv, "file\tline\tstatus\tcategory\tdetail\texpr\n");
    }
    if (list_tests(dir, filter, &names, &nnames)) {
        fprintf(stderr, "promqltest: cannot read directory %s\n", dir);
        status = 2;
        goto out;
    }

    for (size_t i = 0; i < nnames; i++) {
        char path[4096];
        char *text;
        size_t len;
        struct pt_file f;
        struct pt_counts c = {0};

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (read_file(path, &text, &len)) {
            fprintf(stderr, "promqltest: cannot read %s\n", path);
            status = 2;
            continue;
        }
        if (pt_file_parse(&f, names[i], text, len)) {
            fprintf(stderr, "promqltest: out of memory parsing %s\n", path);
            free(text);
            status = 2;
            continue;
        }
        free(text);
        if (parse_only) {
            problems += parse_report(&f, o.index, o.verbose);
        } else {
            if (pt_file_run(&f, &o, &c, on_result, &ms)) {
                fprintf(stderr, "%s: runner error (out of memory)\n", names[i]);
                status = 2;
            }
            printf("%s: %zu passed, %zu failed, %zu unsupported\n", names[i], c.passed,
                   c.failed, c.unsupported);
            fflush(stdout);
            total.passed += c.passed;
            total.failed += c.failed;
            total.unsupported += c.unsupported;
        }
        pt_file_fini(&f);
    }

    if (parse_only) {
        printf("%zu files, %zu problems\n", nnames, problems);
        if (problems && status == 0)
            status = 1;
        goto out;
    }
    if (ms.have_expect) {
        size_t gone = 0;
        for (size_t i = 0; i < ms.nexp; i++)
            if (ms.exp[i].seen_pass && !ms.exp[i].seen_fail) {
                printf("unexpectedly passing: %s\n", ms.exp[i].key);
                gone++;
            }
        if (gone)
            printf("%zu listed evals now pass; prune them from %s\n", gone, expect_path);
        if (ms.unlisted_failures) {
            printf("%zu failures not listed in %s\n", ms.unlisted_failures, expect_path);
            if (status == 0)
                status = 1;
        }
    } else if (total.failed && status == 0) {
        status = 1;
    }
    printf("%zu passed, %zu failed, %zu unsupported\n", total.passed, total.failed,
           total.unsupported);
out:
    if (o.tsv)
        fclose(o.tsv);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    for (size_t i = 0; i < ms.nexp; i++)
        free(ms.exp[i].key);
    free(ms.exp);
    pt_index_fini(&ix);
    return status;
}
