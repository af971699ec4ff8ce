/* SPDX-License-Identifier: Apache-2.0
 *
 * The TSDB admin API, behind --web.enable-admin-api, as Prometheus 2.42's
 * web/api/v1 serves it (POST or PUT):
 *
 *   /api/v1/admin/tsdb/delete_series?match[]=<selector>&start=&end=
 *       204 No Content; 400 bad_data "no match[] parameter provided", or
 *       invalid parameter "start"/"end"/"match[]": ...; 500 internal when
 *       the store fails (the message names the file).
 *   /api/v1/admin/tsdb/clean_tombstones   204, or 500 internal.
 *   /api/v1/admin/tsdb/snapshot?skip_head=<bool>
 *       200 {"status":"success","data":{"name":"20060102T150405Z-<16 hex>"}}
 *       (the directory <data>/snapshots/<name>); 400 for a bad skip_head.
 *
 * Disabled, every one answers 500 {"status":"error","errorType":
 * "unavailable","error":"admin APIs disabled"} before looking at its
 * parameters, which is what Prometheus sends.
 *
 * Unlike Prometheus, every match[] is parsed before anything is deleted,
 * so a bad selector deletes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "http/http_int.h"
#include "labels/labels.h"
#include "tsdb/tsdb.h"

/* Prometheus's maxTime, the default of "end". */
#define ADMIN_MAX_TIME_MS (INT64_C(9223309901257974) * 1000 + 999)

static int disabled(struct http_response *rs)
{
    return http_api_error(rs, 500, "unavailable", "admin APIs disabled");
}

static void no_content(struct http_response *rs)
{
    rs->status = 204;
    rs->cors = true;
    bs_buf_reset(&rs->body);
}

int http_api_admin_delete_series(struct http_server *s, struct http_request *rq,
                                 struct http_response *rs)
{
    if (!s->admin_api)
        return disabled(rs);
    size_t n = http_params_count(&rq->params, "match[]");
    if (n == 0)
        return http_api_error(rs, 400, "bad_data", "no match[] parameter provided");
    int64_t start, end;
    int rc = http_api_param_time(rq, rs, "start", &start);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!http_params_get(&rq->params, "end") || !http_params_get(&rq->params, "end")[0]) {
        end = ADMIN_MAX_TIME_MS;
    } else {
        rc = http_api_param_time(rq, rs, "end", &end);
        if (rc)
            return rc > 0 ? 0 : rc;
    }
    struct labels_matcher ***sets = calloc(n, sizeof(*sets));
    size_t *lens = calloc(n, sizeof(*lens));
    size_t parsed = 0;
    if (!sets || !lens) {
        rc = BS_ENOMEM;
        goto done;
    }
    for (; parsed < n; parsed++) {
        struct bs_error e = {0};
        const char *sel = http_params_nth(&rq->params, "match[]", parsed);
        rc = http_selector_parse(sel, &sets[parsed], &lens[parsed], &e);
        if (rc == BS_ENOMEM)
            goto done;
        if (rc) {
            rc = http_api_error(rs, 400, "bad_data", "invalid parameter \"match[]\": %s", e.msg);
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct bs_error e = {0};
        rc = tsdb_delete(s->db, start, end, sets[i], lens[i], &e);
        if (rc == BS_ENOMEM)
            goto done;
        if (rc) {
            rc = http_api_error(rs, 500, "internal", "%s", e.msg[0] ? e.msg : bs_strerror(rc));
            goto done;
        }
    }
    no_content(rs);
done:
    for (size_t i = 0; i < parsed; i++) {
        for (size_t j = 0; j < lens[i]; j++)
            labels_matcher_free(sets[i][j]);
        free(sets[i]);
    }
    free(sets);
    free(lens);
    return rc;
}

int http_api_admin_clean_tombstones(struct http_server *s, struct http_request *rq,
                                    struct http_response *rs)
{
    if (!s->admin_api)
        return disabled(rs);
    struct bs_error e = {0};
    int rc = tsdb_clean_tombstones(s->db, &e);
    if (rc == BS_ENOMEM)
        return rc;
    if (rc)
        return http_api_error(rs, 500, "internal", "%s", e.msg[0] ? e.msg : bs_strerror(rc));
    no_content(rs);
    return 0;
}

int http_api_admin_snapshot(struct http_server *s, struct http_request *rq,
                            struct http_response *rs)
{
    if (!s->admin_api)
        return disabled(rs);
    bool skip_head = false;
    const char *v = http_params_get(&rq->params, "skip_head");
    if (v && v[0] && http_parse_go_bool(v, &skip_head) != 0)
        return http_api_error(rs, 400, "bad_data",
                              "invalid parameter \"skip_head\": unable to parse boolean: "
                              "strconv.ParseBool: parsing \"%s\": invalid syntax",
                              v);
    /* <UTC time>-<16 hex digits of a 63-bit random number>, as Prometheus */
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint64_t)bs_monotonic_ns() * UINT64_C(0x9e3779b97f4a7c15);
    r &= INT64_MAX;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char name[64];
    size_t k = strftime(name, sizeof(name), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(name + k, sizeof(name) - k, "-%016llx", (unsigned long long)r);
    struct bs_error e = {0};
    int rc = tsdb_snapshot(s->db, name, !skip_head, &e);
    if (rc == BS_ENOMEM)
        return rc;
    if (rc)
        return http_api_error(rs, 500, "internal", "create snapshot: %s",
                              e.msg[0] ? e.msg : bs_strerror(rc));
    rc = http_api_begin(rs);
    if (rc == 0)
        rc = bs_buf_puts(&rs->body, "{\"name\":");
    if (rc == 0)
        rc = bs_json_string(&rs->body, name, strlen(name));
    if (rc == 0)
        rc = bs_buf_putc(&rs->body, '}');
    return rc ? rc : http_api_end(rs, NULL, 0);
}
