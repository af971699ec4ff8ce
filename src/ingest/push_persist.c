/* SPDX-License-Identifier: Apache-2.0
 *
 * The Pushgateway groups file, <data dir>/pushgateway.groups: rewritten on
 * every change (temporary file, fsync, rename, fsync of the directory), so
 * a crash leaves the old or the new version, never a mix. Read at start.
 *
 * Format: text lines of space-separated fields; every string is written as
 * 'x' followed by its bytes in hex (so "x" is the empty string and nothing
 * needs escaping), numbers in decimal, sample values as the 16 hex digits
 * of their IEEE-754 bits (exact, NaN payloads included).
 *
 *   bongsu-push-groups 1
 *   group <ok 0|1> <push_ns> <fail_ns> <time_ns> <nlabels> <nfamilies>
 *   l <name> <value>                                  (nlabels times)
 *   family <type> <time_ns> <has_help 0|1> <name> <help> <nseries>
 *   s <value bits> <nlabels> <name> <value> ...       (nseries times)
 *
 * <type> is the enum expfmt_metric_type value. Labels of a series are its
 * `all` view (the __name__ and empty values included).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/push_store.h"

#define PUSH_FILE_MAGIC "bongsu-push-groups 1"

static int put_hex(struct bs_buf *b, const char *s)
{
    static const char hx[] = "0123456789abcdef";
    int rc = bs_buf_putc(b, 'x');
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        rc = bs_buf_putc(b, hx[*p >> 4]);
        if (rc == 0)
            rc = bs_buf_putc(b, hx[*p & 15]);
    }
    return rc;
}

static int serialize(struct ingest_push *pg, struct bs_buf *b)
{
    int rc = bs_buf_puts(b, PUSH_FILE_MAGIC "\n");
    for (size_t i = 0; rc == 0 && i < pg->ng; i++) {
        const struct push_group *g = pg->g[i];
        rc = bs_buf_printf(b, "group %d %" PRId64 " %" PRId64 " %" PRId64 " %zu %zu\n", g->ok,
                           g->push_ns, g->fail_ns, g->time_ns, g->ngl, g->nf);
        for (size_t j = 0; rc == 0 && j < g->ngl; j++) {
            rc = bs_buf_puts(b, "l ");
            if (rc == 0)
                rc = put_hex(b, g->gl[j].name);
            if (rc == 0)
                rc = bs_buf_putc(b, ' ');
            if (rc == 0)
                rc = put_hex(b, g->gl[j].value);
            if (rc == 0)
                rc = bs_buf_putc(b, '\n');
        }
        for (size_t j = 0; rc == 0 && j < g->nf; j++) {
            const struct push_family *f = g->f[j];
            rc = bs_buf_printf(b, "family %d %" PRId64 " %d ", (int)f->type, f->time_ns,
                               f->help != NULL);
            if (rc == 0)
                rc = put_hex(b, f->name);
            if (rc == 0)
                rc = bs_buf_putc(b, ' ');
            if (rc == 0)
                rc = put_hex(b, f->help ? f->help : "");
            if (rc == 0)
                rc = bs_buf_printf(b, " %zu\n", f->n);
            for (size_t k = 0; rc == 0 && k < f->n; k++) {
                const struct push_series *s = f->s[k];
                rc = bs_buf_printf(b, "s %016" PRIx64 " %zu", bs_float_bits(s->v), s->all.n);
                for (size_t l = 0; rc == 0 && l < s->all.n; l++) {
                    rc = bs_buf_putc(b, ' ');
                    if (rc == 0)
                        rc = put_hex(b, s->all.v[l].name);
                    if (rc == 0)
                        rc = bs_buf_putc(b, ' ');
                    if (rc == 0)
                        rc = put_hex(b, s->all.v[l].value);
                }
                if (rc == 0)
                    rc = bs_buf_putc(b, '\n');
            }
        }
    }
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int push_persist(struct ingest_push *pg)
{
    if (!pg->file)
        return 0;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    if (serialize(pg, &b) != 0) {
        bs_buf_fini(&b);
        BS_ERROR("push", "cannot save the push groups: out of memory");
        return BS_ENOMEM;
    }
    size_t tl = strlen(pg->file) + 5;
    char tmp[tl];
    snprintf(tmp, tl, "%s.tmp", pg->file);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, b.data, b.len) != 0 || fsync(fd) != 0) {
        BS_ERROR("push", "cannot write %s: %s", tmp, strerror(errno));
        rc = BS_EIO;
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        BS_ERROR("push", "cannot write %s: %s", tmp, strerror(errno));
        rc = BS_EIO;
    }
    if (rc == 0 && rename(tmp, pg->file) != 0) {
        BS_ERROR("push", "cannot rename %s: %s", tmp, strerror(errno));
        rc = BS_EIO;
    }
    if (rc == 0) {
        int dfd = open(pg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    } else {
        unlink(tmp);
    }
    bs_buf_fini(&b);
    return rc;
}

/* ------------------------------------------------------------------- load */

struct reader {
    char *p, *end;
    size_t lineno;
    char *line;          /* current line, NUL-terminated */
    char *tok;           /* strtok_r state */
};

static bool next_line(struct reader *r)
{
    if (r->p >= r->end)
        return false;
    char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    if (!nl)
        nl = r->end;
    *nl = '\0';
    r->line = r->p;
    r->p = nl + 1;
    r->lineno++;
    r->tok = NULL;
    return true;
}

static char *field(struct reader *r)
{
    return strtok_r(r->tok ? NULL : r->line, " ", &r->tok);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode an 'x'-hex string in place; NULL when malformed. */
static char *unhex(char *s, size_t *len)
{
    if (!s || s[0] != 'x')
        return NULL;
    size_t n = strlen(s + 1);
    if (n % 2)
        return NULL;
    char *o = s;
    for (size_t i = 0; i < n; i += 2) {
        int a = hexval(s[1 + i]), b = hexval(s[2 + i]);
        if (a < 0 || b < 0)
            return NULL;
        *o++ = (char)(a << 4 | b);
    }
    *o = '\0';
    if (len)
        *len = n / 2;
    return s;
}

static bool num(struct reader *r, int64_t *out)
{
    char *f = field(r), *end;
    if (!f)
        return false;
    errno = 0;
    long long v = strtoll(f, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int load_text(struct ingest_push *pg, char *text, size_t len, struct bs_error *err)
{
    struct reader r = {text, text + len, 0, NULL, NULL};
    if (!next_line(&r) || strcmp(r.line, PUSH_FILE_MAGIC) != 0)
        return bs_error_set(err, BS_ECORRUPT, "%s:1: not a bongsu push groups file", pg->file);
    struct push_pair *pairs = NULL;
    size_t pairs_cap = 0;
    struct push_group *g = NULL;
    int rc = 0;
    while (next_line(&r)) {
        if (!*r.line)
            continue;
        int64_t ok, push_ns, fail_ns, time_ns, ngl, nf;
        char *kw = field(&r);
        if (!kw || strcmp(kw, "group") || !num(&r, &ok) || !num(&r, &push_ns) ||
            !num(&r, &fail_ns) || !num(&r, &time_ns) || !num(&r, &ngl) || !num(&r, &nf) ||
            ngl < 1 || ngl > 10000 || nf < 0)
            goto corrupt;
        struct push_glabel *gl = bs_xcalloc((size_t)ngl, sizeof(*gl));
        for (int64_t i = 0; i < ngl; i++) {
            char *a, *b;
            if (!next_line(&r) || !(kw = field(&r)) || strcmp(kw, "l") ||
                !(a = unhex(field(&r), NULL)) || !(b = unhex(field(&r), NULL))) {
                push_glabels_free(gl, (size_t)i);
                goto corrupt;
            }
            gl[i].name = bs_xstrdup(a);
            gl[i].value = bs_xstrdup(b);
        }
        g = push_group_new(gl, (size_t)ngl);
        if (!g) {
            rc = bs_error_set(err, BS_ENOMEM, "out of memory");
            break;
        }
        g->ok = ok != 0;
        g->push_ns = push_ns;
        g->fail_ns = fail_ns;
        g->time_ns = time_ns;
        g->f = bs_xcalloc((size_t)nf + 1, sizeof(*g->f));
        for (int64_t i = 0; i < nf; i++) {
            int64_t type, ftime, has_help, ns;
            char *name, *help;
            if (!next_line(&r) || !(kw = field(&r)) || strcmp(kw, "family") ||
                !num(&r, &type) || !num(&r, &ftime) || !num(&r, &has_help) ||
                !(name = unhex(field(&r), NULL)) || !(help = unhex(field(&r), NULL)) ||
                !num(&r, &ns) || ns < 0 || type < 0 || type > EXPFMT_TYPE_STATESET)
                goto corrupt;
            struct push_family *f = bs_xcalloc(1, sizeof(*f));
            f->name = bs_xstrdup(name);
            f->help = has_help ? bs_xstrdup(help) : NULL;
            f->type = (enum expfmt_metric_type)type;
            f->time_ns = ftime;
            g->f[g->nf++] = f;
            for (int64_t k = 0; k < ns; k++) {
                int64_t nl;
                char *bits, *end;
                if (!next_line(&r) || !(kw = field(&r)) || strcmp(kw, "s") ||
                    !(bits = field(&r)) || !num(&r, &nl) || nl < 1 || nl > 100000)
                    goto corrupt;
                errno = 0;
                uint64_t vb = strtoull(bits, &end, 16);
                if (errno || *end)
                    goto corrupt;
                if ((size_t)nl > pairs_cap) {
                    free(pairs);
                    pairs_cap = (size_t)nl * 2;
                    pairs = bs_xmalloc(pairs_cap * sizeof(*pairs));
                }
                for (int64_t l = 0; l < nl; l++) {
                    size_t a_len, b_len;
                    char *a = unhex(field(&r), &a_len), *b = a ? unhex(field(&r), &b_len) : NULL;
                    if (!a || !b)
                        goto corrupt;
                    pairs[l] = (struct push_pair){a, a_len, b, b_len};
                }
                struct push_series *s = push_series_new(pairs, (size_t)nl, bs_float_from_bits(vb));
                if (!s || push_family_add(f, s) != 0) {
                    free(s);
                    rc = bs_error_set(err, BS_ENOMEM, "out of memory");
                    goto out;
                }
            }
        }
        if (push_insert_group(pg, g) != 0)
            goto corrupt;
        g = NULL;
    }
    goto out;
corrupt:
    rc = bs_error_set(err, BS_ECORRUPT, "%s:%zu: malformed push groups file", pg->file, r.lineno);
out:
    push_group_free(g);
    free(pairs);
    return rc;
}

int push_load(struct ingest_push *pg, struct bs_error *err)
{
    FILE *fp = fopen(pg->file, "rb");
    if (!fp) {
        if (errno == ENOENT)
            return 0;
        return bs_error_set(err, BS_EIO, "cannot open %s: %s", pg->file, strerror(errno));
    }
    struct bs_buf b;
    bs_buf_init(&b, 0);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        rc = bs_buf_append(&b, chunk, n);
    if (ferror(fp))
        rc = bs_error_set(err, BS_EIO, "cannot read %s: %s", pg->file, strerror(errno));
    fclose(fp);
    if (rc == 0)
        rc = load_text(pg, b.data ? b.data : (char *)"", b.len, err);
    else if (rc == BS_ENOMEM)
        bs_error_set(err, rc, "out of memory reading %s", pg->file);
    bs_buf_fini(&b);
    if (rc == 0 && pg->ng)
        BS_INFO("push", "loaded %zu push groups from %s", pg->ng, pg->file);
    return rc;
}
