/* SPDX-License-Identifier: Apache-2.0
 *
 * bongsutool: the command-line companion of bongsu, shaped like promtool
 * so that the same invocations, outputs and exit codes work
 * (docs/bongsutool.md):
 *
 *   bongsutool check config [--syntax-only] FILE...
 *   bongsutool check rules FILE...
 *   bongsutool tsdb list [-r] [DIR]
 *   bongsutool tsdb analyze [--limit=20] [DIR] [BLOCK_ID]
 *   bongsutool tsdb create-blocks-from openmetrics [-r] [-q]
 *              [--max-block-duration=D] FILE [DIR]
 *
 * This file parses the command line (kingpin style, through cmd/flags.h:
 * flags may come before, between or after the positional arguments) and
 * implements the two check commands; the tsdb commands live in
 * tool_tsdb.c and tool_backfill.c. Exit status: 0 success, 1 failure or
 * usage error, as promtool.
 */
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <yaml.h>

#include "cmd/flags.h"
#include "cmd/tool.h"
#include "config/config.h"
#include "rules/rules.h"
#include "util/util.h"

#ifndef BS_REVISION
#define BS_REVISION "unknown"
#endif
#ifndef BS_BRANCH
#define BS_BRANCH "unknown"
#endif
#ifndef BS_BUILD_USER
#define BS_BUILD_USER "unknown"
#endif
#ifndef BS_BUILD_DATE
#define BS_BUILD_DATE "unknown"
#endif

#define PROG "bongsutool"

static void print_version(void)
{
    struct utsname u;
    uname(&u);
    printf("%s, version %s (branch: %s, revision: %s)\n", PROG, BS_VERSION, BS_BRANCH, BS_REVISION);
    printf("  build user:       %s\n", BS_BUILD_USER);
    printf("  build date:       %s\n", BS_BUILD_DATE);
    printf("  compiler:         gcc %s\n", __VERSION__);
    printf("  platform:         %s/%s\n", u.sysname, u.machine);
}

static const char usage_text[] =
    "usage: " PROG " [<flags>] <command> [<args> ...]\n"
    "\n"
    "Tooling for the bongsu monitoring system (promtool-compatible).\n"
    "\n"
    "Flags:\n"
    "  -h, --help     Show context-sensitive help.\n"
    "      --version  Show application version.\n"
    "\n"
    "Commands:\n"
    "help [<command>...]\n"
    "    Show help.\n"
    "\n"
    "check config [<flags>] <config-files>...\n"
    "    Check if the config files are valid or not.\n"
    "\n"
    "check rules <rule-files>...\n"
    "    Check if the rule files are valid or not.\n"
    "\n"
    "tsdb list [<flags>] [<db path>]\n"
    "    List tsdb blocks.\n"
    "\n"
    "tsdb analyze [<flags>] [<db path>] [<block id>]\n"
    "    Analyze churn and label pair cardinality of a block.\n"
    "\n"
    "tsdb create-blocks-from openmetrics [<flags>] <input file> [<output directory>]\n"
    "    Import samples from OpenMetrics input and produce TSDB blocks.\n";

/* ---------------------------------------------------------------- args */

/* One command: its words, flags and positional arguments. */
struct command {
    const char *words; /* "tsdb list" */
    const char *args;  /* usage of the positionals */
    const char *summary;
    struct flag *flags;
    size_t nflags;
    size_t min_pos, max_pos;
    const char *const *pos_help; /* max_pos lines, or NULL (variadic) */
};

/* Short flags promtool accepts, as their long names. */
static const char *short_flag(const char *a)
{
    if (strcmp(a, "-r") == 0)
        return "--human-readable";
    if (strcmp(a, "-q") == 0)
        return "--quiet";
    return a;
}

/* Split argv[from..argc) into flags (parsed into cmd->flags) and
 * positionals (*pos, malloc'd array of borrowed strings). Returns 0;
 * 1 after printing an error; 2 when help or the version was printed. */
static int parse_command(struct command *cmd, int argc, char **argv, int from, char ***pos,
                         size_t *npos)
{
    char **fargv = bs_xcalloc((size_t)argc + 2, sizeof(char *));
    int fargc = 0;
    fargv[fargc++] = (char *)PROG;
    *pos = bs_xcalloc((size_t)argc + 1, sizeof(char *));
    *npos = 0;
    bool only_pos = false;
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            (*pos)[(*npos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        a = short_flag(a);
        fargv[fargc++] = (char *)a;
        /* A string flag given as "--name value" takes the next word. */
        if (strncmp(a, "--", 2) == 0 && !strchr(a, '=')) {
            struct flag *f = flags_find(cmd->flags, cmd->nflags, a + 2);
            if (f && f->kind == FLAG_STRING && i + 1 < argc)
                fargv[fargc++] = argv[++i];
        }
    }
    bool help = false, version = false;
    struct bs_error err = {0};
    int rc = flags_parse(cmd->flags, cmd->nflags, fargc, fargv, &help, &version, &err);
    free(fargv);
    if (rc) {
        fprintf(stderr, "%s: error: %s\n", PROG, err.msg);
        return 1;
    }
    if (version) {
        print_version();
        return 2;
    }
    if (help) {
        struct bs_buf b;
        bs_buf_init(&b, 0);
        bs_buf_printf(&b, "usage: %s %s [<flags>] %s\n\n%s\n\nFlags:\n", PROG, cmd->words,
                      cmd->args, cmd->summary);
        bs_buf_puts(&b, "  -h, --help                     Show context-sensitive help.\n");
        bs_buf_puts(&b, "      --version                  Show application version.\n");
        for (size_t i = 0; i < cmd->nflags; i++) {
            const struct flag *f = &cmd->flags[i];
            char left[128];
            const char *sh = strcmp(f->name, "human-readable") == 0 ? "-r, "
                             : strcmp(f->name, "quiet") == 0        ? "-q, "
                                                                    : "    ";
            if (f->kind == FLAG_BOOL)
                snprintf(left, sizeof(left), "%s--%s", sh, f->name);
            else
                snprintf(left, sizeof(left), "%s--%s=%s", sh, f->name, f->def ? f->def : "");
            bs_buf_printf(&b, "  %-30s %s\n", left, f->help);
        }
        if (cmd->pos_help) {
            bs_buf_puts(&b, "\nArgs:\n");
            for (size_t i = 0; i < cmd->max_pos; i++)
                bs_buf_printf(&b, "  %s\n", cmd->pos_help[i]);
        }
        fputs(b.data ? b.data : "", stdout);
        bs_buf_fini(&b);
        return 2;
    }
    if (*npos < cmd->min_pos) {
        fprintf(stderr, "%s: error: required argument missing for '%s', try --help\n", PROG,
                cmd->words);
        return 1;
    }
    if (*npos > cmd->max_pos) {
        fprintf(stderr, "%s: error: unexpected %s, try --help\n", PROG, (*pos)[cmd->max_pos]);
        return 1;
    }
    return 0;
}

/* -------------------------------------------------------- check rules */

/* Check one rule file with the rules module, printing promtool's report:
 * the "Checking" line on stdout, the verdict on stdout when valid and on
 * stderr when not. Returns true when valid. */
static bool check_rule_file(const char *path)
{
    struct bs_buf report;
    bs_buf_init(&report, 0);
    struct bs_error err = {0};
    int rc = rules_check_file(path, &report, &err);
    const char *text = report.data ? report.data : "";
    if (rc == 0) {
        fputs(text, stdout);
    } else {
        const char *nl = strchr(text, '\n');
        size_t head = nl ? (size_t)(nl - text) + 1 : 0;
        fwrite(text, 1, head, stdout);
        fflush(stdout);
        fputs(text + head, stderr);
        if (!report.len)
            fprintf(stderr, "  FAILED: %s\n\n", err.msg);
    }
    fflush(stdout);
    bs_buf_fini(&report);
    return rc == 0;
}

/* ------------------------------------------------------- check config */

/* The patterns of the top-level rule_files list of a YAML text already
 * validated by the config loader (malloc'd strings into *out). */
static int yaml_rule_files(const char *yaml, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return BS_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, strlen(yaml));
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_parser_delete(&parser);
        return BS_EPARSE;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&doc, p->value);
            if (!k || !v || k->type != YAML_SCALAR_NODE ||
                strcmp((const char *)k->data.scalar.value, "rule_files") != 0 ||
                v->type != YAML_SEQUENCE_NODE)
                continue;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node(&doc, *it);
                if (!e || e->type != YAML_SCALAR_NODE || !e->data.scalar.length)
                    continue;
                *out = bs_xrealloc(*out, (*n + 1) * sizeof(**out));
                (*out)[(*n)++] = bs_xstrdup((const char *)e->data.scalar.value);
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return 0;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Expand the rule_files patterns of config file path (relative to its
 * directory, as the server resolves them) with glob(3). A pattern without
 * '*' must name an existing file, as promtool requires. Returns 0, or 1
 * with *why set. */
static int expand_rule_files(const char *path, char **patterns, size_t npatterns, char ***files,
                             size_t *nfiles, char *why, size_t why_cap)
{
    *files = NULL;
    *nfiles = 0;
    char *copy = bs_xstrdup(path);
    const char *dir = dirname(copy);
    int rc = 0;
    for (size_t i = 0; i < npatterns && rc == 0; i++) {
        char full[4200];
        if (patterns[i][0] == '/' || strcmp(dir, ".") == 0)
            snprintf(full, sizeof(full), "%s", patterns[i]);
        else
            snprintf(full, sizeof(full), "%s/%s", dir, patterns[i]);
        glob_t g;
        int gr = glob(full, 0, NULL, &g);
        if (gr != 0 && gr != GLOB_NOMATCH) {
            snprintf(why, why_cap, "cannot expand rule file pattern %s", full);
            rc = 1;
            break;
        }
        size_t matched = gr == 0 ? g.gl_pathc : 0;
        if (!strchr(patterns[i], '*') && matched == 0) {
            snprintf(why, why_cap, "\"%s\" does not point to an existing file", full);
            rc = 1;
        }
        for (size_t k = 0; k < matched; k++) {
            *files = bs_xrealloc(*files, (*nfiles + 1) * sizeof(**files));
            (*files)[(*nfiles)++] = bs_xstrdup(g.gl_pathv[k]);
        }
        if (gr == 0)
            globfree(&g);
    }
    free(copy);
    return rc;
}

/* Check one configuration file the way `promtool check config` does.
 * Returns true when it and its rule files are valid. */
static bool check_config_file(const char *path, bool syntax_only)
{
    printf("Checking %s\n", path);
    struct config *c = NULL;
    struct bs_error err = {0};
    if (config_load_file(path, &c, &err) != 0) {
        fflush(stdout);
        fprintf(stderr, "  FAILED: %s\n", err.msg);
        printf("\n");
        return false;
    }
    fflush(stdout);
    for (size_t i = 0; i < c->nwarnings; i++)
        fprintf(stderr, "  WARNING: %s\n", c->warnings[i]);
    char **rule_files = NULL;
    size_t nrule_files = 0;
    if (!syntax_only) {
        char **patterns = NULL;
        size_t npatterns = 0;
        char why[4400] = "";
        int rc = yaml_rule_files(c->source, &patterns, &npatterns);
        if (rc == 0)
            rc = expand_rule_files(path, patterns, npatterns, &rule_files, &nrule_files, why,
                                   sizeof(why));
        else
            snprintf(why, sizeof(why), "cannot read rule_files: %s", bs_strerror(rc));
        free_strs(patterns, npatterns);
        if (rc) {
            fprintf(stderr, "  FAILED: %s\n", why);
            printf("\n");
            free_strs(rule_files, nrule_files);
            config_free(c);
            return false;
        }
    }
    config_free(c);
    if (nrule_files > 0)
        printf("  SUCCESS: %zu rule files found\n", nrule_files);
    printf(" SUCCESS: %s is valid prometheus config file syntax\n\n", path);
    fflush(stdout);
    bool ok = true;
    for (size_t i = 0; i < nrule_files; i++)
        ok = check_rule_file(rule_files[i]) && ok;
    free_strs(rule_files, nrule_files);
    return ok;
}

/* kingpin's ExistingFiles: every argument must exist before any check. */
static bool all_exist(char **files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(files[i], &st) != 0) {
            fprintf(stderr, "%s: error: path '%s' does not exist, try --help\n", PROG, files[i]);
            return false;
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: error: '%s' is a directory, try --help\n", PROG, files[i]);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- main */

static int run_check_config(int argc, char **argv, int from)
{
    struct flag flags[] = {
        {"syntax-only", FLAG_BOOL, "false",
         "Only check the config file syntax, ignoring the rule files it names.", NULL, false},
    };
    struct command cmd = {"check config",
                          "<config-files>...",
                          "Check if the config files are valid or not.",
                          flags,
                          1,
                          1,
                          (size_t)argc,
                          NULL};
    char **pos;
    size_t npos;
    int rc = parse_command(&cmd, argc, argv, from, &pos, &npos);
    if (rc == 0 && !all_exist(pos, npos))
        rc = 1;
    if (rc == 0) {
        bool ok = true;
        bool syntax_only = flags_bool(flags_find(flags, 1, "syntax-only"));
        for (size_t i = 0; i < npos; i++)
            ok = check_config_file(pos[i], syntax_only) && ok;
        rc = ok ? 0 : 1;
    }
    free(pos);
    return rc == 2 ? 0 : rc;
}

static int run_check_rules(int argc, char **argv, int from)
{
    struct command cmd = {"check rules",
                          "<rule-files>...",
                          "Check if the rule files are valid or not.",
                          NULL,
                          0,
                          1,
                          (size_t)argc,
                          NULL};
    char **pos;
    size_t npos;
    int rc = parse_command(&cmd, argc, argv, from, &pos, &npos);
    if (rc == 0 && !all_exist(pos, npos))
        rc = 1;
    if (rc == 0) {
        bool ok = true;
        for (size_t i = 0; i < npos; i++)
            ok = check_rule_file(pos[i]) && ok;
        rc = ok ? 0 : 1;
    }
    free(pos);
    return rc == 2 ? 0 : rc;
}

static int run_tsdb_list(int argc, char **argv, int from)
{
    struct flag flags[] = {
        {"human-readable", FLAG_BOOL, "false", "Print human readable values.", NULL, false},
    };
    static const char *const pos_help[] = {"[<db path>]  Database path (default is data/)."};
    struct command cmd = {"tsdb list", "[<db path>]", "List tsdb blocks.", flags, 1, 0,
                          1,           pos_help};
    char **pos;
    size_t npos;
    int rc = parse_command(&cmd, argc, argv, from, &pos, &npos);
    if (rc == 0)
        rc = tool_tsdb_list(npos ? pos[0] : "data/", flags_bool(&flags[0]));
    free(pos);
    return rc == 2 ? 0 : rc;
}

static int run_tsdb_analyze(int argc, char **argv, int from)
{
    struct flag flags[] = {
        {"limit", FLAG_STRING, "20", "How many items to show in each list.", NULL, false},
    };
    static const char *const pos_help[] = {
        "[<db path>]   Database path (default is data/).",
        "[<block id>]  Block to analyze (default is the last block)."};
    struct command cmd = {"tsdb analyze",
                          "[<db path>] [<block id>]",
                          "Analyze churn and label pair cardinality of a block.",
                          flags,
                          1,
                          0,
                          2,
                          pos_help};
    char **pos;
    size_t npos;
    int rc = parse_command(&cmd, argc, argv, from, &pos, &npos);
    if (rc == 0) {
        char *end = NULL;
        unsigned long long limit = strtoull(flags[0].value, &end, 10);
        if (!end || *end || end == flags[0].value) {
            fprintf(stderr, "%s: error: invalid value '%s' for flag '--limit'\n", PROG,
                    flags[0].value);
            rc = 1;
        } else {
            rc =
                tool_tsdb_analyze(npos ? pos[0] : "data/", npos > 1 ? pos[1] : NULL, (size_t)limit);
        }
    }
    free(pos);
    return rc == 2 ? 0 : rc;
}

static int run_create_blocks(int argc, char **argv, int from)
{
    struct flag flags[] = {
        {"human-readable", FLAG_BOOL, "false", "Print human readable values.", NULL, false},
        {"quiet", FLAG_BOOL, "false", "Do not print created blocks.", NULL, false},
        {"max-block-duration", FLAG_STRING, "2h",
         "Longest block to write; rounded down to 2h times a power of 3.", NULL, false},
    };
    static const char *const pos_help[] = {
        "<input file>          OpenMetrics file to read samples from.",
        "[<output directory>]  Output directory for generated blocks (default is data)."};
    struct command cmd = {"tsdb create-blocks-from openmetrics",
                          "<input file> [<output directory>]",
                          "Import samples from OpenMetrics input and produce TSDB blocks.",
                          flags,
                          3,
                          1,
                          2,
                          pos_help};
    char **pos;
    size_t npos;
    int rc = parse_command(&cmd, argc, argv, from, &pos, &npos);
    if (rc == 0) {
        int64_t max_ms = 0;
        struct bs_error err = {0};
        if (bs_duration_parse(flags[2].value, strlen(flags[2].value), &max_ms, &err) != 0) {
            fprintf(stderr, "%s: error: invalid value for flag '--max-block-duration': %s\n", PROG,
                    err.msg);
            rc = 1;
        } else if (!all_exist(pos, 1)) {
            rc = 1;
        } else {
            rc = tool_backfill_openmetrics(pos[0], npos > 1 ? pos[1] : "data", max_ms,
                                           flags_bool(&flags[0]), flags_bool(&flags[1]));
        }
    }
    free(pos);
    return rc == 2 ? 0 : rc;
}

struct route {
    const char *w1, *w2, *w3;
    int (*run)(int argc, char **argv, int from);
};

static const struct route routes[] = {
    {"check", "config", NULL, run_check_config},
    {"check", "rules", NULL, run_check_rules},
    {"tsdb", "list", NULL, run_tsdb_list},
    {"tsdb", "analyze", NULL, run_tsdb_analyze},
    {"tsdb", "create-blocks-from", "openmetrics", run_create_blocks},
};

int main(int argc, char **argv)
{
    /* Messages are printed by the commands; the modules' own log lines
     * (e.g. the config loader's warnings, printed above as WARNING) would
     * only repeat them. */
    bs_log_set_level(BS_LOG_ERROR);
    /* Leading global flags. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            print_version();
            return 0;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        fprintf(stderr, "%s: error: unknown long flag '%s', try --help\n", PROG, argv[i]);
        return 1;
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        fprintf(stderr, "%s: error: expected command but got nothing, try --help\n", PROG);
        return 1;
    }
    bool help = strcmp(argv[i], "help") == 0;
    if (help && ++i >= argc) {
        fputs(usage_text, stdout);
        return 0;
    }
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
        const struct route *rt = &routes[r];
        int words = rt->w3 ? 3 : 2;
        if (i + words > argc)
            continue;
        if (strcmp(argv[i], rt->w1) != 0 || strcmp(argv[i + 1], rt->w2) != 0 ||
            (rt->w3 && strcmp(argv[i + 2], rt->w3) != 0))
            continue;
        if (help) {
            char *hargv[] = {argv[0], (char *)"--help", NULL};
            return rt->run(2, hargv, 1);
        }
        return rt->run(argc, argv, i + words);
    }
    fprintf(stderr, "%s: error: expected command but got \"", PROG);
    for (int k = i; k < argc && k < i + 3; k++)
        fprintf(stderr, "%s%s", k > i ? " " : "", argv[k]);
    fprintf(stderr, "\", try --help\n");
    return 1;
}
