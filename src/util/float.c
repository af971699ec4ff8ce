/* SPDX-License-Identifier: Apache-2.0
 *
 * Floats as Prometheus prints and reads them.
 *
 * Printing needs the shortest decimal that reads back to the same double
 * (what Go's strconv does with precision -1). We get the digits from the C
 * library: the smallest precision p for which "%.{p}e" round-trips through
 * strtod gives the shortest correctly rounded digit string. The digits and
 * the decimal exponent are then laid out by hand, either without exponent
 * (Go's 'f') or by Go's 'g' rule for shortest precision (exponent form when
 * the decimal exponent is < -4 or >= 6, e.g. "1e-05", "1.5e+06").
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

double bs_stale_nan(void)
{
    return bs_float_from_bits(BS_STALE_NAN_BITS);
}

bool bs_is_stale_nan(double v)
{
    return bs_float_bits(v) == BS_STALE_NAN_BITS;
}

uint64_t bs_float_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

double bs_float_from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* Shortest round-trip digits of a finite, non-zero |v|: digits[] gets the
 * significant digits (no dot, no trailing zeros), *exp10 the decimal
 * exponent of the first digit (v = 0.d1d2d3... * 10^(exp10+1)). Returns the
 * number of digits. */
/* Write v (finite, positive) to tmp with p+1 significant digits, as
 * "d.ddde±XX", and report whether it reads back as v. At an exact power of
 * two the values that read back as v reach twice as far above v as below
 * it, so when the nearest (p+1)-digit decimal misses low, the next one up
 * may still read back: that one is tried too. */
static bool try_digits(double v, int p, char tmp[40])
{
    double r;
    int bexp;

    snprintf(tmp, 40, "%.*e", p, v);
    r = strtod(tmp, NULL);
    if (r == v)
        return true;
    if (r < v && frexp(v, &bexp) == 0.5) {
        char up[40];
        char *e = strchr(tmp, 'e');
        int k = (int)(e - tmp) - 1, ex = atoi(e + 1);
        memcpy(up, tmp, 40);
        while (k >= 0 && (up[k] == '9' || up[k] == '.')) {
            if (up[k] == '9')
                up[k] = '0';
            k--;
        }
        if (k >= 0) {
            up[k]++;
        } else {
            /* 9.99e+N -> 1.00e+N+1 (the leading digit overflowed). */
            char *ue = strchr(up, 'e');
            up[0] = '1';
            snprintf(ue, sizeof(up) - (size_t)(ue - up), "e%d", ex + 1);
        }
        if (strtod(up, NULL) == v) {
            memcpy(tmp, up, 40);
            return true;
        }
    }
    return false;
}

static int shortest_digits(double v, char digits[20], int *exp10)
{
    char tmp[40];
    int nd = 0, p, lo, hi;

    v = fabs(v);
    /* Short values are common (1, 0.5, 250): try those first, then binary
     * search; reading back succeeds for every precision from the shortest
     * one on, and always at 17 digits. */
    for (p = 0; p < 3; p++)
        if (try_digits(v, p, tmp))
            goto found;
    lo = 3;
    hi = 16;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (try_digits(v, mid, tmp))
            hi = mid;
        else
            lo = mid + 1;
    }
    p = lo;
    try_digits(v, p, tmp);
found:
    /* tmp is "d.ddddde±XX" or "de±XX". */
    {
        const char *s = tmp;
        for (; *s && *s != 'e'; s++)
            if (*s >= '0' && *s <= '9')
                digits[nd++] = *s;
        *exp10 = atoi(s + 1);
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    return nd;
}

static size_t format_special(double v, char *dst)
{
    if (isnan(v)) {
        memcpy(dst, "NaN", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(dst, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    return 0;
}

size_t bs_digits_fixed(const char *digits, int nd, int e, char *dst)
{
    size_t len = 0;
    if (e < 0) {
        /* 0.000ddd */
        dst[len++] = '0';
        dst[len++] = '.';
        for (int i = 0; i < -e - 1; i++)
            dst[len++] = '0';
        memcpy(dst + len, digits, (size_t)nd);
        len += (size_t)nd;
    } else if (e >= nd - 1) {
        /* ddd000 */
        memcpy(dst + len, digits, (size_t)nd);
        len += (size_t)nd;
        for (int i = 0; i < e - (nd - 1); i++)
            dst[len++] = '0';
    } else {
        /* dd.ddd */
        memcpy(dst + len, digits, (size_t)e + 1);
        len += (size_t)e + 1;
        dst[len++] = '.';
        memcpy(dst + len, digits + e + 1, (size_t)(nd - e - 1));
        len += (size_t)(nd - e - 1);
    }
    dst[len] = '\0';
    return len;
}

size_t bs_float_format(double v, char *dst)
{
    char digits[20];
    int nd, e;
    size_t len = 0;

    if ((len = format_special(v, dst)) != 0)
        return len;
    if (signbit(v))
        dst[len++] = '-';
    if (v == 0) {
        dst[len++] = '0';
        dst[len] = '\0';
        return len;
    }
    nd = shortest_digits(v, digits, &e);
    return len + bs_digits_fixed(digits, nd, e, dst + len);
}

/* Shortest digits in Go's 'e' form ("5.4e-07", "1e+21") when the decimal
 * exponent falls outside [lo, hi); otherwise the plain 'f' form. */
static size_t format_with_cutoffs(double v, char *dst, int lo, int hi)
{
    char digits[20];
    int nd, e;
    size_t len = 0;

    if ((len = format_special(v, dst)) != 0)
        return len;
    if (v == 0)
        return bs_float_format(v, dst);
    nd = shortest_digits(v, digits, &e);
    if (e >= lo && e < hi)
        return bs_float_format(v, dst);
    if (signbit(v))
        dst[len++] = '-';
    dst[len++] = digits[0];
    if (nd > 1) {
        dst[len++] = '.';
        memcpy(dst + len, digits + 1, (size_t)nd - 1);
        len += (size_t)nd - 1;
    }
    len += (size_t)sprintf(dst + len, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    return len;
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64), which the text exposition
 * format uses: shortest digits; exponent form when the decimal exponent is
 * < -4 or >= 6 (strconv sets eprec = 6 for shortest precision), so 1e6 is
 * "1e+06", 123456789 is "1.23456789e+08" and 100000 stays "100000". */
size_t bs_float_format_short(double v, char *dst)
{
    return format_with_cutoffs(v, dst, -4, 6);
}

/* Prometheus's API value encoding (util/jsonutil MarshalValue): 'f' form,
 * but 'e' form when |v| < 1e-6 or |v| >= 1e21. */
size_t bs_float_format_api(double v, char *dst)
{
    return format_with_cutoffs(v, dst, -6, 21);
}

static bool ieq(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

static bool is_dig(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hexdig(char c)
{
    return is_dig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int bs_float_parse(const char *s, size_t n, bool allow_hex, double *out)
{
    char small[64];
    char *tmp = small;
    size_t i = 0;
    bool neg = false, hex = false;
    double v;
    char *end;

    if (n == 0)
        return BS_EPARSE;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    /* Specials as Go's ParseFloat: inf/infinity with optional sign, nan
     * without, case-insensitive. */
    if (ieq(s + i, n - i, "inf") || ieq(s + i, n - i, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (i == 0 && ieq(s, n, "nan")) {
        *out = NAN;
        return 0;
    }

    /* Validate the syntax ourselves: strtod is more lenient (whitespace,
     * "nan(...)", locale) than Go. */
    if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        size_t j = i + 2, mant = 0;
        if (!allow_hex)
            return BS_EPARSE;
        hex = true;
        for (; j < n && is_hexdig(s[j]); j++)
            mant++;
        if (j < n && s[j] == '.') {
            for (j++; j < n && is_hexdig(s[j]); j++)
                mant++;
        }
        if (mant == 0)
            return BS_EPARSE;
        if (j < n && (s[j] == 'p' || s[j] == 'P')) {
            size_t ed = 0;
            j++;
            if (j < n && (s[j] == '+' || s[j] == '-'))
                j++;
            for (; j < n && is_dig(s[j]); j++)
                ed++;
            if (ed == 0)
                return BS_EPARSE;
        } else {
            /* Without an exponent only integers: "0x1f", not "0x1.8". */
            for (size_t k = i + 2; k < j; k++)
                if (s[k] == '.')
                    return BS_EPARSE;
        }
        if (j != n)
            return BS_EPARSE;
    } else {
        size_t j = i, mant = 0;
        for (; j < n && is_dig(s[j]); j++)
            mant++;
        if (j < n && s[j] == '.')
            for (j++; j < n && is_dig(s[j]); j++)
                mant++;
        if (mant == 0)
            return BS_EPARSE;
        if (j < n && (s[j] == 'e' || s[j] == 'E')) {
            size_t ed = 0;
            j++;
            if (j < n && (s[j] == '+' || s[j] == '-'))
                j++;
            for (; j < n && is_dig(s[j]); j++)
                ed++;
            if (ed == 0)
                return BS_EPARSE;
        }
        if (j != n)
            return BS_EPARSE;
    }

    if (n >= sizeof(small)) {
        tmp = malloc(n + 1);
        if (!tmp)
            return BS_ENOMEM;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    v = strtod(tmp, &end);
    bool ok = end == tmp + n;
    if (tmp != small)
        free(tmp);
    (void)hex;
    if (!ok)
        return BS_EPARSE;
    if (isinf(v))
        return BS_EPARSE;   /* overflow: Go reports ErrRange */
    *out = v;
    return 0;
}
