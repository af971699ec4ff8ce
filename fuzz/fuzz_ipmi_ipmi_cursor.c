/* SPDX-License-Identifier: Apache-2.0
 *
 * Fuzz target for the per-BMC SEL cursor files (ipmi_cursor_load and
 * ipmi_cursor_save). Corpus: fuzz/corpus/ipmi_cursor/.
 *
 * Input: one flag byte, then the file's text. With bit 0 of the flag set a
 * correct "crc32c" line is appended to the text (as ipmi_cursor_save
 * writes it), so the fuzzer reaches the line parser past the checksum;
 * with bit 1 also set, the line goes at the first 0x01 byte instead (the
 * checksum covering what precedes it) and the rest follows it, so lines
 * after the checksum line are tried too. With bit 0 clear the file is
 * loaded as it is. The file lives in a private
 * directory under /dev/shm (or /tmp), rewritten for every input.
 *
 * Checked: load returns 0 or BS_ECORRUPT (and an empty cursor with it);
 * what it accepts has at most IPMI_CURSOR_MAX_COUNTERS counters with
 * known severities and NUL-terminated names; and an accepted cursor
 * saved and loaded again is identical (what the loader accepts is what
 * the writer writes).
 *
 * Seeds: files written by ipmi_cursor_save (empty, one counter, the full
 * 64 counters, extreme numbers; see fuzz/corpus/ipmi_cursor/) and
 * truncated, edited and reordered variants of them.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipmi/ipmi_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];
static char path_in[128], path_out[128];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    nftw(fuzz_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    bs_log_set_level(BS_LOG_ERROR);
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/bongsu-fuzz-cur-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(fuzz_dir))
        abort();
    snprintf(path_in, sizeof(path_in), "%s/in.cursor", fuzz_dir);
    snprintf(path_out, sizeof(path_out), "%s/out.cursor", fuzz_dir);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!fuzz_dir[0])
        setup();
    const uint8_t *text = data + 1;
    size_t n = size - 1;
    char crcline[32] = "";
    size_t head = n;
    if (data[0] & 1) {
        const uint8_t *split = (data[0] & 2) ? memchr(text, 0x01, n) : NULL;
        if (split)
            head = (size_t)(split - text);
        /* The loader checksums the text as a C string (up to a NUL). */
        const uint8_t *nul = memchr(text, '\0', head);
        size_t upto = nul ? (size_t)(nul - text) : head;
        snprintf(crcline, sizeof(crcline), "crc32c %08x\n", bs_crc32c(0, text, upto));
    }
    FILE *f = fopen(path_in, "wb");
    if (!f || fwrite(text, 1, head, f) != head ||
        fwrite(crcline, 1, strlen(crcline), f) != strlen(crcline))
        abort();
    if (head < n && fwrite(text + head + 1, 1, n - head - 1, f) != n - head - 1)
        abort();
    if (fclose(f) != 0)
        abort();
    struct ipmi_cursor cur, again;
    struct bs_error err = {0};
    int rc = ipmi_cursor_load(path_in, &cur, &err);
    if (rc != 0) {
        static const struct ipmi_cursor empty;
        if (rc != BS_ECORRUPT || memcmp(&cur, &empty, sizeof(cur)) != 0)
            abort();
        return 0;
    }
    if (cur.ncounters > IPMI_CURSOR_MAX_COUNTERS)
        abort();
    for (size_t i = 0; i < cur.ncounters; i++) {
        const struct ipmi_event_counter *c = &cur.counters[i];
        if (c->severity > IPMI_SEV_UNKNOWN ||
            !memchr(c->sensor_type, '\0', sizeof(c->sensor_type)))
            abort();
    }
    if (ipmi_cursor_save(path_out, "10.0.0.1:623", &cur, &err) != 0)
        abort();
    if (ipmi_cursor_load(path_out, &again, &err) != 0 || memcmp(&cur, &again, sizeof(cur)) != 0) {
        fprintf(stderr, "cursor changed in a save/load round trip: %s\n", err.msg);
        abort();
    }
    return 0;
}
