/* SPDX-License-Identifier: Apache-2.0
 *
 * Flag parsing in the style of Go's kingpin, which Prometheus uses, so that
 * the same command lines (systemd units, Kubernetes manifests) work.
 */
#include "cmd/flags.h"

#include <stdio.h>
#include <string.h>

struct flag *flags_find(struct flag *flags, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i];
    return NULL;
}

bool flags_bool(const struct flag *f)
{
    return f && f->value && strcmp(f->value, "true") == 0;
}

int flags_parse(struct flag *flags, size_t n, int argc, char **argv, bool *help, bool *version,
                struct bs_error *err)
{
    for (size_t i = 0; i < n; i++) {
        flags[i].value = flags[i].def;
        flags[i].set = false;
    }
    *help = *version = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
            continue;
        }
        if (strcmp(a, "--version") == 0) {
            *version = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return bs_error_set(err, BS_EINVAL, "unexpected %s, try --help", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        char buf[256];
        if (name_len >= sizeof buf)
            return bs_error_set(err, BS_EINVAL, "unknown long flag '%s', try --help", a);
        memcpy(buf, name, name_len);
        buf[name_len] = '\0';
        struct flag *f = flags_find(flags, n, buf);
        bool negated = false;
        if (!f && strncmp(buf, "no-", 3) == 0) {
            f = flags_find(flags, n, buf + 3);
            negated = f && f->kind == FLAG_BOOL;
            if (!negated)
                f = NULL;
        }
        if (!f)
            return bs_error_set(err, BS_EINVAL, "unknown long flag '--%s', try --help", buf);
        if (f->kind == FLAG_BOOL) {
            if (eq) {
                if (strcmp(eq + 1, "true") != 0 && strcmp(eq + 1, "false") != 0)
                    return bs_error_set(err, BS_EINVAL,
                                        "invalid boolean value '%s' for flag '--%s'", eq + 1,
                                        f->name);
                f->value = strcmp(eq + 1, "true") == 0 ? (negated ? "false" : "true")
                                                       : (negated ? "true" : "false");
            } else {
                f->value = negated ? "false" : "true";
            }
        } else if (eq) {
            f->value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return bs_error_set(err, BS_EINVAL, "expected argument for flag '--%s'", f->name);
            f->value = argv[++i];
        }
        f->set = true;
    }
    return 0;
}

void flags_usage(const struct flag *flags, size_t n, const char *prog, const char *summary,
                 struct bs_buf *out)
{
    bs_buf_printf(out, "usage: %s [<flags>]\n\n%s\n\nFlags:\n", prog, summary);
    bs_buf_printf(out, "  -h, --help                     Show context-sensitive help.\n");
    bs_buf_printf(out, "      --version                  Show application version.\n");
    for (size_t i = 0; i < n; i++) {
        const struct flag *f = &flags[i];
        char left[128];
        if (f->kind == FLAG_BOOL)
            snprintf(left, sizeof left, "--[no-]%s", f->name);
        else
            snprintf(left, sizeof left, "--%s=%s", f->name, "<value>");
        bs_buf_printf(out, "      %-28s %s", left, f->help);
        if (f->def && f->kind != FLAG_BOOL)
            bs_buf_printf(out, " (default: %s)", f->def[0] ? f->def : "\"\"");
        bs_buf_putc(out, '\n');
    }
}
