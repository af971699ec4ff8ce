/* SPDX-License-Identifier: Apache-2.0
 *
 * Label matchers: =, !=, =~ and !~.
 *
 * Regexes follow Prometheus: fully anchored (the pattern must match the
 * whole value) and '.' matches newlines too. We compile with PCRE2 using
 * PCRE2_ANCHORED | PCRE2_ENDANCHORED rather than wrapping the text in
 * ^(?:...)$, so an unbalanced ')' is still a syntax error and error offsets
 * point into the user's own text. PCRE2_DOLLAR_ENDONLY makes '$' mean end
 * of text as in RE2. JIT is used when it is available.
 *
 * Go's regexp reads each byte that is not valid UTF-8 as U+FFFD. We do the
 * same: a value that fails our UTF-8 check is copied with every bad byte
 * replaced by EF BF BD before PCRE2 sees it; valid values (nearly all) are
 * matched in place with PCRE2_NO_UTF_CHECK.
 *
 * Most regexes in practice are simple, so they never reach PCRE2:
 *   ".*"                  anything
 *   ".+"                  anything but ""
 *   "literal"             string equality (escaped punctuation allowed)
 *   "a|b|c"               one of a few literals
 *   "lit.*", ".*lit", ".*lit.*"   prefix, suffix, substring
 *
 * Patterns that are not valid UTF-8 always go to PCRE2, which rejects
 * them, as Go does.
 *
 * A compiled matcher is immutable, so any number of threads may use it.
 * PCRE2 needs a match-data block per match; each thread keeps one in
 * thread-local storage, released by a pthread key destructor at exit.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "labels/labels_int.h"

enum fast_kind {
    FAST_NONE,       /* use PCRE2 */
    FAST_ANY,        /* .* */
    FAST_NONEMPTY,   /* .+ */
    FAST_LITERAL,    /* == lits[0] */
    FAST_SET,        /* one of lits[] */
    FAST_PREFIX,     /* lits[0].* */
    FAST_SUFFIX,     /* .*lits[0] */
    FAST_CONTAINS,   /* .*lits[0].* */
};

struct labels_matcher {
    enum labels_match_type type;
    enum fast_kind fast;
    char *name;
    char *value;
    pcre2_code *re;
    char **lits;          /* literals of the fast paths, each NUL-terminated */
    size_t *lit_lens;
    size_t nlits;
    bool matches_empty;
};

/* ------------------------------------------------- thread-local match data */

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static bool md_key_ok;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

static void md_key_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
}

/* The calling thread's match data, or NULL when none can be had (then the
 * caller allocates one for this call). */
static pcre2_match_data *md_get(void)
{
    pcre2_match_data *md;
    pthread_once(&md_once, md_key_init);
    if (!md_key_ok)
        return NULL;
    md = pthread_getspecific(md_key);
    if (!md) {
        md = pcre2_match_data_create(1, NULL);
        if (md && pthread_setspecific(md_key, md) != 0) {
            pcre2_match_data_free(md);
            md = NULL;
        }
    }
    return md;
}

/* -------------------------------------------------------- literal analysis */

static bool is_meta(char c)
{
    return strchr("\\.+*?()|[]{}^$", c) != NULL;
}

/* If s[0..n) is a plain literal (metacharacters only as "\<punct>"), write
 * its unescaped text to out (room for n+1) and return true. */
static bool unescape_literal(const char *s, size_t n, char *out, size_t *out_len)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            if (i + 1 >= n)
                return false;
            c = s[++i];
            /* Only punctuation escapes are literal; \d, \w, \Q... are not. */
            if (!((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
                  (c >= '{' && c <= '~')))
                return false;
        } else if (is_meta(c)) {
            return false;
        }
        out[w++] = c;
    }
    out[w] = '\0';
    *out_len = w;
    return true;
}

static int add_lit(struct labels_matcher *m, const char *s, size_t n, size_t max)
{
    char *l = malloc(n + 1);
    size_t len;
    if (!l)
        return BS_ENOMEM;
    if (!unescape_literal(s, n, l, &len) || m->nlits >= max) {
        free(l);
        return 1;
    }
    m->lits[m->nlits] = l;
    m->lit_lens[m->nlits] = len;
    m->nlits++;
    return 0;
}

static void free_lits(struct labels_matcher *m)
{
    for (size_t i = 0; i < m->nlits; i++)
        free(m->lits[i]);
    free(m->lits);
    free(m->lit_lens);
    m->lits = NULL;
    m->lit_lens = NULL;
    m->nlits = 0;
}

/* Try to recognise one of the fast forms. Returns 0 (fast or not), or
 * BS_ENOMEM. */
static int analyse(struct labels_matcher *m)
{
    const char *re = m->value;
    size_t n = strlen(re), nalts = 1;
    int rc;

    if (!labels_utf8_valid(re, n))
        return 0;
    if (strcmp(re, ".*") == 0) {
        m->fast = FAST_ANY;
        return 0;
    }
    if (strcmp(re, ".+") == 0) {
        m->fast = FAST_NONEMPTY;
        return 0;
    }
    /* Count top-level alternatives: any '|' not escaped. A '(' or '['
     * anywhere disqualifies the set form anyway. */
    for (size_t i = 0; i < n; i++) {
        if (re[i] == '\\')
            i++;
        else if (re[i] == '|')
            nalts++;
    }
    m->lits = calloc(nalts, sizeof(*m->lits));
    m->lit_lens = calloc(nalts, sizeof(*m->lit_lens));
    if (!m->lits || !m->lit_lens) {
        free_lits(m);
        return BS_ENOMEM;
    }
    if (nalts > 1) {
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && re[i] == '\\') {
                i++;
                continue;
            }
            if (i == n || re[i] == '|') {
                rc = add_lit(m, re + start, i - start, nalts);
                if (rc) {
                    free_lits(m);
                    return rc < 0 ? rc : 0;
                }
                start = i + 1;
            }
        }
        m->fast = FAST_SET;
        return 0;
    }
    {
        size_t b = 0, e = n;
        bool pre = false, suf = false;
        enum fast_kind kind = FAST_LITERAL;
        if (n >= 2 && re[0] == '.' && re[1] == '*') {
            b = 2;
            pre = true;
        }
        /* A trailing ".*" but not an escaped "\.*". */
        if (e - b >= 2 && re[e - 2] == '.' && re[e - 1] == '*') {
            size_t bs = 0;
            for (size_t k = e - 2; k > b && re[k - 1] == '\\'; k--)
                bs++;
            if (bs % 2 == 0) {
                e -= 2;
                suf = true;
            }
        }
        if (pre && suf)
            kind = FAST_CONTAINS;
        else if (pre)
            kind = FAST_SUFFIX;
        else if (suf)
            kind = FAST_PREFIX;
        rc = add_lit(m, re + b, e - b, 1);
        if (rc) {
            free_lits(m);
            return rc < 0 ? rc : 0;
        }
        m->fast = kind;
    }
    return 0;
}

/* ------------------------------------------------------------- matching */

/* Copy of v[0..n) with each invalid UTF-8 byte replaced by U+FFFD, as Go's
 * regexp decodes it. Returns a malloc'd string and its length, or NULL. */
static char *utf8_sanitize(const char *v, size_t n, size_t *out_n)
{
    const unsigned char *p = (const unsigned char *)v;
    char *out;
    size_t w = 0;

    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t l = p[i] < 0x80 ? 1 : labels_utf8_len(p + i, n - i);
        if (l == 0) {
            memcpy(out + w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        } else {
            memcpy(out + w, v + i, l);
            w += l;
            i += l;
        }
    }
    out[w] = '\0';
    *out_n = w;
    return out;
}

static bool pcre_matches(const pcre2_code *re, const char *v, size_t n)
{
    pcre2_match_data *md = md_get(), *own = NULL;
    char *fixed = NULL;
    int rc;

    if (!labels_utf8_valid(v, n)) {
        fixed = utf8_sanitize(v, n, &n);
        if (!fixed)
            return false;
        v = fixed;
    }
    if (!md) {
        own = md = pcre2_match_data_create(1, NULL);
        if (!md) {
            free(fixed);
            return false;
        }
    }
    rc = pcre2_match(re, (PCRE2_SPTR)v, n, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    if (own)
        pcre2_match_data_free(own);
    free(fixed);
    /* rc == 0 means it matched but the ovector was too small: still a match.
     * Negative codes are "no match" or a resource limit: both count as no. */
    return rc >= 0;
}

static bool re_matches(const struct labels_matcher *m, const char *v)
{
    size_t n = strlen(v);
    switch (m->fast) {
    case FAST_ANY:
        return true;
    case FAST_NONEMPTY:
        return n > 0;
    case FAST_LITERAL:
        return n == m->lit_lens[0] && memcmp(v, m->lits[0], n) == 0;
    case FAST_SET:
        for (size_t i = 0; i < m->nlits; i++)
            if (n == m->lit_lens[i] && memcmp(v, m->lits[i], n) == 0)
                return true;
        return false;
    case FAST_PREFIX:
        return n >= m->lit_lens[0] && memcmp(v, m->lits[0], m->lit_lens[0]) == 0;
    case FAST_SUFFIX:
        return n >= m->lit_lens[0] &&
               memcmp(v + n - m->lit_lens[0], m->lits[0], m->lit_lens[0]) == 0;
    case FAST_CONTAINS:
        return m->lit_lens[0] == 0 || memmem(v, n, m->lits[0], m->lit_lens[0]) != NULL;
    case FAST_NONE:
        break;
    }
    return pcre_matches(m->re, v, n);
}

bool labels_matcher_matches(const struct labels_matcher *m, const char *value)
{
    if (!value)
        value = "";
    switch (m->type) {
    case LABELS_MATCH_EQ:
        return strcmp(value, m->value) == 0;
    case LABELS_MATCH_NEQ:
        return strcmp(value, m->value) != 0;
    case LABELS_MATCH_RE:
        return re_matches(m, value);
    case LABELS_MATCH_NRE:
        return !re_matches(m, value);
    }
    return false;
}

bool labels_matcher_matches_labels(const struct labels_matcher *m, const struct labels *ls)
{
    return labels_matcher_matches(m, labels_get(ls, m->name));
}

/* ------------------------------------------------------------ lifecycle */

int labels_matcher_new(struct labels_matcher **out, enum labels_match_type type, const char *name,
                       const char *value, struct bs_error *err)
{
    struct labels_matcher *m;
    int rc;

    *out = NULL;
    if (!name || !value || type < LABELS_MATCH_EQ || type > LABELS_MATCH_NRE)
        return bs_error_set(err, BS_EINVAL, "invalid matcher");
    m = calloc(1, sizeof(*m));
    if (!m)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    m->type = type;
    m->fast = FAST_NONE;
    m->name = strdup(name);
    m->value = strdup(value);
    if (!m->name || !m->value) {
        rc = bs_error_set(err, BS_ENOMEM, "out of memory");
        goto fail;
    }
    if (type == LABELS_MATCH_RE || type == LABELS_MATCH_NRE) {
        rc = analyse(m);
        if (rc) {
            bs_error_set(err, rc, "out of memory");
            goto fail;
        }
        if (m->fast == FAST_NONE) {
            int errcode;
            PCRE2_SIZE erroff;
            uint32_t opts = PCRE2_UTF | PCRE2_DOTALL | PCRE2_ANCHORED | PCRE2_ENDANCHORED |
                            PCRE2_DOLLAR_ENDONLY;
            m->re = pcre2_compile((PCRE2_SPTR)value, PCRE2_ZERO_TERMINATED, opts, &errcode,
                                  &erroff, NULL);
            if (!m->re) {
                PCRE2_UCHAR msg[256];
                if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
                    strcpy((char *)msg, "unknown error");
                rc = bs_error_set(err, BS_EPARSE,
                                  "error parsing regexp: %s at offset %zu in \"%.200s\"",
                                  (const char *)msg, (size_t)erroff, value);
                goto fail;
            }
            /* JIT is an optimisation: if unavailable, the interpreter runs. */
            (void)pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE);
        }
    }
    switch (type) {
    case LABELS_MATCH_EQ: m->matches_empty = value[0] == '\0'; break;
    case LABELS_MATCH_NEQ: m->matches_empty = value[0] != '\0'; break;
    case LABELS_MATCH_RE: m->matches_empty = re_matches(m, ""); break;
    case LABELS_MATCH_NRE: m->matches_empty = !re_matches(m, ""); break;
    }
    *out = m;
    return 0;
fail:
    labels_matcher_free(m);
    return rc;
}

void labels_matcher_free(struct labels_matcher *m)
{
    if (!m)
        return;
    free_lits(m);
    if (m->re)
        pcre2_code_free(m->re);
    free(m->name);
    free(m->value);
    free(m);
}

enum labels_match_type labels_matcher_type(const struct labels_matcher *m)
{
    return m->type;
}

const char *labels_matcher_name(const struct labels_matcher *m)
{
    return m->name;
}

const char *labels_matcher_value(const struct labels_matcher *m)
{
    return m->value;
}

bool labels_matcher_matches_empty(const struct labels_matcher *m)
{
    return m->matches_empty;
}

int labels_matcher_format(const struct labels_matcher *m, struct bs_buf *out)
{
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    int rc = labels_put_name(out, m->name);
    if (rc == 0)
        rc = bs_buf_puts(out, ops[m->type]);
    if (rc == 0)
        rc = labels_quote(out, m->value, strlen(m->value));
    return rc;
}
