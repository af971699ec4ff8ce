/* SPDX-License-Identifier: Apache-2.0
 *
 * util: the ground floor every other module stands on. Error codes and the
 * caller-owned error record, logging, arenas, growable buffers with caps,
 * CRC32C, hashing, varints, time and duration syntax, float formatting as
 * Prometheus prints it, JSON string escaping and the self-metrics registry.
 * Nothing in here knows what a metric or a series is.
 */
#ifndef BONGSU_UTIL_H
#define BONGSU_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BS_VERSION "0.1.0"

#if defined(__GNUC__)
#define BS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define BS_UNUSED __attribute__((unused))
#else
#define BS_PRINTF(a, b)
#define BS_UNUSED
#endif

/* ---------------------------------------------------------------- errors */

/* Every function that can fail returns int: 0 on success or one of these
 * negative codes. The X-macro keeps codes and their texts together. */
#define BS_ERROR_LIST(X)                                              \
    X(BS_OK, 0, "success")                                            \
    X(BS_ENOMEM, -1, "out of memory")                                 \
    X(BS_EINVAL, -2, "invalid argument")                              \
    X(BS_EIO, -3, "input/output error")                               \
    X(BS_ECORRUPT, -4, "corrupt data")                                \
    X(BS_ENOENT, -5, "not found")                                     \
    X(BS_ELIMIT, -6, "limit exceeded")                                \
    X(BS_EPARSE, -7, "parse error")                                   \
    X(BS_EOUTOFORDER, -8, "out of order sample")                      \
    X(BS_EDUPLICATE, -9, "duplicate sample for timestamp")            \
    X(BS_ETIMEOUT, -10, "timed out")                                  \
    X(BS_ECANCELED, -11, "canceled")                                  \
    X(BS_ENOSPC, -12, "no space left on device")                      \
    X(BS_EEXEC, -13, "execution error")                               \
    X(BS_EOUTOFBOUNDS, -14, "out of bounds")                          \
    X(BS_ECLOSED, -15, "closed")

enum bs_status {
#define BS_X_ENUM(name, code, text) name = code,
    BS_ERROR_LIST(BS_X_ENUM)
#undef BS_X_ENUM
};

/* Static text for a code; never NULL. */
const char *bs_strerror(int code);

/* A caller-owned error record. Functions that take one fill it on failure
 * with a message a user can act on (what was wrong, and where). Passing NULL
 * is always allowed. */
struct bs_error {
    int code;
    char msg[512];
};

/* Fill err (if non-NULL) with code and a printf-formatted message; returns
 * code so callers can write `return bs_error_set(err, BS_EINVAL, ...)`. */
int bs_error_set(struct bs_error *err, int code, const char *fmt, ...) BS_PRINTF(3, 4);
/* Prepend "prefix: " to an existing message (e.g. a file name). */
void bs_error_prefix(struct bs_error *err, const char *fmt, ...) BS_PRINTF(2, 3);
void bs_error_clear(struct bs_error *err);

/* --------------------------------------------------------------- logging */

/* Log lines are logfmt, as Prometheus writes them:
 *   ts=2026-11-26T18:00:00.123Z level=info component=tsdb msg="..." */
enum bs_log_level { BS_LOG_DEBUG = 0, BS_LOG_INFO, BS_LOG_WARN, BS_LOG_ERROR };

/* Parse "debug" / "info" / "warn" / "error"; returns -1 if unknown. */
int bs_log_level_parse(const char *s);
void bs_log_set_level(enum bs_log_level level);
bool bs_log_enabled(enum bs_log_level level);
/* component may be NULL. msg is printed quoted; extra logfmt pairs can be
 * appended by including them after the message with "\x1f" as separator is
 * NOT supported: keep one human sentence per line. Thread-safe. */
void bs_log(enum bs_log_level level, const char *component, const char *fmt, ...) BS_PRINTF(3, 4);

#define BS_DEBUG(comp, ...) do { if (bs_log_enabled(BS_LOG_DEBUG)) bs_log(BS_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define BS_INFO(comp, ...) bs_log(BS_LOG_INFO, comp, __VA_ARGS__)
#define BS_WARN(comp, ...) bs_log(BS_LOG_WARN, comp, __VA_ARGS__)
#define BS_ERROR(comp, ...) bs_log(BS_LOG_ERROR, comp, __VA_ARGS__)

/* ----------------------------------------------------------------- memory */

/* Allocation wrappers that abort with a log line when memory is exhausted
 * (used where failure cannot be handled sensibly: small bookkeeping). Use
 * plain malloc and return BS_ENOMEM where input size drives the request. */
void *bs_xmalloc(size_t n);
void *bs_xcalloc(size_t n, size_t size);
void *bs_xrealloc(void *p, size_t n);
char *bs_xstrdup(const char *s);
char *bs_xstrndup(const char *s, size_t n);

/* Arena: bump allocator for per-request / per-scrape work, freed at once.
 * Memory returned is 16-byte aligned and lives until reset or fini. */
struct bs_arena_block;
struct bs_arena {
    struct bs_arena_block *head;
    size_t block_size;
    size_t total;        /* bytes handed out since init/reset */
    size_t max;          /* 0 = unlimited; else alloc fails past this */
};
void bs_arena_init(struct bs_arena *a, size_t block_size, size_t max);
void bs_arena_fini(struct bs_arena *a);
void bs_arena_reset(struct bs_arena *a);   /* keeps the first block */
/* NULL when over max or out of memory. */
void *bs_arena_alloc(struct bs_arena *a, size_t n);
char *bs_arena_strndup(struct bs_arena *a, const char *s, size_t n);

/* Growable byte buffer with a cap. data is always NUL-terminated after a
 * successful append (the NUL is not counted in len). */
struct bs_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;          /* 0 = unlimited; appends past it return BS_ELIMIT */
};
void bs_buf_init(struct bs_buf *b, size_t max);
void bs_buf_fini(struct bs_buf *b);
void bs_buf_reset(struct bs_buf *b);      /* len = 0, keeps memory */
int bs_buf_reserve(struct bs_buf *b, size_t extra);
int bs_buf_append(struct bs_buf *b, const void *p, size_t n);
int bs_buf_puts(struct bs_buf *b, const char *s);
int bs_buf_putc(struct bs_buf *b, char c);
/* Append the code point cp as UTF-8 (bs_utf8_encode). */
int bs_buf_put_utf8(struct bs_buf *b, uint32_t cp);
int bs_buf_printf(struct bs_buf *b, const char *fmt, ...) BS_PRINTF(2, 3);
int bs_buf_vprintf(struct bs_buf *b, const char *fmt, va_list ap);
/* Hand the memory to the caller (who frees it); b is reset to empty. */
char *bs_buf_steal(struct bs_buf *b, size_t *len_out);

/* ------------------------------------------------------ checksums, hashes */

uint32_t bs_crc32c(uint32_t crc, const void *p, size_t n);   /* start with 0 */
uint64_t bs_hash64(const void *p, size_t n);                 /* XXH3 64-bit */

/* ----------------------------------------------------------------- varint */

/* Unsigned LEB128 and zig-zag signed. put returns bytes written (<= 10);
 * get returns bytes read, or 0 when the input is truncated or overlong. */
size_t bs_put_uvarint(uint8_t *dst, uint64_t v);
size_t bs_put_varint(uint8_t *dst, int64_t v);
size_t bs_get_uvarint(const uint8_t *p, size_t n, uint64_t *out);
size_t bs_get_varint(const uint8_t *p, size_t n, int64_t *out);
void bs_put_be32(uint8_t *dst, uint32_t v);
uint32_t bs_get_be32(const uint8_t *p);
void bs_put_be64(uint8_t *dst, uint64_t v);
uint64_t bs_get_be64(const uint8_t *p);

/* ------------------------------------------------------------------- time */

int64_t bs_now_ms(void);            /* wall clock, Unix milliseconds */
int64_t bs_monotonic_ns(void);      /* CLOCK_MONOTONIC */
void bs_sleep_ms(int64_t ms);

/* Prometheus duration syntax: "1h30m", "15d", "100ms", "1y", "0"; units
 * y w d h m s ms, each at most once, largest first. Fails with BS_EPARSE
 * and a message naming the text. */
int bs_duration_parse(const char *s, size_t n, int64_t *out_ms, struct bs_error *err);
/* Format as Prometheus does ("1m30s", "15d", "0s"). Writes at most cap-1
 * bytes plus NUL; returns length. */
size_t bs_duration_format(int64_t ms, char *dst, size_t cap);
/* RFC 3339 with milliseconds in UTC: "2026-11-26T18:00:00.123Z". */
size_t bs_time_format_rfc3339(int64_t ms, char *dst, size_t cap);
/* Parse an API time: a Unix timestamp with optional fraction ("1700000000.5")
 * or RFC 3339. Result in milliseconds. */
int bs_time_parse_api(const char *s, int64_t *out_ms, struct bs_error *err);

/* ----------------------------------------------------------------- floats */

/* The stale-marker NaN Prometheus writes when a series disappears. It is a
 * NaN, so compare bits, never values. */
#define BS_STALE_NAN_BITS UINT64_C(0x7ff0000000000002)
double bs_stale_nan(void);
bool bs_is_stale_nan(double v);
uint64_t bs_float_bits(double v);
double bs_float_from_bits(uint64_t b);

/* Write the nd significant decimal digits `digits` with decimal exponent e
 * (the value is d.ddd x 10^e) in fixed notation ("0.00123", "12300",
 * "12.3") into dst, NUL-terminated; returns the length without the NUL. */
size_t bs_digits_fixed(const char *digits, int nd, int e, char *dst);
/* Encode the code point cp as UTF-8 into d (room for 4 bytes); returns the
 * bytes written. cp must be at most 0x10FFFF and not a surrogate (callers
 * decide what an invalid one means). */
size_t bs_utf8_encode(uint32_t cp, char *d);
/* Format as Go's strconv.FormatFloat(v, 'f', -1, 64) with Prometheus's
 * specials: shortest text that reads back to the same double, no exponent;
 * "NaN", "+Inf", "-Inf". dst needs BS_FLOAT_FMT_MAX bytes. Returns length. */
#define BS_FLOAT_FMT_MAX 400
size_t bs_float_format(double v, char *dst);
/* Format as Prometheus's HTTP API writes sample values: like
 * bs_float_format, but in exponent form ("5.4e-07", "1e+21") when
 * |v| < 1e-6 or |v| >= 1e21. dst needs 32 bytes. Returns length. */
size_t bs_float_format_api(double v, char *dst);
/* Format as the exposition format does (Go's 'g'-like shortest, e.g.
 * "1e-05", "123.5", "NaN", "+Inf"). dst needs 32 bytes. Returns length. */
size_t bs_float_format_short(double v, char *dst);
/* Parse a float as the exposition format and PromQL accept: decimal,
 * exponent, "NaN", "Inf", "+Inf", "-Inf" (case-insensitive), hex ("0x1f")
 * when allow_hex. The whole of s[0..n) must be consumed. */
int bs_float_parse(const char *s, size_t n, bool allow_hex, double *out);

/* ------------------------------------------------------------------- json */

/* Append s as a JSON string literal (quotes included, escapes applied,
 * invalid UTF-8 replaced by U+FFFD). */
int bs_json_string(struct bs_buf *b, const char *s, size_t n);

/* ----------------------------------------------------------- self-metrics */

/* A tiny registry of bongsu's own counters and gauges, exposed on /metrics.
 * Metrics are registered once (typically at module init) and live for the
 * process. Values are updated with atomics; reading is lock-free.
 * labels is the already-formatted label text inside braces, e.g.
 * "reason=\"timeout\"", or NULL. */
struct bs_metric;
enum bs_metric_type { BS_METRIC_COUNTER, BS_METRIC_GAUGE };
struct bs_metric *bs_metric_register(enum bs_metric_type type, const char *name, const char *help,
                                     const char *labels);
void bs_metric_add(struct bs_metric *m, double delta);
void bs_metric_set(struct bs_metric *m, double v);
double bs_metric_get(const struct bs_metric *m);
/* A gauge whose value is read by calling fn(arg) at exposition time. */
void bs_metric_register_func(enum bs_metric_type type, const char *name, const char *help,
                             const char *labels, double (*fn)(void *arg), void *arg);
/* Write every registered metric, plus process_* metrics (cpu seconds,
 * resident memory, virtual memory, start time, open fds, max fds), in text
 * format 0.0.4 to b. */
int bs_metrics_write(struct bs_buf *b);

#endif
