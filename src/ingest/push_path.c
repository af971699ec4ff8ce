/* SPDX-License-Identifier: Apache-2.0
 *
 * Pushgateway paths: /metrics/job/<job>{/<label>/<value>}, where job and
 * any label name may carry the suffix @base64 to say its value is URL-safe
 * base64 (padding optional; "=" alone is the empty value). The messages are
 * the Pushgateway's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/push_int.h"
#include "labels/labels.h"

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long push_base64_decode(const char *s, size_t n, char *out)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0)
            return -1 - (long)i;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* One dangling character cannot encode a byte. */
    if (n % 4 == 1)
        return -1 - (long)(n - 1);
    return (long)o;
}

void push_glabels_free(struct push_glabel *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static int glabel_cmp(const void *a, const void *b)
{
    return strcmp(((const struct push_glabel *)a)->name, ((const struct push_glabel *)b)->name);
}

/* Decode one name/value pair into v (replacing a label of the same name). */
static int put_label(struct push_glabel *v, size_t *n, const char *name, size_t nl,
                     const char *val, size_t vl, char *msg, size_t msgcap)
{
    bool b64 = nl > 7 && memcmp(name + nl - 7, "@base64", 7) == 0;
    if (b64)
        nl -= 7;
    char *nm = bs_xstrndup(name, nl);
    char *dec;
    if (b64) {
        dec = bs_xmalloc(vl + 1);
        long r = push_base64_decode(val, vl, dec);
        if (r < 0) {
            snprintf(msg, msgcap,
                     "invalid base64 encoding for label %s=\"%.*s\": illegal base64 data at input "
                     "byte %ld",
                     nm, (int)vl, val, -1 - r);
            free(nm);
            free(dec);
            return BS_EINVAL;
        }
        dec[r] = '\0';
        if (memchr(dec, '\0', (size_t)r) || !ingest_utf8_valid(dec, (size_t)r)) {
            snprintf(msg, msgcap, "invalid label value for label %s: not valid UTF-8", nm);
            free(nm);
            free(dec);
            return BS_EINVAL;
        }
    } else if (vl == 0) {
        /* A plain empty value comes from "//" or a trailing '/': the
         * Pushgateway redirects those to a cleaned path, which changes the
         * grouping; refuse instead, naming the encoding that works. */
        if (nl == 3 && !memcmp(name, "job", 3))
            snprintf(msg, msgcap, "job name is required");
        else
            snprintf(msg, msgcap,
                     "empty value for label \"%s\"; encode an empty value as %s@base64/=", nm, nm);
        free(nm);
        return BS_EINVAL;
    } else {
        dec = bs_xstrndup(val, vl);
    }
    if (!labels_name_valid(nm, strlen(nm)) || (nm[0] == '_' && nm[1] == '_')) {
        snprintf(msg, msgcap, "improper label name \"%s\"", nm);
        free(nm);
        free(dec);
        return BS_EINVAL;
    }
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp(v[i].name, nm)) {
            /* The job from /metrics/job/<job> is not overridden by a pair. */
            if (strcmp(nm, "job") != 0) {
                free(v[i].value);
                v[i].value = dec;
            } else {
                free(dec);
            }
            free(nm);
            return 0;
        }
    }
    v[*n].name = nm;
    v[*n].value = dec;
    (*n)++;
    return 0;
}

int push_path_parse(const char *path, struct push_glabel **out, size_t *nout, char *msg,
                    size_t msgcap)
{
    *out = NULL;
    *nout = 0;
    msg[0] = '\0';
    const char *p = path;
    if (strncmp(p, "/metrics/", 9) != 0) {
        snprintf(msg, msgcap, "not a push path");
        return BS_EINVAL;
    }
    p += 9;
    if (strncmp(p, "job/", 4) != 0 && strncmp(p, "job@base64/", 11) != 0 && strcmp(p, "job") != 0 &&
        strcmp(p, "job@base64") != 0) {
        snprintf(msg, msgcap, "not a push path");
        return BS_EINVAL;
    }
    /* Split the rest on '/'. */
    size_t ncomp = 1;
    for (const char *q = p; *q; q++)
        ncomp += *q == '/';
    struct push_glabel *v = bs_xcalloc(ncomp / 2 + 2, sizeof(*v));
    size_t n = 0;
    const char *comp[2];
    size_t clen[2];
    int k = 0;
    const char *q = p;
    int rc = 0;
    for (;;) {
        const char *slash = strchr(q, '/');
        size_t l = slash ? (size_t)(slash - q) : strlen(q);
        comp[k] = q;
        clen[k] = l;
        if (++k == 2) {
            if (n == 0 && !((clen[0] == 3 && !memcmp(comp[0], "job", 3)) ||
                            (clen[0] == 10 && !memcmp(comp[0], "job@base64", 10)))) {
                snprintf(msg, msgcap, "not a push path");
                rc = BS_EINVAL;
                break;
            }
            rc = put_label(v, &n, comp[0], clen[0], comp[1], clen[1], msg, msgcap);
            if (rc)
                break;
            k = 0;
        }
        if (!slash)
            break;
        q = slash + 1;
    }
    if (rc == 0 && k == 1) {
        if (n == 0) {
            snprintf(msg, msgcap, "job name is required");
        } else {
            /* The Pushgateway quotes the label part after the job. */
            const char *rest = strchr(p, '/');
            rest = rest ? strchr(rest + 1, '/') : NULL;
            snprintf(msg, msgcap, "odd number of components in label string \"%s\"",
                     rest ? rest : "");
        }
        rc = BS_EINVAL;
    }
    if (rc == 0) {
        const char *job = NULL;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(v[i].name, "job"))
                job = v[i].value;
        if (!job || !*job) {
            snprintf(msg, msgcap, "job name is required");
            rc = BS_EINVAL;
        }
    }
    if (rc) {
        push_glabels_free(v, n);
        return rc;
    }
    qsort(v, n, sizeof(*v), glabel_cmp);
    *out = v;
    *nout = n;
    return 0;
}
