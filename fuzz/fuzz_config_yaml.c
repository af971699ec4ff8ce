/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the configuration loader: arbitrary bytes are loaded as
 * prometheus.yml text. Every input must either load (and then be freed) or
 * fail with an error message naming a position; never crash, leak or hang.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    struct config *c = NULL;
    struct bs_error err = {0};

    if (!quiet) {
        bs_log_set_level(BS_LOG_ERROR); /* unsupported-key warnings are noise here */
        quiet = 1;
    }
    int rc = config_load_string((const char *)data, size, "fuzz.yml", &c, &err);
    if (rc == 0) {
        assert(c != NULL);
        for (size_t i = 0; i < c->nscrape_configs; i++) {
            const struct config_scrape *s = &c->scrape_configs[i];
            assert(s->job_name && s->job_name[0]);
            assert(s->scrape_timeout_ms > 0 && s->scrape_timeout_ms <= s->scrape_interval_ms);
            assert(config_scrape_find(c, s->job_name) == s);
        }
        config_free(c);
    } else {
        assert(c == NULL);
        assert(err.code == rc && err.msg[0] != '\0');
    }
    return 0;
}
