/* SPDX-License-Identifier: Apache-2.0
 *
 * One poll of one BMC over one IPMI session, on libfreeipmi: open the
 * session (RMCP+ or IPMI 1.5), check the SDR cache against the repository
 * and rebuild it when it is missing or out of date, read every full and
 * compact sensor record and interpret its state, read the chassis status
 * and the SEL info, then read SEL records from the cursor on. Every request
 * of the poll goes over the same session, one at a time; the whole poll is
 * bounded by the target's timeout (checked between requests, and each
 * request is itself bounded by the session timeout). Failures are turned
 * into sentences a person can act on (ipmi_error_message).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <freeipmi/freeipmi.h>

#include "ipmi/ipmi_int.h"

#define MAX_SENSORS 4096
#define MAX_EVENTS 65536

/* ---------------------------------------------------------------- errors */

static const char *priv_word(enum ipmi_cfg_privilege p)
{
    switch (p) {
    case IPMI_CFG_PRIV_OPERATOR:
        return "OPERATOR";
    case IPMI_CFG_PRIV_ADMIN:
        return "ADMINISTRATOR";
    default:
        return "USER";
    }
}

void ipmi_error_message(int e, const char *display, const char *user, enum ipmi_cfg_privilege priv,
                        enum ipmi_cfg_driver driver, int64_t timeout_ms, const char *detail,
                        char *dst, size_t cap)
{
    const char *u = user && *user ? user : "(null user)";
    switch (e) {
    case IPMI_ERR_PASSWORD_INVALID:
        snprintf(dst, cap, "BMC %s: password invalid for user %s", display, u);
        break;
    case IPMI_ERR_PASSWORD_VERIFICATION_TIMEOUT:
        /* IPMI 1.5 BMCs often drop a packet with a bad auth code silently. */
        snprintf(dst, cap,
                 "BMC %s: password invalid for user %s (no answer to the authenticated "
                 "request within %lld ms)",
                 display, u, (long long)timeout_ms);
        break;
    case IPMI_ERR_USERNAME_INVALID:
        snprintf(dst, cap, "BMC %s: unknown user %s", display, u);
        break;
    case IPMI_ERR_K_G_INVALID:
        snprintf(dst, cap, "BMC %s: BMC key (K_g) invalid for user %s", display, u);
        break;
    case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
        if (priv != IPMI_CFG_PRIV_USER)
            snprintf(dst, cap,
                     "BMC %s refused privilege %s for user %s: requested privilege level "
                     "exceeds limit; set privilege: user",
                     display, priv_word(priv), u);
        else
            snprintf(dst, cap,
                     "BMC %s refused privilege USER for user %s: the account has no LAN "
                     "access on this channel%s",
                     display, u,
                     driver == IPMI_CFG_DRIVER_LAN_2_0
                         ? ", or the BMC needs workaround_flags: [opensesspriv]"
                         : "");
        break;
    case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
        snprintf(dst, cap, "BMC %s: privilege %s of user %s is insufficient for %s", display,
                 priv_word(priv), u, detail && *detail ? detail : "this command");
        return;
    case IPMI_ERR_AUTHENTICATION_TYPE_UNAVAILABLE:
        snprintf(dst, cap,
                 "BMC %s: no authentication type in common for IPMI 1.5 (MD5 requested); "
                 "try driver: LAN_2_0",
                 display);
        break;
    case IPMI_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
        snprintf(dst, cap,
                 "BMC %s does not support the requested cipher suite; set cipher_suite_id "
                 "(3 and 17 are common)",
                 display);
        break;
    case IPMI_ERR_IPMI_2_0_UNAVAILABLE:
        snprintf(dst, cap, "BMC %s does not support IPMI 2.0 (lanplus); set driver: LAN", display);
        break;
    case IPMI_ERR_CONNECTION_TIMEOUT:
        snprintf(dst, cap,
                 "BMC %s: no answer within %lld ms (connection timeout): check the address and "
                 "port, that IPMI over LAN is enabled and that UDP is not filtered",
                 display, (long long)timeout_ms);
        break;
    case IPMI_ERR_SESSION_TIMEOUT:
        snprintf(dst, cap, "BMC %s: session timed out (no answer within %lld ms)", display,
                 (long long)timeout_ms);
        break;
    case IPMI_ERR_HOSTNAME_INVALID:
        snprintf(dst, cap, "BMC %s: host name cannot be resolved", display);
        break;
    case IPMI_ERR_BMC_BUSY:
        snprintf(dst, cap,
                 "BMC %s is busy (too many sessions or initialising); retrying next "
                 "interval",
                 display);
        break;
    case IPMI_ERR_SYSTEM_ERROR:
        snprintf(dst, cap, "BMC %s unreachable: %s", display,
                 detail && *detail ? detail : "system error");
        break;
    default:
        snprintf(dst, cap, "BMC %s: %s", display,
                 detail && *detail ? detail : ipmi_ctx_strerror(e));
        break;
    }
}

/* ------------------------------------------------------------ interpret */

void *ipmi_interp_new(void)
{
    ipmi_interpret_ctx_t ic = ipmi_interpret_ctx_create();
    if (!ic)
        return NULL;
    /* Like the freeipmi tools: site rules in /etc/freeipmi when present. */
    if (access("/etc/freeipmi/freeipmi_interpret_sensor.conf", R_OK) == 0)
        (void)ipmi_interpret_load_sensor_config(ic, NULL);
    if (access("/etc/freeipmi/freeipmi_interpret_sel.conf", R_OK) == 0)
        (void)ipmi_interpret_load_sel_config(ic, NULL);
    return ic;
}

void ipmi_interp_free(void *interp)
{
    if (interp)
        ipmi_interpret_ctx_destroy((ipmi_interpret_ctx_t)interp);
}

void ipmi_poll_result_fini(struct ipmi_poll_result *r)
{
    free(r->sensors);
    free(r->events);
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------ poll */

struct poll_state {
    const struct ipmi_bmc_params *p;
    struct ipmi_poll_result *r;
    ipmi_ctx_t ctx;
    ipmi_interpret_ctx_t ic;
    int64_t deadline_ns;
    bool aborted; /* session lost or deadline passed */
    size_t events_cap;
};

static bool past_deadline(struct poll_state *s)
{
    if (bs_monotonic_ns() > s->deadline_ns) {
        if (!s->aborted) {
            s->aborted = true;
            if (!s->r->error[0])
                snprintf(s->r->error, sizeof(s->r->error),
                         "BMC %s: poll did not finish within the timeout of %lld ms", s->p->display,
                         (long long)s->p->timeout_ms);
        }
        return true;
    }
    return false;
}

/* Record a failure of part what; a session-level error aborts the poll. */
static void fail(struct poll_state *s, const char *what, const char *detail)
{
    int e = ipmi_ctx_errnum(s->ctx);
    bool fatal = e == IPMI_ERR_SESSION_TIMEOUT || e == IPMI_ERR_CONNECTION_TIMEOUT ||
                 e == IPMI_ERR_SYSTEM_ERROR;
    if (fatal)
        s->aborted = true;
    if (s->r->error[0] == '\0') {
        char msg[384];
        if (e == IPMI_ERR_SUCCESS || (!fatal && e != IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT)) {
            snprintf(msg, sizeof(msg), "BMC %s: %s failed: %s", s->p->display, what,
                     detail && *detail ? detail : ipmi_ctx_errormsg(s->ctx));
            snprintf(s->r->error, sizeof(s->r->error), "%s", msg);
        } else {
            ipmi_error_message(e, s->p->display, s->p->username, s->p->privilege, s->p->driver,
                               s->p->timeout_ms, what, s->r->error, sizeof(s->r->error));
        }
        s->r->freeipmi_errnum = e;
    }
}

static bool open_session(struct poll_state *s)
{
    const struct ipmi_bmc_params *p = s->p;
    uint8_t priv = p->privilege == IPMI_CFG_PRIV_ADMIN      ? IPMI_PRIVILEGE_LEVEL_ADMIN
                   : p->privilege == IPMI_CFG_PRIV_OPERATOR ? IPMI_PRIVILEGE_LEVEL_OPERATOR
                                                            : IPMI_PRIVILEGE_LEVEL_USER;
    unsigned timeout = (unsigned)p->timeout_ms;
    unsigned retrans = timeout / 4 < 250 ? 250 : timeout / 4;
    if (retrans > 1000)
        retrans = 1000;
    if (retrans >= timeout)
        retrans = timeout / 2 ? timeout / 2 : 1;
    const char *user = p->username && *p->username ? p->username : NULL;
    const char *pass = p->password && *p->password ? p->password : NULL;
    int rc;
    if (p->driver == IPMI_CFG_DRIVER_LAN)
        rc =
            ipmi_ctx_open_outofband(s->ctx, p->hostport, user, pass, IPMI_AUTHENTICATION_TYPE_MD5,
                                    priv, timeout, retrans, p->workaround_bits, IPMI_FLAGS_DEFAULT);
    else
        rc = ipmi_ctx_open_outofband_2_0(s->ctx, p->hostport, user, pass, NULL, 0, priv,
                                         (uint8_t)p->cipher_suite_id, timeout, retrans,
                                         p->workaround_bits, IPMI_FLAGS_DEFAULT);
    if (rc < 0) {
        int e = ipmi_ctx_errnum(s->ctx);
        const char *detail = e == IPMI_ERR_SYSTEM_ERROR ? ipmi_ctx_errormsg(s->ctx) : NULL;
        ipmi_error_message(e, p->display, p->username, p->privilege, p->driver, p->timeout_ms,
                           detail, s->r->error, sizeof(s->r->error));
        s->r->freeipmi_errnum = e;
        return false;
    }
    return true;
}

static int open_sdr_cache(struct poll_state *s, ipmi_sdr_ctx_t sdr)
{
    const char *path = s->p->sdr_cache_path;
    if (ipmi_sdr_cache_open(sdr, s->ctx, path) == 0)
        return 0;
    int e = ipmi_sdr_ctx_errnum(sdr);
    if (e != IPMI_SDR_ERR_CACHE_READ_CACHE_DOES_NOT_EXIST && e != IPMI_SDR_ERR_CACHE_OUT_OF_DATE &&
        e != IPMI_SDR_ERR_CACHE_INVALID) {
        fail(s, "reading the SDR repository info", ipmi_sdr_ctx_errormsg(sdr));
        return -1;
    }
    if (e != IPMI_SDR_ERR_CACHE_READ_CACHE_DOES_NOT_EXIST) {
        BS_INFO("ipmi", "BMC %s: SDR cache %s is %s; rebuilding it", s->p->display, path,
                e == IPMI_SDR_ERR_CACHE_OUT_OF_DATE ? "out of date" : "invalid");
        (void)ipmi_sdr_cache_delete(sdr, path);
    }
    if (ipmi_sdr_cache_create(sdr, s->ctx, path, IPMI_SDR_CACHE_CREATE_FLAGS_OVERWRITE, NULL,
                              NULL) < 0) {
        char detail[256];
        snprintf(detail, sizeof(detail), "%s (%s)", ipmi_sdr_ctx_errormsg(sdr), path);
        fail(s, "building the SDR cache", detail);
        (void)ipmi_sdr_cache_delete(sdr, path);
        return -1;
    }
    if (ipmi_sdr_cache_open(sdr, s->ctx, path) < 0) {
        fail(s, "opening the SDR cache", ipmi_sdr_ctx_errormsg(sdr));
        return -1;
    }
    return 0;
}

static const char *sensor_type_name(uint8_t t)
{
    const char *s = ipmi_get_sensor_type_string(t);
    if (s)
        return s;
    return t >= 0xc0 ? "OEM Reserved" : "Unrecognized";
}

static void read_sensors(struct poll_state *s, ipmi_sdr_ctx_t sdr)
{
    struct ipmi_poll_result *r = s->r;
    uint16_t count = 0;
    if (ipmi_sdr_cache_record_count(sdr, &count) < 0 || count == 0) {
        r->sensors_ok = true;
        return;
    }
    r->sensors = calloc(count < MAX_SENSORS ? count : MAX_SENSORS, sizeof(*r->sensors));
    if (!r->sensors) {
        snprintf(r->error, sizeof(r->error), "BMC %s: out of memory reading sensors",
                 s->p->display);
        return;
    }
    ipmi_sensor_read_ctx_t rd = ipmi_sensor_read_ctx_create(s->ctx);
    if (!rd) {
        fail(s, "reading sensors", "cannot create a sensor reading context");
        return;
    }
    if (ipmi_sdr_cache_first(sdr) < 0) {
        fail(s, "reading sensors", ipmi_sdr_ctx_errormsg(sdr));
        ipmi_sensor_read_ctx_destroy(rd);
        return;
    }
    bool ok = true;
    for (unsigned i = 0; i < count && r->nsensors < MAX_SENSORS; i++) {
        if (i > 0 && ipmi_sdr_cache_next(sdr) <= 0)
            break;
        if (past_deadline(s)) {
            ok = false;
            break;
        }
        uint8_t rec[IPMI_SDR_MAX_RECORD_LENGTH];
        int n = ipmi_sdr_cache_record_read(sdr, rec, sizeof(rec));
        uint16_t rid;
        uint8_t rtype;
        if (n <= 0 || ipmi_sdr_parse_record_id_and_type(sdr, rec, n, &rid, &rtype) < 0)
            continue;
        if (rtype != IPMI_SDR_FORMAT_FULL_SENSOR_RECORD &&
            rtype != IPMI_SDR_FORMAT_COMPACT_SENSOR_RECORD)
            continue; /* event-only and non-sensor records have no reading */
        struct ipmi_sensor_reading *sr = &r->sensors[r->nsensors];
        memset(sr, 0, sizeof(*sr));
        sr->record_id = rid;
        uint8_t stype = 0, ertc = 0;
        (void)ipmi_sdr_parse_sensor_type(sdr, rec, n, &stype);
        (void)ipmi_sdr_parse_event_reading_type_code(sdr, rec, n, &ertc);
        sr->sensor_type = stype;
        snprintf(sr->type_name, sizeof(sr->type_name), "%s", sensor_type_name(stype));
        if (ipmi_sdr_parse_sensor_name(sdr, rec, n, 0, IPMI_SDR_SENSOR_NAME_FLAGS_DEFAULT, sr->name,
                                       sizeof(sr->name) - 1) < 0)
            snprintf(sr->name, sizeof(sr->name), "sensor %u", rid);
        if (rtype == IPMI_SDR_FORMAT_FULL_SENSOR_RECORD) {
            uint8_t pct, mod, rate, base, modu;
            if (ipmi_sdr_parse_sensor_units(sdr, rec, n, &pct, &mod, &rate, &base, &modu) == 0 &&
                !pct && !mod && !rate)
                sr->base_unit = base;
        }
        double *val = NULL;
        uint8_t raw = 0;
        uint16_t bitmask = 0;
        int rr = ipmi_sensor_read(rd, rec, n, 0, &raw, &val, &bitmask);
        sr->state = IPMI_SEV_UNKNOWN;
        if (rr >= 0) {
            if (val) {
                sr->has_value = true;
                sr->value = *val;
            }
            unsigned st;
            if (ertc == IPMI_EVENT_READING_TYPE_CODE_THRESHOLD) {
                /* Threshold comparison status, as ipmitool reports it:
                 * non-critical is a warning (libfreeipmi's default table
                 * calls it nominal), critical and non-recoverable are
                 * critical. Bits: 0 LNC, 1 LC, 2 LNR, 3 UNC, 4 UC, 5 UNR. */
                sr->state = (bitmask & 0x36)   ? IPMI_SEV_CRITICAL
                            : (bitmask & 0x09) ? IPMI_SEV_WARNING
                                               : IPMI_SEV_NOMINAL;
            } else if (ipmi_interpret_sensor(s->ic, ertc, stype, bitmask, &st) == 0) {
                sr->state = st == IPMI_INTERPRET_STATE_NOMINAL    ? IPMI_SEV_NOMINAL
                            : st == IPMI_INTERPRET_STATE_WARNING  ? IPMI_SEV_WARNING
                            : st == IPMI_INTERPRET_STATE_CRITICAL ? IPMI_SEV_CRITICAL
                                                                  : IPMI_SEV_UNKNOWN;
            }
        } else {
            int e = ipmi_ctx_errnum(s->ctx);
            if (e == IPMI_ERR_SESSION_TIMEOUT || e == IPMI_ERR_CONNECTION_TIMEOUT) {
                free(val);
                fail(s, "reading sensors", NULL);
                ok = false;
                break;
            }
            /* Reading unavailable for this sensor only: NaN value, unknown
             * state, as ipmi-sensors prints N/A. */
        }
        free(val);
        r->nsensors++;
    }
    ipmi_sensor_read_ctx_destroy(rd);
    r->sensors_ok = ok;
}

static void read_chassis(struct poll_state *s)
{
    fiid_obj_t o = fiid_obj_create(tmpl_cmd_get_chassis_status_rs);
    uint64_t v = 0;
    if (!o)
        return;
    if (ipmi_cmd_get_chassis_status(s->ctx, o) < 0) {
        fail(s, "Get Chassis Status", NULL);
    } else if (FIID_OBJ_GET(o, "current_power_state.power_is_on", &v) == 1) {
        s->r->power_on = v ? 1 : 0;
        s->r->chassis_ok = true;
    }
    fiid_obj_destroy(o);
}

static bool read_sel_info(struct poll_state *s)
{
    fiid_obj_t o = fiid_obj_create(tmpl_cmd_get_sel_info_rs);
    uint64_t entries = 0, free_space = 0;
    bool ok = false;
    if (!o)
        return false;
    if (ipmi_cmd_get_sel_info(s->ctx, o) < 0) {
        fail(s, "Get SEL Info", NULL);
    } else if (FIID_OBJ_GET(o, "entries", &entries) == 1 &&
               FIID_OBJ_GET(o, "free_space", &free_space) == 1) {
        s->r->sel_entries = (uint32_t)entries;
        s->r->sel_free_bytes = (uint32_t)free_space;
        ok = true;
    }
    fiid_obj_destroy(o);
    return ok;
}

static void fmt_field(ipmi_sel_ctx_t sel, const char *fmt, char *dst, size_t cap)
{
    int n = ipmi_sel_parse_read_record_string(sel, fmt, NULL, 0, dst, (unsigned)cap,
                                              IPMI_SEL_STRING_FLAGS_IGNORE_UNAVAILABLE_FIELD);
    if (n < 0)
        dst[0] = '\0';
    else if ((size_t)n >= cap)
        dst[cap - 1] = '\0';
}

static int sel_cb(ipmi_sel_ctx_t sel, void *arg)
{
    struct poll_state *s = arg;
    struct ipmi_poll_result *r = s->r;
    if (past_deadline(s))
        return -1;
    if (r->nevents == s->events_cap) {
        if (s->events_cap >= MAX_EVENTS)
            return -1;
        size_t ncap = s->events_cap ? s->events_cap * 2 : 16;
        struct ipmi_event *nv = realloc(r->events, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        r->events = nv;
        s->events_cap = ncap;
    }
    struct ipmi_event *ev = &r->events[r->nevents];
    memset(ev, 0, sizeof(*ev));
    int n = ipmi_sel_parse_read_record(sel, ev->raw, sizeof(ev->raw));
    if (n <= 0)
        return 0; /* unreadable entry: skip it, keep reading */
    ev->raw_len = (uint8_t)n;
    ev->content_hash = bs_hash64(ev->raw, ev->raw_len);
    (void)ipmi_sel_parse_read_record_id(sel, NULL, 0, &ev->record_id);
    (void)ipmi_sel_parse_read_record_type(sel, NULL, 0, &ev->record_type);
    int cls = ipmi_sel_record_type_class(ev->record_type);
    ev->sensor_type = 0xff;
    if (cls == IPMI_SEL_RECORD_TYPE_CLASS_SYSTEM_EVENT_RECORD ||
        cls == IPMI_SEL_RECORD_TYPE_CLASS_TIMESTAMPED_OEM_RECORD)
        (void)ipmi_sel_parse_read_timestamp(sel, NULL, 0, &ev->sel_timestamp);
    if (cls == IPMI_SEL_RECORD_TYPE_CLASS_SYSTEM_EVENT_RECORD) {
        uint8_t dir = 0;
        (void)ipmi_sel_parse_read_sensor_type(sel, NULL, 0, &ev->sensor_type);
        (void)ipmi_sel_parse_read_sensor_number(sel, NULL, 0, &ev->sensor_number);
        (void)ipmi_sel_parse_read_event_direction(sel, NULL, 0, &dir);
        ev->direction = dir == IPMI_SEL_RECORD_DEASSERTION_EVENT ? 1 : 0;
        snprintf(ev->sensor_type_name, sizeof(ev->sensor_type_name), "%s",
                 sensor_type_name(ev->sensor_type));
        fmt_field(sel, "%s", ev->sensor_name, sizeof(ev->sensor_name));
        fmt_field(sel, "%e", ev->event, sizeof(ev->event));
        fmt_field(sel, "%E", ev->description, sizeof(ev->description));
    } else {
        snprintf(ev->sensor_type_name, sizeof(ev->sensor_type_name), "OEM Record");
        fmt_field(sel, "%o", ev->description, sizeof(ev->description));
        snprintf(ev->event, sizeof(ev->event), "OEM record type 0x%02x", ev->record_type);
    }
    unsigned st;
    ev->severity = IPMI_SEV_UNKNOWN;
    if (ipmi_interpret_sel(s->ic, ev->raw, ev->raw_len, &st) == 0)
        ev->severity = st == IPMI_INTERPRET_STATE_NOMINAL    ? IPMI_SEV_NOMINAL
                       : st == IPMI_INTERPRET_STATE_WARNING  ? IPMI_SEV_WARNING
                       : st == IPMI_INTERPRET_STATE_CRITICAL ? IPMI_SEV_CRITICAL
                                                             : IPMI_SEV_UNKNOWN;
    /* IPMI: timestamps up to 0x20000000 count seconds since BMC init. */
    ev->time_ms = ev->sel_timestamp > 0x20000000u ? (int64_t)ev->sel_timestamp * 1000 : 0;
    r->nevents++;
    return 0;
}

static int sel_parse(struct poll_state *s, ipmi_sel_ctx_t sel, uint16_t from)
{
    s->r->nevents = 0;
    int k = ipmi_sel_parse(sel, from, IPMI_SEL_RECORD_ID_LAST, sel_cb, s);
    if (k < 0) {
        int e = ipmi_sel_ctx_errnum(sel);
        if (e == IPMI_SEL_ERR_NO_SEL_ENTRIES || e == IPMI_SEL_ERR_NOT_FOUND) {
            s->r->nevents = 0;
            return 0;
        }
        if (e == IPMI_SEL_ERR_CALLBACK_ERROR && !s->aborted) {
            snprintf(s->r->error, sizeof(s->r->error), "BMC %s: SEL has too many entries to read",
                     s->p->display);
            return -1;
        }
        fail(s, "reading the SEL", ipmi_sel_ctx_errormsg(sel));
        return -1;
    }
    return 0;
}

static void read_sel(struct poll_state *s, ipmi_sdr_ctx_t sdr, const struct ipmi_cursor *cur)
{
    ipmi_sel_ctx_t sel = ipmi_sel_ctx_create(s->ctx, sdr);
    if (!sel) {
        fail(s, "reading the SEL", "cannot create a SEL context");
        return;
    }
    ipmi_interpret_ctx_t ic = s->ic;
    (void)ipmi_sel_ctx_set_parameter(sel, IPMI_SEL_PARAMETER_INTERPRET_CONTEXT, &ic);
    struct ipmi_poll_result *r = s->r;
    int rc;
    if (cur && cur->valid) {
        rc = sel_parse(s, sel, cur->record_id);
        if (rc == 0) {
            if (r->nevents > 0 && r->events[0].record_id == cur->record_id &&
                r->events[0].content_hash == cur->content_hash &&
                r->events[0].sel_timestamp == cur->sel_timestamp) {
                /* The cursor record is still there: only what follows is new. */
                memmove(r->events, r->events + 1, (r->nevents - 1) * sizeof(*r->events));
                r->nevents--;
            } else {
                /* Cleared or wrapped: read it all, the log deduplicates. */
                r->sel_rescanned = true;
                rc = sel_parse(s, sel, IPMI_SEL_RECORD_ID_FIRST);
            }
        }
    } else {
        rc = sel_parse(s, sel, IPMI_SEL_RECORD_ID_FIRST);
    }
    if (rc == 0 && !s->aborted)
        r->sel_ok = true;
    ipmi_sel_ctx_destroy(sel);
}

void ipmi_bmc_poll(const struct ipmi_bmc_params *p, const struct ipmi_cursor *cur, void *interp,
                   struct ipmi_poll_result *r)
{
    memset(r, 0, sizeof(*r));
    struct poll_state s = {.p = p, .r = r, .ic = (ipmi_interpret_ctx_t)interp};
    /* Requests are bounded by the session timeout; the poll gets a little
     * more so that a slow but answering BMC finishes its last request. */
    s.deadline_ns = bs_monotonic_ns() + p->timeout_ms * 1000000 + p->timeout_ms * 250000;
    if (!s.ic) {
        snprintf(r->error, sizeof(r->error),
                 "BMC %s: cannot create a libfreeipmi interpret context (out of memory)",
                 p->display);
        return;
    }
    s.ctx = ipmi_ctx_create();
    if (!s.ctx) {
        snprintf(r->error, sizeof(r->error), "BMC %s: out of memory", p->display);
        return;
    }
    if (!open_session(&s)) {
        ipmi_ctx_destroy(s.ctx);
        return;
    }
    r->session_ok = true;
    ipmi_sdr_ctx_t sdr = ipmi_sdr_ctx_create();
    bool sdr_open = false;
    if (sdr && open_sdr_cache(&s, sdr) == 0) {
        sdr_open = true;
        if (!s.aborted && !past_deadline(&s))
            read_sensors(&s, sdr);
    }
    if (!s.aborted && !past_deadline(&s))
        read_chassis(&s);
    if (!s.aborted && !past_deadline(&s) && read_sel_info(&s) && !s.aborted && !past_deadline(&s))
        read_sel(&s, sdr_open ? sdr : NULL, cur);
    if (sdr) {
        if (sdr_open)
            ipmi_sdr_cache_close(sdr);
        ipmi_sdr_ctx_destroy(sdr);
    }
    if (s.aborted)
        r->session_ok = false; /* the session was lost: the target is down */
    ipmi_ctx_close(s.ctx);
    ipmi_ctx_destroy(s.ctx);
}
