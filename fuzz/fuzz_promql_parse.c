/* SPDX-License-Identifier: Apache-2.0
 *
 * libFuzzer target for the PromQL parser: any input must either fail with
 * an error message or produce a tree whose canonical text parses again to
 * the same text. Never a crash, a leak or undefined behaviour.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promql/promql_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *q = malloc(size + 1);
    if (!q)
        return 0;
    memcpy(q, data, size);
    q[size] = 0;
    struct promql_expr *x = NULL;
    struct bs_error err;
    bs_error_clear(&err);
    if (promql_parse(q, &x, &err) == 0) {
        struct bs_buf b;
        bs_buf_init(&b, 0);
        if (promql_expr_format(x, &b) == 0 && b.data) {
            struct promql_expr *y = NULL;
            if (promql_parse(b.data, &y, &err) == 0) {
                struct bs_buf b2;
                bs_buf_init(&b2, 0);
                promql_expr_format(y, &b2);
                if (!b2.data || strcmp(b.data, b2.data) != 0)
                    abort();
                bs_buf_fini(&b2);
                promql_expr_free(y);
            }
        }
        bs_buf_fini(&b);
        promql_expr_free(x);
    }
    free(q);
    return 0;
}
