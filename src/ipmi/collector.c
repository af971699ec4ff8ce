/* SPDX-License-Identifier: Apache-2.0
 *
 * The IPMI collector: a fixed pool of worker threads polling many BMCs,
 * each on its own schedule, into the tsdb and the event log.
 *
 * Why a pool of blocking workers. libfreeipmi's out-of-band API is
 * synchronous: a request blocks its thread until the answer or the session
 * timeout. A BMC answers in a few milliseconds or not at all, and BMCs
 * tolerate very few concurrent sessions, so the natural unit of work is
 * "one poll of one BMC" (one session, requests strictly one after the
 * other) and the natural bound is the number of threads. A target is
 * marked busy while a worker polls it, so a BMC never sees two sessions or
 * two requests from us at once, however late its poll runs. A dead BMC
 * holds one worker for at most its timeout (each request is bounded by the
 * session timeout and the poll checks a deadline between requests); the
 * other workers go on with the other BMCs, which is what keeps one stopped
 * BMC from delaying a fleet. With W workers, a poll costing P seconds of
 * wall time and an interval I, W*I/P BMCs fit; CPU per poll is measured by
 * bench/bench_ipmi_poll.c.
 *
 * Schedule. Each target has a due time on the monotonic clock; its first
 * poll is spread over the interval by a hash of host:port (as Prometheus
 * spreads scrapes), later ones are due one interval after the previous due
 * time, skipping whole intervals that were missed rather than bunching up.
 * A worker takes the due target with the earliest due time (a linear scan
 * under the collector's mutex: picks happen a few times a second even for
 * thousands of BMCs, cheaper than keeping a heap in order across reloads).
 *
 * Reload. ipmi_collector_set_targets() matches targets by host:port. A
 * target's settings are an immutable, reference-counted object: a worker
 * takes a reference when its poll starts, a reload swaps the pointer, so a
 * poll in progress finishes with the settings it started with. A removed
 * target that is being polled is unlinked at once and freed by the worker
 * that finishes its poll.
 *
 * What one poll writes (all samples at the poll's start time, one tsdb
 * appender per poll): up, ipmi_up{collector=ipmi|chassis|sel},
 * ipmi_scrape_duration_seconds, a value and a state series per sensor with
 * prometheus-ipmi-exporter's names (chosen by the sensor's unit, with
 * ipmi_sensor_value/ipmi_sensor_state for everything else),
 * ipmi_chassis_power_state, ipmi_sel_logs_count, ipmi_sel_free_space_bytes,
 * ipmi_sel_events_total per (sensor type, severity) and
 * ipmi_sel_last_event_timestamp_seconds. Series written by the previous
 * poll and not by this one get a stale marker, as a scrape would.
 *
 * SEL. bmc.c reads records from the cursor's record on; new events are
 * deduplicated against the event log by (BMC, SEL timestamp, content hash),
 * appended and fsynced, then counted in the cursor, which is written
 * atomically last (see eventlog.c for the crash argument). A cursor whose
 * record is gone or different (SEL cleared or wrapped) makes bmc.c re-read
 * the whole SEL; the deduplication keeps what was already stored out.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <freeipmi/freeipmi.h>

#include "ipmi/ipmi_int.h"

#define DEFAULT_INTERVAL_MS 60000
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_WORKERS 4
#define DEFAULT_RETENTION_MS (15LL * 24 * 3600 * 1000)
#define MAINTENANCE_EVERY_MS (3600LL * 1000)

/* ------------------------------------------------------------ config bits */

void ipmi_target_config_default(struct ipmi_target_config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 623;
    c->driver = IPMI_CFG_DRIVER_LAN_2_0;
    c->privilege = IPMI_CFG_PRIV_USER;
    c->cipher_suite_id = 3;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    c->interval_ms = DEFAULT_INTERVAL_MS;
}

struct flag_name {
    const char *name;
    unsigned bit;
};

static const struct flag_name flags20[] = {
    {"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_AUTHENTICATION_CAPABILITIES},
    {"intel20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_INTEL_2_0_SESSION},
    {"supermicro20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUPERMICRO_2_0_SESSION},
    {"sun20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUN_2_0_SESSION},
    {"opensesspriv", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE},
    {"integritycheckvalue", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NON_EMPTY_INTEGRITY_CHECK_VALUE},
    {"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NO_CHECKSUM_CHECK},
};
static const struct flag_name flags15[] = {
    {"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_AUTHENTICATION_CAPABILITIES},
    {"idzero", IPMI_WORKAROUND_FLAGS_OUTOFBAND_ACCEPT_SESSION_ID_ZERO},
    {"forcepermsg", IPMI_WORKAROUND_FLAGS_OUTOFBAND_FORCE_PERMSG_AUTHENTICATION},
    {"unexpectedauth", IPMI_WORKAROUND_FLAGS_OUTOFBAND_CHECK_UNEXPECTED_AUTHCODE},
    {"endianseq", IPMI_WORKAROUND_FLAGS_OUTOFBAND_BIG_ENDIAN_SEQUENCE_NUMBER},
    {"noauthcodecheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_NO_AUTH_CODE_CHECK},
    {"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_NO_CHECKSUM_CHECK},
};

int ipmi_workaround_flag_parse(enum ipmi_cfg_driver d, const char *name, unsigned *bit,
                               struct bs_error *err)
{
    const struct flag_name *v = d == IPMI_CFG_DRIVER_LAN ? flags15 : flags20;
    size_t n = d == IPMI_CFG_DRIVER_LAN ? sizeof(flags15) / sizeof(flags15[0])
                                        : sizeof(flags20) / sizeof(flags20[0]);
    char list[256] = "";
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(name, v[i].name) == 0) {
            *bit = v[i].bit;
            return 0;
        }
        at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%s", i ? ", " : "", v[i].name);
        if (at >= sizeof(list))
            at = sizeof(list) - 1;
    }
    return bs_error_set(err, BS_EINVAL, "unknown workaround flag \"%s\" for driver %s (known: %s)",
                        name, d == IPMI_CFG_DRIVER_LAN ? "LAN" : "LAN_2_0", list);
}

int ipmi_driver_parse(const char *s, enum ipmi_cfg_driver *out)
{
    if (strcasecmp(s, "LAN_2_0") == 0 || strcasecmp(s, "lanplus") == 0) {
        *out = IPMI_CFG_DRIVER_LAN_2_0;
        return 0;
    }
    if (strcasecmp(s, "LAN") == 0) {
        *out = IPMI_CFG_DRIVER_LAN;
        return 0;
    }
    return BS_EINVAL;
}

int ipmi_privilege_parse(const char *s, enum ipmi_cfg_privilege *out)
{
    if (strcasecmp(s, "user") == 0)
        *out = IPMI_CFG_PRIV_USER;
    else if (strcasecmp(s, "operator") == 0)
        *out = IPMI_CFG_PRIV_OPERATOR;
    else if (strcasecmp(s, "admin") == 0 || strcasecmp(s, "administrator") == 0)
        *out = IPMI_CFG_PRIV_ADMIN;
    else
        return BS_EINVAL;
    return 0;
}

/* ------------------------------------------------------------- structures */

/* Immutable settings of a target, shared by reference (see the essay). */
struct settings {
    unsigned refs; /* under c->mu */
    char *host, *username, *password, *password_file;
    uint16_t port;
    enum ipmi_cfg_driver driver;
    enum ipmi_cfg_privilege privilege;
    int cipher_suite_id;
    unsigned workaround_bits;
    int64_t timeout_ms, interval_ms;
    struct labels *labels;      /* labels_dup: instance and job ensured */
    const char *instance, *job; /* into labels */
};

struct series {
    uint64_t hash;
    struct labels *ls; /* labels_dup */
};

struct target {
    char *key;     /* host:port */
    char *display; /* host, or host:port when not 623 */
    char *cursor_path, *sdr_path;
    struct settings *s; /* under c->mu */
    /* schedule, under c->mu */
    int64_t next_due_ns;
    bool busy, removed, due_now;
    uint64_t polls_done;
    /* status, under c->mu */
    int health; /* -1 unknown, 0 down, 1 up */
    char last_error[512];
    int64_t last_poll_ms;
    double last_duration_s;
    /* owned by the polling worker (busy guards it) */
    struct ipmi_cursor cur;
    struct series *prev; /* series written by the previous poll */
    size_t nprev;
};

struct worker {
    struct ipmi_collector *c;
    pthread_t th;
    void *interp; /* made at the first poll (worker_interp), owned */
    bool started;
};

struct ipmi_collector {
    pthread_mutex_t reload_mu; /* serialises ipmi_collector_set_targets */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* targets changed / stop */
    pthread_cond_t done_cv; /* a poll finished */
    bool stopping;
    struct target **targets;
    size_t ntargets;
    struct worker *workers;
    unsigned nworkers;
    struct tsdb *db;
    char *dir; /* <data_dir>/ipmi */
    struct ipmi_eventlog *log;
    int64_t next_maintenance_ms;
    bool maintaining;
};

static void settings_unref(struct settings *s)
{
    if (!s || --s->refs > 0)
        return;
    free(s->host);
    free(s->username);
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s->password_file);
    free(s->labels);
    free(s);
}

static void series_free(struct series *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].ls);
    free(v);
}

static void target_free(struct target *t)
{
    if (!t)
        return;
    settings_unref(t->s);
    series_free(t->prev, t->nprev);
    free(t->key);
    free(t->display);
    free(t->cursor_path);
    free(t->sdr_path);
    free(t);
}

/* ------------------------------------------------------------ validation */

static int build_settings(const struct ipmi_target_config *tc, size_t idx, struct settings **out,
                          struct bs_error *err)
{
    if (!tc->host || !*tc->host)
        return bs_error_set(err, BS_EINVAL, "ipmi target %zu: host is required", idx);
    const char *h = tc->host;
    uint16_t port = tc->port ? tc->port : 623;
    int64_t interval = tc->interval_ms > 0 ? tc->interval_ms : DEFAULT_INTERVAL_MS;
    int64_t timeout = tc->timeout_ms > 0 ? tc->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (tc->timeout_ms <= 0 && timeout >= interval)
        timeout = interval * 4 / 5;
    if (timeout > interval)
        return bs_error_set(err, BS_EINVAL,
                            "ipmi target %s:%u: timeout %lld ms is greater than the interval "
                            "%lld ms",
                            h, port, (long long)timeout, (long long)interval);
    if (timeout < 100)
        return bs_error_set(err, BS_EINVAL, "ipmi target %s:%u: timeout below 100 ms", h, port);
    if (tc->username && strlen(tc->username) > 16)
        return bs_error_set(err, BS_EINVAL, "ipmi target %s:%u: username longer than 16 bytes", h,
                            port);
    size_t pwmax = tc->driver == IPMI_CFG_DRIVER_LAN ? 16 : 20;
    if (!tc->password_file && tc->password && strlen(tc->password) > pwmax)
        return bs_error_set(
            err, BS_EINVAL, "ipmi target %s:%u: password longer than %zu bytes (the %s limit)", h,
            port, pwmax, tc->driver == IPMI_CFG_DRIVER_LAN ? "IPMI 1.5" : "IPMI 2.0");
    if (tc->driver == IPMI_CFG_DRIVER_LAN_2_0 &&
        (tc->cipher_suite_id < 0 || tc->cipher_suite_id > 17))
        return bs_error_set(err, BS_EINVAL, "ipmi target %s:%u: cipher_suite_id %d is not 0..17", h,
                            port, tc->cipher_suite_id);
    unsigned bits = 0;
    for (size_t i = 0; i < tc->nworkaround_flags; i++) {
        unsigned b;
        int rc = ipmi_workaround_flag_parse(tc->driver, tc->workaround_flags[i], &b, err);
        if (rc) {
            bs_error_prefix(err, "ipmi target %s:%u", h, port);
            return rc;
        }
        bits |= b;
    }
    struct labels_builder lb;
    labels_builder_init(&lb);
    int rc = 0;
    if (tc->labels)
        rc = labels_builder_from(&lb, tc->labels);
    char hp[300];
    snprintf(hp, sizeof(hp), "%s:%u", h, port);
    if (rc == 0 && !labels_builder_get(&lb, "instance"))
        rc = labels_builder_set_str(&lb, "instance", hp);
    if (rc == 0 && !labels_builder_get(&lb, "job"))
        rc = labels_builder_set_str(&lb, "job", "ipmi");
    labels_builder_del(&lb, LABELS_METRIC_NAME);
    struct labels ls;
    if (rc == 0)
        rc = labels_builder_labels(&lb, &ls, err);
    struct settings *s = NULL;
    if (rc == 0) {
        s = bs_xcalloc(1, sizeof(*s));
        s->labels = labels_dup(&ls);
        if (!s->labels)
            rc = BS_ENOMEM;
    }
    labels_builder_fini(&lb);
    if (rc) {
        free(s);
        return rc;
    }
    s->refs = 1;
    s->host = bs_xstrdup(h);
    s->port = port;
    s->username = bs_xstrdup(tc->username ? tc->username : "");
    s->password = tc->password_file ? NULL : bs_xstrdup(tc->password ? tc->password : "");
    s->password_file = tc->password_file ? bs_xstrdup(tc->password_file) : NULL;
    s->driver = tc->driver;
    s->privilege = tc->privilege;
    s->cipher_suite_id = tc->cipher_suite_id;
    s->workaround_bits = bits;
    s->timeout_ms = timeout;
    s->interval_ms = interval;
    s->instance = labels_get(s->labels, "instance");
    s->job = labels_get(s->labels, "job");
    *out = s;
    return 0;
}

/* ---------------------------------------------------------------- metrics */

struct emit {
    struct tsdb_appender *app;
    struct labels_builder b;
    const struct labels *tl;
    int64_t t;
    struct series *cur;
    size_t ncur, capcur;
    int rc;
};

static void put(struct emit *e, const char *name, double v, const char *k1, const char *v1,
                const char *k2, const char *v2, const char *k3, const char *v3)
{
    if (e->rc)
        return;
    labels_builder_reset(&e->b);
    int rc = labels_builder_from(&e->b, e->tl);
    if (rc == 0)
        rc = labels_builder_set_str(&e->b, LABELS_METRIC_NAME, name);
    if (rc == 0 && k1)
        rc = labels_builder_set_str(&e->b, k1, v1);
    if (rc == 0 && k2)
        rc = labels_builder_set_str(&e->b, k2, v2);
    if (rc == 0 && k3)
        rc = labels_builder_set_str(&e->b, k3, v3);
    struct labels ls;
    if (rc == 0)
        rc = labels_builder_labels(&e->b, &ls, NULL);
    if (rc) {
        e->rc = rc;
        return;
    }
    if (e->ncur == e->capcur) {
        e->capcur = e->capcur ? e->capcur * 2 : 32;
        e->cur = bs_xrealloc(e->cur, e->capcur * sizeof(*e->cur));
    }
    uint64_t h = labels_hash(&ls);
    struct labels *dup = labels_dup(&ls);
    if (!dup) {
        e->rc = BS_ENOMEM;
        return;
    }
    e->cur[e->ncur].hash = h;
    e->cur[e->ncur].ls = dup;
    e->ncur++;
    if (e->app) {
        int arc = tsdb_appender_add(e->app, 0, &ls, e->t, v, NULL);
        if (arc && arc != BS_EOUTOFORDER && arc != BS_EDUPLICATE && arc != BS_EOUTOFBOUNDS)
            e->rc = arc;
    }
}

static const char *state_metric_for_unit(uint8_t unit, const char **value_metric)
{
    switch (unit) {
    case IPMI_SENSOR_UNIT_DEGREES_C:
        *value_metric = "ipmi_temperature_celsius";
        return "ipmi_temperature_state";
    case IPMI_SENSOR_UNIT_RPM:
        *value_metric = "ipmi_fan_speed_rpm";
        return "ipmi_fan_speed_state";
    case IPMI_SENSOR_UNIT_VOLTS:
        *value_metric = "ipmi_voltage_volts";
        return "ipmi_voltage_state";
    case IPMI_SENSOR_UNIT_AMPS:
        *value_metric = "ipmi_current_amperes";
        return "ipmi_current_state";
    case IPMI_SENSOR_UNIT_WATTS:
        *value_metric = "ipmi_power_watts";
        return "ipmi_power_state";
    default:
        *value_metric = "ipmi_sensor_value";
        return "ipmi_sensor_state";
    }
}

static int emit_poll(struct ipmi_collector *c, struct target *t, const struct settings *s,
                     const struct ipmi_poll_result *r, int64_t t_ms, double dur_s,
                     struct bs_error *err)
{
    struct emit e = {.tl = s->labels, .t = t_ms};
    labels_builder_init(&e.b);
    e.app = c->db ? tsdb_appender_new(c->db) : NULL;
    bool up = r->session_ok;
    put(&e, "up", up ? 1 : 0, NULL, NULL, NULL, NULL, NULL, NULL);
    put(&e, "ipmi_up", up && r->sensors_ok ? 1 : 0, "collector", "ipmi", NULL, NULL, NULL, NULL);
    put(&e, "ipmi_up", up && r->chassis_ok ? 1 : 0, "collector", "chassis", NULL, NULL, NULL, NULL);
    put(&e, "ipmi_up", up && r->sel_ok ? 1 : 0, "collector", "sel", NULL, NULL, NULL, NULL);
    put(&e, "ipmi_scrape_duration_seconds", dur_s, NULL, NULL, NULL, NULL, NULL, NULL);
    if (up) {
        for (size_t i = 0; i < r->nsensors; i++) {
            const struct ipmi_sensor_reading *sr = &r->sensors[i];
            char id[16];
            snprintf(id, sizeof(id), "%u", sr->record_id);
            const char *vm, *sm = state_metric_for_unit(sr->base_unit, &vm);
            double v = sr->has_value ? sr->value : NAN;
            double st = sr->state == IPMI_SEV_UNKNOWN ? NAN : (double)sr->state;
            bool generic = strcmp(vm, "ipmi_sensor_value") == 0;
            put(&e, vm, v, "id", id, "name", sr->name, generic ? "type" : NULL, sr->type_name);
            put(&e, sm, st, "id", id, "name", sr->name, generic ? "type" : NULL, sr->type_name);
        }
        if (r->chassis_ok)
            put(&e, "ipmi_chassis_power_state", r->power_on, NULL, NULL, NULL, NULL, NULL, NULL);
        if (r->sel_ok) {
            put(&e, "ipmi_sel_logs_count", r->sel_entries, NULL, NULL, NULL, NULL, NULL, NULL);
            put(&e, "ipmi_sel_free_space_bytes", r->sel_free_bytes, NULL, NULL, NULL, NULL, NULL,
                NULL);
        }
    }
    /* The event counters live in the cursor: they are written whether or
     * not the BMC answered, so a counter never goes stale on a blip. */
    for (size_t i = 0; i < t->cur.ncounters; i++)
        put(&e, "ipmi_sel_events_total", (double)t->cur.counters[i].count, "sensor_type",
            t->cur.counters[i].sensor_type, "severity",
            ipmi_severity_name((enum ipmi_severity)t->cur.counters[i].severity), NULL, NULL);
    if (t->cur.last_event_ms > 0)
        put(&e, "ipmi_sel_last_event_timestamp_seconds", (double)t->cur.last_event_ms / 1000.0,
            NULL, NULL, NULL, NULL, NULL, NULL);
    /* Stale markers for what the previous poll wrote and this one did not. */
    for (size_t i = 0; e.rc == 0 && i < t->nprev; i++) {
        bool found = false;
        for (size_t j = 0; j < e.ncur && !found; j++)
            found = e.cur[j].hash == t->prev[i].hash && labels_equal(e.cur[j].ls, t->prev[i].ls);
        if (!found && e.app)
            (void)tsdb_appender_add(e.app, 0, t->prev[i].ls, t_ms, bs_stale_nan(), NULL);
    }
    labels_builder_fini(&e.b);
    int rc = e.rc;
    if (e.app) {
        if (rc == 0)
            rc = tsdb_appender_commit(e.app, err);
        else
            tsdb_appender_rollback(e.app);
    }
    if (rc == 0) {
        series_free(t->prev, t->nprev);
        t->prev = e.cur;
        t->nprev = e.ncur;
    } else {
        series_free(e.cur, e.ncur);
    }
    return rc;
}

/* ------------------------------------------------------------------- poll */

static int read_password_file(const char *path, char *dst, size_t cap, struct bs_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return bs_error_set(err, BS_EIO, "password_file %s: %s", path, strerror(errno));
    if (!fgets(dst, (int)cap, f))
        dst[0] = '\0';
    fclose(f);
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r'))
        dst[--n] = '\0';
    return 0;
}

static void set_status(struct ipmi_collector *c, struct target *t, bool up, const char *msg,
                       int64_t when, double dur)
{
    pthread_mutex_lock(&c->mu);
    int old = t->health;
    bool changed = old != (up ? 1 : 0) || strcmp(t->last_error, msg) != 0;
    t->health = up ? 1 : 0;
    snprintf(t->last_error, sizeof(t->last_error), "%s", msg);
    t->last_poll_ms = when;
    t->last_duration_s = dur;
    pthread_mutex_unlock(&c->mu);
    if (!changed)
        return;
    if (!up)
        BS_WARN("ipmi", "%s", msg);
    else if (*msg)
        BS_WARN("ipmi", "BMC %s is up, partly: %s", t->display, msg);
    else if (old == 0)
        BS_INFO("ipmi", "BMC %s is up again", t->display);
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void)
{
    /* Interpret contexts read config files at creation; nothing global to
     * initialise in libfreeipmi, but creating one context first loads the
     * library's static tables before workers race on them. */
    void *ic = ipmi_interp_new();
    ipmi_interp_free(ic);
}

/* The worker's interpret context, made at its first poll: libfreeipmi
 * parses its sensor and SEL rule files byte by byte for each context
 * (about 0.2 s of CPU per context), which must not delay the server's
 * start, nor be paid at all when no BMC is configured. NULL when it
 * cannot be made (the poll then reports the BMC as failed). */
static void *worker_interp(struct worker *w)
{
    if (!w->interp) {
        pthread_once(&lib_once, lib_init);
        w->interp = ipmi_interp_new();
    }
    return w->interp;
}

static void poll_target(struct worker *w, struct target *t, struct settings *s)
{
    struct ipmi_collector *c = w->c;
    int64_t start_ms = bs_now_ms();
    int64_t t0 = bs_monotonic_ns();
    char password[64] = "";
    struct bs_error err = {0};
    struct ipmi_poll_result r;
    memset(&r, 0, sizeof(r));
    if (s->password_file) {
        if (read_password_file(s->password_file, password, sizeof(password), &err) != 0) {
            snprintf(r.error, sizeof(r.error), "BMC %.100s: %.400s", t->display, err.msg);
            goto done;
        }
    } else {
        snprintf(password, sizeof(password), "%s", s->password);
    }
    char hostport[300];
    snprintf(hostport, sizeof(hostport), "%s:%u", s->host, s->port);
    struct ipmi_bmc_params p = {
        .hostport = hostport,
        .display = t->display,
        .username = s->username,
        .password = password,
        .driver = s->driver,
        .privilege = s->privilege,
        .cipher_suite_id = s->cipher_suite_id,
        .workaround_bits = s->workaround_bits,
        .timeout_ms = s->timeout_ms,
        .sdr_cache_path = t->sdr_path,
    };
    ipmi_bmc_poll(&p, &t->cur, worker_interp(w), &r);
    memset(password, 0, sizeof(password));

    /* SEL: store what is new, then move the cursor. */
    if (r.sel_ok) {
        struct ipmi_cursor before = t->cur;
        for (size_t i = 0; i < r.nevents; i++) {
            struct ipmi_event *ev = &r.events[i];
            snprintf(ev->bmc, sizeof(ev->bmc), "%s", t->key);
            snprintf(ev->instance, sizeof(ev->instance), "%s", s->instance);
            snprintf(ev->job, sizeof(ev->job), "%s", s->job);
            ev->ingest_ms = start_ms;
            if (ev->time_ms == 0)
                ev->time_ms = start_ms;
        }
        int rc = ipmi_eventlog_append(c->log, r.events, r.nevents, &err);
        if (rc) {
            BS_ERROR("ipmi", "BMC %s: cannot store SEL events: %s", t->display, err.msg);
        } else {
            for (size_t i = 0; i < r.nevents; i++)
                if (r.events[i].seq)
                    ipmi_cursor_count(&t->cur, &r.events[i]);
            if (r.nevents > 0) {
                const struct ipmi_event *last = &r.events[r.nevents - 1];
                t->cur.valid = true;
                t->cur.record_id = last->record_id;
                t->cur.sel_timestamp = last->sel_timestamp;
                t->cur.content_hash = last->content_hash;
            } else if (r.sel_rescanned) {
                t->cur.valid = false; /* the SEL is empty now */
            }
            if (r.sel_rescanned)
                BS_INFO("ipmi", "BMC %s: SEL was cleared or wrapped; re-read %zu entries",
                        t->display, r.nevents);
            if (memcmp(&before, &t->cur, sizeof(before)) != 0 &&
                ipmi_cursor_save(t->cursor_path, t->key, &t->cur, &err) != 0)
                BS_ERROR("ipmi", "BMC %s: cannot save the SEL cursor: %s", t->display, err.msg);
        }
    }
done:;
    double dur = (double)(bs_monotonic_ns() - t0) / 1e9;
    bs_error_clear(&err);
    if (emit_poll(c, t, s, &r, start_ms, dur, &err) != 0)
        BS_ERROR("ipmi", "BMC %s: cannot store samples: %s", t->display, err.msg);
    set_status(c, t, r.session_ok, r.session_ok ? (r.error[0] ? r.error : "") : r.error, start_ms,
               dur);
    ipmi_poll_result_fini(&r);
}

/* ---------------------------------------------------------------- workers */

static int64_t next_due_after(int64_t due, int64_t interval_ns, int64_t now)
{
    int64_t next = due + interval_ns;
    if (next <= now)
        next += ((now - next) / interval_ns + 1) * interval_ns;
    return next;
}

static void maintain(struct ipmi_collector *c)
{
    struct bs_error err = {0};
    if (ipmi_eventlog_apply_retention(c->log, &err) != 0)
        BS_ERROR("ipmi", "event log retention: %s", err.msg);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ipmi_collector *c = w->c;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        int64_t now = bs_monotonic_ns();
        if (!c->maintaining && bs_now_ms() >= c->next_maintenance_ms) {
            c->maintaining = true;
            c->next_maintenance_ms = bs_now_ms() + MAINTENANCE_EVERY_MS;
            pthread_mutex_unlock(&c->mu);
            maintain(c);
            pthread_mutex_lock(&c->mu);
            c->maintaining = false;
            continue;
        }
        struct target *best = NULL;
        for (size_t i = 0; i < c->ntargets; i++) {
            struct target *t = c->targets[i];
            if (!t->busy && (!best || t->next_due_ns < best->next_due_ns))
                best = t;
        }
        if (!best || best->next_due_ns > now) {
            int64_t wake = best ? best->next_due_ns : now + 1000000000LL;
            if (wake > now + 1000000000LL)
                wake = now + 1000000000LL; /* re-check maintenance each second */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t abs = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + (wake - now);
            ts.tv_sec = abs / 1000000000LL;
            ts.tv_nsec = abs % 1000000000LL;
            pthread_cond_timedwait(&c->work_cv, &c->mu, &ts);
            continue;
        }
        struct target *t = best;
        struct settings *s = t->s;
        s->refs++;
        t->busy = true;
        t->due_now = false;
        int64_t due = t->next_due_ns;
        pthread_mutex_unlock(&c->mu);

        poll_target(w, t, s);

        pthread_mutex_lock(&c->mu);
        t->busy = false;
        t->polls_done++;
        int64_t interval_ns = t->s->interval_ms * 1000000LL;
        t->next_due_ns =
            t->due_now ? bs_monotonic_ns() : next_due_after(due, interval_ns, bs_monotonic_ns());
        t->due_now = false;
        settings_unref(s);
        if (t->removed)
            target_free(t);
        pthread_cond_broadcast(&c->done_cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* -------------------------------------------------------------- lifecycle */

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int ipmi_collector_new(struct ipmi_collector **out, const struct ipmi_collector_options *o,
                       struct bs_error *err)
{
    if (!o || !o->data_dir || !*o->data_dir)
        return bs_error_set(err, BS_EINVAL, "ipmi: data directory not set");
    if (!o->db)
        return bs_error_set(err, BS_EINVAL, "ipmi: no tsdb given");
    struct ipmi_collector *c = bs_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->reload_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->work_cv, &ca);
    pthread_cond_init(&c->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    c->db = o->db;
    size_t dl = strlen(o->data_dir) + 16;
    c->dir = bs_xmalloc(dl);
    snprintf(c->dir, dl, "%s/ipmi", o->data_dir);
    char path[PATH_MAX];
    int rc;
    snprintf(path, sizeof(path), "%s/sdr", c->dir);
    if (mkdir_p(path) < 0) {
        rc = bs_error_set(err, BS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/events.log", c->dir);
    rc = ipmi_eventlog_open(&c->log, path,
                            o->retention_ms > 0 ? o->retention_ms : DEFAULT_RETENTION_MS, err);
    if (rc)
        goto fail;
    c->next_maintenance_ms = bs_now_ms() + MAINTENANCE_EVERY_MS;
    c->nworkers = o->workers ? o->workers : DEFAULT_WORKERS;
    c->workers = bs_xcalloc(c->nworkers, sizeof(*c->workers));
    for (unsigned i = 0; i < c->nworkers; i++) {
        struct worker *w = &c->workers[i];
        w->c = c; /* w->interp is made by the worker at its first poll */
        if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
            rc = bs_error_set(err, BS_ENOMEM, "ipmi: cannot start worker thread");
            goto fail;
        }
        w->started = true;
    }
    *out = c;
    return 0;
fail:
    ipmi_collector_free(c);
    return rc;
}

void ipmi_collector_free(struct ipmi_collector *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->work_cv);
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 0; c->workers && i < c->nworkers; i++) {
        if (c->workers[i].started)
            pthread_join(c->workers[i].th, NULL);
        ipmi_interp_free(c->workers[i].interp);
    }
    free(c->workers);
    for (size_t i = 0; i < c->ntargets; i++)
        target_free(c->targets[i]);
    free(c->targets);
    ipmi_eventlog_close(c->log);
    free(c->dir);
    pthread_cond_destroy(&c->work_cv);
    pthread_cond_destroy(&c->done_cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->reload_mu);
    free(c);
}

/* ---------------------------------------------------------------- targets */

struct reconcile {
    struct ipmi_cursor *cur;
    size_t n;
};

static void reconcile_fn(const struct ipmi_event *ev, void *arg)
{
    struct reconcile *r = arg;
    ipmi_cursor_count(r->cur, ev);
    r->n++;
}

static struct target *target_new(struct ipmi_collector *c, struct settings *s)
{
    struct target *t = bs_xcalloc(1, sizeof(*t));
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s:%u", s->host, s->port);
    t->key = bs_xstrdup(buf);
    if (s->port == 623)
        t->display = bs_xstrdup(s->host);
    else
        t->display = bs_xstrdup(buf);
    char fk[300];
    size_t i = 0;
    for (const char *p = t->key; *p && i + 1 < sizeof(fk); p++)
        fk[i++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '.' || *p == '-')
                      ? *p
                      : '_';
    fk[i] = '\0';
    snprintf(buf, sizeof(buf), "%s/%s.cursor", c->dir, fk);
    t->cursor_path = bs_xstrdup(buf);
    snprintf(buf, sizeof(buf), "%s/sdr/%s.sdr", c->dir, fk);
    t->sdr_path = bs_xstrdup(buf);
    t->s = s;
    t->health = -1;
    struct bs_error err = {0};
    if (ipmi_cursor_load(t->cursor_path, &t->cur, &err) != 0)
        BS_WARN("ipmi",
                "BMC %s: %s; reading its SEL from the start (stored events are not "
                "repeated)",
                t->display, err.msg);
    /* Events stored after the cursor was last written (a crash in between)
     * are counted now, and the cursor moves past them. */
    struct reconcile rec = {.cur = &t->cur};
    uint64_t before = t->cur.last_seq;
    if (ipmi_eventlog_replay_bmc(c->log, t->key, before, reconcile_fn, &rec, &err) == 0 &&
        rec.n > 0) {
        BS_INFO("ipmi", "BMC %s: %zu stored events were newer than the cursor; counted them",
                t->display, rec.n);
        if (ipmi_cursor_save(t->cursor_path, t->key, &t->cur, &err) != 0)
            BS_ERROR("ipmi", "BMC %s: cannot save the SEL cursor: %s", t->display, err.msg);
    }
    /* Spread first polls over the interval. */
    int64_t interval_ns = s->interval_ms * 1000000LL;
    uint64_t h = bs_hash64(t->key, strlen(t->key));
    t->next_due_ns = bs_monotonic_ns() + (int64_t)(h % (uint64_t)interval_ns);
    return t;
}

int ipmi_collector_set_targets(struct ipmi_collector *c, const struct ipmi_target_config *ts,
                               size_t n, struct bs_error *err)
{
    struct settings **ss = n ? bs_xcalloc(n, sizeof(*ss)) : NULL;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = build_settings(&ts[i], i, &ss[i], err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(ss[i]->host, ss[j]->host) == 0 && ss[i]->port == ss[j]->port)
                rc = bs_error_set(err, BS_EINVAL, "ipmi target %s:%u is listed twice", ss[i]->host,
                                  ss[i]->port);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            if (ss[i])
                settings_unref(ss[i]);
        free(ss);
        return rc;
    }
    /* Build new targets outside the lock (cursor files are read). */
    pthread_mutex_lock(&c->reload_mu);
    struct target **nt = n ? bs_xcalloc(n, sizeof(*nt)) : NULL;
    pthread_mutex_lock(&c->mu);
    bool *kept = c->ntargets ? bs_xcalloc(c->ntargets, sizeof(bool)) : NULL;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < c->ntargets; j++) {
            const struct settings *o = c->targets[j]->s;
            if (!kept[j] && strcmp(o->host, ss[i]->host) == 0 && o->port == ss[i]->port) {
                kept[j] = true;
                nt[i] = c->targets[j];
                break;
            }
        }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++)
        if (!nt[i]) {
            nt[i] = target_new(c, ss[i]);
            ss[i] = NULL;
        }
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (!ss[i])
            continue;
        struct settings *old = nt[i]->s;
        nt[i]->s = ss[i];
        if (old->interval_ms != ss[i]->interval_ms && !nt[i]->busy)
            nt[i]->next_due_ns =
                bs_monotonic_ns() + (int64_t)(bs_hash64(nt[i]->key, strlen(nt[i]->key)) %
                                              (uint64_t)(ss[i]->interval_ms * 1000000LL));
        settings_unref(old);
    }
    for (size_t j = 0; j < c->ntargets; j++) {
        if (kept[j])
            continue;
        if (c->targets[j]->busy)
            c->targets[j]->removed = true; /* its worker frees it */
        else
            target_free(c->targets[j]);
    }
    free(c->targets);
    c->targets = nt;
    c->ntargets = n;
    pthread_cond_broadcast(&c->work_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&c->reload_mu);
    free(kept);
    free(ss);
    return 0;
}

int ipmi_collector_poll_now(struct ipmi_collector *c, int64_t timeout_ms)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->ntargets;
    struct target **v = n ? bs_xmalloc(n * sizeof(*v)) : NULL;
    uint64_t *want = n ? bs_xmalloc(n * sizeof(*want)) : NULL;
    int64_t now = bs_monotonic_ns();
    for (size_t i = 0; i < n; i++) {
        struct target *t = c->targets[i];
        v[i] = t;
        want[i] = t->polls_done + (t->busy ? 2 : 1);
        if (t->busy)
            t->due_now = true;
        else
            t->next_due_ns = now;
    }
    pthread_cond_broadcast(&c->work_cv);
    int64_t deadline = now + timeout_ms * 1000000LL;
    int rc = 0;
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < n && all; i++) {
            bool present = false;
            for (size_t j = 0; j < c->ntargets && !present; j++)
                present = c->targets[j] == v[i];
            if (present && v[i]->polls_done < want[i])
                all = false;
        }
        if (all)
            break;
        if (bs_monotonic_ns() >= deadline) {
            rc = BS_ETIMEOUT;
            break;
        }
        struct timespec ts = {.tv_sec = deadline / 1000000000LL,
                              .tv_nsec = deadline % 1000000000LL};
        pthread_cond_timedwait(&c->done_cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    free(v);
    free(want);
    return rc;
}

/* ------------------------------------------------------------------ status */

int ipmi_collector_targets_json(struct ipmi_collector *c, bool leading_comma, struct bs_buf *out,
                                size_t *count)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; rc == 0 && i < c->ntargets; i++) {
        const struct target *t = c->targets[i];
        char when[64], dur[BS_FLOAT_FMT_MAX], ibuf[48], tbuf[48], url[320];
        if (t->last_poll_ms)
            bs_time_format_rfc3339(t->last_poll_ms, when, sizeof(when));
        else
            snprintf(when, sizeof(when), "0001-01-01T00:00:00Z");
        bs_float_format(t->last_duration_s, dur);
        bs_duration_format(t->s->interval_ms, ibuf, sizeof(ibuf));
        bs_duration_format(t->s->timeout_ms, tbuf, sizeof(tbuf));
        snprintf(url, sizeof(url), "ipmi://%s", t->key);
        if (i > 0 || leading_comma)
            rc = bs_buf_putc(out, ',');
        if (rc == 0)
            rc = bs_buf_puts(out, "{\"discoveredLabels\":");
        if (rc == 0)
            rc = labels_format_json(t->s->labels, out);
        if (rc == 0)
            rc = bs_buf_puts(out, ",\"labels\":");
        if (rc == 0)
            rc = labels_format_json(t->s->labels, out);
        if (rc == 0)
            rc = bs_buf_puts(out, ",\"scrapePool\":");
        if (rc == 0)
            rc = bs_json_string(out, t->s->job, strlen(t->s->job));
        if (rc == 0)
            rc = bs_buf_printf(
                out, ",\"scrapeUrl\":\"%s\",\"globalUrl\":\"%s\",\"lastError\":", url, url);
        if (rc == 0)
            rc = bs_json_string(out, t->last_error, strlen(t->last_error));
        if (rc == 0)
            rc = bs_buf_printf(out,
                               ",\"lastScrape\":\"%s\",\"lastScrapeDuration\":%s,"
                               "\"health\":\"%s\",\"scrapeInterval\":\"%s\","
                               "\"scrapeTimeout\":\"%s\"}",
                               when, dur,
                               t->health == 1   ? "up"
                               : t->health == 0 ? "down"
                                                : "unknown",
                               ibuf, tbuf);
    }
    if (count)
        *count = c->ntargets;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int ipmi_collector_target_health(struct ipmi_collector *c, const char *hostport, char *err_out,
                                 size_t cap)
{
    int rc = BS_ENOENT;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->ntargets; i++) {
        const struct target *t = c->targets[i];
        if (strcmp(t->key, hostport) != 0)
            continue;
        rc = t->health;
        if (cap)
            snprintf(err_out, cap, "%s", t->last_error);
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int ipmi_events_query(struct ipmi_collector *c, const struct ipmi_events_filter *f,
                      const char *cursor_in, struct bs_buf *out, char *cursor_out,
                      struct bs_error *err)
{
    struct ipmi_events_filter def;
    if (!f) {
        ipmi_events_filter_default(&def);
        f = &def;
    }
    return ipmi_eventlog_query(c->log, f, cursor_in, out, cursor_out, err);
}
