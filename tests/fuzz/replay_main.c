/* replay_main.c - runs LLVMFuzzerTestOneInput over files without libFuzzer,
 * so any compiler (and the ASan build) pushes the corpus and crash
 * reproducers through the target. Arguments are files or directories
 * (one level, regular files only). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/error.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX (8u << 20)

static int replay_file(const char *path)
{
    char *data;
    size_t len;
    struct qvm_error err = { 0 };
    if (qvm_read_file(path, REPLAY_MAX, &data, &len, &err) < 0) {
        fprintf(stderr, "replay: %s\n", err.msg);
        return -1;
    }
    /* A copy of exactly LEN bytes, so ASan sees reads past the end. */
    uint8_t *copy = xmalloc(len ? len : 1);
    memcpy(copy, data, len);
    free(data);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0, failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            failed++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed += replay_file(argv[i]) < 0;
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            perror(argv[i]);
            failed++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char *p = qvm_path_join(argv[i], e->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                failed += replay_file(p) < 0;
                n++;
            }
            free(p);
        }
        closedir(d);
    }
    printf("replayed %d input%s, %d unreadable\n", n, n == 1 ? "" : "s", failed);
    return failed ? 1 : 0;
}
