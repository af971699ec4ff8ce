/* SPDX-License-Identifier: Apache-2.0
 *
 * cmd: command-line flags with Prometheus's names, defaults and syntax
 * (kingpin style: --name=value or --name value, --[no-]bool, -h). Shared by
 * the bongsu server and, later, bongsutool.
 */
#ifndef BONGSU_CMD_FLAGS_H
#define BONGSU_CMD_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

enum flag_kind { FLAG_STRING, FLAG_BOOL };

/* One flag. value points to the current text (default or given); for bools
 * "true"/"false". set is true when the user gave it. */
struct flag {
    const char *name;       /* without leading dashes */
    enum flag_kind kind;
    const char *def;        /* default text, may be NULL */
    const char *help;
    const char *value;      /* borrowed from argv or def */
    bool set;
};

/* Parse argv against flags. Returns 0, or BS_EINVAL with err set to a
 * kingpin-like message ("unknown long flag '--foo'", "expected argument for
 * flag '--config.file'"). The help and version outputs are set
 * when -h/--help or --version appear. */
int flags_parse(struct flag *flags, size_t n, int argc, char **argv, bool *help, bool *version,
                struct bs_error *err);
struct flag *flags_find(struct flag *flags, size_t n, const char *name);
bool flags_bool(const struct flag *f);
/* Write "usage" text listing every flag with its default and help. */
void flags_usage(const struct flag *flags, size_t n, const char *prog, const char *summary,
                 struct bs_buf *out);

#endif
