/* SPDX-License-Identifier: Apache-2.0
 *
 * Error codes and the caller-owned error record. Codes and texts come from
 * the single BS_ERROR_LIST in util.h.
 */
#include <stdio.h>
#include <string.h>

#include "util/util.h"

const char *bs_strerror(int code)
{
    switch (code) {
#define BS_X_CASE(name, num, text) \
    case num:                      \
        return text;
        BS_ERROR_LIST(BS_X_CASE)
#undef BS_X_CASE
    default:
        return "unknown error";
    }
}

int bs_error_set(struct bs_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void bs_error_prefix(struct bs_error *err, const char *fmt, ...)
{
    char joined[sizeof(err->msg)];
    size_t cap = sizeof(joined), len;
    va_list ap;
    int n;

    if (!err)
        return;
    va_start(ap, fmt);
    n = vsnprintf(joined, cap, fmt, ap);
    va_end(ap);
    len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    if (err->msg[0] != '\0') {
        size_t mlen = strnlen(err->msg, sizeof(err->msg));
        if (len + 2 < cap) {
            memcpy(joined + len, ": ", 2);
            len += 2;
        }
        if (mlen > cap - 1 - len)
            mlen = cap - 1 - len;
        memcpy(joined + len, err->msg, mlen);
        len += mlen;
    }
    joined[len] = '\0';
    memcpy(err->msg, joined, len + 1);
}

void bs_error_clear(struct bs_error *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
