/* SPDX-License-Identifier: Apache-2.0
 *
 * The text format 0.0.4 writer: one series line per call, appended to a
 * caller-owned bs_buf. Output is accepted by expfmt_parser_next() and by
 * Prometheus's text parser (quoted names need Prometheus 3). On failure the
 * buffer is rolled back so a line is never half-written.
 */
#include "expfmt/expfmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool legacy_name(const char *s, bool metric)
{
    if (!*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (metric && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Append s between double quotes with \\ \" and \n escaped. */
static int put_quoted(struct bs_buf *b, const char *s)
{
    int rc = bs_buf_putc(b, '"');
    const char *run = s;
    for (; rc == 0 && *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        if (s > run)
            rc = bs_buf_append(b, run, (size_t)(s - run));
        if (rc == 0)
            rc = bs_buf_append(b, esc, 2);
        run = s + 1;
    }
    if (rc == 0 && s > run)
        rc = bs_buf_append(b, run, (size_t)(s - run));
    if (rc == 0)
        rc = bs_buf_putc(b, '"');
    return rc;
}

static int put_name(struct bs_buf *b, const char *name, bool metric)
{
    if (legacy_name(name, metric))
        return bs_buf_puts(b, name);
    return put_quoted(b, name);
}

int expfmt_write_series(struct bs_buf *b, const struct labels *ls, double v, int64_t t_ms)
{
    const char *name = NULL;
    for (size_t i = 0; i < ls->n; i++)
        if (strcmp(ls->v[i].name, LABELS_METRIC_NAME) == 0)
            name = ls->v[i].value;
    if (!name || !*name)
        return BS_EINVAL;

    size_t mark = b->len;
    bool quoted_name = !legacy_name(name, true);
    int rc = 0;
    bool open = false;
    if (quoted_name) {
        rc = bs_buf_putc(b, '{');
        if (rc == 0)
            rc = put_quoted(b, name);
        open = true;
    } else {
        rc = bs_buf_puts(b, name);
    }
    for (size_t i = 0; rc == 0 && i < ls->n; i++) {
        const struct label *l = &ls->v[i];
        if (strcmp(l->name, LABELS_METRIC_NAME) == 0 || !l->value[0])
            continue;
        rc = bs_buf_putc(b, open ? ',' : '{');
        open = true;
        if (rc == 0)
            rc = put_name(b, l->name, false);
        if (rc == 0)
            rc = bs_buf_putc(b, '=');
        if (rc == 0)
            rc = put_quoted(b, l->value);
    }
    if (rc == 0 && open)
        rc = bs_buf_putc(b, '}');

    char num[40];
    if (rc == 0) {
        size_t n = bs_float_format_short(v, num);
        rc = bs_buf_putc(b, ' ');
        if (rc == 0)
            rc = bs_buf_append(b, num, n);
    }
    if (rc == 0 && t_ms != EXPFMT_NO_TIMESTAMP)
        rc = bs_buf_printf(b, " %" PRId64, t_ms);
    if (rc == 0)
        rc = bs_buf_putc(b, '\n');
    if (rc < 0) {
        b->len = mark;
        if (b->data)
            b->data[mark] = '\0';
    }
    return rc;
}
