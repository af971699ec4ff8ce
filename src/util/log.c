/* SPDX-License-Identifier: Apache-2.0
 *
 * Logging: one logfmt line per call on stderr, as Prometheus writes them:
 *   ts=2026-11-26T18:00:00.123Z level=info component=tsdb msg="Replaying WAL"
 * A line is built whole in memory and written with one fwrite under a mutex,
 * so concurrent lines never interleave.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static _Atomic int log_level = BS_LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int bs_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void bs_log_set_level(enum bs_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool bs_log_enabled(enum bs_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* Append s as a logfmt value: bare when it is a plain word, otherwise
 * quoted with \" \\ \n \r \t escaped and other control bytes as \xNN. */
static void put_value(struct bs_buf *b, const char *s, bool force_quote)
{
    bool quote = force_quote || s[0] == '\0';
    for (const char *p = s; *p && !quote; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            quote = true;
    if (!quote) {
        bs_buf_puts(b, s);
        return;
    }
    bs_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': bs_buf_puts(b, "\\\""); break;
        case '\\': bs_buf_puts(b, "\\\\"); break;
        case '\n': bs_buf_puts(b, "\\n"); break;
        case '\r': bs_buf_puts(b, "\\r"); break;
        case '\t': bs_buf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                bs_buf_printf(b, "\\x%02x", *p);
            else
                bs_buf_putc(b, (char)*p);
        }
    }
    bs_buf_putc(b, '"');
}

void bs_log(enum bs_log_level level, const char *component, const char *fmt, ...)
{
    char ts[40];
    char small[512];
    char *msg = small;
    va_list ap;
    int n;
    struct bs_buf line;

    if (!bs_log_enabled(level))
        return;
    if ((int)level < 0 || (int)level > 3)
        level = BS_LOG_ERROR;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        small[0] = '\0';
    } else if ((size_t)n >= sizeof(small)) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }

    bs_time_format_rfc3339(bs_now_ms(), ts, sizeof(ts));
    bs_buf_init(&line, 0);
    bs_buf_puts(&line, "ts=");
    bs_buf_puts(&line, ts);
    bs_buf_puts(&line, " level=");
    bs_buf_puts(&line, level_names[level]);
    if (component) {
        bs_buf_puts(&line, " component=");
        put_value(&line, component, false);
    }
    bs_buf_puts(&line, " msg=");
    put_value(&line, msg, true);
    bs_buf_putc(&line, '\n');

    pthread_mutex_lock(&log_mu);
    if (line.data)
        fwrite(line.data, 1, line.len, stderr);
    else
        fprintf(stderr, "ts=%s level=%s msg=\"(out of memory formatting log line)\"\n", ts,
                level_names[level]);
    fflush(stderr);
    pthread_mutex_unlock(&log_mu);

    bs_buf_fini(&line);
    if (msg != small)
        free(msg);
}
