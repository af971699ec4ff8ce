/* SPDX-License-Identifier: Apache-2.0
 *
 * Service discovery for jobs that are not scrape jobs (scrape.h, "discovery
 * for other jobs"): a thin public face over a discovery manager of its own
 * (discovery.c), so that cmd can run file_sd, http_sd and dns_sd providers
 * for ipmi_configs jobs and map the discovered targets onto the IPMI
 * collector itself. The providers, their thread and their refresh rules are
 * exactly those of scrape jobs; only the list of jobs and the consumer of
 * the update callback differ.
 */
#include <stdlib.h>
#include <string.h>

#include "scrape/sd_int.h"

struct scrape_discovery {
    struct sd_manager *dm;
};

struct scrape_discovery_plan {
    struct sd_plan plan; /* one reference per provider */
};

struct scrape_discovery *scrape_discovery_new(scrape_discovery_update_fn on_update, void *ud)
{
    struct scrape_discovery *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    if (!(d->dm = sd_manager_new(on_update, ud))) {
        free(d);
        return NULL;
    }
    return d;
}

void scrape_discovery_free(struct scrape_discovery *d)
{
    if (!d)
        return;
    sd_manager_free(d->dm);
    free(d);
}

int scrape_discovery_prepare(struct scrape_discovery *d, const struct config *cfg,
                             const struct scrape_sd_job *jobs, size_t njobs,
                             struct scrape_discovery_plan **out, struct bs_error *err)
{
    *out = NULL;
    struct scrape_discovery_plan *p = calloc(1, sizeof(*p));
    if (!p)
        return bs_error_set(err, BS_ENOMEM, "service discovery: %s", bs_strerror(BS_ENOMEM));
    /* Providers keep a reference to cfg; a loaded configuration is never
     * modified, so only its reference count changes through this pointer. */
    int rc = sd_manager_prepare_jobs(d->dm, (struct config *)cfg, jobs, njobs, &p->plan, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int scrape_discovery_targets(struct scrape_discovery *d,
                             const struct scrape_discovery_plan *plan, const char *job_name,
                             scrape_discovery_target_fn fn, void *ud)
{
    int rc = 0;
    sd_manager_lock(d->dm);
    size_t n;
    struct sd_provider *const *prov;
    if (plan) {
        prov = plan->plan.v;
        n = plan->plan.n;
    } else {
        prov = sd_manager_installed(d->dm, &n);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strcmp(prov[i]->job, job_name) != 0)
            continue;
        const struct sd_groups *gs = &prov[i]->groups;
        for (size_t g = 0; rc == 0 && g < gs->n; g++)
            for (size_t t = 0; rc == 0 && t < gs->v[g].ntargets; t++)
                rc = fn(ud, gs->v[g].labels, gs->v[g].targets[t]);
    }
    sd_manager_unlock(d->dm);
    return rc;
}

void scrape_discovery_install(struct scrape_discovery *d, struct scrape_discovery_plan *plan)
{
    struct bs_error ignored;
    bs_error_clear(&ignored);
    (void)sd_manager_install(d->dm, &plan->plan, &ignored); /* always 0 */
    scrape_discovery_plan_free(plan);
}

void scrape_discovery_plan_free(struct scrape_discovery_plan *plan)
{
    if (!plan)
        return;
    sd_plan_discard(&plan->plan);
    free(plan);
}
