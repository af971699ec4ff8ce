/* SPDX-License-Identifier: Apache-2.0
 *
 * Clocks, Prometheus durations ("1h30m") and timestamps (RFC 3339 and Unix
 * seconds as the HTTP API accepts them). Calendar arithmetic is done by hand
 * (days from civil date) so it is independent of TZ and of time_t range.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util_int.h"

int64_t bs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bs_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bs_sleep_ms(int64_t ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* -------------------------------------------------------------- durations */

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)
#define MS_WEEK (7 * MS_DAY)
#define MS_YEAR (365 * MS_DAY)
/* Prometheus keeps durations as Go time.Duration (int64 nanoseconds), so
 * the longest valid duration is about 292 years. */
#define MS_DURATION_MAX (INT64_MAX / 1000000)

struct dur_unit {
    const char *name;
    int64_t ms;
};
static const struct dur_unit dur_units[] = {
    {"y", MS_YEAR}, {"w", MS_WEEK}, {"d", MS_DAY}, {"h", MS_HOUR},
    {"m", MS_MINUTE}, {"s", MS_SECOND}, {"ms", 1},
};
#define N_DUR_UNITS (sizeof(dur_units) / sizeof(dur_units[0]))

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int bs_duration_parse(const char *s, size_t n, int64_t *out_ms, struct bs_error *err)
{
    size_t i = 0;
    int last_unit = -1;
    int64_t total = 0;
    int q = n > 200 ? 200 : (int)n;   /* how much of s to quote in messages */

    if (n == 0)
        return bs_error_set(err, BS_EPARSE, "empty duration string");
    if (n == 1 && s[0] == '0') {
        *out_ms = 0;
        return 0;
    }
    while (i < n) {
        uint64_t v = 0;
        size_t start = i, ustart;
        int u;

        if (!is_digit(s[i]))
            goto invalid;
        for (; i < n && is_digit(s[i]); i++) {
            if (v > (UINT64_MAX - 9) / 10)
                goto range;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        (void)start;
        ustart = i;
        while (i < n && !is_digit(s[i]))
            i++;
        if (i == ustart)
            goto invalid;
        for (u = 0; u < (int)N_DUR_UNITS; u++)
            if (strlen(dur_units[u].name) == i - ustart &&
                memcmp(dur_units[u].name, s + ustart, i - ustart) == 0)
                break;
        if (u == (int)N_DUR_UNITS)
            return bs_error_set(err, BS_EPARSE, "unknown unit \"%.*s\" in duration \"%.*s\"",
                                (int)(i - ustart > 50 ? 50 : i - ustart), s + ustart, q, s);
        if (u <= last_unit)
            goto invalid;
        last_unit = u;
        if (v > (uint64_t)(MS_DURATION_MAX / dur_units[u].ms))
            goto range;
        total += (int64_t)v * dur_units[u].ms;
        if (total > MS_DURATION_MAX)
            goto range;
    }
    *out_ms = total;
    return 0;
invalid:
    return bs_error_set(err, BS_EPARSE, "not a valid duration string: \"%.*s\"", q, s);
range:
    return bs_error_set(err, BS_EPARSE, "duration out of range");
}

size_t bs_duration_format(int64_t ms, char *dst, size_t cap)
{
    char tmp[64];
    size_t len = 0;
    uint64_t left;

    if (ms == 0) {
        len = (size_t)snprintf(tmp, sizeof(tmp), "0s");
    } else {
        if (ms < 0) {
            tmp[len++] = '-';
            left = (uint64_t)0 - (uint64_t)ms;
        } else {
            left = (uint64_t)ms;
        }
        for (size_t u = 0; u < N_DUR_UNITS; u++) {
            uint64_t mult = (uint64_t)dur_units[u].ms;
            /* Years and weeks only when exact: "90d" reads better than
             * "12w6d". */
            if (u < 2 && left % mult != 0)
                continue;
            uint64_t v = left / mult;
            if (v > 0) {
                len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%" PRIu64 "%s", v,
                                        dur_units[u].name);
                left -= v * mult;
            }
        }
    }
    if (cap) {
        size_t c = len < cap ? len : cap - 1;
        memcpy(dst, tmp, c);
        dst[c] = '\0';
        return c;
    }
    return 0;
}

/* ------------------------------------------------------------- timestamps */

/* Howard Hinnant's days_from_civil. */
int64_t bs_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

size_t bs_time_format_rfc3339(int64_t ms, char *dst, size_t cap)
{
    char tmp[64];
    int64_t secs = ms / 1000, frac = ms % 1000;
    int64_t days, sod, y;
    unsigned mo, d;
    int len;

    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    days = secs / 86400;
    sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    civil_from_days(days, &y, &mo, &d);
    len = snprintf(tmp, sizeof(tmp), "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%03dZ", y, mo, d,
                   (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
    if (len < 0)
        len = 0;
    if (cap == 0)
        return 0;
    size_t c = (size_t)len < cap ? (size_t)len : cap - 1;
    memcpy(dst, tmp, c);
    dst[c] = '\0';
    return c;
}

static bool parse_fixed(const char *s, size_t ndig, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < ndig; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* RFC 3339 as Go's time.RFC3339Nano layout parses it:
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM). */
static bool parse_rfc3339(const char *s, int64_t *out_ms)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = strlen(s), i;
    unsigned y, mo, d, h, mi, sec, frac_ms = 0;
    int64_t off_s = 0;

    if (n < 20)
        return false;
    if (!parse_fixed(s, 4, &y) || s[4] != '-' || !parse_fixed(s + 5, 2, &mo) || s[7] != '-' ||
        !parse_fixed(s + 8, 2, &d) || s[10] != 'T' || !parse_fixed(s + 11, 2, &h) ||
        s[13] != ':' || !parse_fixed(s + 14, 2, &mi) || s[16] != ':' ||
        !parse_fixed(s + 17, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
        return false;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return false;
    i = 19;
    if (s[i] == '.' || s[i] == ',') {
        size_t start = ++i;
        unsigned scale = 100;
        while (i < n && is_digit(s[i])) {
            if (i - start < 3) {
                frac_ms += (unsigned)(s[i] - '0') * scale;
                scale /= 10;
            }
            i++;
        }
        if (i == start || i - start > 9)
            return false;
    }
    if (i < n && s[i] == 'Z') {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        unsigned oh, om;
        if (n - i < 6 || !parse_fixed(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            !parse_fixed(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        off_s = (int64_t)oh * 3600 + (int64_t)om * 60;
        if (s[i] == '-')
            off_s = -off_s;
        i += 6;
    } else {
        return false;
    }
    if (i != n)
        return false;
    int64_t secs = bs_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 +
                   sec - off_s;
    *out_ms = secs * 1000 + frac_ms;
    return true;
}

/* Prometheus's MinTime and MaxTime as its API formats them; Go's parser
 * cannot read them back, so Prometheus special-cases these two strings. */
#define API_MIN_TIME_TEXT "-292273086-05-16T16:47:06Z"
#define API_MAX_TIME_TEXT "292277025-08-18T07:12:54.999999999Z"
#define API_MIN_TIME_MS (INT64_C(-9223309901257974) * 1000)
#define API_MAX_TIME_MS (INT64_C(9223309901257974) * 1000 + 999)

int bs_time_parse_api(const char *s, int64_t *out_ms, struct bs_error *err)
{
    double f;
    size_t n = strlen(s);

    if (bs_float_parse(s, n, false, &f) == 0 && isfinite(f)) {
        double ip, fp = modf(f, &ip);
        /* Both bounds are exactly representable; ±9.2e15 s keeps ms in range. */
        if (ip >= -9.2e15 && ip <= 9.2e15) {
            *out_ms = (int64_t)ip * 1000 + (int64_t)llround(fp * 1000.0);
            return 0;
        }
    }
    if (parse_rfc3339(s, out_ms))
        return 0;
    if (strcmp(s, API_MIN_TIME_TEXT) == 0) {
        *out_ms = API_MIN_TIME_MS;
        return 0;
    }
    if (strcmp(s, API_MAX_TIME_TEXT) == 0) {
        *out_ms = API_MAX_TIME_MS;
        return 0;
    }
    return bs_error_set(err, BS_EPARSE, "cannot parse \"%.*s\" to a valid timestamp",
                        n > 200 ? 200 : (int)n, s);
}
