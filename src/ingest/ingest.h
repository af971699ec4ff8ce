/* SPDX-License-Identifier: Apache-2.0
 *
 * ingest: push paths into the store, transport-agnostic. Each entry point
 * takes the request as the HTTP module received it (selected headers and
 * the whole body), appends what it carries through one tsdb appender, and
 * fills a struct ingest_response (status, text body, extra headers) that
 * the HTTP module sends back verbatim. Nothing here knows sockets or
 * libmicrohttpd.
 *
 * The Prometheus remote-write receiver (1.0 and 2.0, protobuf-c and
 * snappy; see docs/remote-write.md), the Pushgateway API (docs/pushing.md)
 * and the InfluxDB line protocol (docs/migrating-from-influxdb.md), with
 * the same limits and response shape.
 *
 * Thread safety: every entry point may run on many threads at once against
 * the same struct tsdb; limits are read-only and may be shared.
 */
#ifndef BONGSU_INGEST_H
#define BONGSU_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsdb/tsdb.h"
#include "util/util.h"

/* ----------------------------------------------------------------- limits */

/* Caps on what one request may make the server do. A count or size of 0
 * means unlimited. ingest_limits_default() gives the values below; a NULL
 * limits pointer means those defaults. Each refusal is a 4xx with a message
 * naming the limit and the value seen, never an exhausted allocator. */
struct ingest_limits {
    size_t max_body_bytes;         /* request body as received (compressed); 32 MiB; 413 */
    size_t max_decoded_bytes;      /* body after decompression; 256 MiB; 413 (checked
                                    * from the snappy header before allocating) */
    size_t max_decode_memory;      /* memory the protobuf decoder may take for one
                                    * request; 1 GiB; 413 */
    size_t max_series_per_request; /* time series messages in one request; 1,000,000;
                                    * 413, nothing written */
    size_t max_labels_per_series;  /* labels of one series; 1024; that series is
                                    * rejected (400), the rest written */
    /* Remote write 2.0: when a series carries created_timestamp (CT) earlier
     * than its first sample, also append a 0 at CT, as Prometheus does with
     * --enable-feature=created-timestamp-zero-ingestion. Off by default.
     * A CT sample that is out of order for the series is silently dropped. */
    bool created_timestamp_zero;
};

void ingest_limits_default(struct ingest_limits *lim);

/* --------------------------------------------------------------- response */

#define INGEST_MAX_HEADERS 8

/* One extra response header; name is static text, value is inline. */
struct ingest_header {
    const char *name;
    char value[40];
};

/* What to answer. status is an HTTP status (204, 400, 413, 415, 500...).
 * body is a malloc'd NUL-terminated text of body_len bytes, or NULL for no
 * body (always NULL with 204); content_type is static text, or NULL when
 * there is no body. headers[0..nheaders) are to be added to the response.
 * Release with ingest_response_fini(). */
struct ingest_response {
    int status;
    char *body;
    size_t body_len;
    const char *content_type;
    struct ingest_header headers[INGEST_MAX_HEADERS];
    size_t nheaders;
};

/* Free the body and zero r. Safe on a zeroed or already finished response. */
void ingest_response_fini(struct ingest_response *r);

/* ---------------------------------------------------------- remote write */

/* Handle one POST /api/v1/write body.
 *
 * content_type, content_encoding and rw_version are the request's
 * Content-Type, Content-Encoding and X-Prometheus-Remote-Write-Version
 * header values, NULL when absent. As in Prometheus, a missing Content-Type
 * means 1.0 and a missing Content-Encoding means snappy; the version header
 * is informational (the Content-Type's proto= parameter selects 1.0 or 2.0,
 * as the 2.0 spec requires). body[0..len) is the raw (compressed) body; it
 * is only read.
 *
 * Every sample of the request is appended through one tsdb appender and
 * committed once. Outcomes (resp->status):
 *   204  everything in the request was stored
 *   400  undecodable snappy or protobuf (nothing stored); or some series or
 *        samples were refused (invalid labels, out of order, duplicate,
 *        out of bounds, too far in the future, native histograms) — the
 *        valid rest WAS stored, and the body lists the errors
 *   413  a size or count limit was exceeded (nothing stored)
 *   415  unsupported Content-Type, proto= message or Content-Encoding
 *   500  the commit failed (nothing stored; the sender should retry)
 * For 2.0 requests that got as far as appending, the response carries
 * X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written.
 *
 * Returns 0 when resp was filled (whatever the status), or BS_ENOMEM when
 * not even the response could be built (resp is then a bodiless 500). */
int ingest_remote_write(struct tsdb *db, const struct ingest_limits *lim, const char *content_type,
                        const char *content_encoding, const char *rw_version, const void *body,
                        size_t len, struct ingest_response *resp);

/* ------------------------------------------------------------ pushgateway */

/* The Pushgateway API (docs/pushing.md): groups of metrics keyed by the
 * grouping labels of their path, kept in memory, persisted to a file in the
 * data directory, and re-appended to the store every interval so queries see
 * them as a Pushgateway scraped with honor_labels: true would show them.
 * All entry points may be called from many threads at once. */
struct ingest_push;

/* Create the push store. db is borrowed and must outlive the store.
 * data_dir (borrowed, may be NULL for no persistence) holds the groups file
 * "pushgateway.groups", loaded now (a missing file is an empty store). Every
 * interval_ms (the global scrape_interval is the natural choice) a
 * background thread appends the latest value of every pushed series, and
 * push_time_seconds / push_failure_time_seconds of every group, at the
 * current time; interval_ms <= 0 starts no thread (tests drive
 * ingest_push_tick() themselves). lim (NULL: defaults) is copied; its
 * max_body_bytes, max_decoded_bytes, max_decode_memory (protobuf bodies)
 * and max_series_per_request bound one push. Returns 0, or BS_ECORRUPT / BS_EIO with err naming the file and the
 * line when the groups file cannot be read (nothing is started), or
 * BS_ENOMEM. */
int ingest_push_new(struct ingest_push **out, struct tsdb *db, const char *data_dir,
                    int64_t interval_ms, const struct ingest_limits *lim, struct bs_error *err);
/* Stop the thread and free everything (the groups file is already up to
 * date: it is rewritten on every change). NULL is allowed. */
void ingest_push_free(struct ingest_push *pg);

/* Handle one request whose path is under /metrics/job (or job@base64) or
 * is /api/v1/metrics. method is "PUT", "POST", "DELETE" or "GET"; path is
 * the percent-decoded request path without the query string; content_type
 * and content_encoding are the request headers (NULL when absent; gzip is
 * the only encoding accepted; "application/vnd.google.protobuf;
 * proto=io.prometheus.client.MetricFamily; encoding=delimited" selects the
 * protobuf body format, anything else the text format); body[0..len) is only read.
 *   PUT    /metrics/job/<job>{/<label>/<value>}  replace the group   -> 200
 *   POST   (same path)        replace the pushed families by name    -> 200
 *   DELETE (same path)        delete the group (absent: no error)    -> 202
 *   GET    /api/v1/metrics    every group as the Pushgateway lists them,
 *                             application/json                      -> 200
 * Refusals: 400 with the Pushgateway's text (bad path, label or base64,
 * unparsable body, timestamps, type clash, duplicate series, suffix
 * collision), 405 for another method, 404 for another path, 413 over a
 * limit, 415 for a protobuf Content-Type other than the delimited
 * MetricFamily one (which is read, see docs/pushing.md), 500 when the store
 * or the groups file cannot be written. Returns 0 when resp was filled, or
 * BS_ENOMEM when not even the response could be built (a bodiless 500). */
int ingest_push_handle(struct ingest_push *pg, const char *method, const char *path,
                       const char *content_type, const char *content_encoding, const void *body,
                       size_t len, struct ingest_response *resp);

/* Append every group's series (and push_time_seconds,
 * push_failure_time_seconds) at the current time now, as the background
 * thread does each interval. Returns 0 or the commit's error. */
int ingest_push_tick(struct ingest_push *pg);

/* Number of groups held. */
size_t ingest_push_group_count(struct ingest_push *pg);

/* --------------------------------------------------------------- influxdb */

/* Reads one query parameter of the request: the value of the first
 * parameter called name, or NULL when it is absent. The returned string is
 * borrowed for the duration of the ingest call. */
typedef const char *(*ingest_param_fn)(void *ctx, const char *name);

#define INGEST_INFLUX_VERSION "1.8.10" /* what /ping says in X-Influxdb-Version */

/* Handle one InfluxDB line-protocol write (docs/migrating-from-influxdb.md).
 * version 1 is POST /write (parameters db, rp, precision n|ns|u|us|ms|s|m|h;
 * u and p ignored), version 2 is POST /api/v2/write (bucket, org,
 * precision ns|us|ms|s). param(param_ctx, name) reads the query string
 * parameters. content_encoding is the request header (NULL, "identity" or
 * "gzip"); body[0..len) is only read.
 *
 * Each numeric field of a line becomes one sample of
 * <measurement>_<field>{<tags>..., db="<db or bucket>"} (names sanitised,
 * see the doc); string fields are skipped and counted. Outcomes:
 *   204  every line stored
 *   400  some lines did not parse (the others WERE stored): InfluxDB 1.x's
 *        {"error":"partial write: unable to parse '<line>': <reason> (line N)
 *        dropped=D"} (without "partial write: " when nothing parsed); or a
 *        missing db / bucket, or a bad precision; or samples the store
 *        refused (out of order, duplicate), counted in dropped=
 *   413  body, decompressed body or line count over the limits
 *        (max_body_bytes, max_decoded_bytes, max_series_per_request lines)
 *   415  unsupported Content-Encoding
 *   500  the commit failed (nothing stored)
 * Version 1 error bodies are {"error":"..."}, version 2 ones
 * {"code":"invalid","message":"..."}; both application/json. Returns 0
 * when resp was filled, or BS_ENOMEM (resp is then a bodiless 500). */
int ingest_influx_write(struct tsdb *db, const struct ingest_limits *lim, int version,
                        ingest_param_fn param, void *param_ctx, const char *content_encoding,
                        const void *body, size_t len, struct ingest_response *resp);

/* GET or HEAD /ping (and /health-less v1 clients): 204 with X-Influxdb-Version
 * and X-Influxdb-Build headers. */
void ingest_influx_ping(struct ingest_response *resp);

/* GET or POST /query with q (the "q" parameter, NULL when absent):
 * answers SHOW DATABASES (the values of the db label in the store, plus
 * the names created since start) and CREATE DATABASE "<name>" (remembered,
 * nothing else) with InfluxDB-shaped JSON, several statements separated by
 * ';' allowed; anything else is 400 {"error":"..."} naming PromQL as the way
 * to read. db is borrowed. Returns 0 or BS_ENOMEM (bodiless 500). */
int ingest_influx_query(struct tsdb *db, const char *q, struct ingest_response *resp);

#endif
