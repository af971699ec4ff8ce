/* SPDX-License-Identifier: Apache-2.0
 *
 * Tests of service discovery: the target group parsers (JSON as Go's
 * encoding/json reads them, YAML strictly), the DNS answer reader on
 * constructed responses, and the whole path from a provider to the scrape
 * manager's /api/v1/targets view:
 *  - file_sd with JSON and YAML files written by the test, rewritten while
 *    running (inotify picks the change up within a second or two, with a
 *    refresh_interval of an hour), a broken file keeping its last good
 *    targets, a deleted file dropping them, and refresh_interval alone
 *    finding a file in a directory that did not exist at start;
 *  - http_sd against an HTTP server in the test (good lists, a changing
 *    list, a wrong Content-Type, a 500, basic auth);
 *  - dns_sd A/AAAA through getaddrinfo ("localhost"), and SRV through
 *    libresolv against a small UDP DNS server in the test on 127.0.0.1
 *    (sd_dns_set_test_server points the resolver at it).
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <ftw.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "scrape/sd_int.h"
#include "tsdb/tsdb.h"

/* -------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    return bs_monotonic_ns() / 1000000;
}

static void write_file(const char *path, const char *text)
{
    /* Written beside and renamed, as config management tools do. */
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp~", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* Overwrite in place (truncate and write), the unfriendly way. */
static void overwrite_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

struct fixture {
    char dir[64];
    struct tsdb *db;
    struct scrape_manager *m;
};

static void fixture_open(struct fixture *f)
{
    struct tsdb_options o;
    struct bs_error err;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bongsu-sd-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char db[128];
    snprintf(db, sizeof(db), "%s/data", f->dir);
    tsdb_options_default(&o);
    o.dir = db;
    if (tsdb_open(&f->db, &o, &err) != 0)
        fail_msg("tsdb_open: %s", err.msg);
    f->m = scrape_manager_new(f->db);
    assert_non_null(f->m);
}

static void fixture_close(struct fixture *f)
{
    scrape_manager_free(f->m);
    tsdb_close(f->db);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void apply(struct fixture *f, const char *fmt, ...) BS_PRINTF(2, 3);

static void apply(struct fixture *f, const char *fmt, ...)
{
    char yaml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    struct config *c = NULL;
    struct bs_error err;
    if (config_load_string(yaml, strlen(yaml), "test.yml", &c, &err) != 0)
        fail_msg("config: %s", err.msg);
    if (scrape_manager_apply_config(f->m, c, &err) != 0)
        fail_msg("apply: %s", err.msg);
    config_free(c); /* the manager keeps its own reference */
}

/* The activeTargets part of /api/v1/targets (caller frees). */
static char *active_json(struct fixture *f)
{
    struct bs_buf b;
    bs_buf_init(&b, 0);
    assert_int_equal(scrape_manager_targets_json(f->m, "active", &b), 0);
    return bs_buf_steal(&b, NULL);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Wait until every needle of want[] occurs in the active targets, none of
 * nowant[] does, and there are exactly ntargets targets; fail after
 * timeout_ms with the last JSON. */
static void wait_targets(struct fixture *f, size_t ntargets, const char *const *want,
                         const char *const *nowant, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char *js = NULL;
    for (;;) {
        free(js);
        js = active_json(f);
        bool ok = count_of(js, "\"scrapePool\"") == ntargets;
        for (size_t i = 0; ok && want && want[i]; i++)
            ok = strstr(js, want[i]) != NULL;
        for (size_t i = 0; ok && nowant && nowant[i]; i++)
            ok = strstr(js, nowant[i]) == NULL;
        if (ok)
            break;
        if (now_ms() > deadline)
            fail_msg("targets not as expected after %lld ms: %s", (long long)timeout_ms, js);
        bs_sleep_ms(20);
    }
    free(js);
}

/* ---------------------------------------------------------------- parsers */

static int parse(const char *text, enum sd_format fmt, struct sd_groups *g, struct bs_error *err)
{
    bs_error_clear(err);
    return sd_groups_parse(text, strlen(text), fmt, "f", "__meta_filepath", "f", g, err);
}

static void test_parse_json(void **state)
{
    (void)state;
    struct sd_groups g = {0};
    struct bs_error err;
    const char *doc =
        "[\n"
        "  {\"targets\": [\"a:1\", \"b:2\"], \"labels\": {\"env\": \"prod\", "
        "\"e\\u00e9\": \"x\"}},\n"
        "  {\"Targets\": [\"c:3\"], \"extra\": [1, {\"z\": null}], \"labels\": null},\n"
        "  {\"labels\": {\"__meta_filepath\": \"overridden\", \"empty\": \"\"}}\n"
        "]\n";
    /* "e\u00e9" is not a valid label name: the whole document fails. */
    assert_int_equal(parse(doc, SD_FORMAT_JSON, &g, &err), BS_EINVAL);
    assert_string_equal(err.msg, "f:2:57: \"eé\" is not a valid label name");
    assert_int_equal(g.n, 0);

    doc = "[\n"
          "  {\"targets\": [\"a:1\", \"b\\u00e9:2\"], \"labels\": {\"env\": \"pr\\\"od\"}},\n"
          "  {\"Targets\": [\"c:3\"], \"extra\": [1, {\"z\": null}], \"labels\": null},\n"
          "  {\"targets\": [\"x\"], \"targets\": [\"d:4\"],\n"
          "   \"labels\": {\"__meta_filepath\": \"overridden\", \"empty\": \"\"}}\n"
          "]\n";
    assert_int_equal(parse(doc, SD_FORMAT_JSON, &g, &err), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.v[0].ntargets, 2);
    assert_string_equal(labels_get(g.v[0].targets[1], "__address__"), "bé:2");
    assert_string_equal(labels_get(g.v[0].labels, "env"), "pr\"od");
    assert_string_equal(labels_get(g.v[0].labels, "__meta_filepath"), "f");
    assert_int_equal(g.v[1].ntargets, 1);
    assert_int_equal(g.v[1].labels->n, 1); /* only __meta_filepath */
    assert_int_equal(g.v[2].ntargets, 1);  /* a later "targets" replaces */
    assert_string_equal(labels_get(g.v[2].targets[0], "__address__"), "d:4");
    assert_string_equal(labels_get(g.v[2].labels, "__meta_filepath"), "f");
    assert_null(labels_get(g.v[2].labels, "empty"));
    sd_groups_fini(&g);

    assert_int_equal(parse("null", SD_FORMAT_JSON, &g, &err), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(parse(" [ ] ", SD_FORMAT_JSON, &g, &err), 0);
    assert_int_equal(g.n, 0);

    static const struct {
        const char *doc;
        int code;
        const char *msg;
    } bad[] = {
        {"", BS_EPARSE, "f:1:1: unexpected end of JSON input"},
        {"{}", BS_EPARSE,
         "f:1:1: json: cannot unmarshal object into Go value of type []*targetgroup.Group"},
        {"[null]", BS_EINVAL, "f:1:2: nil target group item found"},
        {"[{\"targets\": [1]}]", BS_EPARSE,
         "f:1:15: json: cannot unmarshal number into Go struct field .targets of type string"},
        {"[{\"targets\": \"a:1\"}]", BS_EPARSE,
         "f:1:14: json: cannot unmarshal string into Go struct field .targets of type []string"},
        {"[{\"labels\": {\"a\": 1}}]", BS_EPARSE,
         "f:1:19: json: cannot unmarshal number into Go struct field .labels of type string"},
        {"[{\"targets\": [\"a:1\",]}]", BS_EPARSE,
         "f:1:21: invalid character ']' looking for beginning of value"},
        {"[{}] x", BS_EPARSE, "f:1:6: invalid character 'x' after top-level value"},
        {"[{\"targets\": [\"a\n\"]}]", BS_EPARSE,
         "f:1:17: invalid character 0x0a in string literal"},
        {"[{}", BS_EPARSE, "f:1:4: unexpected end of JSON input"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].doc, SD_FORMAT_JSON, &g, &err);
        if (rc != bad[i].code || strcmp(err.msg, bad[i].msg) != 0)
            fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err.msg, bad[i].code,
                     bad[i].msg);
        assert_int_equal(g.n, 0);
    }
    /* Deep nesting in an ignored key is bounded. */
    char deep[400] = "[{\"x\":";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    assert_int_equal(parse(deep, SD_FORMAT_JSON, &g, &err), BS_ELIMIT);
    sd_groups_fini(&g); /* failures leave no groups, perhaps capacity */
}

static void test_parse_yaml(void **state)
{
    (void)state;
    struct sd_groups g = {0};
    struct bs_error err;
    const char *doc = "- targets: ['a:1', b:2]\n"
                      "  labels:\n"
                      "    env: prod\n"
                      "    rack: 7\n"
                      "- targets:\n"
                      "    - c:3\n"
                      "- labels: {only: labels}\n";
    assert_int_equal(parse(doc, SD_FORMAT_YAML, &g, &err), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.v[0].ntargets, 2);
    assert_string_equal(labels_get(g.v[0].targets[1], "__address__"), "b:2");
    assert_string_equal(labels_get(g.v[0].labels, "rack"), "7");
    assert_string_equal(labels_get(g.v[1].targets[0], "__address__"), "c:3");
    assert_int_equal(g.v[2].ntargets, 0);
    sd_groups_fini(&g);
    assert_int_equal(parse("", SD_FORMAT_YAML, &g, &err), 0);
    assert_int_equal(g.n, 0);

    static const struct {
        const char *doc;
        int code;
        const char *msg;
    } bad[] = {
        {"- targets: [a]\n  lables: {a: b}\n", BS_EPARSE,
         "f:2:3: field lables not found in type struct { Targets []string "
         "\"yaml:\\\"targets\\\"\"; Labels model.LabelSet \"yaml:\\\"labels\\\"\" }"},
        {"- labels: {0a: b}\n", BS_EINVAL, "f:1:12: \"0a\" is not a valid label name"},
        {"- labels: {a: b, a: c}\n", BS_EPARSE, "f:1:18: mapping key \"a\" already defined"},
        {"- targets: [a]\n  targets: [b]\n", BS_EPARSE,
         "f:2:3: mapping key \"targets\" already defined"},
        {"- ~\n", BS_EINVAL, "f:1:3: nil target group item found"},
        {"targets: [a]\n", BS_EPARSE, "f:1:1: cannot unmarshal !!map into []*targetgroup.Group"},
        {"- targets: a\n", BS_EPARSE, "f:1:12: cannot unmarshal !!str into []string"},
        {"- targets: [[a]]\n", BS_EPARSE, "f:1:13: cannot unmarshal !!seq into string"},
        {"- targets: [a\n", BS_EPARSE, "f:2:1: yaml: did not find expected ',' or ']'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i].doc, SD_FORMAT_YAML, &g, &err);
        if (rc != bad[i].code || strcmp(err.msg, bad[i].msg) != 0)
            fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err.msg, bad[i].code,
                     bad[i].msg);
        assert_int_equal(g.n, 0);
    }
    sd_groups_fini(&g);
}

/* ------------------------------------------------------------- DNS wire */

/* Append a name as uncompressed labels. */
static size_t put_name(unsigned char *p, const char *name)
{
    size_t n = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p[n++] = (unsigned char)l;
        memcpy(p + n, name, l);
        n += l;
        name += l;
        if (*name == '.')
            name++;
    }
    p[n++] = 0;
    return n;
}

static size_t put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return 2;
}

struct rr {
    int type; /* ns_t_* */
    unsigned port;
    const char *target; /* SRV/MX/NS/CNAME name, or A/AAAA text address */
};

/* A response to the question qname/qtype with answers rr[0..n) (each with
 * a compression pointer to the question's name), rcode as given. */
static size_t build_answer(unsigned char *buf, unsigned id, const char *qname, int qtype,
                           const struct rr *rr, size_t n, int rcode)
{
    size_t o = 0;
    o += put16(buf + o, id);
    o += put16(buf + o, 0x8180 | (unsigned)rcode);
    o += put16(buf + o, 1);
    o += put16(buf + o, (unsigned)n);
    o += put16(buf + o, 0);
    o += put16(buf + o, 0);
    o += put_name(buf + o, qname);
    o += put16(buf + o, (unsigned)qtype);
    o += put16(buf + o, 1);
    for (size_t i = 0; i < n; i++) {
        o += put16(buf + o, 0xc00c); /* the question's name */
        o += put16(buf + o, (unsigned)rr[i].type);
        o += put16(buf + o, 1);
        o += put16(buf + o, 0);
        o += put16(buf + o, 30); /* TTL */
        size_t rdlen_at = o;
        o += 2;
        size_t start = o;
        if (rr[i].type == ns_t_srv) {
            o += put16(buf + o, 10); /* priority */
            o += put16(buf + o, 5);  /* weight */
            o += put16(buf + o, rr[i].port);
            o += put_name(buf + o, rr[i].target);
        } else if (rr[i].type == ns_t_mx) {
            o += put16(buf + o, 10);
            o += put_name(buf + o, rr[i].target);
        } else if (rr[i].type == ns_t_ns || rr[i].type == ns_t_cname) {
            o += put_name(buf + o, rr[i].target);
        } else if (rr[i].type == ns_t_a) {
            inet_pton(AF_INET, rr[i].target, buf + o);
            o += 4;
        } else if (rr[i].type == ns_t_aaaa) {
            inet_pton(AF_INET6, rr[i].target, buf + o);
            o += 16;
        } else {
            o += put16(buf + o, 0); /* something else */
        }
        put16(buf + rdlen_at, (unsigned)(o - start));
    }
    return o;
}

static void test_dns_answer_parse(void **state)
{
    (void)state;
    unsigned char buf[1024];
    struct sd_groups g = {0};
    struct bs_error err;
    const struct rr srv[] = {{ns_t_srv, 9100, "node1.example.com"},
                             {ns_t_srv, 9200, "node2.example.com"},
                             {ns_t_cname, 0, "ignored.example.com"},
                             {ns_t_srv, 80, "[weird"}};
    size_t len = build_answer(buf, 7, "_node._tcp.example.com", ns_t_srv, srv, 4, 0);
    assert_int_equal(
        sd_dns_parse_answer(buf, len, CONFIG_DNS_SRV, "_node._tcp.example.com", 0, &g, &err), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].ntargets, 3);
    const struct labels *t = g.v[0].targets[0];
    assert_string_equal(labels_get(t, "__address__"), "node1.example.com:9100");
    assert_string_equal(labels_get(t, "__meta_dns_name"), "_node._tcp.example.com");
    assert_string_equal(labels_get(t, "__meta_dns_srv_record_target"), "node1.example.com.");
    assert_string_equal(labels_get(t, "__meta_dns_srv_record_port"), "9100");
    assert_null(labels_get(t, "__meta_dns_mx_record_target"));
    assert_string_equal(labels_get(g.v[0].targets[1], "__address__"), "node2.example.com:9200");
    sd_groups_fini(&g);

    const struct rr mixed[] = {{ns_t_mx, 0, "mail.example.com"},
                               {ns_t_a, 0, "10.0.0.1"},
                               {ns_t_aaaa, 0, "2001:db8::1"},
                               {ns_t_ns, 0, "ns1.example.com"},
                               {99, 0, ""}};
    len = build_answer(buf, 8, "example.com", ns_t_mx, mixed, 5, 0);
    assert_int_equal(sd_dns_parse_answer(buf, len, CONFIG_DNS_MX, "example.com", 25, &g, &err), 0);
    assert_int_equal(g.v[0].ntargets, 4);
    assert_string_equal(labels_get(g.v[0].targets[0], "__address__"), "mail.example.com:25");
    assert_string_equal(labels_get(g.v[0].targets[0], "__meta_dns_mx_record_target"),
                        "mail.example.com.");
    assert_string_equal(labels_get(g.v[0].targets[1], "__address__"), "10.0.0.1:25");
    assert_string_equal(labels_get(g.v[0].targets[2], "__address__"), "[2001:db8::1]:25");
    assert_string_equal(labels_get(g.v[0].targets[3], "__meta_dns_ns_record_target"),
                        "ns1.example.com.");
    sd_groups_fini(&g);

    /* Cut short, a pointer past the end: malformed. */
    len = build_answer(buf, 9, "_node._tcp.example.com", ns_t_srv, srv, 1, 0);
    assert_int_equal(sd_dns_parse_answer(buf, len - 5, CONFIG_DNS_SRV, "x", 0, &g, &err),
                     BS_EPARSE);
    buf[len - 1] = 0xc0; /* a compression pointer with its second byte missing */
    assert_int_equal(sd_dns_parse_answer(buf, len, CONFIG_DNS_SRV, "x", 0, &g, &err), BS_EPARSE);
    assert_int_equal(sd_dns_parse_answer(buf, 5, CONFIG_DNS_SRV, "x", 0, &g, &err), BS_EPARSE);
    assert_int_equal(g.n, 0);
}

/* ------------------------------------------------------------ file_sd */

static void test_file_sd_changes(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char sd[128], json[192], yml[192];
    snprintf(sd, sizeof(sd), "%s/sd", f.dir);
    assert_int_equal(mkdir(sd, 0755), 0);
    snprintf(json, sizeof(json), "%s/a.json", sd);
    snprintf(yml, sizeof(yml), "%s/b.yml", sd);
    write_file(json, "[{\"targets\": [\"127.0.0.1:1001\", \"127.0.0.1:1002\"],"
                     " \"labels\": {\"env\": \"prod\"}}]");
    /* An hour: only inotify can make the changes below visible in time. */
    apply(&f,
          "global: {scrape_interval: 1h}\n"
          "scrape_configs:\n"
          "  - job_name: files\n"
          "    file_sd_configs:\n"
          "      - files: ['%s/*.json', '%s/*.yml']\n"
          "        refresh_interval: 1h\n"
          "    static_configs: [{targets: ['127.0.0.1:1000']}]\n",
          sd, sd);
    /* The first apply already has the file's targets. */
    char meta[300];
    snprintf(meta, sizeof(meta), "\"__meta_filepath\":\"%s\"", json);
    const char *want1[] = {
        "127.0.0.1:1000", "127.0.0.1:1001", "127.0.0.1:1002", meta, "\"env\":\"prod\"", NULL};
    char *js = active_json(&f);
    assert_int_equal(count_of(js, "\"scrapePool\""), 3);
    free(js);
    wait_targets(&f, 3, want1, NULL, 0);

    /* A YAML file appears. */
    write_file(yml, "- targets: ['127.0.0.1:1003']\n  labels: {env: dev}\n");
    const char *want2[] = {"127.0.0.1:1001", "127.0.0.1:1003", "\"env\":\"dev\"", NULL};
    wait_targets(&f, 4, want2, NULL, 3000);

    /* The JSON file loses a target and gains one. */
    int64_t t0 = now_ms();
    write_file(json, "[{\"targets\": [\"127.0.0.1:1002\", \"127.0.0.1:1004\"]}]");
    const char *want3[] = {"127.0.0.1:1002", "127.0.0.1:1004", "127.0.0.1:1003", NULL};
    const char *nowant3[] = {"127.0.0.1:1001", NULL};
    wait_targets(&f, 4, want3, nowant3, 3000);
    print_message("inotify change visible after %lld ms\n", (long long)(now_ms() - t0));

    /* Broken (truncated and rewritten in place): the last good targets stay. */
    overwrite_file(json, "[{\"targets\": [\"127.0.0.1:1005\"");
    bs_sleep_ms(600);
    wait_targets(&f, 4, want3, NULL, 0);
    overwrite_file(yml, "- targets: [127.0.0.1:1003]\n  bogus: 1\n");
    bs_sleep_ms(600);
    wait_targets(&f, 4, want3, NULL, 0);
    /* Fixed again. */
    overwrite_file(json, "[{\"targets\": [\"127.0.0.1:1005\"]}]");
    const char *want4[] = {"127.0.0.1:1005", "127.0.0.1:1003", NULL};
    wait_targets(&f, 3, want4, NULL, 3000);

    /* Deleted: its targets go. */
    assert_int_equal(unlink(yml), 0);
    const char *want5[] = {"127.0.0.1:1005", NULL};
    const char *nowant5[] = {"127.0.0.1:1003", NULL};
    wait_targets(&f, 2, want5, nowant5, 3000);

    /* A reload with the same file_sd keeps the targets without a gap. */
    apply(&f,
          "global: {scrape_interval: 1h}\n"
          "scrape_configs:\n"
          "  - job_name: files\n"
          "    file_sd_configs:\n"
          "      - files: ['%s/*.json', '%s/*.yml']\n"
          "        refresh_interval: 1h\n"
          "    static_configs: [{targets: ['127.0.0.1:1000']}]\n",
          sd, sd);
    js = active_json(&f);
    assert_non_null(strstr(js, "127.0.0.1:1005"));
    free(js);
    /* And without file_sd they are gone at once. */
    apply(&f,
          "scrape_configs: [{job_name: files, static_configs: [{targets: ['127.0.0.1:1000']}]}]\n");
    js = active_json(&f);
    assert_int_equal(count_of(js, "\"scrapePool\""), 1);
    free(js);
    fixture_close(&f);
}

static void test_file_sd_refresh_interval(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    char sd[128], yaml[192];
    snprintf(sd, sizeof(sd), "%s/later", f.dir);
    snprintf(yaml, sizeof(yaml), "%s/t.yaml", sd);
    /* The directory does not exist yet, so nothing can be watched. */
    apply(&f,
          "scrape_configs:\n"
          "  - job_name: r\n"
          "    scrape_interval: 1h\n"
          "    file_sd_configs: [{files: ['%s'], refresh_interval: 1s}]\n",
          yaml);
    wait_targets(&f, 0, NULL, NULL, 0);
    assert_int_equal(mkdir(sd, 0755), 0);
    write_file(yaml, "- targets: ['127.0.0.1:2001']\n");
    const char *want[] = {"127.0.0.1:2001", NULL};
    wait_targets(&f, 1, want, NULL, 4000);
    fixture_close(&f);
}

/* ------------------------------------------------------------ http_sd */

struct sd_server {
    int lfd, port;
    pthread_t th;
    pthread_mutex_t mu;
    bool stop;
    /* guarded by mu */
    int status;
    char content_type[64];
    char body[1024];
    int requests;
    char auth[128];   /* Authorization header of the last request */
    char refresh[32]; /* X-Prometheus-Refresh-Interval-Seconds */
};

static void *sd_server_run(void *arg)
{
    struct sd_server *s = arg;
    for (;;) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(s->lfd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        size_t n = 0;
        while (n < sizeof(req) - 1) {
            ssize_t r = read(c, req + n, sizeof(req) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = '\0';
        char out[2048];
        pthread_mutex_lock(&s->mu);
        s->requests++;
        const char *a = strcasestr(req, "\r\nAuthorization: ");
        s->auth[0] = '\0';
        if (a)
            sscanf(a + 17, "%127[^\r]", s->auth);
        const char *r = strcasestr(req, "\r\nX-Prometheus-Refresh-Interval-Seconds: ");
        s->refresh[0] = '\0';
        if (r)
            sscanf(r + 41, "%31[^\r]", s->refresh);
        int len = snprintf(out, sizeof(out),
                           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n%s",
                           s->status, s->status == 200 ? "OK" : "Internal Server Error",
                           s->content_type, strlen(s->body), s->body);
        pthread_mutex_unlock(&s->mu);
        ssize_t w = write(c, out, (size_t)len);
        (void)w;
        close(c);
    }
    return NULL;
}

static struct sd_server *sd_server_start(void)
{
    struct sd_server *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t sl = sizeof(sa);
    getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    pthread_mutex_init(&s->mu, NULL);
    s->status = 200;
    snprintf(s->content_type, sizeof(s->content_type), "application/json");
    assert_int_equal(pthread_create(&s->th, NULL, sd_server_run, s), 0);
    return s;
}

static void sd_server_stop(struct sd_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void sd_server_set(struct sd_server *s, int status, const char *ct, const char *body)
{
    pthread_mutex_lock(&s->mu);
    s->status = status;
    snprintf(s->content_type, sizeof(s->content_type), "%s", ct);
    snprintf(s->body, sizeof(s->body), "%s", body);
    pthread_mutex_unlock(&s->mu);
}

static int sd_server_requests(struct sd_server *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Wait for n more requests than had, then a little for the result to be
 * applied. */
static void wait_requests(struct sd_server *s, int had, int n)
{
    int64_t deadline = now_ms() + 5000;
    while (sd_server_requests(s) < had + n) {
        if (now_ms() > deadline)
            fail_msg("the HTTP SD server got %d requests, want %d", sd_server_requests(s), had + n);
        bs_sleep_ms(20);
    }
    bs_sleep_ms(200);
}

static void test_http_sd(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    struct sd_server *s = sd_server_start();
    sd_server_set(s, 200, "application/json; charset=utf-8",
                  "[{\"targets\": [\"127.0.0.1:3001\", \"127.0.0.1:3002\"], "
                  "\"labels\": {\"dc\": \"one\"}}]");
    apply(&f,
          "scrape_configs:\n"
          "  - job_name: h\n"
          "    scrape_interval: 1h\n"
          "    http_sd_configs:\n"
          "      - url: http://127.0.0.1:%d/sd\n"
          "        refresh_interval: 1s\n"
          "        basic_auth: {username: alice, password: secret}\n",
          s->port);
    char meta[128];
    snprintf(meta, sizeof(meta), "\"__meta_url\":\"http://127.0.0.1:%d/sd\"", s->port);
    const char *want1[] = {"127.0.0.1:3001", "127.0.0.1:3002", meta, "\"dc\":\"one\"", NULL};
    wait_targets(&f, 2, want1, NULL, 4000);
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->auth, "Basic YWxpY2U6c2VjcmV0");
    assert_string_equal(s->refresh, "1");
    pthread_mutex_unlock(&s->mu);

    /* The list changes. */
    sd_server_set(s, 200, "application/json",
                  "[{\"targets\": [\"127.0.0.1:3002\"]}, {\"targets\": [\"127.0.0.1:3003\"]}]");
    const char *want2[] = {"127.0.0.1:3002", "127.0.0.1:3003", NULL};
    const char *nowant2[] = {"127.0.0.1:3001", NULL};
    wait_targets(&f, 2, want2, nowant2, 4000);

    /* A wrong content type, a 500, and bad JSON keep the last list. */
    int had = sd_server_requests(s);
    sd_server_set(s, 200, "text/plain", "[{\"targets\": [\"127.0.0.1:3009\"]}]");
    wait_requests(s, had, 2);
    wait_targets(&f, 2, want2, NULL, 0);
    had = sd_server_requests(s);
    sd_server_set(s, 500, "application/json", "[]");
    wait_requests(s, had, 2);
    wait_targets(&f, 2, want2, NULL, 0);
    had = sd_server_requests(s);
    sd_server_set(s, 200, "application/json", "[{\"targets\": ");
    wait_requests(s, had, 2);
    wait_targets(&f, 2, want2, NULL, 0);

    /* An empty list empties the job. */
    sd_server_set(s, 200, "application/json", "[]");
    wait_targets(&f, 0, NULL, NULL, 4000);
    fixture_close(&f);
    sd_server_stop(s);
}

/* ------------------------------------------------------------- dns_sd */

static bool localhost_has_ipv6(void)
{
    struct addrinfo hints = {.ai_family = AF_INET6, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo("localhost", NULL, &hints, &res) != 0)
        return false;
    freeaddrinfo(res);
    return true;
}

static void test_dns_sd_hosts(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f);
    bool v6 = localhost_has_ipv6();
    apply(&f,
          "scrape_configs:\n"
          "  - job_name: a\n"
          "    scrape_interval: 1h\n"
          "    dns_sd_configs:\n"
          "      - names: [localhost, no-such-name.invalid]\n"
          "        type: A\n"
          "        port: 9100\n"
          "%s",
          v6 ? "      - names: [localhost]\n"
               "        type: AAAA\n"
               "        port: 9101\n"
             : "");
    const char *want4[] = {"\"__address__\":\"127.0.0.1:9100\"",
                           "\"__meta_dns_name\":\"localhost\"", NULL};
    const char *want6[] = {"\"__address__\":\"127.0.0.1:9100\"", "\"__address__\":\"[::1]:9101\"",
                           NULL};
    wait_targets(&f, v6 ? 2 : 1, v6 ? want6 : want4, NULL, 4000);
    if (!v6)
        print_message("localhost has no IPv6 address here: AAAA not checked\n");
    fixture_close(&f);
}

struct dns_server {
    int fd, port;
    pthread_t th;
    atomic_bool stop;
    atomic_int queries;
    atomic_int variant; /* 0: two SRV records, 1: one, 2: SERVFAIL */
};

static void *dns_server_run(void *arg)
{
    struct dns_server *d = arg;
    while (!atomic_load(&d->stop)) {
        struct pollfd p = {.fd = d->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        unsigned char q[512], out[1024];
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
        if (n < 17)
            continue;
        atomic_fetch_add(&d->queries, 1);
        unsigned id = (unsigned)q[0] << 8 | q[1];
        /* The question's name, back to text. */
        char name[256];
        size_t o = 12, w = 0;
        while (o < (size_t)n && q[o] && w < sizeof(name) - 70) {
            size_t l = q[o++];
            if (w)
                name[w++] = '.';
            memcpy(name + w, q + o, l);
            w += l;
            o += l;
        }
        name[w] = '\0';
        int qtype = (int)((unsigned)q[o + 1] << 8 | q[o + 2]);
        size_t len;
        int variant = atomic_load(&d->variant);
        if (strcmp(name, "_node._tcp.sd.test") != 0 || qtype != ns_t_srv) {
            len = build_answer(out, id, name, qtype, NULL, 0, 3 /* NXDOMAIN */);
        } else if (variant == 2) {
            len = build_answer(out, id, name, qtype, NULL, 0, 2 /* SERVFAIL */);
        } else {
            const struct rr rr[] = {{ns_t_srv, 4001, "localhost"}, {ns_t_srv, 4002, "localhost"}};
            len = build_answer(out, id, name, qtype, rr, variant == 0 ? 2 : 1, 0);
        }
        sendto(d->fd, out, len, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

static void test_dns_sd_srv(void **state)
{
    (void)state;
    struct dns_server *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(d->fd, (struct sockaddr *)&sa, &sl);
    assert_int_equal(pthread_create(&d->th, NULL, dns_server_run, d), 0);
    sd_dns_set_test_server(sa.sin_addr.s_addr, sa.sin_port);

    struct fixture f;
    fixture_open(&f);
    apply(&f, "scrape_configs:\n"
              "  - job_name: srv\n"
              "    scrape_interval: 1h\n"
              "    dns_sd_configs:\n"
              "      - names: [_node._tcp.sd.test.]\n"
              "        refresh_interval: 1s\n");
    const char *want[] = {"\"__address__\":\"localhost:4001\"",
                          "\"__address__\":\"localhost:4002\"",
                          "\"__meta_dns_srv_record_target\":\"localhost.\"",
                          "\"__meta_dns_srv_record_port\":\"4002\"",
                          "\"__meta_dns_name\":\"_node._tcp.sd.test.\"",
                          NULL};
    wait_targets(&f, 2, want, NULL, 4000);
    /* A server failure keeps the last good answer. */
    atomic_store(&d->variant, 2);
    int had = atomic_load(&d->queries);
    int64_t deadline = now_ms() + 5000;
    while (atomic_load(&d->queries) < had + 2 && now_ms() < deadline)
        bs_sleep_ms(20);
    bs_sleep_ms(200);
    wait_targets(&f, 2, want, NULL, 0);
    /* A shorter answer removes a target. */
    atomic_store(&d->variant, 1);
    const char *want1[] = {"\"__address__\":\"localhost:4001\"", NULL};
    const char *nowant1[] = {"localhost:4002", NULL};
    wait_targets(&f, 1, want1, nowant1, 4000);
    fixture_close(&f);

    sd_dns_set_test_server(0, 0);
    atomic_store(&d->stop, true);
    pthread_join(d->th, NULL);
    close(d->fd);
    free(d);
}

int main(void)
{
    if (getenv("BONGSU_TEST_DEBUG"))
        bs_log_set_level(BS_LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_json),
        cmocka_unit_test(test_parse_yaml),
        cmocka_unit_test(test_dns_answer_parse),
        cmocka_unit_test(test_file_sd_changes),
        cmocka_unit_test(test_file_sd_refresh_interval),
        cmocka_unit_test(test_http_sd),
        cmocka_unit_test(test_dns_sd_hosts),
        cmocka_unit_test(test_dns_sd_srv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
