/* SPDX-License-Identifier: Apache-2.0
 *
 * ipmi internals shared by the collector (collector.c), the BMC poll
 * (bmc.c), the event log and cursors (eventlog.c) and the module's unit
 * tests. Nothing here is seen by other modules.
 */
#ifndef BONGSU_IPMI_INT_H
#define BONGSU_IPMI_INT_H

#include <pthread.h>

#include "ipmi/ipmi.h"

#define IPMI_SEL_RECORD_LEN 16

/* One SEL event as stored. Strings are NUL-terminated, truncated to fit. */
struct ipmi_event {
    uint64_t seq;           /* position in the event log, from 1 */
    int64_t time_ms;        /* SEL time in Unix ms (ingest time for
                               pre-init timestamps) */
    int64_t ingest_ms;      /* when bongsu stored it */
    uint32_t sel_timestamp; /* as the BMC recorded it */
    uint16_t record_id;
    uint8_t record_type;
    uint8_t sensor_type; /* 0xff when not a system event record */
    uint8_t sensor_number;
    uint8_t direction; /* 0 asserted, 1 deasserted */
    uint8_t severity;  /* enum ipmi_severity */
    uint8_t raw_len;
    uint8_t raw[IPMI_SEL_RECORD_LEN];
    uint64_t content_hash; /* XXH3 of the raw record */
    char bmc[128];         /* host:port */
    char instance[128];
    char job[128];
    char sensor_type_name[48];
    char sensor_name[64];
    char event[128];       /* event data 1 text (%e) */
    char description[256]; /* combined text (%E) */
};

/* ------------------------------------------------------------- cursor */

#define IPMI_CURSOR_MAX_COUNTERS 64

struct ipmi_event_counter {
    char sensor_type[48];
    uint8_t severity;
    uint64_t count;
};

/* Where SEL reading resumes for one BMC, and the per-BMC counters. */
struct ipmi_cursor {
    bool valid; /* record_id/timestamp/hash meaningful */
    uint16_t record_id;
    uint32_t sel_timestamp;
    uint64_t content_hash;
    uint64_t last_seq;     /* newest event-log seq counted below */
    int64_t last_event_ms; /* 0 = none yet */
    struct ipmi_event_counter counters[IPMI_CURSOR_MAX_COUNTERS];
    size_t ncounters;
};

/* Read path; a missing file leaves *cur empty and returns 0; a corrupt one
 * returns BS_ECORRUPT (the caller logs and starts empty). */
int ipmi_cursor_load(const char *path, struct ipmi_cursor *cur, struct bs_error *err);
/* Write atomically (temporary file, fsync, rename, fsync of the directory). */
int ipmi_cursor_save(const char *path, const char *bmc, const struct ipmi_cursor *cur,
                     struct bs_error *err);
/* Count ev in cur (counter, last event time, last_seq). */
void ipmi_cursor_count(struct ipmi_cursor *cur, const struct ipmi_event *ev);

/* ---------------------------------------------------------- event log */

struct ipmi_eventlog;

/* Open or create path; replay it, truncating a torn or corrupt tail (one
 * log line); drop events whose ingest time is older than now - retention
 * by rewriting the file. */
int ipmi_eventlog_open(struct ipmi_eventlog **out, const char *path, int64_t retention_ms,
                       struct bs_error *err);
void ipmi_eventlog_close(struct ipmi_eventlog *l);
/* True when an event of this BMC with this SEL timestamp and content hash
 * is already stored. */
bool ipmi_eventlog_contains(struct ipmi_eventlog *l, const char *bmc, uint32_t sel_timestamp,
                            uint64_t content_hash);
/* Append evs[0..n) (assigning seq), write(2) and fdatasync once. Events
 * already contained are skipped and get seq 0. */
int ipmi_eventlog_append(struct ipmi_eventlog *l, struct ipmi_event *evs, size_t n,
                         struct bs_error *err);
/* Call fn for each stored event of bmc with seq > after_seq, in order
 * (used to reconcile a cursor written before a crash). */
int ipmi_eventlog_replay_bmc(struct ipmi_eventlog *l, const char *bmc, uint64_t after_seq,
                             void (*fn)(const struct ipmi_event *ev, void *arg), void *arg,
                             struct bs_error *err);
int ipmi_eventlog_query(struct ipmi_eventlog *l, const struct ipmi_events_filter *f,
                        const char *cursor_in, struct bs_buf *out, char *cursor_out,
                        struct bs_error *err);
/* Drop events older than the retention now (rewrite); 0 when nothing to do. */
int ipmi_eventlog_apply_retention(struct ipmi_eventlog *l, struct bs_error *err);
size_t ipmi_eventlog_count(struct ipmi_eventlog *l);

/* Record codec (exposed for tests and fuzzing): encode ev into dst (cap
 * bytes) as one framed record; returns the length or 0 when cap is too
 * small. decode checks the frame and CRC: returns bytes consumed, 0 for a
 * truncated frame, -1 for a corrupt one. */
size_t ipmi_event_encode(const struct ipmi_event *ev, uint8_t *dst, size_t cap);
long ipmi_event_decode(const uint8_t *p, size_t n, struct ipmi_event *ev);
/* Append ev as one JSON object. */
int ipmi_event_json(const struct ipmi_event *ev, struct bs_buf *out);

/* ------------------------------------------------------------- BMC poll */

/* Everything one poll learns; filled by ipmi_bmc_poll(). */
struct ipmi_sensor_reading {
    uint16_t record_id;
    uint8_t sensor_type;
    uint8_t base_unit; /* IPMI_SENSOR_UNIT_* */
    bool has_value;
    double value;
    int state; /* enum ipmi_severity; IPMI_SEV_UNKNOWN */
    char name[64];
    char type_name[48];
};

struct ipmi_poll_result {
    bool session_ok; /* false: nothing below is valid */
    bool sensors_ok, chassis_ok, sel_ok;
    struct ipmi_sensor_reading *sensors;
    size_t nsensors;
    int power_on; /* 0/1 */
    uint32_t sel_entries, sel_free_bytes;
    struct ipmi_event *events; /* new events (not yet deduplicated) */
    size_t nevents;
    bool sel_rescanned;  /* the cursor record was gone or changed */
    int freeipmi_errnum; /* of the first failure, 0 if none */
    char error[512];     /* human message when !session_ok or a part failed */
};
void ipmi_poll_result_fini(struct ipmi_poll_result *r);

/* Credentials and settings resolved for one poll. */
struct ipmi_bmc_params {
    const char *hostport; /* "host:port" as freeipmi takes it */
    const char *display;  /* for messages: host, or host:port */
    const char *username;
    const char *password;
    enum ipmi_cfg_driver driver;
    enum ipmi_cfg_privilege privilege;
    int cipher_suite_id;
    unsigned workaround_bits;
    int64_t timeout_ms;
    const char *sdr_cache_path;
};

/* One poll of one BMC over one session: SDR cache check, sensors, chassis
 * status, SEL info, SEL records from cur (or from the first when cur is
 * not valid or its record is gone). interp is an ipmi_interpret_ctx_t owned
 * by the calling worker. Never fails as a function: failures are in r. */
void ipmi_bmc_poll(const struct ipmi_bmc_params *p, const struct ipmi_cursor *cur, void *interp,
                   struct ipmi_poll_result *r);
/* A per-worker interpret context (libfreeipmi's default rules plus
 * /etc/freeipmi's interpret configs when present). NULL on failure. */
void *ipmi_interp_new(void);
void ipmi_interp_free(void *interp);

/* The message a person can act on for a libfreeipmi session error (enum
 * ipmi_errnum) on BMC display for user/priv; writes into dst (cap). */
void ipmi_error_message(int freeipmi_errnum, const char *display, const char *user,
                        enum ipmi_cfg_privilege priv, enum ipmi_cfg_driver driver,
                        int64_t timeout_ms, const char *detail, char *dst, size_t cap);

#endif
