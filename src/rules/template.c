/* SPDX-License-Identifier: Apache-2.0
 *
 * Alert templates: the subset of Go's text/template that Prometheus rule
 * files use, with Prometheus's function map, written from the languages'
 * documented behaviour.
 *
 * Design. A template is parsed into a small tree in an arena (one arena per
 * expansion, freed at once): lists of text, actions, if/range/with with
 * optional else (and "else if"/"else with" chains), break/continue.
 * Actions hold a pipeline: optional variable declarations or assignment,
 * then commands separated by '|', the previous command's result passed as
 * the last argument of the next. Operands are function names, fields
 * (.Labels.x), variables with fields ($labels.x), '.', string/raw-string/
 * number/bool/nil literals and parenthesised pipelines (with fields).
 *
 * As Prometheus does, the text is parsed with a prefix that declares
 * $labels, $externalLabels, $externalURL and $value, so the positions in
 * error messages count that prefix too, exactly like Prometheus's; and
 * missing map keys yield "" (missingkey=zero).
 *
 * Values are a tagged union: nil, bool, int, float, string, string map
 * (labels), query result (a vector of samples), sample, and the root data.
 * Number literals are float when their text has '.', 'e' or 'E', else int
 * (Go's ideal constants as seen by interface{} parameters), so
 * `gt $value 1` fails with "incompatible types for comparison" exactly as
 * in Go. Output is capped (TMPL_MAX_OUTPUT) and loops are bounded by their
 * data; recursion depth is capped.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rules/rules_int.h"

#define TMPL_MAX_OUTPUT (1u << 20)
#define TMPL_MAX_DEPTH 100
#define TMPL_PREFIX "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

/* ------------------------------------------------------------- numbers */

static size_t fmt_special(double v, char *dst, size_t cap)
{
    if (isnan(v))
        return (size_t)snprintf(dst, cap, "NaN");
    if (isinf(v))
        return (size_t)snprintf(dst, cap, v > 0 ? "+Inf" : "-Inf");
    return 0;
}

size_t rules_fmt_4g(double v, char *dst, size_t cap)
{
    size_t n = fmt_special(v, dst, cap);
    if (n)
        return n;
    return (size_t)snprintf(dst, cap, "%.4g", v);
}

size_t rules_fmt_float_e(double v, char *dst, size_t cap)
{
    size_t n = fmt_special(v, dst, cap);
    if (n)
        return n;
    char tmp[64];
    for (int p = 0; p < 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    return (size_t)snprintf(dst, cap, "%s", tmp);
}

/* --------------------------------------------------------------- values */

enum vk { V_NIL, V_BOOL, V_INT, V_FLOAT, V_STRING, V_MAP, V_VEC, V_SAMPLE, V_DATA };

struct tmap {
    struct label *v;
    size_t n;
};
struct tsample {
    struct tmap labels;
    double value;
};
struct tvec {
    struct tsample **v;
    size_t n;
};

struct tval {
    enum vk k;
    bool b;
    int64_t i;
    double f;
    const char *s;
    size_t n;
    const struct tmap *map;
    const struct tvec *vec;
    const struct tsample *smp;
};

static const char *type_name(const struct tval *v)
{
    switch (v->k) {
    case V_NIL: return "<nil>";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float64";
    case V_STRING: return "string";
    case V_MAP: return "map[string]string";
    case V_VEC: return "template.queryResult";
    case V_SAMPLE: return "*template.sample";
    case V_DATA: return "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }";
    }
    return "?";
}

/* ----------------------------------------------------------------- tree */

enum ak { A_IDENT, A_FIELD, A_VAR, A_DOT, A_STRING, A_NUMBER, A_BOOL, A_NIL, A_PIPE };

struct tpipe;
struct targ {
    enum ak k;
    size_t pos, len;         /* source span, for messages */
    const char *s;           /* ident / var name / string value */
    size_t slen;
    const char **fields;
    size_t nfields;
    struct tval num;         /* A_NUMBER / A_BOOL */
    struct tpipe *pipe;
};
struct tcmd {
    size_t pos, len;
    struct targ **args;
    size_t nargs;
};
struct tpipe {
    size_t pos;
    const char *decl[2];
    int ndecl;
    bool assign;
    struct tcmd **cmds;
    size_t ncmds;
};

enum nk { N_TEXT, N_ACTION, N_IF, N_RANGE, N_WITH, N_BREAK, N_CONTINUE };
struct tlist;
struct tnode {
    enum nk k;
    size_t pos;
    const char *text;
    size_t tlen;
    struct tpipe *pipe;
    struct tlist *list, *elselist;
};
struct tlist {
    struct tnode **v;
    size_t n, cap;
};

/* ------------------------------------------------------------- functions */

struct xstate;
typedef int (*tfunc)(struct xstate *x, struct tval *args, size_t nargs, struct tval *out);
struct fdef {
    const char *name;
    tfunc fn;
    int min, max;            /* max < 0: variadic */
    bool lazy;               /* and/or: arguments evaluated by the function */
};
static const struct fdef *find_func(const char *name, size_t n);

/* --------------------------------------------------------------- parser */

struct parser {
    const char *name;
    const char *src;
    size_t n, pos;
    struct bs_arena *arena;
    char err[512];
    bool failed;
    const char **vars;       /* declared variable names in scope */
    size_t nvars, cvars;
    int range_depth;
};

static int line_of(const char *src, size_t pos)
{
    int l = 1;
    for (size_t i = 0; i < pos && src[i]; i++)
        if (src[i] == '\n')
            l++;
    return l;
}

static bool perr(struct parser *p, const char *fmt, ...) BS_PRINTF(2, 3);
static bool perr(struct parser *p, const char *fmt, ...)
{
    if (p->failed)
        return false;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, sizeof(p->err), "template: %s:%d: %s", p->name, line_of(p->src, p->pos), msg);
    p->failed = true;
    return false;
}

static void *palloc(struct parser *p, size_t n)
{
    void *m = bs_arena_alloc(p->arena, n);
    if (!m)
        abort();
    memset(m, 0, n);
    return m;
}

static void list_add(struct parser *p, struct tlist *l, struct tnode *nd)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 8;
        struct tnode **v = palloc(p, nc * sizeof(*v));
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(*v));
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = nd;
}

static void push_var(struct parser *p, const char *name)
{
    if (p->nvars == p->cvars) {
        p->cvars = p->cvars ? 2 * p->cvars : 16;
        p->vars = bs_xrealloc(p->vars, p->cvars * sizeof(*p->vars));
    }
    p->vars[p->nvars++] = name;
}

static bool var_known(struct parser *p, const char *name)
{
    for (size_t i = p->nvars; i-- > 0;)
        if (strcmp(p->vars[i], name) == 0)
            return true;
    return false;
}

static void skip_space(struct parser *p)
{
    while (p->pos < p->n && (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' ||
                             p->src[p->pos] == '\r' || p->src[p->pos] == '\n'))
        p->pos++;
}

/* At a right delimiter (with optional trim marker)? */
static bool at_right(struct parser *p)
{
    const char *s = p->src + p->pos;
    size_t rem = p->n - p->pos;
    if (rem >= 2 && s[0] == '}' && s[1] == '}')
        return true;
    if (rem >= 3 && s[0] == '-' && s[1] == '}' && s[2] == '}' && p->pos > 0 &&
        isspace((unsigned char)p->src[p->pos - 1]))
        return true;
    return rem >= 4 && isspace((unsigned char)s[0]) && s[1] == '-' && s[2] == '}' && s[3] == '}';
}

static bool is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static bool eat_right(struct parser *p, bool *trim)
{
    skip_space(p);
    if (p->pos > 0 && p->pos + 2 < p->n && p->src[p->pos] == '-' && p->src[p->pos + 1] == '}' &&
        p->src[p->pos + 2] == '}' && isspace((unsigned char)p->src[p->pos - 1])) {
        p->pos += 3;
        *trim = true;
        return true;
    }
    if (p->pos + 1 < p->n && p->src[p->pos] == '}' && p->src[p->pos + 1] == '}') {
        p->pos += 2;
        *trim = false;
        return true;
    }
    if (p->pos >= p->n)
        return perr(p, "unclosed action");
    return perr(p, "unexpected \"%c\" in command", p->src[p->pos]);
}

static const char *pstrndup(struct parser *p, const char *s, size_t n)
{
    char *d = palloc(p, n + 1);
    memcpy(d, s, n);
    return d;
}

static struct tpipe *parse_pipeline(struct parser *p, bool allow_decl, bool in_parens);

/* Read ".a.b.c" field chain starting at p->pos (which is at '.'). */
static bool parse_fields(struct parser *p, struct targ *a)
{
    const char *tmp[32];
    size_t nf = 0;
    while (p->pos < p->n && p->src[p->pos] == '.' && p->pos + 1 < p->n &&
           (isalpha((unsigned char)p->src[p->pos + 1]) || p->src[p->pos + 1] == '_')) {
        size_t st = ++p->pos;
        while (p->pos < p->n && is_ident_char(p->src[p->pos]))
            p->pos++;
        if (nf == 32)
            return perr(p, "field chain too long");
        tmp[nf++] = pstrndup(p, p->src + st, p->pos - st);
    }
    if (nf) {
        a->fields = palloc(p, nf * sizeof(*a->fields));
        memcpy(a->fields, tmp, nf * sizeof(*tmp));
        a->nfields = nf;
    }
    return true;
}

static bool parse_string(struct parser *p, struct targ *a)
{
    char q = p->src[p->pos];
    struct bs_buf b;
    bs_buf_init(&b, 0);
    p->pos++;
    if (q == '`') {
        size_t st = p->pos;
        while (p->pos < p->n && p->src[p->pos] != '`')
            p->pos++;
        if (p->pos >= p->n)
            return perr(p, "unterminated raw quoted string");
        a->s = pstrndup(p, p->src + st, p->pos - st);
        a->slen = p->pos - st;
        p->pos++;
        a->k = A_STRING;
        return true;
    }
    while (p->pos < p->n && p->src[p->pos] != '"') {
        char c = p->src[p->pos++];
        if (c == '\n') {
            bs_buf_fini(&b);
            return perr(p, "unterminated quoted string");
        }
        if (c == '\\' && p->pos < p->n) {
            char e = p->src[p->pos++];
            switch (e) {
            case 'n': bs_buf_putc(&b, '\n'); break;
            case 't': bs_buf_putc(&b, '\t'); break;
            case 'r': bs_buf_putc(&b, '\r'); break;
            case 'a': bs_buf_putc(&b, '\a'); break;
            case 'b': bs_buf_putc(&b, '\b'); break;
            case 'f': bs_buf_putc(&b, '\f'); break;
            case 'v': bs_buf_putc(&b, '\v'); break;
            case '\\': bs_buf_putc(&b, '\\'); break;
            case '"': bs_buf_putc(&b, '"'); break;
            case '\'': bs_buf_putc(&b, '\''); break;
            case 'x': {
                unsigned v = 0;
                for (int i = 0; i < 2 && p->pos < p->n && isxdigit((unsigned char)p->src[p->pos]); i++)
                    v = v * 16 + (unsigned)(isdigit((unsigned char)p->src[p->pos]) ? p->src[p->pos] - '0' : (tolower((unsigned char)p->src[p->pos]) - 'a' + 10)), p->pos++;
                bs_buf_putc(&b, (char)v);
                break;
            }
            default:
                bs_buf_fini(&b);
                return perr(p, "invalid syntax");
            }
            continue;
        }
        bs_buf_putc(&b, c);
    }
    if (p->pos >= p->n) {
        bs_buf_fini(&b);
        return perr(p, "unterminated quoted string");
    }
    p->pos++;
    a->k = A_STRING;
    a->s = pstrndup(p, b.data ? b.data : "", b.len);
    a->slen = b.len;
    bs_buf_fini(&b);
    return true;
}

static bool parse_number(struct parser *p, struct targ *a)
{
    size_t st = p->pos;
    if (p->src[p->pos] == '+' || p->src[p->pos] == '-')
        p->pos++;
    while (p->pos < p->n && (isalnum((unsigned char)p->src[p->pos]) || p->src[p->pos] == '.' ||
                             p->src[p->pos] == '_' ||
                             ((p->src[p->pos] == '+' || p->src[p->pos] == '-') &&
                              (p->src[p->pos - 1] == 'e' || p->src[p->pos - 1] == 'E'))))
        p->pos++;
    char txt[64];
    size_t n = 0;
    for (size_t i = st; i < p->pos && n < sizeof(txt) - 1; i++)
        if (p->src[i] != '_')
            txt[n++] = p->src[i];
    txt[n] = 0;
    char *end;
    a->k = A_NUMBER;
    bool hex = strstr(txt, "0x") || strstr(txt, "0X");
    if (!hex && strpbrk(txt, ".eE")) {
        a->num.k = V_FLOAT;
        a->num.f = strtod(txt, &end);
    } else {
        a->num.k = V_INT;
        a->num.i = strtoll(txt, &end, 0);
    }
    if (*end || end == txt)
        return perr(p, "bad number syntax: \"%.*s\"", (int)(p->pos - st), p->src + st);
    return true;
}

/* One operand; NULL at the end of the command. */
static struct targ *parse_operand(struct parser *p)
{
    skip_space(p);
    if (p->pos >= p->n || at_right(p))
        return NULL;
    char c = p->src[p->pos];
    if (c == '|' || c == ')')
        return NULL;
    struct targ *a = palloc(p, sizeof(*a));
    a->pos = p->pos;
    if (c == '"' || c == '`') {
        if (!parse_string(p, a))
            return NULL;
    } else if (c == '(') {
        p->pos++;
        a->k = A_PIPE;
        a->pipe = parse_pipeline(p, false, true);
        if (!a->pipe)
            return NULL;
        skip_space(p);
        if (p->pos >= p->n || p->src[p->pos] != ')') {
            perr(p, "unclosed left paren");
            return NULL;
        }
        p->pos++;
        if (!parse_fields(p, a))
            return NULL;
    } else if (c == '$') {
        size_t st = p->pos++;
        while (p->pos < p->n && is_ident_char(p->src[p->pos]))
            p->pos++;
        a->k = A_VAR;
        a->s = pstrndup(p, p->src + st, p->pos - st);
        if (!var_known(p, a->s)) {
            perr(p, "undefined variable \"%s\"", a->s);
            return NULL;
        }
        if (!parse_fields(p, a))
            return NULL;
    } else if (c == '.') {
        if (p->pos + 1 < p->n && (isalpha((unsigned char)p->src[p->pos + 1]) || p->src[p->pos + 1] == '_')) {
            a->k = A_FIELD;
            if (!parse_fields(p, a))
                return NULL;
        } else if (p->pos + 1 < p->n && isdigit((unsigned char)p->src[p->pos + 1])) {
            if (!parse_number(p, a))
                return NULL;
        } else {
            p->pos++;
            a->k = A_DOT;
        }
    } else if (isdigit((unsigned char)c) || ((c == '-' || c == '+') && p->pos + 1 < p->n &&
                                               (isdigit((unsigned char)p->src[p->pos + 1]) || p->src[p->pos + 1] == '.'))) {
        if (!parse_number(p, a))
            return NULL;
    } else if (c == '\'') {
        /* Character constant: an int. */
        if (p->pos + 2 < p->n && p->src[p->pos + 2] == '\'') {
            a->k = A_NUMBER;
            a->num.k = V_INT;
            a->num.i = (unsigned char)p->src[p->pos + 1];
            p->pos += 3;
        } else {
            perr(p, "unterminated character constant");
            return NULL;
        }
    } else if (isalpha((unsigned char)c) || c == '_') {
        size_t st = p->pos;
        while (p->pos < p->n && is_ident_char(p->src[p->pos]))
            p->pos++;
        size_t n = p->pos - st;
        const char *w = p->src + st;
        if (n == 4 && !memcmp(w, "true", 4)) {
            a->k = A_BOOL;
            a->num.k = V_BOOL;
            a->num.b = true;
        } else if (n == 5 && !memcmp(w, "false", 5)) {
            a->k = A_BOOL;
            a->num.k = V_BOOL;
        } else if (n == 3 && !memcmp(w, "nil", 3)) {
            a->k = A_NIL;
        } else {
            if (!find_func(w, n)) {
                perr(p, "function \"%.*s\" not defined", (int)n, w);
                return NULL;
            }
            a->k = A_IDENT;
            a->s = pstrndup(p, w, n);
        }
    } else {
        perr(p, "unexpected \"%c\" in operand", c);
        return NULL;
    }
    a->len = p->pos - a->pos;
    /* Operands must be separated by space (or end). */
    if (p->pos < p->n && !strchr(" \t\r\n|)", p->src[p->pos]) && !at_right(p)) {
        perr(p, "unexpected \"%c\" in operand", p->src[p->pos]);
        return NULL;
    }
    return a;
}

static struct tcmd *parse_command(struct parser *p)
{
    struct targ *tmp[64];
    size_t n = 0;
    struct tcmd *c = palloc(p, sizeof(*c));
    skip_space(p);
    c->pos = p->pos;
    for (;;) {
        struct targ *a = parse_operand(p);
        if (!a)
            break;
        if (n == 64) {
            perr(p, "too many arguments");
            return NULL;
        }
        tmp[n++] = a;
    }
    if (p->failed)
        return NULL;
    if (!n) {
        perr(p, "missing value for command");
        return NULL;
    }
    c->len = p->pos - c->pos;
    while (c->len && isspace((unsigned char)p->src[c->pos + c->len - 1]))
        c->len--;
    c->args = palloc(p, n * sizeof(*c->args));
    memcpy(c->args, tmp, n * sizeof(*tmp));
    c->nargs = n;
    if (n > 1 && c->args[0]->k != A_IDENT && !(c->args[0]->k == A_FIELD || c->args[0]->k == A_VAR)) {
        perr(p, "can't give argument to non-function %.*s", (int)c->args[0]->len,
             p->src + c->args[0]->pos);
        return NULL;
    }
    return c;
}

static struct tpipe *parse_pipeline(struct parser *p, bool allow_decl, bool in_parens)
{
    struct tpipe *pl = palloc(p, sizeof(*pl));
    struct tcmd *tmp[32];
    size_t n = 0;
    skip_space(p);
    pl->pos = p->pos;
    /* Declarations: $x := / $x, $y := / $x = */
    if (allow_decl && p->pos < p->n && p->src[p->pos] == '$') {
        size_t save = p->pos;
        const char *names[2];
        int nn = 0;
        for (;;) {
            size_t st = p->pos++;
            while (p->pos < p->n && is_ident_char(p->src[p->pos]))
                p->pos++;
            names[nn++] = pstrndup(p, p->src + st, p->pos - st);
            skip_space(p);
            if (nn < 2 && p->pos < p->n && p->src[p->pos] == ',') {
                p->pos++;
                skip_space(p);
                if (p->pos < p->n && p->src[p->pos] == '$')
                    continue;
            }
            break;
        }
        if (p->pos + 1 < p->n && p->src[p->pos] == ':' && p->src[p->pos + 1] == '=') {
            p->pos += 2;
            pl->ndecl = nn;
            pl->decl[0] = names[0];
            pl->decl[1] = nn > 1 ? names[1] : NULL;
        } else if (p->pos < p->n && p->src[p->pos] == '=' && nn == 1 &&
                   (p->pos + 1 >= p->n || p->src[p->pos + 1] != '=')) {
            p->pos++;
            if (!var_known(p, names[0])) {
                perr(p, "undefined variable \"%s\"", names[0]);
                return NULL;
            }
            pl->ndecl = 1;
            pl->assign = true;
            pl->decl[0] = names[0];
        } else {
            p->pos = save;
        }
    }
    for (;;) {
        struct tcmd *c = parse_command(p);
        if (!c)
            return NULL;
        if (n == 32) {
            perr(p, "pipeline too long");
            return NULL;
        }
        tmp[n++] = c;
        skip_space(p);
        if (p->pos < p->n && p->src[p->pos] == '|') {
            p->pos++;
            continue;
        }
        break;
    }
    if (!in_parens && !at_right(p) && p->pos < p->n && p->src[p->pos] == ')') {
        perr(p, "unexpected right paren");
        return NULL;
    }
    for (size_t i = 1; i < n; i++)
        if (tmp[i]->args[0]->k != A_IDENT && tmp[i]->args[0]->k != A_FIELD && tmp[i]->args[0]->k != A_VAR) {
            perr(p, "non executable command in pipeline stage %zu", i + 1);
            return NULL;
        }
    pl->cmds = palloc(p, n * sizeof(*pl->cmds));
    memcpy(pl->cmds, tmp, n * sizeof(*tmp));
    pl->ncmds = n;
    /* Declared names come into scope after the pipeline. */
    if (!pl->assign)
        for (int i = 0; i < pl->ndecl; i++)
            push_var(p, pl->decl[i]);
    return pl;
}

/* Parse a list until {{end}} / {{else}} (returned in *stop: 0 EOF, 1 end,
 * 2 else). After else, p->pos is just past "else" inside the action. */
static struct tlist *parse_list(struct parser *p, int *stop, int depth);

static bool keyword(struct parser *p, const char *kw)
{
    size_t n = strlen(kw);
    if (p->pos + n <= p->n && !memcmp(p->src + p->pos, kw, n) &&
        (p->pos + n == p->n || !is_ident_char(p->src[p->pos + n]))) {
        p->pos += n;
        return true;
    }
    return false;
}

static struct tnode *parse_control(struct parser *p, enum nk kind, size_t pos, int depth)
{
    struct tnode *nd = palloc(p, sizeof(*nd));
    nd->k = kind;
    nd->pos = pos;
    size_t saved_vars = p->nvars;
    nd->pipe = parse_pipeline(p, true, false);
    bool trim;
    if (!nd->pipe || !eat_right(p, &trim))
        return NULL;
    if (trim)
        skip_space(p);
    size_t after_pipe = p->nvars;
    int stop;
    if (kind == N_RANGE)
        p->range_depth++;
    nd->list = parse_list(p, &stop, depth + 1);
    if (kind == N_RANGE)
        p->range_depth--;
    if (!nd->list)
        return NULL;
    if (stop == 0) {
        perr(p, "unexpected EOF");
        return NULL;
    }
    if (stop == 2) {
        skip_space(p);
        size_t epos = p->pos;
        p->nvars = after_pipe;
        if ((kind == N_IF && keyword(p, "if")) || (kind == N_WITH && keyword(p, "with"))) {
            /* else if / else with: a nested node that consumes the {{end}}. */
            struct tnode *inner = parse_control(p, kind, epos, depth + 1);
            if (!inner)
                return NULL;
            nd->elselist = palloc(p, sizeof(*nd->elselist));
            list_add(p, nd->elselist, inner);
            p->nvars = saved_vars;
            return nd;
        }
        if (!eat_right(p, &trim))
            return NULL;
        if (trim)
            skip_space(p);
        nd->elselist = parse_list(p, &stop, depth + 1);
        if (!nd->elselist)
            return NULL;
        if (stop != 1) {
            perr(p, stop == 0 ? "unexpected EOF" : "expected end; found {{else}}");
            return NULL;
        }
    }
    p->nvars = saved_vars;
    return nd;
}

static struct tlist *parse_list(struct parser *p, int *stop, int depth)
{
    struct tlist *l = palloc(p, sizeof(*l));
    if (depth > TMPL_MAX_DEPTH) {
        perr(p, "nesting too deep");
        return NULL;
    }
    for (;;) {
        if (p->pos >= p->n) {
            *stop = 0;
            return l;
        }
        const char *open = strstr(p->src + p->pos, "{{");
        size_t tend = open ? (size_t)(open - p->src) : p->n;
        size_t after = tend + 2;
        bool ltrim = open && after + 1 < p->n && p->src[after] == '-' &&
                     (p->src[after + 1] == ' ' || p->src[after + 1] == '\t' ||
                      p->src[after + 1] == '\n' || p->src[after + 1] == '\r');
        size_t tlen = tend - p->pos;
        if (ltrim)
            while (tlen && isspace((unsigned char)p->src[p->pos + tlen - 1]))
                tlen--;
        if (tlen) {
            struct tnode *t = palloc(p, sizeof(*t));
            t->k = N_TEXT;
            t->text = p->src + p->pos;
            t->tlen = tlen;
            list_add(p, l, t);
        }
        if (!open) {
            p->pos = p->n;
            *stop = 0;
            return l;
        }
        p->pos = after + (ltrim ? 1 : 0);
        size_t apos = tend;
        /* Comment. */
        if (p->pos + 1 < p->n && p->src[p->pos] == '/' && p->src[p->pos + 1] == '*' && !ltrim) {
            const char *ce = strstr(p->src + p->pos + 2, "*/");
            if (!ce) {
                perr(p, "unclosed comment");
                return NULL;
            }
            p->pos = (size_t)(ce - p->src) + 2;
            bool trim;
            if (!eat_right(p, &trim))
                return NULL;
            if (trim)
                skip_space(p);
            continue;
        }
        if (ltrim) {
            skip_space(p);
            if (p->pos + 1 < p->n && p->src[p->pos] == '/' && p->src[p->pos + 1] == '*') {
                const char *ce = strstr(p->src + p->pos + 2, "*/");
                if (!ce) {
                    perr(p, "unclosed comment");
                    return NULL;
                }
                p->pos = (size_t)(ce - p->src) + 2;
                bool trim;
                if (!eat_right(p, &trim))
                    return NULL;
                if (trim)
                    skip_space(p);
                continue;
            }
        }
        skip_space(p);
        if (keyword(p, "end")) {
            bool trim;
            if (!eat_right(p, &trim))
                return NULL;
            if (trim)
                skip_space(p);
            if (depth == 0) {
                perr(p, "unexpected {{end}}");
                return NULL;
            }
            *stop = 1;
            return l;
        }
        if (keyword(p, "else")) {
            if (depth == 0) {
                perr(p, "unexpected {{else}}");
                return NULL;
            }
            *stop = 2;
            return l;
        }
        struct tnode *nd = NULL;
        if (keyword(p, "if"))
            nd = parse_control(p, N_IF, apos, depth);
        else if (keyword(p, "range"))
            nd = parse_control(p, N_RANGE, apos, depth);
        else if (keyword(p, "with"))
            nd = parse_control(p, N_WITH, apos, depth);
        else if (keyword(p, "break") || keyword(p, "continue")) {
            bool is_break = p->src[p->pos - 1] == 'k';
            if (!p->range_depth) {
                perr(p, "{{%s}} outside {{range}}", is_break ? "break" : "continue");
                return NULL;
            }
            nd = palloc(p, sizeof(*nd));
            nd->k = is_break ? N_BREAK : N_CONTINUE;
            nd->pos = apos;
            bool trim;
            if (!eat_right(p, &trim))
                return NULL;
            if (trim)
                skip_space(p);
        } else if (keyword(p, "define") || keyword(p, "template") || keyword(p, "block")) {
            perr(p, "template definitions are not supported");
            return NULL;
        } else {
            nd = palloc(p, sizeof(*nd));
            nd->k = N_ACTION;
            nd->pos = apos;
            nd->pipe = parse_pipeline(p, true, false);
            bool trim;
            if (!nd->pipe || !eat_right(p, &trim))
                return NULL;
            if (trim)
                skip_space(p);
        }
        if (!nd)
            return NULL;
        list_add(p, l, nd);
    }
}

/* ------------------------------------------------------------ execution */

struct xvar {
    const char *name;
    struct tval v;
};

struct xstate {
    const char *name;
    const char *src;
    struct bs_arena *arena;
    struct bs_buf *out;
    const struct rules_tmpl_data *d;
    struct xvar *vars;
    size_t nvars, cvars;
    char err[900];
    bool failed;
    size_t at_pos, at_len;   /* node being evaluated, for messages */
    int depth;
    struct tmap labels, ext;
    int loop_ctl;            /* 1 break, 2 continue */
};

static bool xerr(struct xstate *x, const char *fmt, ...) BS_PRINTF(2, 3);
static bool xerr(struct xstate *x, const char *fmt, ...)
{
    if (x->failed)
        return false;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = 1;
    size_t lstart = 0;
    for (size_t i = 0; i < x->at_pos; i++)
        if (x->src[i] == '\n') {
            line++;
            lstart = i + 1;
        }
    size_t n = x->at_len > 20 ? 20 : x->at_len;
    snprintf(x->err, sizeof(x->err), "template: %s:%d:%zu: executing \"%s\" at <%.*s%s>: %s",
             x->name, line, x->at_pos - lstart, x->name, (int)n, x->src + x->at_pos,
             x->at_len > 20 ? "..." : "", msg);
    x->failed = true;
    return false;
}

static void *xalloc(struct xstate *x, size_t n)
{
    void *m = bs_arena_alloc(x->arena, n ? n : 1);
    if (!m)
        abort();
    memset(m, 0, n ? n : 1);
    return m;
}

static struct tval vstr(struct xstate *x, const char *s, size_t n)
{
    struct tval v = {.k = V_STRING};
    char *d = xalloc(x, n + 1);
    memcpy(d, s, n);
    v.s = d;
    v.n = n;
    return v;
}

static struct tval vcstr(struct xstate *x, const char *s) { return vstr(x, s, strlen(s)); }
static struct tval vfloat(double f) { struct tval v = {.k = V_FLOAT, .f = f}; return v; }
static struct tval vbool(bool b) { struct tval v = {.k = V_BOOL, .b = b}; return v; }

static bool truth(const struct tval *v)
{
    switch (v->k) {
    case V_NIL: return false;
    case V_BOOL: return v->b;
    case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0;
    case V_STRING: return v->n != 0;
    case V_MAP: return v->map->n != 0;
    case V_VEC: return v->vec->n != 0;
    case V_SAMPLE: return v->smp != NULL;
    case V_DATA: return true;
    }
    return false;
}

static void print_map(struct bs_buf *b, const struct tmap *m)
{
    bs_buf_puts(b, "map[");
    for (size_t i = 0; i < m->n; i++)
        bs_buf_printf(b, "%s%s:%s", i ? " " : "", m->v[i].name, m->v[i].value);
    bs_buf_puts(b, "]");
}

/* fmt's %v. */
static void print_val(struct bs_buf *b, const struct tval *v)
{
    char num[BS_FLOAT_FMT_MAX];
    switch (v->k) {
    case V_NIL: bs_buf_puts(b, "<nil>"); break;
    case V_BOOL: bs_buf_puts(b, v->b ? "true" : "false"); break;
    case V_INT: bs_buf_printf(b, "%lld", (long long)v->i); break;
    case V_FLOAT:
        bs_float_format_short(v->f, num);
        bs_buf_puts(b, num);
        break;
    case V_STRING: bs_buf_append(b, v->s, v->n); break;
    case V_MAP: print_map(b, v->map); break;
    case V_SAMPLE:
        bs_buf_puts(b, "&{");
        print_map(b, &v->smp->labels);
        bs_float_format_short(v->smp->value, num);
        bs_buf_printf(b, " %s}", num);
        break;
    case V_VEC:
        bs_buf_puts(b, "[");
        for (size_t i = 0; i < v->vec->n; i++) {
            struct tval s = {.k = V_SAMPLE, .smp = v->vec->v[i]};
            if (i)
                bs_buf_puts(b, " ");
            print_val(b, &s);
        }
        bs_buf_puts(b, "]");
        break;
    case V_DATA: bs_buf_puts(b, "{...}"); break;
    }
}

static const char *map_get(const struct tmap *m, const char *k)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, k) == 0)
            return m->v[i].value;
    return NULL;
}

static bool field_of(struct xstate *x, struct tval *v, const char *f)
{
    switch (v->k) {
    case V_MAP: {
        const char *s = map_get(v->map, f);
        *v = vcstr(x, s ? s : "");
        return true;
    }
    case V_DATA:
        if (!strcmp(f, "Labels")) {
            v->k = V_MAP;
            v->map = &x->labels;
            return true;
        }
        if (!strcmp(f, "ExternalLabels")) {
            v->k = V_MAP;
            v->map = &x->ext;
            return true;
        }
        if (!strcmp(f, "ExternalURL")) {
            *v = vcstr(x, x->d->external_url ? x->d->external_url : "");
            return true;
        }
        if (!strcmp(f, "Value")) {
            *v = vfloat(x->d->value);
            return true;
        }
        break;
    case V_SAMPLE:
        if (!strcmp(f, "Labels")) {
            const struct tsample *s = v->smp;
            v->k = V_MAP;
            v->map = &s->labels;
            return true;
        }
        if (!strcmp(f, "Value")) {
            *v = vfloat(v->smp->value);
            return true;
        }
        break;
    case V_NIL:
        return xerr(x, "nil pointer evaluating interface {}.%s", f);
    default:
        break;
    }
    return xerr(x, "can't evaluate field %s in type %s", f, type_name(v));
}

static bool lookup_var(struct xstate *x, const char *name, struct tval *out)
{
    for (size_t i = x->nvars; i-- > 0;)
        if (!strcmp(x->vars[i].name, name)) {
            *out = x->vars[i].v;
            return true;
        }
    return xerr(x, "undefined variable: %s", name);
}

static void set_var(struct xstate *x, const char *name, const struct tval *v, bool assign)
{
    if (assign) {
        for (size_t i = x->nvars; i-- > 0;)
            if (!strcmp(x->vars[i].name, name)) {
                x->vars[i].v = *v;
                return;
            }
    }
    if (x->nvars == x->cvars) {
        x->cvars = x->cvars ? 2 * x->cvars : 16;
        x->vars = bs_xrealloc(x->vars, x->cvars * sizeof(*x->vars));
    }
    x->vars[x->nvars].name = name;
    x->vars[x->nvars].v = *v;
    x->nvars++;
}

static bool eval_pipeline(struct xstate *x, const struct tpipe *pl, const struct tval *dot,
                          struct tval *out);

static bool eval_arg(struct xstate *x, const struct targ *a, const struct tval *dot, struct tval *out)
{
    size_t i;
    switch (a->k) {
    case A_STRING:
        out->k = V_STRING;
        out->s = a->s;
        out->n = a->slen;
        out->map = NULL;
        return true;
    case A_NUMBER:
    case A_BOOL:
        *out = a->num;
        return true;
    case A_NIL:
        memset(out, 0, sizeof(*out));
        return true;
    case A_DOT:
        *out = *dot;
        return true;
    case A_FIELD:
        *out = *dot;
        for (i = 0; i < a->nfields; i++)
            if (!field_of(x, out, a->fields[i]))
                return false;
        return true;
    case A_VAR:
        if (!lookup_var(x, a->s, out))
            return false;
        for (i = 0; i < a->nfields; i++)
            if (!field_of(x, out, a->fields[i]))
                return false;
        return true;
    case A_PIPE:
        if (!eval_pipeline(x, a->pipe, dot, out))
            return false;
        for (i = 0; i < a->nfields; i++)
            if (!field_of(x, out, a->fields[i]))
                return false;
        return true;
    case A_IDENT: {
        /* A function used as an operand: call it without arguments. */
        const struct fdef *f = find_func(a->s, strlen(a->s));
        x->at_pos = a->pos;
        x->at_len = a->len;
        if (f->min > 0)
            return xerr(x, "wrong number of args for %s: want %d got 0", f->name, f->min);
        memset(out, 0, sizeof(*out));
        if (f->fn(x, NULL, 0, out) != 0)
            return false;
        return true;
    }
    }
    return false;
}

static bool eval_command(struct xstate *x, const struct tcmd *c, const struct tval *dot,
                         const struct tval *final, struct tval *out)
{
    const struct targ *a0 = c->args[0];
    if (a0->k != A_IDENT) {
        if (final || c->nargs > 1) {
            x->at_pos = c->pos;
            x->at_len = c->len;
            return xerr(x, "can't give argument to non-function %.*s", (int)a0->len, x->src + a0->pos);
        }
        return eval_arg(x, a0, dot, out);
    }
    const struct fdef *f = find_func(a0->s, strlen(a0->s));
    size_t nargs = c->nargs - 1 + (final ? 1 : 0);
    struct tval *args = xalloc(x, (nargs ? nargs : 1) * sizeof(*args));
    x->at_pos = a0->pos;
    x->at_len = a0->len;
    if ((int)nargs < f->min || (f->max >= 0 && (int)nargs > f->max)) {
        if (f->max < 0)
            return xerr(x, "wrong number of args for %s: want at least %d got %zu", f->name,
                        f->min, nargs);
        return xerr(x, "wrong number of args for %s: want %d got %zu", f->name, f->min, nargs);
    }
    if (f->lazy) {
        /* and / or: evaluate left to right, stop at the deciding value. */
        bool is_and = f->name[0] == 'a';
        for (size_t i = 0; i < nargs; i++) {
            if (i < c->nargs - 1) {
                if (!eval_arg(x, c->args[i + 1], dot, out))
                    return false;
            } else {
                *out = *final;
            }
            if (truth(out) != is_and)
                return true;
        }
        return true;
    }
    for (size_t i = 0; i + 1 < c->nargs; i++)
        if (!eval_arg(x, c->args[i + 1], dot, &args[i]))
            return false;
    if (final)
        args[nargs - 1] = *final;
    x->at_pos = a0->pos;
    x->at_len = a0->len;
    memset(out, 0, sizeof(*out));
    return f->fn(x, args, nargs, out) == 0;
}

static bool eval_pipeline(struct xstate *x, const struct tpipe *pl, const struct tval *dot,
                          struct tval *out)
{
    struct tval v = {0};
    bool have = false;
    if (++x->depth > TMPL_MAX_DEPTH) {
        x->depth--;
        return xerr(x, "exceeded maximum template depth (%d)", TMPL_MAX_DEPTH);
    }
    for (size_t i = 0; i < pl->ncmds; i++) {
        struct tval r;
        if (!eval_command(x, pl->cmds[i], dot, have ? &v : NULL, &r)) {
            x->depth--;
            return false;
        }
        v = r;
        have = true;
    }
    x->depth--;
    for (int i = 0; i < pl->ndecl; i++)
        set_var(x, pl->decl[i], &v, pl->assign);
    *out = v;
    return true;
}

static bool exec_list(struct xstate *x, const struct tlist *l, const struct tval *dot);

static bool exec_range(struct xstate *x, const struct tnode *nd, const struct tval *dot)
{
    struct tval v;
    size_t mark = x->nvars;
    if (!eval_pipeline(x, nd->pipe, dot, &v))
        return false;
    /* The declared variables are bound per element, not to the whole. */
    x->nvars = mark;
    size_t n = 0;
    switch (v.k) {
    case V_MAP: n = v.map->n; break;
    case V_VEC: n = v.vec->n; break;
    case V_INT: n = v.i > 0 ? (size_t)v.i : 0; break;
    case V_NIL: n = 0; break;
    default:
        x->at_pos = nd->pos;
        x->at_len = 5;
        return xerr(x, "range can't iterate over %s", type_name(&v));
    }
    if (v.k == V_INT && n > 1000000) {
        x->at_pos = nd->pos;
        return xerr(x, "range over too large an int");
    }
    for (size_t i = 0; i < n; i++) {
        struct tval key = {0}, elem = {0};
        if (v.k == V_MAP) {
            key = vcstr(x, v.map->v[i].name);
            elem = vcstr(x, v.map->v[i].value);
        } else if (v.k == V_VEC) {
            key.k = V_INT;
            key.i = (int64_t)i;
            elem.k = V_SAMPLE;
            elem.smp = v.vec->v[i];
        } else {
            key.k = V_INT;
            key.i = (int64_t)i;
            elem = key;
        }
        size_t m2 = x->nvars;
        if (nd->pipe->ndecl == 1)
            set_var(x, nd->pipe->decl[0], &elem, false);
        else if (nd->pipe->ndecl == 2) {
            set_var(x, nd->pipe->decl[0], &key, false);
            set_var(x, nd->pipe->decl[1], &elem, false);
        }
        bool ok = exec_list(x, nd->list, &elem);
        x->nvars = m2;
        if (!ok)
            return false;
        if (x->loop_ctl == 1) {
            x->loop_ctl = 0;
            break;
        }
        x->loop_ctl = 0;
    }
    x->nvars = mark;
    if (n == 0 && nd->elselist)
        return exec_list(x, nd->elselist, dot);
    return true;
}

static bool exec_list(struct xstate *x, const struct tlist *l, const struct tval *dot)
{
    for (size_t i = 0; i < l->n && !x->loop_ctl; i++) {
        const struct tnode *nd = l->v[i];
        struct tval v;
        size_t mark = x->nvars;
        switch (nd->k) {
        case N_TEXT:
            bs_buf_append(x->out, nd->text, nd->tlen);
            break;
        case N_ACTION:
            if (!eval_pipeline(x, nd->pipe, dot, &v))
                return false;
            if (!nd->pipe->ndecl)
                print_val(x->out, &v);
            continue; /* declarations stay in scope */
        case N_IF:
        case N_WITH:
            if (!eval_pipeline(x, nd->pipe, dot, &v))
                return false;
            if (truth(&v)) {
                if (!exec_list(x, nd->list, nd->k == N_WITH ? &v : dot))
                    return false;
            } else if (nd->elselist) {
                if (!exec_list(x, nd->elselist, dot))
                    return false;
            }
            x->nvars = mark;
            break;
        case N_RANGE:
            if (!exec_range(x, nd, dot))
                return false;
            break;
        case N_BREAK:
            x->loop_ctl = 1;
            return true;
        case N_CONTINUE:
            x->loop_ctl = 2;
            return true;
        }
        x->nvars = mark;
        if (x->out->len > TMPL_MAX_OUTPUT) {
            x->at_pos = nd->pos;
            return xerr(x, "output larger than %u bytes", (unsigned)TMPL_MAX_OUTPUT);
        }
    }
    return true;
}

/* ------------------------------------------------------ function helpers */

static int ferr(struct xstate *x, const char *fname, const char *fmt, ...) BS_PRINTF(3, 4);
static int ferr(struct xstate *x, const char *fname, const char *fmt, ...)
{
    char msg[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    xerr(x, "error calling %s: %s", fname, msg);
    return -1;
}

static int want_type(struct xstate *x, const struct tval *v, enum vk k, const char *tname)
{
    if (v->k == k)
        return 0;
    xerr(x, "wrong type for value; expected %s; got %s", tname, type_name(v));
    return -1;
}

/* convertToFloat */
static int to_float(struct xstate *x, const char *fname, const struct tval *v, double *out)
{
    switch (v->k) {
    case V_FLOAT: *out = v->f; return 0;
    case V_INT: *out = (double)v->i; return 0;
    case V_STRING: {
        char *s = xalloc(x, v->n + 1);
        memcpy(s, v->s, v->n);
        if (bs_float_parse(s, v->n, false, out) != 0)
            return ferr(x, fname, "strconv.ParseFloat: parsing \"%s\": invalid syntax", s);
        return 0;
    }
    default:
        return ferr(x, fname, "can't convert %s to float", type_name(v));
    }
}

static const char *cstr(struct xstate *x, const struct tval *v)
{
    char *s = xalloc(x, v->n + 1);
    memcpy(s, v->s, v->n);
    return s;
}

/* --------------------------------------------------- Prometheus functions */

static int f_humanize(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    double v;
    char buf[64];
    if (to_float(x, "humanize", &a[0], &v))
        return -1;
    if (v == 0 || isnan(v) || isinf(v)) {
        rules_fmt_4g(v, buf, sizeof(buf));
        *out = vcstr(x, buf);
        return 0;
    }
    static const char *big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
    static const char *small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    const char *prefix = "";
    if (fabs(v) >= 1) {
        for (int i = 0; i < 8; i++) {
            if (fabs(v) < 1000)
                break;
            prefix = big[i];
            v /= 1000;
        }
    } else {
        for (int i = 0; i < 8; i++) {
            if (fabs(v) >= 1)
                break;
            prefix = small[i];
            v *= 1000;
        }
    }
    size_t l = rules_fmt_4g(v, buf, sizeof(buf));
    snprintf(buf + l, sizeof(buf) - l, "%s", prefix);
    *out = vcstr(x, buf);
    return 0;
}

static int f_humanize1024(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    double v;
    char buf[64];
    if (to_float(x, "humanize1024", &a[0], &v))
        return -1;
    if (fabs(v) <= 1 || isnan(v) || isinf(v)) {
        rules_fmt_4g(v, buf, sizeof(buf));
        *out = vcstr(x, buf);
        return 0;
    }
    static const char *p[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
    const char *prefix = "";
    for (int i = 0; i < 8; i++) {
        if (fabs(v) < 1024)
            break;
        prefix = p[i];
        v /= 1024;
    }
    size_t l = rules_fmt_4g(v, buf, sizeof(buf));
    snprintf(buf + l, sizeof(buf) - l, "%s", prefix);
    *out = vcstr(x, buf);
    return 0;
}

static int f_humanize_duration(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    double v;
    char buf[96];
    if (to_float(x, "humanizeDuration", &a[0], &v))
        return -1;
    if (isnan(v) || isinf(v)) {
        rules_fmt_4g(v, buf, sizeof(buf));
    } else if (v == 0) {
        snprintf(buf, sizeof(buf), "0s");
    } else if (fabs(v) >= 1) {
        const char *sign = "";
        if (v < 0) {
            sign = "-";
            v = -v;
        }
        int64_t d = (int64_t)v;
        int64_t sec = d % 60, min = (d / 60) % 60, hrs = (d / 3600) % 24, days = d / 86400;
        if (days)
            snprintf(buf, sizeof(buf), "%s%lldd %lldh %lldm %llds", sign, (long long)days,
                     (long long)hrs, (long long)min, (long long)sec);
        else if (hrs)
            snprintf(buf, sizeof(buf), "%s%lldh %lldm %llds", sign, (long long)hrs,
                     (long long)min, (long long)sec);
        else if (min)
            snprintf(buf, sizeof(buf), "%s%lldm %llds", sign, (long long)min, (long long)sec);
        else {
            char g[48];
            rules_fmt_4g(v, g, sizeof(g));
            snprintf(buf, sizeof(buf), "%s%ss", sign, g);
        }
    } else {
        static const char *p[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
        const char *prefix = "";
        for (int i = 0; i < 8; i++) {
            if (fabs(v) >= 1)
                break;
            prefix = p[i];
            v *= 1000;
        }
        char g[48];
        rules_fmt_4g(v, g, sizeof(g));
        snprintf(buf, sizeof(buf), "%s%ss", g, prefix);
    }
    *out = vcstr(x, buf);
    return 0;
}

static int f_humanize_percentage(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    double v;
    char buf[64];
    if (to_float(x, "humanizePercentage", &a[0], &v))
        return -1;
    size_t l = rules_fmt_4g(v * 100, buf, sizeof(buf));
    snprintf(buf + l, sizeof(buf) - l, "%%");
    *out = vcstr(x, buf);
    return 0;
}

/* Go's time.Time.String() in UTC: "2006-01-02 15:04:05.999999999 +0000 UTC". */
static void go_time_string(int64_t ns, char *buf, size_t cap)
{
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t l = strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
    if (frac) {
        char f[16];
        snprintf(f, sizeof(f), ".%09lld", (long long)frac);
        size_t fl = strlen(f);
        while (f[fl - 1] == '0')
            f[--fl] = 0;
        l += (size_t)snprintf(buf + l, cap - l, "%s", f);
    }
    snprintf(buf + l, cap - l, " +0000 UTC");
}

static int f_humanize_timestamp(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    double v;
    char buf[96];
    if (to_float(x, "humanizeTimestamp", &a[0], &v))
        return -1;
    if (isnan(v) || isinf(v)) {
        rules_fmt_4g(v, buf, sizeof(buf));
        *out = vcstr(x, buf);
        return 0;
    }
    double ts = v * 1e9;
    if (ts >= 9.2233720368547758e18 || ts < -9.2233720368547758e18) {
        char num[BS_FLOAT_FMT_MAX];
        bs_float_format_short(v, num);
        return ferr(x, "humanizeTimestamp",
                    "%s cannot be represented as a nanoseconds timestamp since it overflows int64", num);
    }
    /* model.TimeFromUnixNano keeps milliseconds. */
    int64_t ns = (int64_t)ts;
    int64_t ms = ns / 1000000;
    go_time_string(ms * 1000000, buf, sizeof(buf));
    *out = vcstr(x, buf);
    return 0;
}

static int f_query(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    if (!x->d->engine || !x->d->db)
        return ferr(x, "query", "query is not available here");
    struct promql_result *r = NULL;
    struct bs_error e = {0};
    if (promql_query_instant(x->d->engine, x->d->db, cstr(x, &a[0]), x->d->ts_ms, &r, &e) != 0)
        return ferr(x, "query", "%s", e.msg);
    struct tvec *vec = xalloc(x, sizeof(*vec));
    if (r->type == PROMQL_VALUE_SCALAR) {
        vec->v = xalloc(x, sizeof(*vec->v));
        vec->v[0] = xalloc(x, sizeof(**vec->v));
        vec->v[0]->value = r->scalar.v;
        vec->n = 1;
    } else if (r->type == PROMQL_VALUE_VECTOR) {
        vec->v = xalloc(x, (r->nseries ? r->nseries : 1) * sizeof(*vec->v));
        for (size_t i = 0; i < r->nseries; i++) {
            struct tsample *s = xalloc(x, sizeof(*s));
            const struct labels *ls = r->series[i].labels;
            s->labels.v = xalloc(x, (ls->n ? ls->n : 1) * sizeof(struct label));
            for (size_t j = 0; j < ls->n; j++) {
                s->labels.v[j].name = vcstr(x, ls->v[j].name).s;
                s->labels.v[j].value = vcstr(x, ls->v[j].value).s;
            }
            s->labels.n = ls->n;
            s->value = r->series[i].npoints ? r->series[i].points[0].v : 0;
            vec->v[vec->n++] = s;
        }
    } else {
        promql_result_free(r);
        return ferr(x, "query", "rule result is not a vector or scalar");
    }
    promql_result_free(r);
    out->k = V_VEC;
    out->vec = vec;
    return 0;
}

static int f_first(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_VEC, "template.queryResult"))
        return -1;
    if (!a[0].vec->n)
        return ferr(x, "first", "first() called on vector with no elements");
    out->k = V_SAMPLE;
    out->smp = a[0].vec->v[0];
    return 0;
}

static int f_label(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string") || want_type(x, &a[1], V_SAMPLE, "*template.sample"))
        return -1;
    const char *v = map_get(&a[1].smp->labels, cstr(x, &a[0]));
    *out = vcstr(x, v ? v : "");
    return 0;
}

static int f_value(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_SAMPLE, "*template.sample"))
        return -1;
    *out = vfloat(a[0].smp->value);
    return 0;
}

static int f_strvalue(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_SAMPLE, "*template.sample"))
        return -1;
    const char *v = map_get(&a[0].smp->labels, "__value__");
    *out = vcstr(x, v ? v : "");
    return 0;
}

static int sample_cmp(const void *pa, const void *pb, void *arg)
{
    const struct tsample *a = *(const struct tsample *const *)pa, *b = *(const struct tsample *const *)pb;
    const char *va = map_get(&a->labels, arg), *vb = map_get(&b->labels, arg);
    int c = strcmp(va ? va : "", vb ? vb : "");
    return c ? c : (a < b ? -1 : a > b);
}

static int f_sort_by_label(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string") || want_type(x, &a[1], V_VEC, "template.queryResult"))
        return -1;
    struct tvec *v = xalloc(x, sizeof(*v));
    v->n = a[1].vec->n;
    v->v = xalloc(x, (v->n ? v->n : 1) * sizeof(*v->v));
    if (v->n)
        memcpy(v->v, a[1].vec->v, v->n * sizeof(*v->v));
    /* Stable: ties keep input order (pointers grow with the input). */
    qsort_r(v->v, v->n, sizeof(*v->v), sample_cmp, (void *)cstr(x, &a[0]));
    out->k = V_VEC;
    out->vec = v;
    return 0;
}

/* Expand Go regexp replacement templates: $1, ${1}, $name, ${name}, $$. */
static void expand_repl(struct bs_buf *b, const char *repl, const char *subj, PCRE2_SIZE *ov,
                        uint32_t ngroups, const pcre2_code *re)
{
    for (const char *r = repl; *r;) {
        if (*r != '$') {
            bs_buf_putc(b, *r++);
            continue;
        }
        r++;
        if (*r == '$') {
            bs_buf_putc(b, '$');
            r++;
            continue;
        }
        char name[128];
        size_t nl = 0;
        bool braced = *r == '{';
        const char *s = braced ? r + 1 : r;
        while (is_ident_char(*s) && nl < sizeof(name) - 1)
            name[nl++] = *s++;
        name[nl] = 0;
        if (!nl || (braced && *s != '}')) {
            bs_buf_putc(b, '$');
            continue;
        }
        r = braced ? s + 1 : s;
        long idx = -1;
        char *end;
        long v = strtol(name, &end, 10);
        if (!*end && isdigit((unsigned char)name[0]))
            idx = v;
        else {
            int g = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
            if (g > 0)
                idx = g;
        }
        if (idx >= 0 && (uint32_t)idx < ngroups && ov[2 * idx] != PCRE2_UNSET)
            bs_buf_append(b, subj + ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx]);
    }
}

static pcre2_code *compile_re(struct xstate *x, const char *fname, const char *pat)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        ferr(x, fname, "error parsing regexp: %s: `%s`", (const char *)msg, pat);
    }
    return re;
}

static int f_re_replace_all(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    for (int i = 0; i < 3; i++)
        if (want_type(x, &a[i], V_STRING, "string"))
            return -1;
    const char *pat = cstr(x, &a[0]), *repl = cstr(x, &a[1]), *subj = cstr(x, &a[2]);
    size_t slen = a[2].n;
    pcre2_code *re = compile_re(x, "reReplaceAll", pat);
    if (!re)
        return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    struct bs_buf b;
    bs_buf_init(&b, 0);
    size_t pos = 0, last = 0;
    bool last_empty_at = false;
    size_t last_match_end = (size_t)-1;
    while (pos <= slen) {
        int rc = pcre2_match(re, (PCRE2_SPTR)subj, slen, pos, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        /* Go skips an empty match right after the previous match. */
        if (ov[0] == ov[1] && ov[0] == last_match_end) {
            last_empty_at = true;
            pos = ov[0] + 1;
            while (pos < slen && ((unsigned char)subj[pos] & 0xc0) == 0x80)
                pos++;
            continue;
        }
        (void)last_empty_at;
        bs_buf_append(&b, subj + last, ov[0] - last);
        expand_repl(&b, repl, subj, ov, pcre2_get_ovector_count(md), re);
        last = ov[1];
        last_match_end = ov[1];
        if (ov[1] == ov[0]) {
            pos = ov[1] + 1;
            while (pos < slen && ((unsigned char)subj[pos] & 0xc0) == 0x80)
                pos++;
        } else {
            pos = ov[1];
        }
    }
    if (last < slen)
        bs_buf_append(&b, subj + last, slen - last);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    *out = vstr(x, b.data ? b.data : "", b.len);
    bs_buf_fini(&b);
    return 0;
}

static int f_match(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string") || want_type(x, &a[1], V_STRING, "string"))
        return -1;
    pcre2_code *re = compile_re(x, "match", cstr(x, &a[0]));
    if (!re)
        return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)a[1].s, a[1].n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    *out = vbool(rc >= 0);
    return 0;
}

static int f_title(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    *out = vstr(x, a[0].s, a[0].n);
    char *s = (char *)out->s;
    bool prev_sep = true;
    for (size_t i = 0; i < out->n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (prev_sep && c < 0x80)
            s[i] = (char)toupper(c);
        /* strings.Title: letters, digits, '_' and non-ASCII are not separators. */
        prev_sep = c < 0x80 && !isalnum(c) && c != '_';
    }
    return 0;
}

static int f_case(struct xstate *x, struct tval *a, struct tval *out, bool up)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    *out = vstr(x, a[0].s, a[0].n);
    char *s = (char *)out->s;
    for (size_t i = 0; i < out->n; i++)
        s[i] = (char)(up ? toupper((unsigned char)s[i]) : tolower((unsigned char)s[i]));
    return 0;
}
static int f_upper(struct xstate *x, struct tval *a, size_t n, struct tval *out) { return f_case(x, a, out, true); }
static int f_lower(struct xstate *x, struct tval *a, size_t n, struct tval *out) { return f_case(x, a, out, false); }

static int f_safe_html(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    *out = a[0];
    return 0;
}

static int f_strip_port(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    const char *s = cstr(x, &a[0]);
    const char *colon = strrchr(s, ':');
    *out = a[0];
    if (!colon)
        return 0;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb && rb + 1 == colon)
            *out = vstr(x, s + 1, (size_t)(rb - s - 1));
        return 0;
    }
    if (strchr(s, ':') != colon)
        return 0; /* too many colons: SplitHostPort fails, input returned */
    *out = vstr(x, s, (size_t)(colon - s));
    return 0;
}

static int f_strip_domain(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    const char *s = cstr(x, &a[0]);
    const char *colon = strrchr(s, ':');
    const char *dot = strchr(s, '.');
    if (!dot || (colon && dot > colon) || s[0] == '[' || isdigit((unsigned char)s[0])) {
        *out = a[0];
        return 0;
    }
    struct bs_buf b;
    bs_buf_init(&b, 0);
    bs_buf_append(&b, s, (size_t)(dot - s));
    if (colon && strchr(s, ':') == colon)
        bs_buf_puts(&b, colon);
    *out = vstr(x, b.data, b.len);
    bs_buf_fini(&b);
    return 0;
}

static void url_query_escape(struct bs_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            bs_buf_putc(b, (char)c);
        else if (c == ' ')
            bs_buf_putc(b, '+');
        else
            bs_buf_printf(b, "%%%02X", c);
    }
}

/* "/graph?g0.expr=<expr>&g0.tab=<tab>" for the string a[0]. */
static int graph_url(struct xstate *x, struct tval *a, int tab, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    bs_buf_puts(&b, "/graph?g0.expr=");
    url_query_escape(&b, a[0].s, a[0].n);
    bs_buf_printf(&b, "&g0.tab=%d", tab);
    *out = vstr(x, b.data, b.len);
    bs_buf_fini(&b);
    return 0;
}

static int f_graph_link(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    return graph_url(x, a, 0, out);
}

static int f_table_link(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    return graph_url(x, a, 1, out);
}

static int f_external_url(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    *out = vcstr(x, x->d->external_url ? x->d->external_url : "");
    return 0;
}

static int f_path_prefix(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    const char *u = x->d->external_url ? x->d->external_url : "";
    const char *p = strstr(u, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    *out = vcstr(x, p ? p : "");
    return 0;
}

static int f_parse_duration(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    int64_t ms;
    struct bs_error e = {0};
    if (bs_duration_parse(a[0].s, a[0].n, &ms, &e) != 0)
        return ferr(x, "parseDuration", "not a valid duration string: \"%s\"", cstr(x, &a[0]));
    *out = vfloat((double)ms / 1000.0);
    return 0;
}

static int f_args(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    struct tmap *m = xalloc(x, sizeof(*m));
    m->v = xalloc(x, (n ? n : 1) * sizeof(*m->v));
    for (size_t i = 0; i < n; i++) {
        struct bs_buf b;
        char k[32];
        bs_buf_init(&b, 0);
        print_val(&b, &a[i]);
        snprintf(k, sizeof(k), "arg%zu", i);
        m->v[i].name = vcstr(x, k).s;
        m->v[i].value = vstr(x, b.data ? b.data : "", b.len).s;
        bs_buf_fini(&b);
    }
    m->n = n;
    out->k = V_MAP;
    out->map = m;
    return 0;
}

/* ------------------------------------------------------ Go builtins */

static int f_and_or(struct xstate *x, struct tval *a, size_t n, struct tval *out) { return 0; }

static int f_not(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    *out = vbool(!truth(&a[0]));
    return 0;
}

static int f_len(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    out->k = V_INT;
    switch (a[0].k) {
    case V_STRING: out->i = (int64_t)a[0].n; return 0;
    case V_MAP: out->i = (int64_t)a[0].map->n; return 0;
    case V_VEC: out->i = (int64_t)a[0].vec->n; return 0;
    default: return ferr(x, "len", "len of type %s", type_name(&a[0]));
    }
}

static int f_index(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    struct tval v = a[0];
    for (size_t i = 1; i < n; i++) {
        if (v.k == V_MAP) {
            if (a[i].k != V_STRING)
                return ferr(x, "index", "value has type %s; should be string", type_name(&a[i]));
            const char *s = map_get(v.map, cstr(x, &a[i]));
            v = vcstr(x, s ? s : "");
        } else if (v.k == V_VEC) {
            if (a[i].k != V_INT)
                return ferr(x, "index", "cannot index slice/array with type %s", type_name(&a[i]));
            if (a[i].i < 0 || (size_t)a[i].i >= v.vec->n)
                return ferr(x, "index", "index out of range: %lld", (long long)a[i].i);
            const struct tsample *s = v.vec->v[a[i].i];
            v.k = V_SAMPLE;
            v.smp = s;
        } else {
            return ferr(x, "index", "can't index item of type %s", type_name(&v));
        }
    }
    *out = v;
    return 0;
}

static void sprint(struct bs_buf *b, struct tval *a, size_t n, bool ln_mode)
{
    for (size_t i = 0; i < n; i++) {
        bool space = ln_mode ? i > 0 : (i > 0 && a[i].k != V_STRING && a[i - 1].k != V_STRING);
        if (space)
            bs_buf_putc(b, ' ');
        print_val(b, &a[i]);
    }
    if (ln_mode)
        bs_buf_putc(b, '\n');
}

static int f_print(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    sprint(&b, a, n, false);
    *out = vstr(x, b.data ? b.data : "", b.len);
    bs_buf_fini(&b);
    return 0;
}

static int f_println(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    sprint(&b, a, n, true);
    *out = vstr(x, b.data ? b.data : "", b.len);
    bs_buf_fini(&b);
    return 0;
}

static void go_quote(struct bs_buf *b, const char *s, size_t n)
{
    bs_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            bs_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            bs_buf_puts(b, "\\n");
        else if (c == '\t')
            bs_buf_puts(b, "\\t");
        else if (c == '\r')
            bs_buf_puts(b, "\\r");
        else if (c < 0x20 || c == 0x7f)
            bs_buf_printf(b, "\\x%02x", c);
        else
            bs_buf_putc(b, (char)c);
    }
    bs_buf_putc(b, '"');
}

/* fmt.Sprintf for the verbs templates use: v s d f F e E g G x X q t %. */
static int f_printf(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    if (want_type(x, &a[0], V_STRING, "string"))
        return -1;
    const char *f = cstr(x, &a[0]);
    size_t ai = 1;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    for (const char *p = f; *p; p++) {
        if (*p != '%') {
            bs_buf_putc(&b, *p);
            continue;
        }
        const char *st = p++;
        while (*p && strchr("+-# 0", *p))
            p++;
        while (isdigit((unsigned char)*p))
            p++;
        bool has_prec = false;
        if (*p == '.') {
            has_prec = true;
            p++;
            while (isdigit((unsigned char)*p))
                p++;
        }
        char verb = *p;
        if (!verb) {
            bs_buf_puts(&b, "%!(NOVERB)");
            break;
        }
        if (verb == '%') {
            bs_buf_putc(&b, '%');
            continue;
        }
        char spec[32];
        size_t sl = (size_t)(p - st);
        if (sl > sizeof(spec) - 8)
            sl = sizeof(spec) - 8;
        memcpy(spec, st, sl);
        spec[sl] = 0;
        if (ai >= n) {
            bs_buf_printf(&b, "%%!%c(MISSING)", verb);
            continue;
        }
        struct tval *v = &a[ai++];
        char num[BS_FLOAT_FMT_MAX + 64];
        bool bad = false;
        switch (verb) {
        case 'v':
        case 's':
            if (verb == 's' && v->k != V_STRING && v->k != V_MAP && v->k != V_VEC && v->k != V_SAMPLE) {
                bad = true;
                break;
            }
            {
                struct bs_buf t;
                bs_buf_init(&t, 0);
                print_val(&t, v);
                strcat(spec, "s");
                bs_buf_printf(&b, spec, t.data ? t.data : "");
                bs_buf_fini(&t);
            }
            break;
        case 'q':
            if (v->k != V_STRING) {
                bad = true;
                break;
            }
            go_quote(&b, v->s, v->n);
            break;
        case 't':
            if (v->k != V_BOOL) {
                bad = true;
                break;
            }
            bs_buf_puts(&b, v->b ? "true" : "false");
            break;
        case 'd':
        case 'x':
        case 'X':
        case 'o':
        case 'b':
            if (v->k == V_INT) {
                if (verb == 'b') {
                    char bits[70];
                    int k = 0;
                    uint64_t u = v->i < 0 ? (uint64_t)(-v->i) : (uint64_t)v->i;
                    do {
                        bits[k++] = (char)('0' + (u & 1));
                        u >>= 1;
                    } while (u);
                    if (v->i < 0)
                        bs_buf_putc(&b, '-');
                    while (k)
                        bs_buf_putc(&b, bits[--k]);
                    break;
                }
                strcat(spec, "ll");
                size_t l = strlen(spec);
                spec[l] = verb;
                spec[l + 1] = 0;
                bs_buf_printf(&b, spec, (long long)v->i);
            } else if (v->k == V_STRING && (verb == 'x' || verb == 'X')) {
                for (size_t i = 0; i < v->n; i++)
                    bs_buf_printf(&b, verb == 'x' ? "%02x" : "%02X", (unsigned char)v->s[i]);
            } else {
                bad = true;
            }
            break;
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
            if (v->k != V_FLOAT) {
                bad = true;
                break;
            }
            if (isnan(v->f) || isinf(v->f)) {
                fmt_special(v->f, num, sizeof(num));
                bs_buf_puts(&b, num);
            } else if ((verb == 'g' || verb == 'G') && !has_prec) {
                bs_float_format_short(v->f, num);
                bs_buf_puts(&b, num);
            } else {
                size_t l = strlen(spec);
                spec[l] = verb;
                spec[l + 1] = 0;
                bs_buf_printf(&b, spec, v->f);
            }
            break;
        default:
            bad = true;
        }
        if (bad) {
            bs_buf_printf(&b, "%%!%c(%s=", verb, type_name(v));
            print_val(&b, v);
            bs_buf_putc(&b, ')');
        }
    }
    if (ai < n) {
        bs_buf_puts(&b, "%!(EXTRA ");
        for (size_t i = ai; i < n; i++) {
            bs_buf_printf(&b, "%s%s=", i > ai ? ", " : "", type_name(&a[i]));
            print_val(&b, &a[i]);
        }
        bs_buf_putc(&b, ')');
    }
    *out = vstr(x, b.data ? b.data : "", b.len);
    bs_buf_fini(&b);
    return 0;
}

static int f_html(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    struct bs_buf t, b;
    bs_buf_init(&t, 0);
    bs_buf_init(&b, 0);
    sprint(&t, a, n, false);
    for (size_t i = 0; i < t.len; i++) {
        switch (t.data[i]) {
        case '<': bs_buf_puts(&b, "&lt;"); break;
        case '>': bs_buf_puts(&b, "&gt;"); break;
        case '&': bs_buf_puts(&b, "&amp;"); break;
        case '"': bs_buf_puts(&b, "&#34;"); break;
        case '\'': bs_buf_puts(&b, "&#39;"); break;
        case 0: bs_buf_puts(&b, "\xef\xbf\xbd"); break;
        default: bs_buf_putc(&b, t.data[i]);
        }
    }
    *out = vstr(x, b.data ? b.data : "", b.len);
    bs_buf_fini(&t);
    bs_buf_fini(&b);
    return 0;
}

static int f_urlquery(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    struct bs_buf t, b;
    bs_buf_init(&t, 0);
    bs_buf_init(&b, 0);
    sprint(&t, a, n, false);
    url_query_escape(&b, t.data ? t.data : "", t.len);
    *out = vstr(x, b.data ? b.data : "", b.len);
    bs_buf_fini(&t);
    bs_buf_fini(&b);
    return 0;
}

/* Comparison as text/template's eq/ne/lt/le/gt/ge. Returns -2 on error,
 * else -1/0/1 (ordering; for bools only 0 / non-0 meaningful). */
enum basic_kind { BK_INVALID, BK_BOOL, BK_INT, BK_FLOAT, BK_STRING };
static enum basic_kind basic(const struct tval *v)
{
    switch (v->k) {
    case V_BOOL: return BK_BOOL;
    case V_INT: return BK_INT;
    case V_FLOAT: return BK_FLOAT;
    case V_STRING: return BK_STRING;
    default: return BK_INVALID;
    }
}

static int compare(struct xstate *x, const char *fname, const struct tval *a, const struct tval *b,
                   bool ordered)
{
    enum basic_kind ka = basic(a), kb = basic(b);
    if (ka == BK_INVALID || kb == BK_INVALID || (ordered && (ka == BK_BOOL || kb == BK_BOOL))) {
        if (!ordered && a->k == V_NIL && b->k == V_NIL)
            return 0;
        ferr(x, fname, "invalid type for comparison");
        return -2;
    }
    if (ka != kb) {
        ferr(x, fname, "incompatible types for comparison");
        return -2;
    }
    switch (ka) {
    case BK_BOOL: return a->b == b->b ? 0 : 1;
    case BK_INT: return a->i < b->i ? -1 : a->i > b->i;
    case BK_FLOAT: return a->f < b->f ? -1 : a->f > b->f ? 1 : a->f == b->f ? 0 : 2;
    case BK_STRING: {
        size_t m = a->n < b->n ? a->n : b->n;
        int c = memcmp(a->s, b->s, m);
        return c < 0 ? -1 : c > 0 ? 1 : a->n < b->n ? -1 : a->n > b->n;
    }
    default: return -2;
    }
}

static int f_eq(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    for (size_t i = 1; i < n; i++) {
        int c = compare(x, "eq", &a[0], &a[i], false);
        if (c == -2)
            return -1;
        if (c == 0) {
            *out = vbool(true);
            return 0;
        }
    }
    *out = vbool(false);
    return 0;
}

static int f_ne(struct xstate *x, struct tval *a, size_t n, struct tval *out)
{
    int c = compare(x, "ne", &a[0], &a[1], false);
    if (c == -2)
        return -1;
    *out = vbool(c != 0);
    return 0;
}

#define CMPF(fname, expr)                                                              \
    static int f_##fname(struct xstate *x, struct tval *a, size_t n, struct tval *out) \
    {                                                                                  \
        int c = compare(x, #fname, &a[0], &a[1], true);                                \
        if (c == -2)                                                                   \
            return -1;                                                                 \
        *out = vbool(expr);                                                            \
        return 0;                                                                      \
    }
CMPF(lt, c == -1)
CMPF(le, c == -1 || c == 0)
CMPF(gt, c == 1)
CMPF(ge, c == 1 || c == 0)

static const struct fdef funcs[] = {
    {"and", f_and_or, 1, -1, true},
    {"args", f_args, 0, -1, false},
    {"eq", f_eq, 1, -1, false},
    {"externalURL", f_external_url, 0, 0, false},
    {"first", f_first, 1, 1, false},
    {"ge", f_ge, 2, 2, false},
    {"graphLink", f_graph_link, 1, 1, false},
    {"gt", f_gt, 2, 2, false},
    {"html", f_html, 0, -1, false},
    {"humanize", f_humanize, 1, 1, false},
    {"humanize1024", f_humanize1024, 1, 1, false},
    {"humanizeDuration", f_humanize_duration, 1, 1, false},
    {"humanizePercentage", f_humanize_percentage, 1, 1, false},
    {"humanizeTimestamp", f_humanize_timestamp, 1, 1, false},
    {"index", f_index, 1, -1, false},
    {"label", f_label, 2, 2, false},
    {"le", f_le, 2, 2, false},
    {"len", f_len, 1, 1, false},
    {"lt", f_lt, 2, 2, false},
    {"match", f_match, 2, 2, false},
    {"ne", f_ne, 2, 2, false},
    {"not", f_not, 1, 1, false},
    {"or", f_and_or, 1, -1, true},
    {"parseDuration", f_parse_duration, 1, 1, false},
    {"pathPrefix", f_path_prefix, 0, 0, false},
    {"print", f_print, 0, -1, false},
    {"printf", f_printf, 1, -1, false},
    {"println", f_println, 0, -1, false},
    {"query", f_query, 1, 1, false},
    {"reReplaceAll", f_re_replace_all, 3, 3, false},
    {"safeHtml", f_safe_html, 1, 1, false},
    {"sortByLabel", f_sort_by_label, 2, 2, false},
    {"stripDomain", f_strip_domain, 1, 1, false},
    {"stripPort", f_strip_port, 1, 1, false},
    {"strvalue", f_strvalue, 1, 1, false},
    {"tableLink", f_table_link, 1, 1, false},
    {"title", f_title, 1, 1, false},
    {"toLower", f_lower, 1, 1, false},
    {"toUpper", f_upper, 1, 1, false},
    {"urlquery", f_urlquery, 0, -1, false},
    {"value", f_value, 1, 1, false},
};

static const struct fdef *find_func(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (strlen(funcs[i].name) == n && !memcmp(funcs[i].name, name, n))
            return &funcs[i];
    return NULL;
}

/* ------------------------------------------------------------ entry */

static struct tlist *parse_all(struct parser *p, struct bs_arena *arena, const char *name,
                               const char *src)
{
    memset(p, 0, sizeof(*p));
    p->name = name;
    p->src = src;
    p->n = strlen(src);
    p->arena = arena;
    push_var(p, "$");
    int stop;
    struct tlist *l = parse_list(p, &stop, 0);
    free(p->vars);
    p->vars = NULL;
    return p->failed ? NULL : l;
}

int rules_template_check(const char *name, const char *text, struct bs_error *err)
{
    struct bs_arena arena;
    struct parser p;
    struct bs_buf src;
    bs_arena_init(&arena, 4096, 0);
    bs_buf_init(&src, 0);
    bs_buf_puts(&src, TMPL_PREFIX);
    bs_buf_puts(&src, text);
    int rc = parse_all(&p, &arena, name, src.data) ? 0 : bs_error_set(err, BS_EPARSE, "%s", p.err);
    bs_buf_fini(&src);
    bs_arena_fini(&arena);
    return rc;
}

static void tmap_from(struct xstate *x, struct tmap *m, const struct labels *ls)
{
    m->n = 0;
    m->v = NULL;
    if (!ls || !ls->n)
        return;
    m->v = xalloc(x, ls->n * sizeof(*m->v));
    memcpy(m->v, ls->v, ls->n * sizeof(*m->v));
    m->n = ls->n;
}

int rules_template_expand(const char *name, const char *text, const struct rules_tmpl_data *d,
                          struct bs_buf *out, struct bs_error *err)
{
    /* Text without actions: nothing to parse. */
    if (!strstr(text, "{{"))
        return bs_buf_puts(out, text);
    struct bs_arena arena;
    struct parser p;
    struct bs_buf src;
    int rc = 0;
    bs_arena_init(&arena, 8192, 64u << 20);
    bs_buf_init(&src, 0);
    bs_buf_puts(&src, TMPL_PREFIX);
    bs_buf_puts(&src, text);
    struct tlist *l = parse_all(&p, &arena, name, src.data);
    if (!l) {
        rc = bs_error_set(err, BS_EPARSE, "error parsing template %s: %s", name, p.err);
        goto done;
    }
    struct xstate x;
    memset(&x, 0, sizeof(x));
    x.name = name;
    x.src = src.data;
    x.arena = &arena;
    x.out = out;
    x.d = d;
    tmap_from(&x, &x.labels, d->labels);
    tmap_from(&x, &x.ext, d->external_labels);
    struct tval root = {.k = V_DATA};
    set_var(&x, "$", &root, false);
    bool ok = exec_list(&x, l, &root);
    free(x.vars);
    if (!ok)
        rc = bs_error_set(err, BS_EEXEC, "error executing template %s: %s", name, x.err);
done:
    bs_buf_fini(&src);
    bs_arena_fini(&arena);
    return rc;
}
