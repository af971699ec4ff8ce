/* SPDX-License-Identifier: Apache-2.0
 *
 * ingest: push paths into the store, transport-agnostic. Each entry point
 * takes the request as the HTTP module received it (selected headers and
 * the whole body), appends what it carries through one tsdb appender, and
 * fills a struct ingest_response (status, text body, extra headers) that
 * the HTTP module sends back verbatim. Nothing here knows sockets or
 * libmicrohttpd.
 *
 * Now: the Prometheus remote-write receiver (1.0 and 2.0, protobuf-c and
 * snappy; see docs/remote-write.md). Later: the Pushgateway API and the
 * InfluxDB line protocol, with the same limits and response shape.
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

#endif
