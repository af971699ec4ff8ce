/* SPDX-License-Identifier: Apache-2.0
 *
 * Unit tests of the service discovery sections of prometheus.yml:
 * file_sd_configs, http_sd_configs and dns_sd_configs with their defaults,
 * Prometheus's validation and wording, file:line:col positions, file
 * patterns resolved against the configuration's directory, the HTTP client
 * settings of http_sd, and the configuration's reference count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

static struct config *load_ok(const char *yaml)
{
    struct config *c = NULL;
    struct bs_error err = {0};
    int rc = config_load_string(yaml, strlen(yaml), "t.yml", &c, &err);
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err.msg);
    assert_non_null(c);
    return c;
}

static void load_fails(const char *yaml, int code, const char *msg)
{
    struct config *c = (struct config *)1;
    struct bs_error err = {0};
    int rc = config_load_string(yaml, strlen(yaml), "t.yml", &c, &err);
    assert_null(c);
    if (rc != code || strcmp(err.msg, msg) != 0)
        fail_msg("got %d \"%s\", want %d \"%s\"", rc, err.msg, code, msg);
}

static void test_file_sd(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_configs:\n"
                               "  - job_name: f\n"
                               "    file_sd_configs:\n"
                               "      - files: [a/*.json, /abs/t.yml, b*.YAML]\n"
                               "      - files: [x.json]\n"
                               "        refresh_interval: 10s\n");
    const struct config_scrape *s = &c->scrape_configs[0];
    assert_int_equal(s->nfile_sd_configs, 2);
    assert_int_equal(s->file_sd_configs[0].nfiles, 3);
    assert_string_equal(s->file_sd_configs[0].files[0], "a/*.json");
    assert_string_equal(s->file_sd_configs[0].files[1], "/abs/t.yml");
    assert_string_equal(s->file_sd_configs[0].files[2], "b*.YAML");
    assert_int_equal(s->file_sd_configs[0].refresh_interval_ms, 300000);
    assert_int_equal(s->file_sd_configs[1].refresh_interval_ms, 10000);
    assert_int_equal(c->nwarnings, 0); /* no longer "not supported" */
    config_free(c);

    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      - files: [a.json, 'targets.txt']\n",
               BS_EINVAL, "t.yml:4:25: path name \"targets.txt\" is not valid for file discovery");
    /* A '*' may not be followed by a directory. */
    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      - files: ['*/a.json']\n",
               BS_EINVAL, "t.yml:4:17: path name \"*/a.json\" is not valid for file discovery");
    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      - files: []\n",
               BS_EINVAL,
               "t.yml:4:16: file service discovery config must contain at least one path name");
    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      - refresh_interval: 1m\n",
               BS_EINVAL,
               "t.yml:4:9: file service discovery config must contain at least one path name");
    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      - files: [a.json]\n"
               "        refresh: 1m\n",
               BS_EPARSE, "t.yml:5:9: field refresh not found in type file.plain");
    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      - files: [a.json]\n"
               "        refresh_interval: soon\n",
               BS_EINVAL,
               "t.yml:5:27: not a valid duration string: \"soon\" (key refresh_interval)");
    load_fails("scrape_configs:\n"
               "  - job_name: f\n"
               "    file_sd_configs:\n"
               "      -\n",
               BS_EINVAL, "t.yml:4:8: empty or null section in file_sd_configs");
}

static void test_file_sd_relative_to_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/bongsu-cfgsd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/prometheus.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("scrape_configs:\n"
          "  - job_name: f\n"
          "    file_sd_configs:\n"
          "      - files: [targets/*.json, /etc/t.yml]\n",
          f);
    fclose(f);
    struct config *c = NULL;
    struct bs_error err = {0};
    if (config_load_file(path, &c, &err) != 0)
        fail_msg("%s", err.msg);
    char want[300];
    snprintf(want, sizeof(want), "%s/targets/*.json", dir);
    assert_string_equal(c->scrape_configs[0].file_sd_configs[0].files[0], want);
    assert_string_equal(c->scrape_configs[0].file_sd_configs[0].files[1], "/etc/t.yml");
    config_free(c);
    unlink(path);
    rmdir(dir);
}

static void test_http_sd(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_configs:\n"
                               "  - job_name: h\n"
                               "    http_sd_configs:\n"
                               "      - url: http://sd.example:8080/targets\n"
                               "      - url: https://user@sd.example/t\n"
                               "        refresh_interval: 15s\n"
                               "        basic_auth: {username: u, password: p}\n"
                               "        tls_config: {insecure_skip_verify: true}\n"
                               "        follow_redirects: false\n"
                               "      - url: http://sd.example/x\n"
                               "        bearer_token: tok\n"
                               "      - url: http://sd.example/y\n"
                               "        oauth2: {client_id: x}\n");
    const struct config_scrape *s = &c->scrape_configs[0];
    assert_int_equal(s->nhttp_sd_configs, 4);
    const struct config_http_sd *h = s->http_sd_configs;
    assert_string_equal(h[0].url, "http://sd.example:8080/targets");
    assert_int_equal(h[0].refresh_interval_ms, 60000);
    assert_true(h[0].http.follow_redirects);
    assert_true(h[0].http.enable_http2);
    assert_false(h[0].http.has_basic_auth);
    assert_int_equal(h[1].refresh_interval_ms, 15000);
    assert_true(h[1].http.has_basic_auth);
    assert_string_equal(h[1].http.username, "u");
    assert_string_equal(h[1].http.password, "p");
    assert_true(h[1].http.tls.insecure_skip_verify);
    assert_false(h[1].http.follow_redirects);
    assert_true(h[2].http.has_authorization);
    assert_string_equal(h[2].http.auth_type, "Bearer");
    assert_string_equal(h[2].http.auth_credentials, "tok");
    assert_int_equal(c->nwarnings, 1);
    assert_string_equal(c->warnings[0], "t.yml:13:9: key oauth2 is not supported yet and is "
                                        "ignored");
    config_free(c);

    load_fails("scrape_configs:\n"
               "  - job_name: h\n"
               "    http_sd_configs:\n"
               "      - refresh_interval: 1m\n",
               BS_EINVAL, "t.yml:4:9: URL is missing");
    load_fails("scrape_configs:\n"
               "  - job_name: h\n"
               "    http_sd_configs:\n"
               "      - url: ftp://x/y\n",
               BS_EINVAL, "t.yml:4:14: URL scheme must be 'http' or 'https'");
    load_fails("scrape_configs:\n"
               "  - job_name: h\n"
               "    http_sd_configs:\n"
               "      - url: http:///path\n",
               BS_EINVAL, "t.yml:4:14: host is missing in URL");
    load_fails("scrape_configs:\n"
               "  - job_name: h\n"
               "    http_sd_configs:\n"
               "      - url: http://x/\n"
               "        basic_auth: {username: u}\n"
               "        bearer_token: t\n",
               BS_EINVAL,
               "t.yml:6:9: at most one of basic_auth, oauth2, bearer_token & bearer_token_file "
               "must be configured");
    load_fails("scrape_configs:\n"
               "  - job_name: h\n"
               "    http_sd_configs:\n"
               "      - url: http://x/\n"
               "        targets: [a]\n",
               BS_EPARSE, "t.yml:5:9: field targets not found in type http.plain");
}

static void test_dns_sd(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_configs:\n"
                               "  - job_name: d\n"
                               "    dns_sd_configs:\n"
                               "      - names: [_prometheus._tcp.example.com]\n"
                               "      - names: [a.example, b.example]\n"
                               "        type: a\n"
                               "        port: 9100\n"
                               "        refresh_interval: 5s\n"
                               "      - names: [c.example]\n"
                               "        type: AAAA\n"
                               "        port: 80\n"
                               "      - names: [m.example]\n"
                               "        type: MX\n"
                               "        port: 25\n");
    const struct config_scrape *s = &c->scrape_configs[0];
    assert_int_equal(s->ndns_sd_configs, 4);
    const struct config_dns_sd *d = s->dns_sd_configs;
    assert_int_equal(d[0].type, CONFIG_DNS_SRV);
    assert_int_equal(d[0].port, 0);
    assert_int_equal(d[0].refresh_interval_ms, 30000);
    assert_int_equal(d[1].type, CONFIG_DNS_A);
    assert_int_equal(d[1].nnames, 2);
    assert_string_equal(d[1].names[1], "b.example");
    assert_int_equal(d[1].port, 9100);
    assert_int_equal(d[1].refresh_interval_ms, 5000);
    assert_int_equal(d[2].type, CONFIG_DNS_AAAA);
    assert_int_equal(d[3].type, CONFIG_DNS_MX);
    config_free(c);

    load_fails("scrape_configs:\n"
               "  - job_name: d\n"
               "    dns_sd_configs:\n"
               "      - names: [a]\n"
               "        type: A\n",
               BS_EINVAL,
               "t.yml:4:9: a port is required in DNS-SD configs for all record types except SRV");
    load_fails("scrape_configs:\n"
               "  - job_name: d\n"
               "    dns_sd_configs:\n"
               "      - names: [a]\n"
               "        type: TXT\n",
               BS_EINVAL, "t.yml:5:15: invalid DNS-SD records type TXT");
    load_fails("scrape_configs:\n"
               "  - job_name: d\n"
               "    dns_sd_configs:\n"
               "      - type: SRV\n",
               BS_EINVAL, "t.yml:4:9: DNS-SD config must contain at least one SRV record name");
    load_fails("scrape_configs:\n"
               "  - job_name: d\n"
               "    dns_sd_configs:\n"
               "      - names: [a]\n"
               "        port: 70000\n"
               "        type: A\n",
               BS_EINVAL, "t.yml:5:15: invalid port 70000 (key port)");
    load_fails("scrape_configs:\n"
               "  - job_name: d\n"
               "    dns_sd_configs:\n"
               "      - names: a\n",
               BS_EPARSE, "t.yml:4:16: expected a list for key names");
    load_fails("scrape_configs:\n"
               "  - job_name: d\n"
               "    dns_sd_configs: {names: [a]}\n",
               BS_EPARSE, "t.yml:3:21: expected a list for key dns_sd_configs");
}

static void test_reference_count(void **state)
{
    (void)state;
    struct config *c = load_ok("scrape_configs: [{job_name: a}]\n");
    assert_ptr_equal(config_ref(c), c);
    config_free(c); /* the loader's reference */
    /* Still usable through the other one (ASan would catch a free). */
    assert_string_equal(c->scrape_configs[0].job_name, "a");
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_sd),         cmocka_unit_test(test_file_sd_relative_to_config),
        cmocka_unit_test(test_http_sd),         cmocka_unit_test(test_dns_sd),
        cmocka_unit_test(test_reference_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
