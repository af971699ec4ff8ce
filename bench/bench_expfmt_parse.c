/* SPDX-License-Identifier: Apache-2.0
 *
 * Throughput of the text format parser: parses the 237-family Prometheus
 * test document (../shared/testdata/expfmt, run from the repository root)
 * over and over for about three seconds, touching every series as a
 * scraper would, and prints MB/s and series/s. Figures, never pass/fail,
 * but a parse error in the document fails the run.
 */
#include <stdio.h>
#include <stdlib.h>

#include "expfmt/expfmt.h"

#define BENCH_FILE "../shared/testdata/expfmt/alltypes.237mfs.prom.txt"

int main(void)
{
    FILE *f = fopen(BENCH_FILE, "rb");
    if (!f) {
        fprintf(stderr, "bench_expfmt_parse: cannot open %s (run from the repository root)\n",
                BENCH_FILE);
        return 1;
    }
    struct bs_buf in;
    bs_buf_init(&in, 0);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (bs_buf_append(&in, chunk, n) < 0)
            return 1;
    fclose(f);

    struct bs_error err = {0};
    uint64_t series = 0, bytes = 0, iters = 0;
    volatile double sink = 0;
    int64_t start = bs_monotonic_ns(), now = start;
    while (now - start < INT64_C(3000000000)) {
        for (int k = 0; k < 20; k++) {
            struct expfmt_parser p;
            enum expfmt_entry kind;
            int rc;
            expfmt_parser_init(&p, in.data, in.len);
            while ((rc = expfmt_parser_next(&p, &kind, &err)) == 0 && kind != EXPFMT_EOF) {
                if (kind == EXPFMT_SERIES) {
                    const struct expfmt_series *s = expfmt_parser_series(&p);
                    sink += s->value + (double)s->nlabels + (double)s->series_text_len;
                    series++;
                }
            }
            expfmt_parser_fini(&p);
            if (rc < 0) {
                fprintf(stderr, "bench_expfmt_parse: %s\n", err.msg);
                return 1;
            }
            bytes += in.len;
            iters++;
        }
        now = bs_monotonic_ns();
    }
    double secs = (double)(now - start) / 1e9;
    printf("expfmt_parse alltypes.237mfs.prom.txt: %.1f MB/s, %.0f series/s (%llu parses)\n",
           (double)bytes / secs / 1e6, (double)series / secs, (unsigned long long)iters);
    bs_buf_fini(&in);
    return 0;
}
