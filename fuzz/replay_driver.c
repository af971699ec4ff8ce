/* SPDX-License-Identifier: Apache-2.0
 *
 * Replays files through a libFuzzer-style target without libFuzzer, so that
 * `make check` can run every corpus under ASan/UBSan with gcc. Arguments are
 * files or directories (read one level deep). Exits non-zero only if the
 * target crashes (the sanitizers abort) or an input cannot be read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    /* Exact-size copy so ASan catches reads past the end. */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                    continue;
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
                struct stat est;
                if (stat(p, &est) == 0 && S_ISREG(est.st_mode)) {
                    errors += replay_file(p) != 0;
                    files++;
                }
            }
            if (d)
                closedir(d);
        } else {
            errors += replay_file(argv[i]) != 0;
            files++;
        }
    }
    printf("replayed %d inputs\n", files);
    return errors ? 1 : 0;
}
