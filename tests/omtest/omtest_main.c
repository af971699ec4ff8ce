/* SPDX-License-Identifier: Apache-2.0
 *
 * omtest: the OpenMetrics parser conformance runner. `omtest DIR` walks the
 * case folders of the upstream parser suite (DIR/<case>/test.json naming
 * the input file and whether it should parse), sorted by name, parses each
 * input as raw bytes to the end with bongsu's OpenMetrics parser, and prints
 * one verdict per case:
 *   case_name: ok
 *   case_name: FAIL (expected valid, got: line 3, column 5: ...)
 *   case_name: FAIL (expected invalid, got: accepted)
 * then exactly "N passed, M failed". Exit status 1 when M > 0 or the suite
 * cannot be read (2 for usage errors).
 *
 * test.json is read with a minimal scanner for the two keys the suite uses
 * ("file" and "shouldParse"); a case whose test.json lacks them fails, so a
 * changed suite format cannot pass silently.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "expfmt/expfmt.h"

/* Cases above this size are refused rather than read (the suite's largest
 * input is about 3 KiB). */
#define OMTEST_MAX_INPUT (64u << 20)

/* Read a whole file; NULL with errno on failure. *len gets its size. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
            }
            break;
        }
        if (cap >= OMTEST_MAX_INPUT) {
            free(buf);
            buf = NULL;
            errno = EFBIG;
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf)
        *len = n;
    return buf;
}

/* Find "key" in a flat JSON object and return a pointer to its value (after
 * the colon and whitespace), or NULL. */
static const char *json_value(const char *json, const char *key)
{
    size_t kl = strlen(key);
    for (const char *s = json; (s = strchr(s, '"')) != NULL; s++) {
        if (strncmp(s + 1, key, kl) == 0 && s[1 + kl] == '"') {
            const char *v = s + 2 + kl;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
                v++;
            if (*v != ':')
                continue;
            v++;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
                v++;
            return v;
        }
    }
    return NULL;
}

/* The test.json of one case: the input file name and the verdict. Returns
 * false with why set when the file cannot be understood. */
static bool read_meta(const char *dir, char *file, size_t file_cap, bool *should_parse, char *why,
                      size_t why_cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/test.json", dir);
    size_t len;
    char *json = read_all(path, &len);
    if (!json) {
        snprintf(why, why_cap, "cannot read %.300s: %s", path, strerror(errno));
        return false;
    }
    char *nul = realloc(json, len + 1);
    if (!nul) {
        free(json);
        snprintf(why, why_cap, "out of memory");
        return false;
    }
    json = nul;
    json[len] = '\0';
    bool ok = false;
    const char *sp = json_value(json, "shouldParse");
    const char *fv = json_value(json, "file");
    if (!sp || (strncmp(sp, "true", 4) != 0 && strncmp(sp, "false", 5) != 0)) {
        snprintf(why, why_cap, "test.json has no boolean \"shouldParse\"");
    } else if (fv && *fv != '"') {
        snprintf(why, why_cap, "test.json \"file\" is not a string");
    } else {
        *should_parse = sp[0] == 't';
        const char *name = "metrics";
        size_t nl = strlen(name);
        if (fv) {
            name = fv + 1;
            const char *q = strchr(name, '"');
            nl = q ? (size_t)(q - name) : 0;
        }
        if (nl == 0 || nl >= file_cap || memchr(name, '/', nl) || memchr(name, '\\', nl)) {
            snprintf(why, why_cap, "test.json \"file\" is not a plain file name");
        } else {
            memcpy(file, name, nl);
            file[nl] = '\0';
            ok = true;
        }
    }
    free(json);
    return ok;
}

/* Parse buf fully with the OpenMetrics parser. Returns true when it parsed;
 * otherwise msg holds the first error. */
static bool om_accepts(const char *buf, size_t len, char *msg, size_t msg_cap)
{
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    int rc;
    bs_error_clear(&err);
    expfmt_parser_init_format(&p, buf, len, EXPFMT_FORMAT_OPENMETRICS);
    while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF)
        ;
    expfmt_parser_fini(&p);
    if (rc == 0)
        return true;
    snprintf(msg, msg_cap, "%s", err.msg[0] ? err.msg : bs_strerror(rc));
    return false;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *root = argv[1];
    DIR *d = opendir(root);
    if (!d) {
        fprintf(stderr, "omtest: cannot open %s: %s\n", root, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", root, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                fprintf(stderr, "omtest: out of memory\n");
                return 1;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            fprintf(stderr, "omtest: out of memory\n");
            return 1;
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, name_cmp);

    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[4096], file[256], why[600], path[4400];
        bool should = false;
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        if (!read_meta(dir, file, sizeof file, &should, why, sizeof why)) {
            printf("%s: FAIL (%s)\n", names[i], why);
            failed++;
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, file);
        size_t len;
        char *buf = read_all(path, &len);
        if (!buf) {
            printf("%s: FAIL (cannot read %s: %s)\n", names[i], path, strerror(errno));
            failed++;
            continue;
        }
        bool got = om_accepts(buf, len, why, sizeof why);
        free(buf);
        if (got == should) {
            printf("%s: ok\n", names[i]);
            passed++;
        } else if (should) {
            printf("%s: FAIL (expected valid, got: %s)\n", names[i], why);
            failed++;
        } else {
            printf("%s: FAIL (expected invalid, got: accepted)\n", names[i]);
            failed++;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    printf("%zu passed, %zu failed\n", passed, failed);
    return failed > 0 ? 1 : 0;
}
