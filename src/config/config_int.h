/* SPDX-License-Identifier: Apache-2.0
 *
 * config internals shared by config.c (file reading, libyaml parsing,
 * freeing) and config_decode.c (walking the YAML node tree against
 * Prometheus's schema). Private to the module and its unit tests.
 */
#ifndef BONGSU_CONFIG_INT_H
#define BONGSU_CONFIG_INT_H

#include <yaml.h>

#include "config/config.h"

/* Fill cfg (zeroed by the caller, with source and path already set) from the
 * parsed document doc. name prefixes every message. Relative file names
 * in the configuration are resolved against base_dir (NULL: left as
 * written). On failure returns a
 * negative BS_* code with err set; cfg may then be partly filled and must be
 * released with config_free(). Warnings for known-but-unsupported keys are
 * stored in cfg->warnings and logged only when decoding succeeds. */
int config_decode(yaml_document_t *doc, const char *name, const char *base_dir, struct config *cfg,
                  struct bs_error *err);

#endif
