/* SPDX-License-Identifier: Apache-2.0
 *
 * ipmi: hardware health from BMCs over IPMI LAN. A collector polls many BMCs
 * with a bounded pool of worker threads (one session and one request in
 * flight per BMC), turns sensor readings, chassis power and SEL status into
 * samples with the metric names prometheus-ipmi-exporter uses, and reads the
 * System Event Log incrementally into an append-only event log in the data
 * directory, which ipmi_events_query() serves with filters and an opaque
 * cursor. Built on libfreeipmi (sessions, SDR cache, sensor reading, SEL
 * parsing and the interpret library for nominal/warning/critical).
 *
 * Files under <data dir>/ipmi/ (see docs/ipmi.md for the formats):
 *   events.log        every SEL event of every BMC, CRC per record
 *   <bmc>.cursor      per BMC: last SEL record read, event counters
 *   sdr/<bmc>.sdr     per BMC: libfreeipmi's SDR cache
 *
 * Thread safety: every function may be called from any thread; a collector
 * serialises what needs it internally.
 */
#ifndef BONGSU_IPMI_H
#define BONGSU_IPMI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labels/labels.h"
#include "tsdb/tsdb.h"
#include "util/util.h"

/* ------------------------------------------------------------ target config */

enum ipmi_cfg_driver {
    IPMI_CFG_DRIVER_LAN_2_0 = 0, /* RMCP+ ("lanplus"), the default */
    IPMI_CFG_DRIVER_LAN,         /* IPMI 1.5 LAN, MD5 authentication */
};

enum ipmi_cfg_privilege {
    IPMI_CFG_PRIV_USER = 0, /* the default: enough for reading */
    IPMI_CFG_PRIV_OPERATOR,
    IPMI_CFG_PRIV_ADMIN,
};

/* One BMC to poll. Everything is borrowed by ipmi_collector_set_targets(),
 * which copies what it keeps. Start from ipmi_target_config_default(). */
struct ipmi_target_config {
    const char *host;          /* name or address of the BMC; required */
    uint16_t port;             /* UDP port; 0 = 623 */
    const char *username;      /* NULL or "" = the null user */
    const char *password;      /* used when password_file is NULL */
    const char *password_file; /* read (one line, trailing newline dropped)
                                  at every session, so rotation needs no
                                  reload */
    enum ipmi_cfg_driver driver;
    enum ipmi_cfg_privilege privilege;
    int cipher_suite_id;                 /* LAN_2_0 only; default 3 */
    const char *const *workaround_flags; /* names as in freeipmi.conf(5):  */
    size_t nworkaround_flags;            /* "opensesspriv", "authcap", "intel20",
                                            "supermicro20", "sun20", "integritycheckvalue",
                                            "nochecksumcheck" (2.0); "idzero",
                                            "unexpectedauth", "forcepermsg",
                                            "endianseq", "noauthcodecheck" (1.5) */
    int64_t timeout_ms;                  /* per request and per poll; default 10 s,
                                            always kept below interval_ms */
    int64_t interval_ms;                 /* default 60 s */
    const struct labels *labels;         /* target labels put on every series (job,
                                            instance, ...); instance defaults to
                                            host:port when absent */
};

/* Defaults: port 623, LAN_2_0, USER, cipher suite 3, 10 s, 60 s. */
void ipmi_target_config_default(struct ipmi_target_config *c);

/* Parse a workaround flag name into libfreeipmi's bit for driver d; returns
 * 0, or BS_EINVAL with a message listing the names valid for that driver. */
int ipmi_workaround_flag_parse(enum ipmi_cfg_driver d, const char *name, unsigned *bit,
                               struct bs_error *err);
/* "LAN_2_0"/"lanplus" and "LAN"/"lan"; "user"/"operator"/"admin"
 * (case-insensitive, "administrator" too). 0 or BS_EINVAL. */
int ipmi_driver_parse(const char *s, enum ipmi_cfg_driver *out);
int ipmi_privilege_parse(const char *s, enum ipmi_cfg_privilege *out);

/* -------------------------------------------------------------- collector */

struct ipmi_collector_options {
    const char *data_dir; /* required; files go to <data_dir>/ipmi/ */
    struct tsdb *db;      /* samples go here; required */
    unsigned workers;     /* pool size; 0 = 4 */
    int64_t retention_ms; /* events older than this are dropped from
                             the log; 0 = 15 days (as samples) */
};

struct ipmi_collector;

/* Open <data_dir>/ipmi/ (created if missing), load the event log (a torn
 * tail is truncated with one log line), start the workers. No targets yet.
 * Returns 0, BS_EINVAL (missing option), BS_EIO/BS_ECORRUPT with err naming
 * the file, or BS_ENOMEM. */
int ipmi_collector_new(struct ipmi_collector **out, const struct ipmi_collector_options *o,
                       struct bs_error *err);
/* Stop the workers (a poll in progress finishes first, bounded by its
 * timeout), persist cursors, free everything. NULL is allowed. */
void ipmi_collector_free(struct ipmi_collector *c);

/* Replace the set of targets (on start-up and on every reload). A target is
 * identified by host:port; one that stays keeps its schedule, status and
 * SEL cursor and takes the new settings at its next poll; a new one loads
 * its cursor file and is first polled at a spread offset within its
 * interval; a removed one is dropped after its poll in progress, if any.
 * Validates everything first and changes nothing on error: BS_EINVAL with
 * err naming the target and the field (e.g. unknown workaround flag,
 * duplicate host:port, timeout not below interval). */
int ipmi_collector_set_targets(struct ipmi_collector *c, const struct ipmi_target_config *ts,
                               size_t n, struct bs_error *err);

/* Make every target due now and wait until each has finished one poll that
 * started after this call, or timeout_ms passed (BS_ETIMEOUT). For tests,
 * benchmarks and "poll now" buttons; the schedule continues afterwards. */
int ipmi_collector_poll_now(struct ipmi_collector *c, int64_t timeout_ms);

/* Append one /api/v1/targets-style JSON object per target, comma separated
 * (a leading comma first when leading_comma and there is at least one):
 *   {"discoveredLabels":{...},"labels":{...},"scrapePool":"<job>",
 *    "scrapeUrl":"ipmi://host:port","globalUrl":"ipmi://host:port",
 *    "lastError":"...","lastScrape":"RFC3339","lastScrapeDuration":0.04,
 *    "health":"up|down|unknown","scrapeInterval":"1m","scrapeTimeout":"10s"}
 * *count (may be NULL) gets the number of objects. */
int ipmi_collector_targets_json(struct ipmi_collector *c, bool leading_comma, struct bs_buf *out,
                                size_t *count);

/* Status of one target by host:port ("127.0.0.1:9623"); for tests and
 * the UI. last_error is copied into err_out (cap bytes, may be 0).
 * Returns 1 up, 0 down, -1 not polled yet, BS_ENOENT unknown target. */
int ipmi_collector_target_health(struct ipmi_collector *c, const char *hostport, char *err_out,
                                 size_t cap);

/* ------------------------------------------------------------------ events */

enum ipmi_severity {
    IPMI_SEV_NOMINAL = 0,
    IPMI_SEV_WARNING = 1,
    IPMI_SEV_CRITICAL = 2,
    IPMI_SEV_UNKNOWN = 3,
};
const char *ipmi_severity_name(enum ipmi_severity s); /* "nominal", ... */
/* 0 or BS_EINVAL. */
int ipmi_severity_parse(const char *s, enum ipmi_severity *out);

struct ipmi_events_filter {
    const char *instance;     /* exact instance label; NULL = any */
    const char *severity;     /* "nominal"|"warning"|"critical"|"unknown"; NULL = any */
    const char *sensor_type;  /* e.g. "Temperature", case-insensitive; NULL = any */
    int64_t start_ms, end_ms; /* event time range, inclusive */
    size_t limit;             /* most events returned; 0 = 1000; max 10000 */
};
/* Any instance, severity and type, all time, limit 1000. */
void ipmi_events_filter_default(struct ipmi_events_filter *f);

#define IPMI_EVENTS_CURSOR_MAX 32

/* Append to out a JSON array of the stored events that match f, in the
 * order they were stored, starting after cursor_in (NULL or "" = from the
 * oldest stored). Each element:
 *   {"seq":"...","instance":"...","job":"...","bmc":"host:port",
 *    "record_id":5,"time":"RFC3339","timestamp":1795718470,
 *    "sensor_type":"Temperature","sensor_number":1,"sensor_name":"CPU Temp",
 *    "event":"Upper Critical - going high","description":"...",
 *    "direction":"Asserted|Deasserted","severity":"critical","raw":"hex of
 *    the 16-byte SEL record"}
 * cursor_out (IPMI_EVENTS_CURSOR_MAX bytes) gets the cursor to pass next
 * time to continue after what was returned (or after everything examined
 * when fewer than limit matched), so a follower sees every event once.
 * Returns 0; BS_EINVAL for a bad filter or a cursor this collector did not
 * produce (err says which); BS_EIO reading the log; BS_ELIMIT from out. */
int ipmi_events_query(struct ipmi_collector *c, const struct ipmi_events_filter *f,
                      const char *cursor_in, struct bs_buf *out, char *cursor_out,
                      struct bs_error *err);

#endif
