/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the OpenMetrics 1.0 parser. Parses the input to the end,
 * resuming after every error, and touches every byte the parser hands out
 * (names, labels, exemplar labels, help text, family and unit) so ASan sees
 * any pointer that strays outside the input or scratch space. It also checks
 * the parser's promises on every series it returns: the family name is a
 * prefix of the series name, only _total and _bucket samples carry an
 * exemplar and its label text has at most 128 code points, `created` only
 * on *_created samples, NaN only as the canonical bits, and that the parser
 * never reports more errors than lines and then stays at EXPFMT_EOF.
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

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static void check_nan(double v)
{
    if (v != v && bs_float_bits(v) != UINT64_C(0x7ff8000000000001))
        abort();
}

static void check_series(const struct expfmt_series *s)
{
    touch(s->name, s->name_len);
    touch(s->series_text, s->series_text_len);
    touch(s->family, s->family_len);
    for (size_t i = 0; i < s->nlabels; i++) {
        touch(s->labels[i].name, s->labels[i].name_len);
        touch(s->labels[i].value, s->labels[i].value_len);
    }
    if (s->family_len > s->name_len || memcmp(s->family, s->name, s->family_len) != 0)
        abort();
    if (s->created && !ends_with(s->name, s->name_len, "_created"))
        abort();
    check_nan(s->value);
    if (!s->has_exemplar)
        return;
    if (!ends_with(s->name, s->name_len, "_total") && !ends_with(s->name, s->name_len, "_bucket"))
        abort();
    size_t runes = 0;
    for (size_t i = 0; i < s->exemplar.nlabels; i++) {
        const struct expfmt_label *l = &s->exemplar.labels[i];
        touch(l->name, l->name_len);
        touch(l->value, l->value_len);
        for (size_t j = 0; j < l->name_len; j++)
            runes += ((unsigned char)l->name[j] & 0xc0) != 0x80;
        for (size_t j = 0; j < l->value_len; j++)
            runes += ((unsigned char)l->value[j] & 0xc0) != 0x80;
    }
    if (runes > 128)
        abort();
    check_nan(s->exemplar.value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct expfmt_parser p;
    struct bs_error err;
    enum expfmt_entry kind;
    size_t errors = 0, lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    expfmt_parser_init_format(&p, (const char *)data, size, EXPFMT_FORMAT_OPENMETRICS);
    for (;;) {
        int rc = expfmt_parser_next(&p, &kind, &err);
        if (rc < 0) {
            if (rc != BS_EPARSE && rc != BS_ELIMIT)
                abort();
            touch(err.msg, strlen(err.msg));
            /* At most one error per line plus one for the end. */
            if (++errors > lines + 1)
                abort();
            continue;
        }
        const char *a, *t;
        size_t an, tn;
        if (kind == EXPFMT_EOF)
            break;
        if (kind == EXPFMT_SERIES) {
            check_series(expfmt_parser_series(&p));
        } else if (kind == EXPFMT_HELP) {
            expfmt_parser_help(&p, &a, &an, &t, &tn);
            touch(a, an);
            touch(t, tn);
        } else if (kind == EXPFMT_TYPE) {
            expfmt_parser_type(&p, &a, &an, NULL);
            touch(a, an);
        } else {
            abort(); /* OpenMetrics never returns comments */
        }
        expfmt_parser_unit(&p, &a, &an, &t, &tn);
        touch(a, an);
        touch(t, tn);
    }
    /* Once at the end, the parser stays there. */
    if (expfmt_parser_next(&p, &kind, &err) != 0 || kind != EXPFMT_EOF)
        abort();
    expfmt_parser_fini(&p);
    return 0;
}
