/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the InfluxDB line protocol (src/ingest/line_protocol.c and
 * influx.c): a table of lines with what the store must then hold (escapes,
 * field types, precisions, name sanitising, the db label), refused lines
 * with InfluxDB's reasons and our line numbers, partial writes, gzip,
 * limits, /ping and /query. Reasons were checked against a real InfluxDB
 * 1.6 given the same lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <zlib.h>

#include "ingest/ingest.h"
#include "ingest/push_int.h"
#include "test_tsdb_util.h"

struct fx {
    char *dir;
    struct tsdb *db;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = make_tmpdir();
    f->db = open_db(f->dir, 60000, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tsdb_close(f->db);
    rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Query parameters as "k=v&k=v" (no decoding). */
struct params {
    char buf[256];
};

static const char *param(void *ctx, const char *name)
{
    struct params *p = ctx;
    /* Values must stay valid for the whole call: rotate buffers. */
    static char vals[4][128];
    static unsigned next;
    char *val = vals[next++ % 4];
    size_t nl = strlen(name);
    for (const char *s = p->buf; *s;) {
        const char *amp = strchr(s, '&');
        size_t l = amp ? (size_t)(amp - s) : strlen(s);
        if (l > nl && !strncmp(s, name, nl) && s[nl] == '=') {
            snprintf(val, 128, "%.*s", (int)(l - nl - 1), s + nl + 1);
            return val;
        }
        s += l + (amp ? 1 : 0);
    }
    return NULL;
}

static char body_out[8192];
static int write_req(struct fx *f, int version, const char *params, const char *enc,
                     const void *body, size_t len)
{
    struct params p;
    snprintf(p.buf, sizeof(p.buf), "%s", params);
    struct ingest_response r;
    assert_int_equal(ingest_influx_write(f->db, NULL, version, param, &p, enc, body, len, &r), 0);
    snprintf(body_out, sizeof(body_out), "%s", r.body ? r.body : "");
    int st = r.status;
    if (st == 204)
        assert_null(r.body);
    ingest_response_fini(&r);
    return st;
}

static int w1(struct fx *f, const char *body)
{
    return write_req(f, 1, "db=telegraf", NULL, body, strlen(body));
}

static char *dump_all(struct tsdb *db, const char *m)
{
    return dump_query(db, INT64_MIN, INT64_MAX, m, true);
}

#define ASSERT_DUMP(db, m, want)                                                                   \
    do {                                                                                           \
        char *got_ = dump_all(db, m);                                                              \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* ------------------------------------------------------------------ table */

struct lp_case {
    const char *line;
    const char *want;   /* dump of {db="telegraf"} after writing just this line */
};

static void test_table(void **state)
{
    static const struct lp_case cases[] = {
        {"cpu,host=a value=1 1000000000", "cpu_value{db=\"telegraf\", host=\"a\"} 1000:1\n"},
        {"cpu value=1i 2000000000", "cpu_value{db=\"telegraf\"} 2000:1\n"},
        {"cpu value=-5i 2000000000", "cpu_value{db=\"telegraf\"} 2000:-5\n"},
        {"cpu value=18446744073709551615u 2000000000",
         "cpu_value{db=\"telegraf\"} 2000:1.84467e+19\n"},
        {"cpu a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE 0",
         "cpu_a{db=\"telegraf\"} 0:1\ncpu_b{db=\"telegraf\"} 0:1\ncpu_c{db=\"telegraf\"} 0:1\n"
         "cpu_d{db=\"telegraf\"} 0:1\ncpu_e{db=\"telegraf\"} 0:1\ncpu_f{db=\"telegraf\"} 0:0\n"
         "cpu_g{db=\"telegraf\"} 0:0\ncpu_h{db=\"telegraf\"} 0:0\ncpu_i{db=\"telegraf\"} 0:0\n"
         "cpu_j{db=\"telegraf\"} 0:0\n"},
        {"cpu v=1.5e3,w=-.5,x=2. 0",
         "cpu_v{db=\"telegraf\"} 0:1500\ncpu_w{db=\"telegraf\"} 0:-0.5\ncpu_x{db=\"telegraf\"} 0:2\n"},
        /* Escapes: measurement comma and space; tag key/value and field key
         * comma, equals, space; string values skipped. */
        {"my\\ meas\\,x,ta\\ g=v\\,a\\=l\\ ue,t\\=k=1 f\\ i\\,e\\=ld=3,s=\"a \\\"q\\\" \\\\ b\" 0",
         "my_meas_x_f_i_e_ld{db=\"telegraf\", t_k=\"1\", ta_g=\"v,a=l ue\"} 0:3\n"},
        /* Names sanitised; a leading digit gets an underscore. */
        {"1cpu.load,host.name=h-1 5m=0.5 0", "_1cpu_load_5m{db=\"telegraf\", host_name=\"h-1\"} 0:0.5\n"},
        /* A tag named db wins over the request's. */
        {"m,db=other v=1 0", ""},
        /* A backslash before another byte is kept. */
        {"m,t=a\\b v=1 0", "m_v{db=\"telegraf\", t=\"a\\\\b\"} 0:1\n"},
        /* A string value may contain a newline; blank lines and comments. */
        {"# comment\n\n  m s=\"x\ny\",v=2 0  \n", "m_v{db=\"telegraf\"} 0:2\n"},
        {"m v=1 -1000000", "m_v{db=\"telegraf\"} -1:1\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fx *f;
        setup((void **)&f);
        int st = w1(f, cases[i].line);
        if (st != 204)
            fail_msg("case %zu (%s): status %d: %s", i, cases[i].line, st, body_out);
        char *got = dump_all(f->db, "db=telegraf");
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu (%s):\n got: %s\nwant: %s", i, cases[i].line, got, cases[i].want);
        free(got);
        teardown((void **)&f);
        (void)state;
    }
}

static void test_db_tag_wins(void **state)
{
    struct fx *f = *state;
    assert_int_equal(w1(f, "m,db=other v=1 0"), 204);
    ASSERT_DUMP(f->db, "db=other", "m_v{db=\"other\"} 0:1\n");
}

/* ----------------------------------------------------------------- errors */

struct bad_case {
    const char *line;
    const char *reason;
};

static void test_bad_lines(void **state)
{
    struct fx *f = *state;
    static const struct bad_case cases[] = {
        {"cpu", "missing fields"},
        {"cpu ", "missing fields"},
        {"cpu,host value=1", "missing tag value"},
        {"cpu,host= value=1", "missing tag value"},
        {"cpu,=a value=1", "missing tag key"},
        {"cpu =1", "missing field key"},
        {",a=b v=1", "missing measurement"},
        {"cpu value=", "missing field value"},
        {"cpu value=\"unterminated", "unbalanced quotes"},
        {"cpu value=1x", "invalid number"},
        {"cpu value=tru", "invalid boolean"},
        {"cpu value=1 12a", "bad timestamp"},
        {"bad line here", "invalid field format"},
        {"cpu value=99999999999999999999i",
         "unable to parse integer 99999999999999999999: strconv.ParseInt: parsing "
         "\"99999999999999999999\": value out of range"},
        {"cpu value=NaN", "invalid boolean"},
        {"cpu value=oops", "invalid boolean"},
        {"cpu value=-x", "invalid number"},
        {"cpu,a.b=1,a_b=2 v=1", "duplicate tags"},
        {"cpu,__name__=x v=1", "tag key __name__ is reserved"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = w1(f, cases[i].line);
        char want[512];
        struct bs_buf b;
        bs_buf_init(&b, 0);
        bs_json_string(&b, cases[i].line, strlen(cases[i].line));
        /* Trailing white space is not quoted. */
        size_t q = b.len - 1;
        while (q > 1 && b.data[q - 1] == ' ')
            q--;
        struct bs_buf r;
        bs_buf_init(&r, 0);
        bs_json_string(&r, cases[i].reason, strlen(cases[i].reason));
        snprintf(want, sizeof(want), "{\"error\":\"unable to parse '%.*s': %.*s (line 1)\"}\n",
                 (int)(q - 1), b.data + 1, (int)r.len - 2, r.data + 1);
        bs_buf_fini(&b);
        bs_buf_fini(&r);
        if (st != 400 || strcmp(body_out, want) != 0)
            fail_msg("case %zu: %d %s\nwant %s", i, st, body_out, want);
    }
    ASSERT_DUMP(f->db, "db=telegraf", "");
}

static void test_partial_write(void **state)
{
    struct fx *f = *state;
    assert_int_equal(w1(f, "cpu value=1 1000000000\nbad line here\ncpu2 v=3 abc\ncpu value=2 2000000000\n"),
                     400);
    assert_string_equal(body_out,
                        "{\"error\":\"partial write: unable to parse 'bad line here': invalid field "
                        "format (line 2)\\nunable to parse 'cpu2 v=3 abc': bad timestamp (line 3) "
                        "dropped=0\"}\n");
    ASSERT_DUMP(f->db, "db=telegraf", "cpu_value{db=\"telegraf\"} 1000:1 2000:2\n");
    /* A string spanning lines counts them. */
    assert_int_equal(w1(f, "m s=\"a\nb\" 0\nm v=1x 0\n"), 400);
    assert_non_null(strstr(body_out, "invalid number (line 3) dropped=0"));
    /* Out of order in the store: dropped, named. */
    assert_int_equal(w1(f, "cpu value=3 500000000\ncpu value=3 3000000000\n"), 400);
    assert_string_equal(body_out,
                        "{\"error\":\"partial write: out of order sample for series "
                        "cpu_value{db=\\\"telegraf\\\"} at timestamp 500 dropped=1\"}\n");
    ASSERT_DUMP(f->db, "db=telegraf", "cpu_value{db=\"telegraf\"} 1000:1 2000:2 3000:3\n");
}

static void test_many_errors_capped(void **state)
{
    struct fx *f = *state;
    struct bs_buf b;
    bs_buf_init(&b, 0);
    for (int i = 0; i < 15; i++)
        bs_buf_puts(&b, "x\n");
    bs_buf_puts(&b, "ok v=1 0\n");
    assert_int_equal(w1(f, b.data), 400);
    assert_non_null(strstr(body_out, "(line 10)\\n(and 5 more lines that could not be parsed) dropped=0"));
    bs_buf_fini(&b);
}

/* ------------------------------------------------------------- precisions */

static void test_precisions(void **state)
{
    struct fx *f = *state;
    static const struct {
        int version;
        const char *params;
        const char *line;
        const char *want;
    } cases[] = {
        {1, "db=p&precision=n", "a v=1 1500000000", "1500"},
        {1, "db=p&precision=ns", "b v=1 1500000000", "1500"},
        {1, "db=p&precision=u", "c v=1 1500000", "1500"},
        {1, "db=p&precision=ms", "d v=1 1500", "1500"},
        {1, "db=p&precision=s", "e v=1 2", "2000"},
        {2, "bucket=p&org=o&precision=us", "h v=1 1500000", "1500"},
        {2, "bucket=p&precision=s", "i v=1 3", "3000"},
        {2, "bucket=p", "j v=1 4000000", "4"},
        /* Last: the store refuses samples an hour older than its newest. */
        {1, "db=p&precision=m", "f v=1 2", "120000"},
        {1, "db=p&precision=h", "g v=1 2", "7200000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = write_req(f, cases[i].version, cases[i].params, NULL, cases[i].line,
                           strlen(cases[i].line));
        if (st != 204)
            fail_msg("case %zu: %d %s", i, st, body_out);
        char m[32], want[64];
        snprintf(m, sizeof(m), "__name__=%c_v", cases[i].line[0]);
        snprintf(want, sizeof(want), "%c_v{db=\"p\"} %s:1\n", cases[i].line[0], cases[i].want);
        ASSERT_DUMP(f->db, m, want);
    }
    assert_int_equal(write_req(f, 2, "bucket=p&precision=h", NULL, "x v=1", 5), 400);
    assert_string_equal(body_out, "{\"code\":\"invalid\",\"message\":\"invalid precision \\\"h\\\" "
                                  "(use ns, us, ms or s)\"}\n");
    assert_int_equal(write_req(f, 1, "db=p&precision=x", NULL, "x v=1", 5), 400);
    /* No timestamp: the request's time. */
    int64_t t0 = bs_now_ms();
    assert_int_equal(write_req(f, 1, "db=now", NULL, "now v=1", 7), 204);
    char *got = dump_all(f->db, "db=now");
    long long t = 0;
    assert_int_equal(sscanf(got, "now_v{db=\"now\"} %lld:1", &t), 1);
    assert_true(t >= t0 && t <= bs_now_ms());
    free(got);
    /* db and bucket are required. */
    assert_int_equal(write_req(f, 1, "rp=x", NULL, "x v=1", 5), 400);
    assert_string_equal(body_out, "{\"error\":\"database is required\"}\n");
    assert_int_equal(write_req(f, 2, "org=x", NULL, "x v=1", 5), 404);
}

/* ------------------------------------------------------------ gzip, limits */

static unsigned char *gz(const char *text, size_t *len)
{
    uLong cap = compressBound(strlen(text)) + 64;
    unsigned char *z = malloc(cap);
    z_stream zs = {0};
    deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)text;
    zs.avail_in = (uInt)strlen(text);
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *len = zs.total_out;
    deflateEnd(&zs);
    return z;
}

static void test_gzip_limits(void **state)
{
    struct fx *f = *state;
    size_t zl;
    unsigned char *z = gz("g v=7 0\n", &zl);
    assert_int_equal(write_req(f, 1, "db=z", "gzip", z, zl), 204);
    ASSERT_DUMP(f->db, "db=z", "g_v{db=\"z\"} 0:7\n");
    assert_int_equal(write_req(f, 1, "db=z", "gzip", z, zl - 3), 400);
    assert_int_equal(write_req(f, 1, "db=z", "deflate", z, zl), 415);
    free(z);

    /* A bomb: 64 MiB of zeros in a small body, against a 1 MiB cap. */
    char *big = calloc(1, 64u << 20);
    memset(big, 'a', (64u << 20) - 1);
    z = gz(big, &zl);
    free(big);
    struct ingest_limits lim;
    ingest_limits_default(&lim);
    lim.max_decoded_bytes = 1 << 20;
    lim.max_series_per_request = 3;
    struct params p = {"db=z"};
    struct ingest_response r;
    ingest_influx_write(f->db, &lim, 1, param, &p, "gzip", z, zl, &r);
    assert_int_equal(r.status, 413);
    ingest_response_fini(&r);
    free(z);
    const char *four = "a v=1 0\nb v=1 0\nc v=1 0\nd v=1 0\n";
    ingest_influx_write(f->db, &lim, 1, param, &p, NULL, four, strlen(four), &r);
    assert_int_equal(r.status, 413);
    ingest_response_fini(&r);
    lim.max_body_bytes = 4;
    ingest_influx_write(f->db, &lim, 1, param, &p, NULL, four, strlen(four), &r);
    assert_int_equal(r.status, 413);
    ingest_response_fini(&r);
}

/* ------------------------------------------------------------ ping, query */

static void test_ping_query(void **state)
{
    struct fx *f = *state;
    struct ingest_response r;
    ingest_influx_ping(&r);
    assert_int_equal(r.status, 204);
    bool have = false;
    for (size_t i = 0; i < r.nheaders; i++)
        have |= !strcmp(r.headers[i].name, "X-Influxdb-Version") &&
                !strcmp(r.headers[i].value, INGEST_INFLUX_VERSION);
    assert_true(have);
    ingest_response_fini(&r);

    assert_int_equal(w1(f, "m v=1 0"), 204);
    assert_int_equal(ingest_influx_query(f->db, "CREATE DATABASE \"mydb\"", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"results\":[{\"statement_id\":0}]}\n");
    ingest_response_fini(&r);
    assert_int_equal(ingest_influx_query(f->db, "show databases; CREATE DATABASE x2", &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":"
                                   "\"databases\",\"columns\":[\"name\"],\"values\":["));
    assert_non_null(strstr(r.body, "[\"mydb\"]"));
    assert_non_null(strstr(r.body, "[\"telegraf\"]"));
    assert_non_null(strstr(r.body, "{\"statement_id\":1}]}"));
    ingest_response_fini(&r);
    assert_int_equal(ingest_influx_query(f->db, "SELECT * FROM cpu", &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "PromQL"));
    ingest_response_fini(&r);
}

/* ---------------------------------------------------------------- tokenizer */

static void test_sanitize_unescape(void **state)
{
    (void)state;
    char out[64];
    size_t n = lp_sanitize_name("9a.b:c", 6, true, out);
    assert_int_equal(n, 7);
    assert_memory_equal(out, "_9a_b:c", 7);
    n = lp_sanitize_name("a:b", 3, false, out);
    assert_memory_equal(out, "a_b", n);
    struct lp_token t = {"a\\,b\\ c\\=d\\x", 12, true};
    n = lp_unescape(&t, out);
    assert_int_equal(n, 9);
    assert_memory_equal(out, "a,b c=d\\x", 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test_setup_teardown(test_db_tag_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_errors_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_query, setup, teardown),
        cmocka_unit_test(test_sanitize_unescape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
