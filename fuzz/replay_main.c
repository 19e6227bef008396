/*  replay_main.c — the fuzz targets without libFuzzer: runs each input file (or every file
    of each folder) given on the command line through the target once. Ordinary builds
    (with gcc, with or without sanitizers) link the targets with this, so the regression
    inputs under tests/fuzz-regressions/ are replayed by every test run, the sanitizer pass
    of tools/test.sh included (a leak regression can fail only there); SAMORDNA_FUZZ builds
    link libFuzzer instead, which takes the same arguments.
*/
#include <czmq.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t));

static int s_file(const char *path, int (*cb)(const uint8_t *, size_t))
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    size_t cap = 1 << 20, n = 0;
    uint8_t *data = malloc(cap);
    size_t got;
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(data, cap * 2);
            if (!bigger) break;
            data = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!data) return -1;
    cb(data, n);
    free(data);
    fprintf(stderr, "replay: %s (%zu bytes) ok\n", path, n);
    return 0;
}

/*  Every input named, or found in a folder named, once. A path that cannot be read, a folder
    that holds no input (a corpus that went missing would otherwise pass for a clean replay)
    and a command line that names no input at all each make the replay fail. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t))
{
    int failed = 0, runs = 0;
    for (int i = 1; i < *argc; i++) {
        const char *arg = (*argv)[i];
        if (arg[0] == '-') continue; /* libFuzzer's options mean nothing here */
        struct stat st;
        if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
            zdir_t *dir = zdir_new(arg, "-");
            zfile_t **files = dir ? zdir_flatten(dir) : NULL;
            int here = 0;
            for (size_t j = 0; files && files[j]; j++, here++)
                failed += s_file(zfile_filename(files[j], NULL), cb) != 0;
            zdir_flatten_free(&files);
            zdir_destroy(&dir);
            if (here == 0) {
                fprintf(stderr, "replay: folder %s holds no inputs\n", arg);
                failed++;
            }
            runs += here;
        } else {
            failed += s_file(arg, cb) != 0;
            runs++;
        }
    }
    if (runs == 0) {
        fprintf(stderr, "replay: no inputs given\n");
        return 1;
    }
    fprintf(stderr, "replay: %d inputs, %d problems\n", runs, failed);
    return failed ? 1 : 0;
}

#ifndef SAM_REPLAY_NO_MAIN
int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
#endif
