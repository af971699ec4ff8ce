/* SPDX-License-Identifier: Apache-2.0
 *
 * promqltest: `--self-test`, checks of the runner's own pieces that do not
 * need the engine: series-description expansion (FORMAT.md §4), series
 * descriptors, the float comparison of §7 and a small script parse.
 * Prints one line per failed check; returns the number of failures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptest.h"

static int fails;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("self-test %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            fails++;                                                             \
        }                                                                        \
    } while (0)

/* Expand s and compare with the text form of want: numbers, "_", "s"
 * (stale), "h" (histogram), separated by spaces. */
static void expect_values(const char *s, const char *want)
{
    struct pt_value *v = NULL;
    size_t n = 0, k = 0;
    struct bs_error err;
    char buf[512], *save = NULL;

    bs_error_clear(&err);
    if (pt_values_expand(s, strlen(s), &v, &n, &err)) {
        printf("self-test: \"%s\" failed to expand: %s\n", s, err.msg);
        fails++;
        return;
    }
    snprintf(buf, sizeof(buf), "%s", want);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save), k++) {
        bool ok = k < n;
        if (ok && strcmp(w, "_") == 0)
            ok = v[k].kind == PT_VAL_OMIT;
        else if (ok && strcmp(w, "s") == 0)
            ok = v[k].kind == PT_VAL_FLOAT && bs_is_stale_nan(v[k].v);
        else if (ok && strcmp(w, "h") == 0)
            ok = v[k].kind == PT_VAL_HIST;
        else if (ok)
            ok = v[k].kind == PT_VAL_FLOAT && pt_float_equal(strtod(w, NULL), v[k].v) &&
                 !bs_is_stale_nan(v[k].v);
        if (!ok) {
            printf("self-test: \"%s\": value %zu differs from \"%s\"\n", s, k, want);
            fails++;
            break;
        }
    }
    if (k != n) {
        printf("self-test: \"%s\": %zu values, want %zu\n", s, n, k);
        fails++;
    }
    free(v);
}

static void expect_bad(const char *s)
{
    struct pt_value *v = NULL;
    size_t n = 0;
    struct bs_error err;
    if (pt_values_expand(s, strlen(s), &v, &n, &err) == 0) {
        printf("self-test: \"%s\" should not expand\n", s);
        fails++;
        free(v);
    }
}

static void expect_series(const char *s, const char *want, size_t want_used)
{
    struct labels *ls = NULL;
    struct bs_error err;
    struct bs_buf b;
    size_t used = 0;

    bs_buf_init(&b, 0);
    if (pt_series_parse(s, strlen(s), &used, &ls, &err)) {
        printf("self-test: series \"%s\": %s\n", s, err.msg);
        fails++;
        return;
    }
    if (ls->n == 0)
        bs_buf_puts(&b, "{}");
    else
        labels_format(ls, &b);
    if (strcmp(b.data, want) != 0 || used != want_used) {
        printf("self-test: series \"%s\": got %s (%zu bytes), want %s (%zu)\n", s, b.data, used,
               want, want_used);
        fails++;
    }
    bs_buf_fini(&b);
    free(ls);
}

int pt_self_test(void)
{
    fails = 0;
    expect_values("1 2 3", "1 2 3");
    expect_values("0+10x3", "0 10 20 30");
    expect_values("1-1x5", "1 0 -1 -2 -3 -4");
    expect_values("-2+1x2", "-2 -1 0");
    expect_values("0x3", "0 0 0 0");
    expect_values("9x1", "9 9");
    expect_values("_x3 1", "_ _ _ 1");
    expect_values("_ stale 4", "_ s 4");
    expect_values("1e-5+1x1", "1e-5 1.00001");
    expect_values("1.78264E+215 -Inf inf NaN .8", "1.78264e215 -inf inf nan 0.8");
    expect_values("{{schema:1 sum:5 count:3 buckets:[1 2]}} 1", "h 1");
    expect_values("{{count:1}}x2", "h h h");
    expect_values("{{count:1}}+{{count:2 buckets:[1 1]}}x1 _", "h h _");
    expect_values("", "");
    expect_bad("0x");
    expect_bad("abc");
    expect_bad("1+x3");
    expect_bad("{{count:1");
    expect_bad("{{bogus:1}}");

    expect_series("up 1", "up", 2);
    expect_series("{} 1", "{}", 2);
    expect_series("foo{a=\"x y\", b='z'} 1", "foo{a=\"x y\", b=\"z\"}", 19);
    expect_series("{__name__=\"m\",job=\"a\\\"b\"}", "m{job=\"a\\\"b\"}", 25);
    expect_series("{\"my.metric\", \"l.x\"=\"v\"}", "{\"my.metric\", \"l.x\"=\"v\"}", 24);
    expect_series("m:rec{e=\"\"} 3", "m:rec", 11);

    CHECK(pt_float_equal(NAN, NAN));
    CHECK(!pt_float_equal(NAN, bs_stale_nan()));
    CHECK(pt_float_equal(bs_stale_nan(), bs_stale_nan()));
    CHECK(pt_float_equal(INFINITY, INFINITY));
    CHECK(!pt_float_equal(INFINITY, -INFINITY));
    CHECK(pt_float_equal(1.0, 1.0000000001));
    CHECK(!pt_float_equal(1.0, 1.001));
    CHECK(!pt_float_equal(0.0, 1e-300));
    CHECK(pt_float_equal(0.0, -0.0));
    CHECK(pt_float_equal(1e308, 1.0000000001e308));

    /* A script with every command kind and one broken command. */
    static const char script[] =
        "# comment\n"
        "load 5m\n"
        "  m{a=\"1\"} 0+1x2\n"
        "  m{a=\"1\"}@st _ _ -1m\n"
        "\n"
        "eval instant at 5m m\n"
        "  m{a=\"1\"} 1\n"
        "\n"
        "eval range from 0 to 10m step 5m m\n"
        "  expect no_warn\n"
        "  m{a=\"1\"} 0 _ 2\n"
        "\n"
        "eval instant at 0 1\n"
        "  expect fail msg: boom\n"
        "\n"
        "eval instant at 0 \"x\"\n"
        "  expect string `x`\n"
        "\n"
        "clear\n"
        "eval instant at 1m 2\n"
        "  0x10\n"
        "\n"
        "bogus command\n"
        "\n"
        "eval instant at 0 m\n"
        "  m 1 2\n";
    struct pt_file f;
    CHECK(pt_file_parse(&f, "t.test", script, strlen(script)) == 0);
    CHECK(f.ncmds == 9);
    if (f.ncmds == 9) {
        CHECK(f.cmds[0].kind == PT_CMD_LOAD && f.cmds[0].line == 2);
        CHECK(f.cmds[0].load.nseries == 1 && f.cmds[0].load.n_st_lines == 1);
        CHECK(f.cmds[0].load.interval_ms == 300000);
        CHECK(f.cmds[1].kind == PT_CMD_EVAL && f.cmds[1].eval.at == 300000);
        CHECK(f.cmds[2].eval.range && f.cmds[2].eval.no_warn && f.cmds[2].eval.step == 300000);
        CHECK(f.cmds[2].eval.series[0].nvals == 3);
        CHECK(f.cmds[3].eval.want_fail && f.cmds[3].eval.fail_msg.mode == PT_MSG_EXACT &&
              strcmp(f.cmds[3].eval.fail_msg.text, "boom") == 0);
        CHECK(f.cmds[4].eval.want_string && strcmp(f.cmds[4].eval.string, "x") == 0);
        CHECK(f.cmds[5].kind == PT_CMD_CLEAR && f.cmds[5].line == 19);
        CHECK(f.cmds[6].eval.want_scalar && f.cmds[6].eval.scalar == 16);
        CHECK(f.cmds[7].kind == PT_CMD_BROKEN && f.cmds[7].line == 23);
        CHECK(f.cmds[8].kind == PT_CMD_BROKEN && f.cmds[8].broken_eval);
    }
    pt_file_fini(&f);
    printf("self-test: %s (%d failures)\n", fails ? "FAILED" : "ok", fails);
    return fails;
}
