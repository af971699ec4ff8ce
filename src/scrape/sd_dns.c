/* SPDX-License-Identifier: Apache-2.0
 *
 * dns_sd_configs: every refresh_interval, look up each name and make one
 * target group of the answers, labelled as Prometheus's DNS SD does.
 *
 *  - A and AAAA go through getaddrinfo(3), so /etc/hosts, nsswitch and the
 *    search path apply as for any program on the host; each address becomes
 *    "<ip>:<port>" ("[<ipv6>]:<port>").
 *  - SRV, MX and NS are queried with res_nsearch(3) (libresolv) and the
 *    answer section is read with ns_initparse/ns_parserr. An SRV record
 *    gives "<target>:<record's port>", MX and NS "<host>:<port>"; target
 *    names lose their final dot in the address but keep it in
 *    __meta_dns_srv_record_target / __meta_dns_mx_record_target /
 *    __meta_dns_ns_record_target, as Prometheus (miekg/dns) prints them.
 *  - A name that does not exist (NXDOMAIN, or no records of the type) yields
 *    an empty group: its targets go away. Any other failure (timeout,
 *    SERVFAIL, malformed answer) is logged and the name keeps its last good
 *    group.
 *
 * Prometheus labels the targets of an A lookup with empty
 * __meta_dns_srv_record_target (and the other record labels); bongsu label
 * sets have no empty values, so those labels are absent instead, which
 * relabeling cannot tell apart.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "scrape/sd_int.h"

static _Atomic uint32_t test_server_addr;
static _Atomic uint16_t test_server_port;

void sd_dns_set_test_server(uint32_t addr_be, uint16_t port_be)
{
    atomic_store(&test_server_addr, addr_be);
    atomic_store(&test_server_port, port_be);
}

struct dns_name_state {
    struct sd_groups last; /* last good group of this name (0 or 1 group) */
    char *error;           /* last error logged */
};

struct dns_state {
    struct dns_name_state *names;
    size_t n;
};

static void dns_state_free(void *priv)
{
    struct dns_state *st = priv;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        sd_groups_fini(&st->names[i].last);
        free(st->names[i].error);
    }
    free(st->names);
    free(st);
}

/* net.JoinHostPort */
static int host_port(struct bs_buf *b, const char *host, unsigned port)
{
    bs_buf_reset(b);
    if (strchr(host, ':'))
        return bs_buf_printf(b, "[%s]:%u", host, port);
    return bs_buf_printf(b, "%s:%u", host, port);
}

/* Append one target {__address__, __meta_dns_name, extra=extra_value} to g. */
static int add_target(struct sd_group *g, const char *addr, const char *name, const char *extra,
                      const char *extra_value, const char *extra2, const char *extra2_value)
{
    struct labels_builder b;
    struct labels view;
    labels_builder_init(&b);
    int rc = labels_builder_set_str(&b, "__address__", addr);
    if (rc == 0)
        rc = labels_builder_set_str(&b, "__meta_dns_name", name);
    if (rc == 0 && extra)
        rc = labels_builder_set_str(&b, extra, extra_value);
    if (rc == 0 && extra2)
        rc = labels_builder_set_str(&b, extra2, extra2_value);
    if (rc == 0)
        rc = labels_builder_labels(&b, &view, NULL);
    struct labels *t = rc == 0 ? labels_dup(&view) : NULL;
    labels_builder_fini(&b);
    if (!t)
        return BS_ENOMEM;
    struct labels **nv = realloc(g->targets, (g->ntargets + 1) * sizeof(*nv));
    if (!nv) {
        free(t);
        return BS_ENOMEM;
    }
    g->targets = nv;
    g->targets[g->ntargets++] = t;
    return 0;
}

static int empty_group(struct sd_group *g)
{
    struct labels none = {NULL, 0};
    memset(g, 0, sizeof(*g));
    g->labels = labels_dup(&none);
    return g->labels ? 0 : BS_ENOMEM;
}

int sd_dns_parse_answer(const unsigned char *msg, size_t len, enum config_dns_type type,
                        const char *name, uint16_t port, struct sd_groups *out,
                        struct bs_error *err)
{
    ns_msg m;
    struct sd_group g;
    struct bs_buf addr;
    char host[NS_MAXDNAME + 2], ip[INET6_ADDRSTRLEN];
    (void)type;
    if (len > 65535 || ns_initparse(msg, (int)len, &m) < 0)
        return bs_error_set(err, BS_EPARSE, "lookup %s: malformed DNS response", name);
    if (empty_group(&g) != 0)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    bs_buf_init(&addr, 0);
    int rc = 0;
    int count = ns_msg_count(m, ns_s_an);
    for (int i = 0; rc == 0 && i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&m, ns_s_an, i, &rr) < 0) {
            rc = bs_error_set(err, BS_EPARSE, "lookup %s: malformed answer record %d", name, i);
            break;
        }
        const unsigned char *rd = ns_rr_rdata(rr);
        size_t rdlen = ns_rr_rdlen(rr);
        int rtype = ns_rr_type(rr);
        const unsigned char *np = NULL; /* a domain name in the record */
        unsigned rport = port;
        const char *label = NULL;
        if (rtype == ns_t_srv && rdlen >= 7) {
            rport = ns_get16(rd + 4);
            np = rd + 6;
            label = "__meta_dns_srv_record_target";
        } else if (rtype == ns_t_mx && rdlen >= 3) {
            np = rd + 2;
            label = "__meta_dns_mx_record_target";
        } else if (rtype == ns_t_ns && rdlen >= 1) {
            np = rd;
            label = "__meta_dns_ns_record_target";
        } else if (rtype == ns_t_a && rdlen == 4) {
            inet_ntop(AF_INET, rd, ip, sizeof(ip));
        } else if (rtype == ns_t_aaaa && rdlen == 16) {
            inet_ntop(AF_INET6, rd, ip, sizeof(ip));
        } else if (rtype == ns_t_cname) {
            continue; /* answers to A and AAAA queries may hold them */
        } else {
            BS_WARN(SD_COMPONENT, "dns_sd: invalid record of type %d in the answer for %s", rtype,
                    name);
            continue;
        }
        if (np) {
            if (ns_name_uncompress(ns_msg_base(m), ns_msg_end(m), np, host, NS_MAXDNAME) < 0) {
                rc = bs_error_set(err, BS_EPARSE, "lookup %s: malformed name in a record", name);
                break;
            }
            size_t hl = strlen(host);
            char fqdn[NS_MAXDNAME + 2];
            memcpy(fqdn, host, hl + 1);
            if (hl == 0 || fqdn[hl - 1] != '.') { /* room: host has NS_MAXDNAME + 2 */
                fqdn[hl] = '.';
                fqdn[hl + 1] = '\0';
            }
            while (hl > 0 && host[hl - 1] == '.')
                host[--hl] = '\0';
            if (host_port(&addr, host, rport) != 0) {
                rc = bs_error_set(err, BS_ENOMEM, "out of memory");
                break;
            }
            char pbuf[8];
            snprintf(pbuf, sizeof(pbuf), "%u", rport);
            rc = add_target(&g, addr.data, name, label, fqdn,
                            rtype == ns_t_srv ? "__meta_dns_srv_record_port" : NULL, pbuf);
        } else {
            if (host_port(&addr, ip, port) != 0) {
                rc = bs_error_set(err, BS_ENOMEM, "out of memory");
                break;
            }
            rc = add_target(&g, addr.data, name, NULL, NULL, NULL, NULL);
        }
        if (rc == BS_ENOMEM)
            bs_error_set(err, rc, "out of memory");
    }
    bs_buf_fini(&addr);
    if (rc != 0) {
        sd_group_fini(&g);
        return rc;
    }
    if (sd_groups_push(out, &g) != 0)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    return 0;
}

/* A and AAAA: getaddrinfo. */
static int lookup_addr(const struct config_dns_sd *dc, const char *name, struct sd_groups *out,
                       struct bs_error *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = dc->type == CONFIG_DNS_A ? AF_INET : AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(name, NULL, &hints, &res);
    struct sd_group grp;
    if (empty_group(&grp) != 0)
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    if (g == EAI_NONAME || g == EAI_NODATA || g == EAI_ADDRFAMILY) {
        if (sd_groups_push(out, &grp) != 0)
            return bs_error_set(err, BS_ENOMEM, "out of memory");
        return 0; /* no such name: no targets */
    }
    if (g != 0) {
        sd_group_fini(&grp);
        return bs_error_set(err, BS_EIO, "lookup %s: %s", name,
                            g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    }
    struct bs_buf addr, seen;
    bs_buf_init(&addr, 0);
    bs_buf_init(&seen, 0);
    int rc = 0;
    for (struct addrinfo *ai = res; rc == 0 && ai; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        const void *a = ai->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (ai->ai_family != hints.ai_family || !inet_ntop(ai->ai_family, a, ip, sizeof(ip)))
            continue;
        /* Each address once ("\n"-separated list of those seen). */
        size_t il = strlen(ip);
        bool dup = false;
        for (size_t off = 0; off < seen.len && !dup; off += strlen(seen.data + off) + 1)
            dup = strcmp(seen.data + off, ip) == 0;
        if (dup)
            continue;
        if (bs_buf_append(&seen, ip, il + 1) != 0 || host_port(&addr, ip, dc->port) != 0)
            rc = BS_ENOMEM;
        if (rc == 0)
            rc = add_target(&grp, addr.data, name, NULL, NULL, NULL, NULL);
    }
    freeaddrinfo(res);
    bs_buf_fini(&addr);
    bs_buf_fini(&seen);
    if (rc != 0 || sd_groups_push(out, &grp) != 0) {
        if (rc != 0)
            sd_group_fini(&grp);
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    }
    return 0;
}

/* SRV, MX, NS: the resolver library. */
static int lookup_records(const struct config_dns_sd *dc, const char *name, struct sd_groups *out,
                          struct bs_error *err)
{
    struct __res_state rs;
    memset(&rs, 0, sizeof(rs));
    if (res_ninit(&rs) != 0)
        return bs_error_set(err, BS_EIO, "lookup %s: cannot initialise the resolver", name);
    uint32_t taddr = atomic_load(&test_server_addr);
    if (taddr) {
        rs.nscount = 1;
        memset(&rs.nsaddr_list[0], 0, sizeof(rs.nsaddr_list[0]));
        rs.nsaddr_list[0].sin_family = AF_INET;
        rs.nsaddr_list[0].sin_addr.s_addr = taddr;
        rs.nsaddr_list[0].sin_port = atomic_load(&test_server_port);
        rs.retry = 1;
        rs.retrans = 1;
    }
    int qtype = dc->type == CONFIG_DNS_SRV  ? ns_t_srv
                : dc->type == CONFIG_DNS_MX ? ns_t_mx
                                            : ns_t_ns;
    unsigned char *ans = malloc(65536);
    if (!ans) {
        res_nclose(&rs);
        return bs_error_set(err, BS_ENOMEM, "out of memory");
    }
    int n = res_nsearch(&rs, name, ns_c_in, qtype, ans, 65536);
    int herr = rs.res_h_errno;
    res_nclose(&rs);
    int rc;
    if (n < 0) {
        if (herr == HOST_NOT_FOUND || herr == NO_DATA) {
            struct sd_group grp;
            rc = empty_group(&grp);
            if (rc == 0)
                rc = sd_groups_push(out, &grp);
            if (rc != 0)
                bs_error_set(err, rc, "out of memory");
        } else {
            rc = bs_error_set(err, BS_EIO, "lookup %s: %s", name,
                              herr == TRY_AGAIN ? "server misbehaving or timed out"
                                                : hstrerror(herr));
        }
    } else {
        rc = sd_dns_parse_answer(ans, (size_t)n > 65536 ? 65536 : (size_t)n, dc->type, name,
                                 dc->port, out, err);
    }
    free(ans);
    return rc;
}

static int dns_refresh(struct sd_provider *p, struct sd_groups *out)
{
    struct dns_state *st = p->priv;
    const struct config_dns_sd *dc = p->conf.dns;
    for (size_t i = 0; i < dc->nnames; i++) {
        struct dns_name_state *ns = &st->names[i];
        struct sd_groups g = {0};
        struct bs_error err;
        bs_error_clear(&err);
        int rc = (dc->type == CONFIG_DNS_A || dc->type == CONFIG_DNS_AAAA)
                     ? lookup_addr(dc, dc->names[i], &g, &err)
                     : lookup_records(dc, dc->names[i], &g, &err);
        if (rc == 0) {
            sd_groups_fini(&ns->last);
            ns->last = g;
            free(ns->error);
            ns->error = NULL;
        } else {
            sd_groups_fini(&g);
            if (!ns->error || strcmp(ns->error, err.msg) != 0) {
                BS_ERROR(SD_COMPONENT,
                         "dns_sd (job %s): error refreshing DNS targets, keeping the last good "
                         "ones: %s",
                         p->job, err.msg);
                free(ns->error);
                ns->error = strdup(err.msg);
            }
        }
        if (sd_groups_append_copy(out, &ns->last) != 0)
            return BS_ENOMEM;
    }
    return 0;
}

int sd_dns_init(struct sd_provider *p)
{
    struct dns_state *st = calloc(1, sizeof(*st));
    if (!st)
        return BS_ENOMEM;
    st->n = p->conf.dns->nnames;
    st->names = calloc(st->n ? st->n : 1, sizeof(*st->names));
    if (!st->names) {
        free(st);
        return BS_ENOMEM;
    }
    p->priv = st;
    p->priv_free = dns_state_free;
    p->refresh = dns_refresh;
    return 0;
}
