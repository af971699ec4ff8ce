/* SPDX-License-Identifier: Apache-2.0
 *
 * promql number formatting for the API's JSON: the value of every point
 * written by promql_result_json, and its timestamp.
 *
 * Why here. A range query's result can hold millions of points, and the
 * generic formatter in util (bs_float_format_api) finds the shortest
 * round-tripping digits by trial: up to eight snprintf("%.*e") + strtod
 * pairs per value, which made JSON encoding most of the time of a large
 * range query. This file produces the same text much faster:
 *
 *   - integers below 2^53 (counters, gauges like 1 or 250) are written
 *     directly;
 *   - other finite normal doubles go through Grisu3 (Loitsch, "Printing
 *     Floating-Point Numbers Quickly and Accurately with Integers", PLDI
 *     2010): the value is scaled by a cached power of ten into 64-bit
 *     fixed point, digits are generated from the upper boundary of its
 *     rounding interval, and the last digit is "weeded" toward the value.
 *     Grisu3 either yields the shortest digits closest to the value (the
 *     digits Go's strconv 'f', -1 and the util formatter produce) or
 *     reports that it cannot decide, for about 0.5% of inputs;
 *   - those, subnormals, NaN, infinities and values that need the
 *     exponent form go to bs_float_format_api, which stays the reference.
 *
 * tests/unit/test_promql_fmt.c checks the two against each other on
 * millions of values.
 */
#include <math.h>
#include <string.h>

#include "promql/promql_int.h"

/* A 64-bit significand with a binary exponent: f * 2^e. */
struct diyfp {
    uint64_t f;
    int e;
};

/* The product rounded to its upper 64 bits. */
static struct diyfp diy_mul(struct diyfp a, struct diyfp b)
{
    uint64_t m32 = UINT64_C(0xffffffff);
    uint64_t ah = a.f >> 32, al = a.f & m32, bh = b.f >> 32, bl = b.f & m32;
    uint64_t hh = ah * bh, hl = ah * bl, lh = al * bh, ll = al * bl;
    uint64_t mid = (ll >> 32) + (hl & m32) + (lh & m32) + (UINT64_C(1) << 31);   /* rounding */
    return (struct diyfp){hh + (hl >> 32) + (lh >> 32) + (mid >> 32), a.e + b.e + 64};
}

static struct diyfp diy_normalize(struct diyfp x)
{
    while (!(x.f & (UINT64_C(1) << 63))) {
        x.f <<= 1;
        x.e--;
    }
    return x;
}

/* 10^k for k = -348, -340, ..., 340 as normalized diyfp, rounded to
 * nearest. Generated with exact rational arithmetic:
 *   for k in range(-348, 341, 8): pick e with 2^63 <= 10^k / 2^e < 2^64,
 *   f = round(10^k / 2^e). */
static const struct {
    uint64_t f;
    int16_t e, k;
} pow10_cache[] = {
    {UINT64_C(0xfa8fd5a0081c0288), -1220, -348},
    {UINT64_C(0xbaaee17fa23ebf76), -1193, -340},
    {UINT64_C(0x8b16fb203055ac76), -1166, -332},
    {UINT64_C(0xcf42894a5dce35ea), -1140, -324},
    {UINT64_C(0x9a6bb0aa55653b2d), -1113, -316},
    {UINT64_C(0xe61acf033d1a45df), -1087, -308},
    {UINT64_C(0xab70fe17c79ac6ca), -1060, -300},
    {UINT64_C(0xff77b1fcbebcdc4f), -1034, -292},
    {UINT64_C(0xbe5691ef416bd60c), -1007, -284},
    {UINT64_C(0x8dd01fad907ffc3c), -980, -276},
    {UINT64_C(0xd3515c2831559a83), -954, -268},
    {UINT64_C(0x9d71ac8fada6c9b5), -927, -260},
    {UINT64_C(0xea9c227723ee8bcb), -901, -252},
    {UINT64_C(0xaecc49914078536d), -874, -244},
    {UINT64_C(0x823c12795db6ce57), -847, -236},
    {UINT64_C(0xc21094364dfb5637), -821, -228},
    {UINT64_C(0x9096ea6f3848984f), -794, -220},
    {UINT64_C(0xd77485cb25823ac7), -768, -212},
    {UINT64_C(0xa086cfcd97bf97f4), -741, -204},
    {UINT64_C(0xef340a98172aace5), -715, -196},
    {UINT64_C(0xb23867fb2a35b28e), -688, -188},
    {UINT64_C(0x84c8d4dfd2c63f3b), -661, -180},
    {UINT64_C(0xc5dd44271ad3cdba), -635, -172},
    {UINT64_C(0x936b9fcebb25c996), -608, -164},
    {UINT64_C(0xdbac6c247d62a584), -582, -156},
    {UINT64_C(0xa3ab66580d5fdaf6), -555, -148},
    {UINT64_C(0xf3e2f893dec3f126), -529, -140},
    {UINT64_C(0xb5b5ada8aaff80b8), -502, -132},
    {UINT64_C(0x87625f056c7c4a8b), -475, -124},
    {UINT64_C(0xc9bcff6034c13053), -449, -116},
    {UINT64_C(0x964e858c91ba2655), -422, -108},
    {UINT64_C(0xdff9772470297ebd), -396, -100},
    {UINT64_C(0xa6dfbd9fb8e5b88f), -369, -92},
    {UINT64_C(0xf8a95fcf88747d94), -343, -84},
    {UINT64_C(0xb94470938fa89bcf), -316, -76},
    {UINT64_C(0x8a08f0f8bf0f156b), -289, -68},
    {UINT64_C(0xcdb02555653131b6), -263, -60},
    {UINT64_C(0x993fe2c6d07b7fac), -236, -52},
    {UINT64_C(0xe45c10c42a2b3b06), -210, -44},
    {UINT64_C(0xaa242499697392d3), -183, -36},
    {UINT64_C(0xfd87b5f28300ca0e), -157, -28},
    {UINT64_C(0xbce5086492111aeb), -130, -20},
    {UINT64_C(0x8cbccc096f5088cc), -103, -12},
    {UINT64_C(0xd1b71758e219652c), -77, -4},
    {UINT64_C(0x9c40000000000000), -50, 4},
    {UINT64_C(0xe8d4a51000000000), -24, 12},
    {UINT64_C(0xad78ebc5ac620000), 3, 20},
    {UINT64_C(0x813f3978f8940984), 30, 28},
    {UINT64_C(0xc097ce7bc90715b3), 56, 36},
    {UINT64_C(0x8f7e32ce7bea5c70), 83, 44},
    {UINT64_C(0xd5d238a4abe98068), 109, 52},
    {UINT64_C(0x9f4f2726179a2245), 136, 60},
    {UINT64_C(0xed63a231d4c4fb27), 162, 68},
    {UINT64_C(0xb0de65388cc8ada8), 189, 76},
    {UINT64_C(0x83c7088e1aab65db), 216, 84},
    {UINT64_C(0xc45d1df942711d9a), 242, 92},
    {UINT64_C(0x924d692ca61be758), 269, 100},
    {UINT64_C(0xda01ee641a708dea), 295, 108},
    {UINT64_C(0xa26da3999aef774a), 322, 116},
    {UINT64_C(0xf209787bb47d6b85), 348, 124},
    {UINT64_C(0xb454e4a179dd1877), 375, 132},
    {UINT64_C(0x865b86925b9bc5c2), 402, 140},
    {UINT64_C(0xc83553c5c8965d3d), 428, 148},
    {UINT64_C(0x952ab45cfa97a0b3), 455, 156},
    {UINT64_C(0xde469fbd99a05fe3), 481, 164},
    {UINT64_C(0xa59bc234db398c25), 508, 172},
    {UINT64_C(0xf6c69a72a3989f5c), 534, 180},
    {UINT64_C(0xb7dcbf5354e9bece), 561, 188},
    {UINT64_C(0x88fcf317f22241e2), 588, 196},
    {UINT64_C(0xcc20ce9bd35c78a5), 614, 204},
    {UINT64_C(0x98165af37b2153df), 641, 212},
    {UINT64_C(0xe2a0b5dc971f303a), 667, 220},
    {UINT64_C(0xa8d9d1535ce3b396), 694, 228},
    {UINT64_C(0xfb9b7cd9a4a7443c), 720, 236},
    {UINT64_C(0xbb764c4ca7a44410), 747, 244},
    {UINT64_C(0x8bab8eefb6409c1a), 774, 252},
    {UINT64_C(0xd01fef10a657842c), 800, 260},
    {UINT64_C(0x9b10a4e5e9913129), 827, 268},
    {UINT64_C(0xe7109bfba19c0c9d), 853, 276},
    {UINT64_C(0xac2820d9623bf429), 880, 284},
    {UINT64_C(0x80444b5e7aa7cf85), 907, 292},
    {UINT64_C(0xbf21e44003acdd2d), 933, 300},
    {UINT64_C(0x8e679c2f5e44ff8f), 960, 308},
    {UINT64_C(0xd433179d9c8cb841), 986, 316},
    {UINT64_C(0x9e19db92b4e31ba9), 1013, 324},
    {UINT64_C(0xeb96bf6ebadf77d9), 1039, 332},
    {UINT64_C(0xaf87023b9bf0ee6b), 1066, 340},
};
#define POW10_FIRST_K (-348)
#define POW10_STEP 8

/* Grisu3's target range for the exponent of the scaled value. */
#define GRISU_ALPHA (-60)
#define GRISU_GAMMA (-32)

static const uint32_t pow10_u32[] = {1,      10,      100,      1000,      10000,
                                     100000, 1000000, 10000000, 100000000, 1000000000};

/* Move the last digit toward w while that stays inside the interval, then
 * decide whether the result is provably the closest shortest one. All
 * quantities are in units of 2^e of the scaled numbers; rest is the
 * distance from too_high down to the digits generated so far. */
static bool round_weed(char *buf, size_t len, uint64_t dist_too_high_w, uint64_t unsafe,
                       uint64_t rest, uint64_t ten_kappa, uint64_t unit)
{
    uint64_t small = dist_too_high_w - unit, big = dist_too_high_w + unit;
    while (rest < small && unsafe - rest >= ten_kappa &&
           (rest + ten_kappa < small || small - rest >= rest + ten_kappa - small)) {
        buf[len - 1]--;
        rest += ten_kappa;
    }
    if (rest < big && unsafe - rest >= ten_kappa &&
        (rest + ten_kappa < big || big - rest > rest + ten_kappa - big))
        return false;
    return 2 * unit <= rest && rest <= unsafe - 4 * unit;
}

/* Shortest digits of a positive normal double v into buf (no dot, no
 * leading zero), *nd of them, with *e10 the decimal exponent of the first
 * digit. Returns false when Grisu3 cannot decide. */
static bool grisu3(double v, char *buf, int *nd, int *e10)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    int bexp = (int)((bits >> 52) & 0x7ff);
    if (bexp == 0 || bexp == 0x7ff)
        return false;
    struct diyfp w = {frac | (UINT64_C(1) << 52), bexp - 1075};
    /* Boundaries: halfway to the neighbours; the lower one is closer when
     * the significand is a power of two (and not the smallest exponent). */
    struct diyfp mp = diy_normalize((struct diyfp){(w.f << 1) + 1, w.e - 1});
    struct diyfp mm;
    if (frac == 0 && bexp > 1)
        mm = (struct diyfp){(w.f << 2) - 1, w.e - 2};
    else
        mm = (struct diyfp){(w.f << 1) - 1, w.e - 1};
    mm.f <<= mm.e - mp.e;
    mm.e = mp.e;
    w = diy_normalize(w);

    /* A cached power c with alpha <= w.e + c.e + 64 <= gamma. */
    int min_e = GRISU_ALPHA - w.e - 64;
    /* index estimate from log10(2), then adjust */
    int k = (int)ceil((double)(min_e + 63) * 0.30102999566398114);
    int idx = (k - POW10_FIRST_K + POW10_STEP - 1) / POW10_STEP;
    if (idx < 0)
        idx = 0;
    int ncache = (int)(sizeof(pow10_cache) / sizeof(pow10_cache[0]));
    while (idx > 0 && pow10_cache[idx - 1].e >= min_e)
        idx--;
    while (idx < ncache && pow10_cache[idx].e < min_e)
        idx++;
    if (idx >= ncache || w.e + pow10_cache[idx].e + 64 > GRISU_GAMMA)
        return false;
    struct diyfp c = {pow10_cache[idx].f, pow10_cache[idx].e};
    int ck = pow10_cache[idx].k;

    struct diyfp sw = diy_mul(w, c), sm = diy_mul(mm, c), sp = diy_mul(mp, c);
    int e = sp.e;   /* == sw.e == sm.e */
    uint64_t unit = 1;
    uint64_t too_low = sm.f - unit, too_high = sp.f + unit;
    uint64_t unsafe = too_high - too_low;
    int shift = -e;
    uint64_t one = UINT64_C(1) << shift;
    uint32_t integrals = (uint32_t)(too_high >> shift);
    uint64_t fractionals = too_high & (one - 1);
    int kappa = 10;
    while (kappa > 0 && pow10_u32[kappa - 1] > integrals)
        kappa--;
    /* kappa: number of integral digits; the first divisor is 10^(kappa-1) */
    size_t len = 0;
    while (kappa > 0) {
        uint32_t div = pow10_u32[kappa - 1];
        uint32_t digit = integrals / div;
        integrals %= div;
        if (len > 0 || digit != 0)
            buf[len++] = (char)('0' + digit);
        kappa--;
        uint64_t rest = ((uint64_t)integrals << shift) + fractionals;
        if (rest < unsafe) {
            if (len == 0)
                return false;
            *nd = (int)len;
            *e10 = kappa - ck + (int)len - 1;
            return round_weed(buf, len, too_high - sw.f, unsafe, rest, (uint64_t)div << shift,
                              unit);
        }
    }
    for (;;) {
        fractionals *= 10;
        unit *= 10;
        unsafe *= 10;
        uint32_t digit = (uint32_t)(fractionals >> shift);
        if (len > 0 || digit != 0)
            buf[len++] = (char)('0' + digit);
        fractionals &= one - 1;
        kappa--;
        if (len >= 18)
            return false;
        if (fractionals < unsafe) {
            if (len == 0)
                return false;
            *nd = (int)len;
            *e10 = kappa - ck + (int)len - 1;
            return round_weed(buf, len, (too_high - sw.f) * unit, unsafe, fractionals, one,
                              unit);
        }
    }
}

/* Non-negative integer to decimal; returns the length. */
static size_t put_u64(uint64_t u, char *dst)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    dst[n] = '\0';
    return n;
}

size_t promql_float_format_api(double v, char *dst)
{
    if (v == 0 || !isfinite(v))
        return bs_float_format_api(v, dst);   /* 0, -0, NaN, ±Inf */
    double a = fabs(v);
    size_t len = 0;
    if (a < 9007199254740992.0 && a == floor(a)) {
        if (v < 0)
            dst[len++] = '-';
        return len + put_u64((uint64_t)a, dst + len);
    }
    char digits[24];
    int nd, e;
    if (!grisu3(a, digits, &nd, &e))
        return bs_float_format_api(v, dst);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (e < -6 || e >= 21)
        return bs_float_format_api(v, dst);   /* exponent form: rare */
    if (v < 0)
        dst[len++] = '-';
    return len + bs_digits_fixed(digits, nd, e, dst + len);
}

size_t promql_time_format(int64_t t, char *dst)
{
    uint64_t a = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
    uint64_t s = a / 1000, ms = a % 1000;
    size_t len = 0;
    if (t < 0)
        dst[len++] = '-';
    len += put_u64(s, dst + len);
    if (ms) {
        dst[len++] = '.';
        dst[len++] = (char)('0' + ms / 100);
        if (ms % 100) {
            dst[len++] = (char)('0' + ms / 10 % 10);
            if (ms % 10)
                dst[len++] = (char)('0' + ms % 10);
        }
    }
    dst[len] = '\0';
    return len;
}
