/* SPDX-License-Identifier: Apache-2.0
 *
 * promql results: freeing, the JSON "data" object of the HTTP API (byte
 * for byte as Prometheus writes it), and the API error type of a code.
 */
#include <stdlib.h>
#include <string.h>

#include "promql/promql_int.h"

void promql_result_free(struct promql_result *r)
{
    if (!r)
        return;
    int64_t points = 0;
    for (size_t i = 0; i < r->nseries; i++) {
        free(r->series[i].labels);
        free(r->series[i].points);
        points += (int64_t)r->series[i].npoints;
    }
    free(r->series);
    free(r->string);
    for (size_t i = 0; i < r->nwarnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    for (size_t i = 0; i < r->ninfos; i++)
        free(r->infos[i]);
    free(r->infos);
    free(r);
    promql_release_memory(points);
}

const char *promql_error_type(int code)
{
    switch (code) {
    case BS_EPARSE:
    case BS_EINVAL: return "bad_data";
    case BS_ETIMEOUT: return "timeout";
    case BS_ECANCELED: return "canceled";
    default: return "execution";
    }
}

/* Unix seconds with up to three decimals and no trailing zeros. */
static int put_time(struct bs_buf *b, int64_t t)
{
    char num[32];
    return bs_buf_append(b, num, promql_time_format(t, num));
}

/* [t,"v"]: one buffer append per point (fmt.c does the numbers). */
static int put_point(struct bs_buf *b, const struct promql_point *p)
{
    char tmp[BS_FLOAT_FMT_MAX + 40];
    size_t n = 0;
    tmp[n++] = '[';
    n += promql_time_format(p->t, tmp + n);
    tmp[n++] = ',';
    tmp[n++] = '"';
    n += promql_float_format_api(p->v, tmp + n);
    tmp[n++] = '"';
    tmp[n++] = ']';
    return bs_buf_append(b, tmp, n);
}

int promql_result_json(const struct promql_result *r, struct bs_buf *b)
{
    int rc = 0;
    switch (r->type) {
    case PROMQL_VALUE_SCALAR:
        rc = bs_buf_puts(b, "{\"resultType\":\"scalar\",\"result\":");
        if (!rc)
            rc = put_point(b, &r->scalar);
        return rc ? rc : bs_buf_putc(b, '}');
    case PROMQL_VALUE_STRING:
        rc = bs_buf_puts(b, "{\"resultType\":\"string\",\"result\":[");
        if (!rc)
            rc = put_time(b, r->string_t);
        if (!rc)
            rc = bs_buf_putc(b, ',');
        if (!rc)
            rc = bs_json_string(b, r->string ? r->string : "",
                                r->string ? strlen(r->string) : 0);
        return rc ? rc : bs_buf_puts(b, "]}");
    case PROMQL_VALUE_VECTOR:
    case PROMQL_VALUE_MATRIX: {
        bool vec = r->type == PROMQL_VALUE_VECTOR;
        rc = bs_buf_printf(b, "{\"resultType\":\"%s\",\"result\":[", vec ? "vector" : "matrix");
        for (size_t i = 0; !rc && i < r->nseries; i++) {
            const struct promql_series *s = &r->series[i];
            rc = bs_buf_puts(b, i ? ",{\"metric\":" : "{\"metric\":");
            if (!rc)
                rc = labels_format_json(s->labels, b);
            if (!rc && vec) {
                rc = bs_buf_puts(b, ",\"value\":");
                if (!rc && s->npoints > 0)
                    rc = put_point(b, &s->points[0]);
            } else if (!rc) {
                rc = bs_buf_puts(b, ",\"values\":[");
                for (size_t k = 0; !rc && k < s->npoints; k++) {
                    if (k)
                        rc = bs_buf_putc(b, ',');
                    if (!rc)
                        rc = put_point(b, &s->points[k]);
                }
                if (!rc)
                    rc = bs_buf_putc(b, ']');
            }
            if (!rc)
                rc = bs_buf_putc(b, '}');
        }
        return rc ? rc : bs_buf_puts(b, "]}");
    }
    default:
        return bs_buf_puts(b, "{\"resultType\":\"vector\",\"result\":[]}");
    }
}
