/* SPDX-License-Identifier: Apache-2.0
 *
 * The OpenMetrics 1.0 text pull parser, behind the same struct expfmt_parser
 * and expfmt_parser_next() as the 0.0.4 parser (text_parse.c dispatches here
 * when the parser was initialised with EXPFMT_FORMAT_OPENMETRICS).
 *
 * Design. Line handling is the 0.0.4 parser's: one line at a time, found
 * with memchr, scanned by hand without ever looking past its end; names and
 * values point into the input; only escaped text is rewritten into the
 * per-line scratch space (shared helpers in expfmt_int.h). What OpenMetrics
 * adds is state that spans lines, kept in struct expfmt_om:
 *
 *  - The open metric family: its name (a pointer into the input, which
 *    outlives the parser), type, unit, which metadata lines it has had and
 *    whether samples have started. A sample whose name is not one the
 *    family's type allows (counter: _total and _created, ...) closes the
 *    family and opens an implicit family of type unknown named after the
 *    sample, exactly as a metadata line for another name does.
 *  - Every name some closed family used or reserved (its own name plus its
 *    type's suffixes), in a hash set for the whole body: a second family
 *    with a name already taken is an error. This is how "families are
 *    contiguous" is enforced without ever looking back at the input.
 *  - The groups of the open family: a group is a sample's label set without
 *    le (histogram buckets), quantile (summary quantiles) or the stateset
 *    label; info families are one group. The current group's key and
 *    timestamp, and a hash set of keys seen in this family, let us reject a
 *    group that reappears after another one, a mix of samples with and
 *    without timestamps, and timestamps that go backwards.
 *  - For histograms and gauge histograms, the running state of the current
 *    (group, timestamp) segment: last le and bucket value (must increase),
 *    whether +Inf, _count/_gcount, _sum/_gsum and negative buckets were
 *    seen. A segment is checked when the next one starts and when the family
 *    ends, so those errors name the line that ended the segment.
 *
 * Group keys are the sorted labels serialised with length prefixes (label
 * values may contain any byte). All state grows only with the input: the
 * sets hold at most one entry per input line, and their key bytes are at
 * most a small multiple of the input size, so the scrape body limit bounds
 * the parser's memory.
 *
 * The rules are those the upstream OpenMetrics parser test suite checks (the
 * acceptance suite of bongsu); docs/openmetrics.md lists them and the
 * choices made where the suite is silent.
 */
#include "expfmt/expfmt_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prometheus's value.NormalNaN, as in text_parse.c. */
#define OM_NORMAL_NAN_BITS UINT64_C(0x7ff8000000000001)

/* The spec's limit on an exemplar's label names and values, in code points. */
#define OM_EXEMPLAR_MAX_RUNES 128

/* ------------------------------------------------------------------ state */

/* A set of byte strings: open addressing, keys stored in pool. */
struct om_slot {
    uint64_t hash;   /* 0 marks an empty slot (real hashes are forced odd) */
    size_t off, len; /* key bytes in pool */
    size_t lineno;   /* line that added the key, for messages */
};

struct om_set {
    struct om_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t n;
    struct bs_buf pool;
};

/* Suffixes of sample names relative to their family name. */
enum om_suffix {
    SUF_NONE = 0, /* the family name itself */
    SUF_TOTAL,
    SUF_CREATED,
    SUF_BUCKET,
    SUF_COUNT,
    SUF_SUM,
    SUF_GCOUNT,
    SUF_GSUM,
    SUF_INFO,
    SUF_COUNT_OF,             /* number of real suffixes */
    SUF_OTHER = SUF_COUNT_OF, /* not the family name plus a known suffix */
};

static const struct {
    const char *text;
    size_t len;
} suffixes[SUF_COUNT_OF] = {
    [SUF_NONE] = {"", 0},          [SUF_TOTAL] = {"_total", 6}, [SUF_CREATED] = {"_created", 8},
    [SUF_BUCKET] = {"_bucket", 7}, [SUF_COUNT] = {"_count", 6}, [SUF_SUM] = {"_sum", 4},
    [SUF_GCOUNT] = {"_gcount", 7}, [SUF_GSUM] = {"_gsum", 5},   [SUF_INFO] = {"_info", 5},
};

#define BIT(s) (1u << (s))

/* Histogram/gauge histogram segment state (one group at one timestamp). */
struct om_hist {
    bool active;
    size_t lineno;  /* first line of the segment */
    bool has_count; /* _count or _gcount */
    double count;
    bool has_bucket;
    double bucket; /* le of the last bucket */
    double value;  /* value of the last bucket (0 before the first) */
    bool neg_buckets;
    bool has_sum;
    bool has_gsum;
    bool neg_gsum;
};

struct expfmt_om {
    bool done; /* "# EOF" handled or end of input reported */
    /* The open family. */
    bool open;
    const char *fam; /* into the input */
    size_t fam_len;
    size_t fam_lineno;
    enum expfmt_metric_type type;
    bool seen_help, seen_type, seen_unit, has_samples;
    const char *unit; /* into the input; "" when none */
    size_t unit_len;
    /* Groups of the open family. */
    bool have_group;
    bool group_has_ts;
    double group_ts;     /* seconds */
    struct bs_buf group; /* key of the current group */
    struct bs_buf key;   /* key being built */
    struct om_set groups;
    struct om_hist h;
    /* Names used by closed families. */
    struct om_set names;
    struct bs_buf tmp;
    const struct expfmt_label **sorted; /* scratch for sorting labels */
    size_t sorted_cap;
};

/* ------------------------------------------------------------- byte sets */

static void set_clear(struct om_set *s)
{
    if (s->cap)
        memset(s->slots, 0, s->cap * sizeof *s->slots);
    s->n = 0;
    bs_buf_reset(&s->pool);
}

static void set_fini(struct om_set *s)
{
    free(s->slots);
    bs_buf_fini(&s->pool);
    memset(s, 0, sizeof *s);
}

/* The bytes of a stored key (the pool may be unallocated for empty keys). */
static const char *slot_key(const struct om_set *s, const struct om_slot *sl)
{
    return sl->len ? s->pool.data + sl->off : "";
}

static struct om_slot *set_find(const struct om_set *s, const char *k, size_t n, uint64_t h)
{
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct om_slot *sl = &s->slots[i];
        if (sl->hash == 0 || (sl->hash == h && sl->len == n && memcmp(slot_key(s, sl), k, n) == 0))
            return sl;
    }
}

/* Add k[0..n). Returns 0 when added, 1 when it was there already (*lineno
 * set to the line that added it), BS_ENOMEM. */
static int set_add(struct om_set *s, const char *k, size_t n, size_t lineno, size_t *first)
{
    uint64_t h = bs_hash64(k, n) | 1;
    if (s->cap) {
        struct om_slot *sl = set_find(s, k, n, h);
        if (sl->hash) {
            if (first)
                *first = sl->lineno;
            return 1;
        }
    }
    if ((s->n + 1) * 4 > s->cap * 3) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct om_slot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return BS_ENOMEM;
        struct om_set grown = *s;
        grown.slots = ns;
        grown.cap = ncap;
        for (size_t i = 0; i < s->cap; i++) {
            struct om_slot *o = &s->slots[i];
            if (o->hash)
                *set_find(&grown, slot_key(s, o), o->len, o->hash) = *o;
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    size_t off = s->pool.len;
    int rc = n ? bs_buf_append(&s->pool, k, n) : 0;
    if (rc < 0)
        return rc;
    struct om_slot *sl = set_find(s, k, n, h);
    sl->hash = h;
    sl->off = off;
    sl->len = n;
    sl->lineno = lineno;
    s->n++;
    return 0;
}

/* ----------------------------------------------------------------- tokens */

static inline bool is_mstart(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static inline bool is_mrest(char c)
{
    return is_mstart(c) || (c >= '0' && c <= '9');
}

static inline bool is_lstart(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline bool is_lrest(char c)
{
    return is_lstart(c) || (c >= '0' && c <= '9');
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

/* The spec's number: a realnumber ([sign] digits, optional '.', fraction and
 * exponent; at least one mantissa digit), or when specials is set also
 * [sign] "inf"/"infinity" and "nan", case-insensitively. No hex, no '_', no
 * whitespace. */
static bool om_number(const char *s, size_t n, bool specials, double *out)
{
    size_t i = 0, digits = 0;
    if (n == 0)
        return false;
    if (s[0] == '+' || s[0] == '-')
        i = 1;
    if (i < n && !is_digit(s[i]) && s[i] != '.')
        return specials && bs_float_parse(s, n, false, out) == 0;
    for (; i < n && is_digit(s[i]); i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && is_digit(s[i]); i++)
            digits++;
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e0 = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == e0)
            return false;
    }
    return i == n && bs_float_parse(s, n, false, out) == 0;
}

/* Seconds to milliseconds as Prometheus does (truncation toward zero), but
 * saturated where Go's conversion is undefined. */
static int64_t seconds_to_ms(double sec)
{
    double ms = sec * 1000.0;
    if (ms >= 0x1p63)
        return INT64_MAX;
    if (ms < -0x1p63)
        return INT64_MIN;
    return (int64_t)ms;
}

/* Number of code points in valid UTF-8. */
static size_t rune_count(const char *s, size_t n)
{
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += ((unsigned char)s[i] & 0xc0) != 0x80;
    return r;
}

static int fail_quoted(const struct expfmt_parser *p, struct bs_error *err, const char *at,
                       const char *s, size_t n, const char *fmt_what)
{
    char q[400];
    expfmt_lex_quote(s, n, q, sizeof q);
    return bs_error_set(err, BS_EPARSE, "line %zu, column %zu: %s \"%s\"", p->lineno,
                        expfmt_lex_column(p, at), fmt_what, q);
}

static int fail_nomem(const struct expfmt_parser *p, struct bs_error *err, int rc)
{
    return bs_error_set(err, rc, "line %zu: %s while checking the OpenMetrics family", p->lineno,
                        bs_strerror(rc));
}

/* ------------------------------------------------------------------ types */

/* Suffixes each type allows for its samples. */
static unsigned allowed_suffixes(enum expfmt_metric_type t)
{
    switch (t) {
    case EXPFMT_TYPE_COUNTER:
        return BIT(SUF_TOTAL) | BIT(SUF_CREATED);
    case EXPFMT_TYPE_SUMMARY:
        return BIT(SUF_NONE) | BIT(SUF_COUNT) | BIT(SUF_SUM) | BIT(SUF_CREATED);
    case EXPFMT_TYPE_HISTOGRAM:
        return BIT(SUF_BUCKET) | BIT(SUF_COUNT) | BIT(SUF_SUM) | BIT(SUF_CREATED);
    case EXPFMT_TYPE_GAUGEHISTOGRAM:
        return BIT(SUF_BUCKET) | BIT(SUF_GCOUNT) | BIT(SUF_GSUM);
    case EXPFMT_TYPE_INFO:
        return BIT(SUF_INFO);
    default:
        return BIT(SUF_NONE);
    }
}

static bool is_histogram(enum expfmt_metric_type t)
{
    return t == EXPFMT_TYPE_HISTOGRAM || t == EXPFMT_TYPE_GAUGEHISTOGRAM;
}

static enum om_suffix suffix_of(const struct expfmt_om *om, const char *n, size_t nl)
{
    if (nl < om->fam_len || memcmp(n, om->fam, om->fam_len) != 0)
        return SUF_OTHER;
    for (int s = 0; s < SUF_COUNT_OF; s++)
        if (name_eq(n + om->fam_len, nl - om->fam_len, suffixes[s].text, suffixes[s].len))
            return (enum om_suffix)s;
    return SUF_OTHER;
}

static const enum expfmt_metric_type om_types[] = {
    EXPFMT_TYPE_COUNTER, EXPFMT_TYPE_GAUGE, EXPFMT_TYPE_HISTOGRAM, EXPFMT_TYPE_GAUGEHISTOGRAM,
    EXPFMT_TYPE_SUMMARY, EXPFMT_TYPE_INFO,  EXPFMT_TYPE_STATESET,  EXPFMT_TYPE_UNKNOWN,
};

/* --------------------------------------------------------------- families */

/* The checks of a finished histogram segment. */
static int hist_check(const struct expfmt_parser *p, const struct expfmt_om *om,
                      struct bs_error *err)
{
    const struct om_hist *h = &om->h;
    const char *why = NULL;
    char buf[160];
    bool gauge = om->type == EXPFMT_TYPE_GAUGEHISTOGRAM;
    if (!h->has_bucket || h->bucket != INFINITY) {
        why = "has no le=\"+Inf\" bucket";
    } else if (h->has_count && h->value != h->count) {
        snprintf(buf, sizeof buf, "has %s %.17g but its +Inf bucket is %.17g",
                 gauge ? "_gcount" : "_count", h->count, h->value);
        why = buf;
    } else if (h->has_sum && !h->has_count) {
        why = "has _sum without _count";
    } else if (h->has_gsum && !h->has_count) {
        why = "has _gsum without _gcount";
    } else if (!h->has_sum && !h->has_gsum && h->has_count) {
        why = gauge ? "has _gcount without _gsum" : "has _count without _sum";
    } else if (h->neg_buckets && h->has_sum) {
        why = "has negative buckets, so it must not have a _sum";
    } else if (!h->neg_buckets && h->neg_gsum) {
        why = "has a negative _gsum but no negative buckets";
    }
    if (!why)
        return 0;
    return bs_error_set(err, BS_EPARSE, "line %zu: %s \"%.*s\": the group starting at line %zu %s",
                        p->lineno, gauge ? "gaugehistogram" : "histogram", (int)om->fam_len,
                        om->fam, h->lineno, why);
}

/* Close the open family (if any): check its last histogram segment and
 * register the names it uses. The family is closed even on error. */
static int family_end(struct expfmt_parser *p, struct expfmt_om *om, struct bs_error *err)
{
    if (!om->open)
        return 0;
    int rc = 0;
    if (is_histogram(om->type) && om->h.active)
        rc = hist_check(p, om, err);
    unsigned used = allowed_suffixes(om->type) | BIT(SUF_NONE);
    for (int s = 0; s < SUF_COUNT_OF && rc == 0; s++) {
        if (!(used & BIT(s)))
            continue;
        bs_buf_reset(&om->tmp);
        int brc = bs_buf_append(&om->tmp, om->fam, om->fam_len);
        if (brc == 0)
            brc = bs_buf_append(&om->tmp, suffixes[s].text, suffixes[s].len);
        size_t first = 0;
        if (brc == 0)
            brc = set_add(&om->names, om->tmp.data, om->tmp.len, om->fam_lineno, &first);
        if (brc < 0) {
            rc = fail_nomem(p, err, brc);
        } else if (brc == 1) {
            char q[400];
            expfmt_lex_quote(om->tmp.data, om->tmp.len, q, sizeof q);
            rc = bs_error_set(err, BS_EPARSE,
                              "line %zu: metric family \"%.*s\" (line %zu) uses the name \"%s\", "
                              "which the family starting at line %zu already used; a family "
                              "must be contiguous and its names unique",
                              p->lineno, (int)om->fam_len, om->fam, om->fam_lineno, q, first);
        }
    }
    om->open = false;
    om->have_group = false;
    om->h.active = false;
    set_clear(&om->groups);
    return rc;
}

static void family_start(struct expfmt_parser *p, struct expfmt_om *om, const char *name,
                         size_t len)
{
    om->open = true;
    om->fam = name;
    om->fam_len = len;
    om->fam_lineno = p->lineno;
    om->type = EXPFMT_TYPE_UNKNOWN;
    om->seen_help = om->seen_type = om->seen_unit = om->has_samples = false;
    om->unit = "";
    om->unit_len = 0;
}

/* ------------------------------------------------------------- metadata */

/* HELP text unescaping for OpenMetrics: \\ \n \"; any other backslash
 * (and a trailing one) stays literal. */
static int unescape_help(struct expfmt_parser *p, const char *s, size_t n, struct bs_error *err)
{
    const char *bs = memchr(s, '\\', n);
    if (!bs) {
        p->meta_text = s;
        p->meta_text_len = n;
        return 0;
    }
    int rc = expfmt_lex_scratch_prepare(p, err);
    if (rc < 0)
        return rc;
    char *dst = p->scratch + p->scratch_used, *d = dst;
    const char *e = s + n;
    while (s < e) {
        if (*s == '\\' && s + 1 < e && (s[1] == '\\' || s[1] == 'n' || s[1] == '"')) {
            *d++ = s[1] == 'n' ? '\n' : s[1];
            s += 2;
        } else {
            *d++ = *s++;
        }
    }
    p->meta_text = dst;
    p->meta_text_len = (size_t)(d - dst);
    p->scratch_used += p->meta_text_len;
    return 0;
}

static int repeated(const struct expfmt_parser *p, const struct expfmt_om *om, const char *kw,
                    struct bs_error *err)
{
    return bs_error_set(err, BS_EPARSE, "line %zu: second %s line for metric family \"%.*s\"",
                        p->lineno, kw, (int)om->fam_len, om->fam);
}

static int unit_type_clash(const struct expfmt_parser *p, const struct expfmt_om *om,
                           struct bs_error *err)
{
    return bs_error_set(err, BS_EPARSE,
                        "line %zu: metric family \"%.*s\" of type %s cannot have a unit", p->lineno,
                        (int)om->fam_len, om->fam, expfmt_metric_type_name(om->type));
}

/* "# HELP|TYPE|UNIT name rest" or "# EOF". Sets *kind to the entry to
 * return, or leaves it EXPFMT_EOF for a line that yields none (UNIT). */
static int parse_meta(struct expfmt_parser *p, struct expfmt_om *om, enum expfmt_entry *kind,
                      bool *eof, struct bs_error *err)
{
    const char *s = p->line, *e = p->line_end;
    int rc;
    if (e - s == 5 && memcmp(s, "# EOF", 5) == 0) {
        *eof = true;
        return 0;
    }
    if (s + 1 >= e || s[1] != ' ')
        return expfmt_lex_fail_got(p, err, s + 1,
                                   "expected ' ' after '#' (OpenMetrics has no comments)");
    const char *kw = s + 2;
    const char *kw_end = memchr(kw, ' ', (size_t)(e - kw));
    if (!kw_end)
        kw_end = e;
    size_t kwl = (size_t)(kw_end - kw);
    if (name_eq(kw, kwl, "EOF", 3))
        return expfmt_lex_fail_got(p, err, kw_end, "expected the end of the line after \"# EOF\"");
    if (!name_eq(kw, kwl, "HELP", 4) && !name_eq(kw, kwl, "TYPE", 4) &&
        !name_eq(kw, kwl, "UNIT", 4))
        return fail_quoted(p, err, kw, kw, kwl,
                           "expected HELP, TYPE, UNIT or EOF after \"# \" (OpenMetrics has no "
                           "comments), got");
    if (kw_end == e) {
        char what[64];
        snprintf(what, sizeof what, "expected ' ' and a metric name after %.4s", kw);
        return expfmt_lex_fail_got(p, err, kw_end, what);
    }
    const char *name = kw_end + 1;
    s = name;
    if (s < e && is_mstart(*s))
        for (s++; s < e && is_mrest(*s); s++)
            ;
    if (s == name) {
        char what[48];
        snprintf(what, sizeof what, "expected a metric name after %.4s", kw);
        return expfmt_lex_fail_got(p, err, s, what);
    }
    size_t nlen = (size_t)(s - name);
    if (s >= e || *s != ' ') {
        char what[80];
        snprintf(what, sizeof what, "expected ' ' and the %s after the metric name",
                 kw[0] == 'H'   ? "help text"
                 : kw[0] == 'T' ? "type"
                                : "unit");
        return expfmt_lex_fail_got(p, err, s, what);
    }
    const char *rest = s + 1;
    size_t rlen = (size_t)(e - rest);

    if (om->open && name_eq(name, nlen, om->fam, om->fam_len)) {
        if (om->has_samples)
            return bs_error_set(err, BS_EPARSE,
                                "line %zu: %.4s for metric family \"%.*s\" after its samples; "
                                "metadata must come first",
                                p->lineno, kw, (int)nlen, name);
    } else {
        if ((rc = family_end(p, om, err)) < 0)
            return rc;
        family_start(p, om, name, nlen);
    }
    p->meta_name = name;
    p->meta_name_len = nlen;

    if (kw[0] == 'H') {
        if (om->seen_help)
            return repeated(p, om, "HELP", err);
        if ((rc = expfmt_lex_check_utf8(p, rest, rest, rlen, "help text", err)) < 0)
            return rc;
        if ((rc = unescape_help(p, rest, rlen, err)) < 0)
            return rc;
        om->seen_help = true;
        *kind = EXPFMT_HELP;
        return 0;
    }
    if (kw[0] == 'T') {
        if (om->seen_type)
            return repeated(p, om, "TYPE", err);
        size_t i;
        for (i = 0; i < sizeof om_types / sizeof om_types[0]; i++) {
            const char *tn = expfmt_metric_type_name(om_types[i]);
            if (name_eq(rest, rlen, tn, strlen(tn)))
                break;
        }
        if (i == sizeof om_types / sizeof om_types[0])
            return fail_quoted(p, err, rest, rest, rlen,
                               "expected counter, gauge, histogram, gaugehistogram, summary, "
                               "info, stateset or unknown (\"untyped\" is 0.0.4 only), got");
        om->type = om_types[i];
        om->seen_type = true;
        if (om->unit_len && (om->type == EXPFMT_TYPE_INFO || om->type == EXPFMT_TYPE_STATESET))
            return unit_type_clash(p, om, err);
        p->meta_type = om->type;
        *kind = EXPFMT_TYPE;
        return 0;
    }
    if (om->seen_unit)
        return repeated(p, om, "UNIT", err);
    if (rlen && !(nlen > rlen && name[nlen - rlen - 1] == '_' &&
                  memcmp(name + nlen - rlen, rest, rlen) == 0))
        return fail_quoted(p, err, rest, rest, rlen,
                           "the metric family name must end in '_' and its unit, got unit");
    om->seen_unit = true;
    om->unit = rest;
    om->unit_len = rlen;
    if (rlen && (om->type == EXPFMT_TYPE_INFO || om->type == EXPFMT_TYPE_STATESET))
        return unit_type_clash(p, om, err);
    return 0;
}

/* --------------------------------------------------------------- samples */

/* Parse "{...}" at *ps into p->labels from index *used on. Strict
 * OpenMetrics syntax: no whitespace, no trailing comma, no quoted names. */
static int parse_labels(struct expfmt_parser *p, const char **ps, size_t *used,
                        struct bs_error *err)
{
    const char *s = *ps + 1, *e = p->line_end;
    int rc;
    if (s < e && *s == '}') {
        *ps = s + 1;
        return 0;
    }
    for (;;) {
        const char *name = s;
        if (s < e && is_lstart(*s))
            for (s++; s < e && is_lrest(*s); s++)
                ;
        if (s == name)
            return expfmt_lex_fail_got(p, err, s, "expected a label name");
        size_t name_len = (size_t)(s - name);
        if (s >= e || *s != '=')
            return expfmt_lex_fail_got(p, err, s, "expected '=' after the label name");
        s++;
        if (s >= e || *s != '"')
            return expfmt_lex_fail_got(p, err, s, "expected '\"' to start the label value");
        const char *vtok = s, *value;
        size_t value_len;
        if ((rc = expfmt_lex_read_quoted(p, &s, &value, &value_len, "label value", err)) < 0)
            return rc;
        if ((rc = expfmt_lex_check_utf8(p, vtok, value, value_len, "label value", err)) < 0)
            return rc;
        if (*used == p->labels_cap && (rc = expfmt_lex_labels_grow(p, err)) < 0)
            return rc;
        struct expfmt_label *l = &p->labels[(*used)++];
        l->name = name;
        l->name_len = name_len;
        l->value = value;
        l->value_len = value_len;
        if (s < e && *s == '}')
            break;
        if (s >= e || *s != ',')
            return expfmt_lex_fail_got(p, err, s, "expected ',' or '}' after the label value");
        s++;
    }
    *ps = s + 1;
    return 0;
}

static const struct expfmt_label *find_label(const struct expfmt_label *l, size_t n,
                                             const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (name_eq(l[i].name, l[i].name_len, name, len))
            return &l[i];
    return NULL;
}

/* A token up to the next ' ' or the end of the line. */
static const char *token_end(const char *s, const char *e)
{
    if (s >= e)
        return e;
    const char *sp = memchr(s, ' ', (size_t)(e - s));
    return sp ? sp : e;
}

static double canonical_nan(double v)
{
    return v != v ? bs_float_from_bits(OM_NORMAL_NAN_BITS) : v;
}

/* Syntax of a sample line: name, labels, value, timestamp (kept in
 * *ts_sec too), exemplar. */
static int parse_sample_syntax(struct expfmt_parser *p, double *ts_sec, struct bs_error *err)
{
    const char *s = p->line, *e = p->line_end, *start = s;
    struct expfmt_series *se = &p->series;
    size_t used = 0;
    int rc;

    memset(se, 0, sizeof *se);
    if (!is_mstart(*s))
        return expfmt_lex_fail_got(p, err, s,
                                   "expected a metric name or '#' at the start of the line");
    for (s++; s < e && is_mrest(*s); s++)
        ;
    se->name = start;
    se->name_len = (size_t)(s - start);
    if (s < e && *s == '{' && (rc = parse_labels(p, &s, &used, err)) < 0)
        return rc;
    se->series_text = start;
    se->series_text_len = (size_t)(s - start);
    se->nlabels = used;
    if (used && (rc = expfmt_lex_check_duplicates(p, p->labels, used, err)) < 0)
        return rc;
    if (s >= e || *s != ' ')
        return expfmt_lex_fail_got(p, err, s,
                                   se->nlabels || s[-1] == '}'
                                       ? "expected ' ' and a value after the labels"
                                       : "expected '{' or ' ' and a value after the metric name");

    /* Value. */
    const char *v = ++s;
    s = token_end(s, e);
    if (s == v)
        return expfmt_lex_fail_got(p, err, v, "expected a value");
    if (!om_number(v, (size_t)(s - v), true, &se->value))
        return fail_quoted(p, err, v, v, (size_t)(s - v), "invalid value");
    se->value = canonical_nan(se->value);

    /* Timestamp. */
    if (s < e && (s + 1 >= e || s[1] != '#')) {
        const char *t = ++s;
        s = token_end(s, e);
        if (s == t)
            return expfmt_lex_fail_got(p, err, t, "expected a timestamp or '#'");
        if (!om_number(t, (size_t)(s - t), false, ts_sec))
            return fail_quoted(p, err, t, t, (size_t)(s - t),
                               "invalid timestamp (float seconds, not NaN or Inf)");
        se->has_timestamp = true;
        se->timestamp_ms = seconds_to_ms(*ts_sec);
    }
    if (s >= e)
        goto done;

    /* Exemplar: " # {labels} value [timestamp]". */
    s++;
    if (s >= e || *s != '#')
        return expfmt_lex_fail_got(p, err, s, "expected '#' to start an exemplar");
    s++;
    if (s >= e || *s != ' ')
        return expfmt_lex_fail_got(p, err, s, "expected ' ' after the exemplar's '#'");
    s++;
    if (s >= e || *s != '{')
        return expfmt_lex_fail_got(p, err, s, "expected '{' to start the exemplar's labels");
    size_t ex0 = used;
    const char *lb = s;
    if ((rc = parse_labels(p, &s, &used, err)) < 0)
        return rc;
    struct expfmt_exemplar *x = &se->exemplar;
    x->nlabels = used - ex0;
    if (x->nlabels && (rc = expfmt_lex_check_duplicates(p, p->labels + ex0, x->nlabels, err)) < 0)
        return rc;
    size_t runes = 0;
    for (size_t i = ex0; i < used; i++)
        runes += rune_count(p->labels[i].name, p->labels[i].name_len) +
                 rune_count(p->labels[i].value, p->labels[i].value_len);
    if (runes > OM_EXEMPLAR_MAX_RUNES)
        return bs_error_set(err, BS_EPARSE,
                            "line %zu, column %zu: exemplar labels have %zu characters of names "
                            "and values, more than the %d allowed",
                            p->lineno, expfmt_lex_column(p, lb), runes, OM_EXEMPLAR_MAX_RUNES);
    if (s >= e || *s != ' ')
        return expfmt_lex_fail_got(p, err, s,
                                   "expected ' ' and a value after the exemplar's labels");
    const char *xv = ++s;
    s = token_end(s, e);
    if (s == xv)
        return expfmt_lex_fail_got(p, err, xv, "expected the exemplar's value");
    if (!om_number(xv, (size_t)(s - xv), true, &x->value))
        return fail_quoted(p, err, xv, xv, (size_t)(s - xv), "invalid exemplar value");
    x->value = canonical_nan(x->value);
    if (s < e) {
        const char *xt = ++s;
        s = token_end(s, e);
        double xsec;
        if (s == xt)
            return expfmt_lex_fail_got(p, err, xt, "expected the exemplar's timestamp");
        if (!om_number(xt, (size_t)(s - xt), false, &xsec))
            return fail_quoted(p, err, xt, xt, (size_t)(s - xt),
                               "invalid exemplar timestamp (float seconds, not NaN or Inf)");
        if (s < e)
            return expfmt_lex_fail_got(p, err, s,
                                       "expected the end of the line after the exemplar");
        x->has_timestamp = true;
        x->timestamp_ms = seconds_to_ms(xsec);
    }
    se->has_exemplar = true;
done:
    /* Only now: the label array may have moved while growing. */
    se->labels = se->nlabels ? p->labels : NULL;
    if (se->has_exemplar)
        se->exemplar.labels = se->exemplar.nlabels ? p->labels + se->nlabels : NULL;
    return 0;
}

static int label_ptr_cmp(const void *a, const void *b)
{
    const struct expfmt_label *x = *(const struct expfmt_label *const *)a;
    const struct expfmt_label *y = *(const struct expfmt_label *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* Build om->key: the sample's labels minus skip (may be NULL), sorted, each
 * name and value with a varint length prefix. Info families use one empty
 * key. */
static int group_key(struct expfmt_parser *p, struct expfmt_om *om, const struct expfmt_label *skip)
{
    const struct expfmt_series *se = &p->series;
    bs_buf_reset(&om->key);
    if (om->type == EXPFMT_TYPE_INFO || se->nlabels == 0)
        return 0;
    if (se->nlabels > om->sorted_cap) {
        size_t cap = om->sorted_cap ? om->sorted_cap : 16;
        while (cap < se->nlabels)
            cap *= 2;
        const struct expfmt_label **ns = realloc(om->sorted, cap * sizeof *ns);
        if (!ns)
            return BS_ENOMEM;
        om->sorted = ns;
        om->sorted_cap = cap;
    }
    size_t n = 0;
    for (size_t i = 0; i < se->nlabels; i++)
        if (&se->labels[i] != skip)
            om->sorted[n++] = &se->labels[i];
    if (n > 8) {
        qsort(om->sorted, n, sizeof *om->sorted, label_ptr_cmp);
    } else {
        for (size_t i = 1; i < n; i++) /* insertion sort: the common few labels */
            for (size_t j = i; j > 0 && label_ptr_cmp(&om->sorted[j - 1], &om->sorted[j]) > 0;
                 j--) {
                const struct expfmt_label *tmp = om->sorted[j];
                om->sorted[j] = om->sorted[j - 1];
                om->sorted[j - 1] = tmp;
            }
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t v[20];
        const struct expfmt_label *l = om->sorted[i];
        size_t k = bs_put_uvarint(v, l->name_len);
        k += bs_put_uvarint(v + k, l->value_len);
        int rc = bs_buf_append(&om->key, v, k);
        if (rc == 0)
            rc = bs_buf_append(&om->key, l->name, l->name_len);
        if (rc == 0)
            rc = bs_buf_append(&om->key, l->value, l->value_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int sample_fail(const struct expfmt_parser *p, struct bs_error *err, const char *why)
{
    const struct expfmt_series *se = &p->series;
    return bs_error_set(err, BS_EPARSE, "line %zu: sample \"%.*s\" %s", p->lineno,
                        (int)se->series_text_len, se->series_text, why);
}

/* Parse a number held in a label value that must be one: le and quantile.
 * Infinities must be spelled "+Inf"/"-Inf". */
static bool label_number(const struct expfmt_label *l, double *out)
{
    if (!om_number(l->value, l->value_len, true, out))
        return false;
    if (isinf(*out))
        return name_eq(l->value, l->value_len, *out > 0 ? "+Inf" : "-Inf", 4);
    return true;
}

/* The rules of a sample within its family. */
static int check_sample(struct expfmt_parser *p, struct expfmt_om *om, enum om_suffix suf,
                        double ts, struct bs_error *err)
{
    const struct expfmt_series *se = &p->series;
    const struct expfmt_label *skip = NULL;
    enum expfmt_metric_type t = om->type;
    double v = se->value, le = 0;
    char why[200];
    int rc;

    if (t == EXPFMT_TYPE_STATESET) {
        skip = find_label(se->labels, se->nlabels, om->fam, om->fam_len);
        if (!skip) {
            snprintf(why, sizeof why, "of stateset \"%.*s\" needs a label named after the family",
                     (int)om->fam_len, om->fam);
            return sample_fail(p, err, why);
        }
    }
    if (is_histogram(t) && suf == SUF_BUCKET) {
        skip = find_label(se->labels, se->nlabels, "le", 2);
        if (!skip)
            return sample_fail(p, err, "is a bucket without an le label");
        if (!label_number(skip, &le) || le != le)
            return sample_fail(p, err,
                               "has an invalid le label: a number, not NaN, infinity as \"+Inf\"");
    }
    if (t == EXPFMT_TYPE_SUMMARY && suf == SUF_NONE) {
        double q;
        skip = find_label(se->labels, se->nlabels, "quantile", 8);
        if (!skip)
            return sample_fail(p, err, "is a summary quantile without a quantile label");
        if (!label_number(skip, &q) || !(q >= 0 && q <= 1))
            return sample_fail(p, err, "has an invalid quantile label: a number from 0 to 1");
    }

    /* Groups and their timestamps. */
    if ((rc = group_key(p, om, skip)) < 0)
        return fail_nomem(p, err, rc);
    bool same_group = om->have_group && om->key.len == om->group.len &&
                      (om->key.len == 0 || memcmp(om->key.data, om->group.data, om->key.len) == 0);
    bool same_ts = same_group && om->group_has_ts == se->has_timestamp &&
                   (!se->has_timestamp || om->group_ts == ts);
    if (same_group) {
        if (om->group_has_ts != se->has_timestamp)
            return sample_fail(p, err,
                               "mixes samples with and without timestamps within one group");
        if (se->has_timestamp && ts < om->group_ts && t != EXPFMT_TYPE_INFO)
            return sample_fail(p, err, "has a timestamp before the previous one of its group");
    } else {
        size_t first = 0;
        rc = set_add(&om->groups, om->key.data ? om->key.data : "", om->key.len, p->lineno, &first);
        if (rc < 0)
            return fail_nomem(p, err, rc);
        if (rc == 1) {
            snprintf(why, sizeof why,
                     "belongs to the group that started at line %zu; the samples of a group "
                     "must be contiguous",
                     first);
            return sample_fail(p, err, why);
        }
        struct bs_buf swap = om->group;
        om->group = om->key;
        om->key = swap;
    }
    om->have_group = true;
    om->group_has_ts = se->has_timestamp;
    om->group_ts = ts;

    /* Values. */
    if (t == EXPFMT_TYPE_STATESET && v != 0 && v != 1)
        return sample_fail(p, err, "of a stateset must have the value 0 or 1");
    if (t == EXPFMT_TYPE_INFO && v != 1)
        return sample_fail(p, err, "of an info metric must have the value 1");
    if (t == EXPFMT_TYPE_SUMMARY && suf == SUF_NONE && v < 0)
        return sample_fail(p, err, "is a quantile and must not be negative");
    bool counter_like = suf == SUF_TOTAL || suf == SUF_SUM || suf == SUF_COUNT ||
                        suf == SUF_BUCKET || suf == SUF_GCOUNT || suf == SUF_GSUM;
    if (counter_like && v != v)
        return sample_fail(p, err, "is counter-like and must not be NaN");
    if (counter_like && suf != SUF_GSUM && v < 0)
        return sample_fail(p, err, "is counter-like and must not be negative");
    if (se->has_exemplar && suf != SUF_TOTAL && suf != SUF_BUCKET)
        return sample_fail(p, err,
                           "has an exemplar; only counter _total and histogram _bucket samples "
                           "may have one");

    /* Histogram segments: one group at one timestamp. */
    if (is_histogram(t)) {
        struct om_hist *h = &om->h;
        if (h->active && !same_ts) {
            if ((rc = hist_check(p, om, err)) < 0) {
                h->active = false;
                return rc;
            }
        }
        if (!h->active || !same_ts) {
            memset(h, 0, sizeof *h);
            h->active = true;
            h->lineno = p->lineno;
        }
        switch (suf) {
        case SUF_BUCKET:
            if (le < 0)
                h->neg_buckets = true;
            if (h->has_bucket && le <= h->bucket)
                return sample_fail(p, err, "has an le not greater than the previous bucket's");
            if (v < h->value)
                return sample_fail(p, err, "has a value lower than the previous bucket's");
            h->has_bucket = true;
            h->bucket = le;
            h->value = v;
            break;
        case SUF_COUNT:
        case SUF_GCOUNT:
            h->has_count = true;
            h->count = v;
            break;
        case SUF_SUM:
            h->has_sum = true;
            break;
        case SUF_GSUM:
            h->has_gsum = true;
            h->neg_gsum = h->neg_gsum || v < 0;
            break;
        default:
            break;
        }
    }
    return 0;
}

static int parse_sample(struct expfmt_parser *p, struct expfmt_om *om, struct bs_error *err)
{
    double ts = 0;
    int rc = parse_sample_syntax(p, &ts, err);
    if (rc < 0)
        return rc;
    struct expfmt_series *se = &p->series;
    enum om_suffix suf = om->open ? suffix_of(om, se->name, se->name_len) : SUF_OTHER;
    if (suf == SUF_OTHER || !(allowed_suffixes(om->type) & BIT(suf))) {
        if ((rc = family_end(p, om, err)) < 0)
            return rc;
        family_start(p, om, se->name, se->name_len);
        suf = SUF_NONE;
    }
    om->has_samples = true;
    if ((rc = check_sample(p, om, suf, ts, err)) < 0)
        return rc;
    se->type = om->type;
    se->family = om->fam;
    se->family_len = om->fam_len;
    se->created = suf == SUF_CREATED;
    return 0;
}

/* ---------------------------------------------------------------- public */

int expfmt_om_next(struct expfmt_parser *p, enum expfmt_entry *kind, struct bs_error *err)
{
    *kind = EXPFMT_EOF;
    if (!p->om) {
        p->om = calloc(1, sizeof *p->om);
        if (!p->om)
            return bs_error_set(err, BS_ENOMEM, "out of memory for the OpenMetrics parser");
    }
    struct expfmt_om *om = p->om;
    for (;;) {
        if (om->done)
            return 0;
        if (p->pos >= p->len) {
            om->done = true;
            bool nl = p->len == 0 || p->buf[p->len - 1] == '\n';
            return bs_error_set(err, BS_EPARSE,
                                "line %zu: expected \"# EOF\" as the last line, got the end of "
                                "the input",
                                p->lineno + nl);
        }
        const char *line = p->buf + p->pos;
        size_t rest = p->len - p->pos;
        const char *nl = memchr(line, '\n', rest);
        p->line = line;
        p->line_end = nl ? nl : line + rest;
        p->pos = nl ? (size_t)(nl - p->buf) + 1 : p->len;
        p->lineno++;
        p->meta_name = p->meta_text = NULL;
        p->meta_name_len = p->meta_text_len = 0;
        if (line == p->line_end)
            return bs_error_set(err, BS_EPARSE, "line %zu: blank line; OpenMetrics allows none",
                                p->lineno);
        int rc;
        if (*line != '#') {
            if ((rc = parse_sample(p, om, err)) < 0)
                return rc;
            *kind = EXPFMT_SERIES;
            return 0;
        }
        bool eof = false;
        if ((rc = parse_meta(p, om, kind, &eof, err)) < 0)
            return rc;
        if (eof) {
            om->done = true;
            if ((rc = family_end(p, om, err)) < 0)
                return rc;
            if (p->pos < p->len)
                return bs_error_set(err, BS_EPARSE,
                                    "line %zu: text after \"# EOF\", which must be the last line",
                                    p->lineno + 1);
            return 0;
        }
        if (*kind != EXPFMT_EOF)
            return 0;
        /* A UNIT line: no entry of its own. */
    }
}

void expfmt_om_fini(struct expfmt_parser *p)
{
    struct expfmt_om *om = p->om;
    if (!om)
        return;
    bs_buf_fini(&om->group);
    bs_buf_fini(&om->key);
    bs_buf_fini(&om->tmp);
    set_fini(&om->groups);
    set_fini(&om->names);
    free(om->sorted);
    free(om);
    p->om = NULL;
}

void expfmt_parser_unit(const struct expfmt_parser *p, const char **family, size_t *family_len,
                        const char **unit, size_t *unit_len)
{
    const struct expfmt_om *om = p->om;
    bool open = om && om->open;
    if (family)
        *family = open ? om->fam : "";
    if (family_len)
        *family_len = open ? om->fam_len : 0;
    if (unit)
        *unit = open ? om->unit : "";
    if (unit_len)
        *unit_len = open ? om->unit_len : 0;
}
