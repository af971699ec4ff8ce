/* SPDX-License-Identifier: Apache-2.0
 *
 * Raw routes, the request and response side: header and query-parameter
 * lookup for the callbacks, and the helpers that build and free a
 * struct http_raw_response. Matching, gating and dispatch are in router.c;
 * reading the body under its cap is in server.c.
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

const char *http_raw_request_header(const struct http_raw_request *req, const char *name)
{
    const struct http_request *rq = req->impl_;
    if (!rq || !rq->conn || !name)
        return NULL;
    /* MHD compares header names case-insensitively. */
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *http_raw_request_param(const struct http_raw_request *req, const char *name)
{
    const struct http_request *rq = req->impl_;
    if (!rq || !name)
        return NULL;
    return http_params_get(&rq->params, name);
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

int http_raw_response_add_header(struct http_raw_response *resp, const char *name,
                                 const char *value)
{
    if (!name || !value || !name[0] || has_crlf(name) || has_crlf(value))
        return BS_EINVAL;
    if (resp->nheaders >= HTTP_RAW_MAX_HEADERS)
        return BS_ELIMIT;
    char *n = strdup(name);
    char *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return BS_ENOMEM;
    }
    resp->headers[resp->nheaders].name = n;
    resp->headers[resp->nheaders].value = v;
    resp->nheaders++;
    return 0;
}

int http_raw_response_set_body(struct http_raw_response *resp, int status,
                               const char *content_type, const void *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return BS_ENOMEM;
    if (len > 0)
        memcpy(copy, text, len);
    copy[len] = '\0';
    free(resp->body);
    resp->body = copy;
    resp->body_len = len;
    resp->status = status;
    resp->content_type = content_type;
    return 0;
}

void http_raw_response_fini(struct http_raw_response *resp)
{
    free(resp->body);
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    memset(resp, 0, sizeof(*resp));
}
