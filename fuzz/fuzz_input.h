/*  fuzz_input.h — reading a fuzzer's bytes as structured input, shared by the targets.

    A frame is a length byte n and n bytes; n = 255 means a two-byte big-endian length
    follows. Reading past the end yields what is left (possibly nothing): every input is
    valid, so the fuzzer spends its time in the code under test, not in our framing.
*/
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t at;
} fuzz_input_t;

static inline uint8_t fuzz_byte(fuzz_input_t *in)
{
    return in->at < in->size ? in->data[in->at++] : 0;
}

static inline size_t fuzz_left(const fuzz_input_t *in)
{
    return in->size - in->at;
}

/* The next frame; sets *len. Never NULL (an empty frame at the end of the input). */
static inline const uint8_t *fuzz_frame(fuzz_input_t *in, size_t *len)
{
    size_t n = fuzz_byte(in);
    if (n == 255) {
        n = (size_t)fuzz_byte(in) << 8;
        n |= fuzz_byte(in);
    }
    if (n > fuzz_left(in)) n = fuzz_left(in);
    const uint8_t *p = in->data + in->at;
    in->at += n;
    *len = n;
    return p;
}

/*  Runs fn(arg) with stdout and stderr sent to /dev/null (the code under test prints its
    refusals; libFuzzer's own reports must stay visible, so only around the call). */
#include <fcntl.h>
#include <unistd.h>
static inline void fuzz_quietly(void (*fn)(void *), void *arg)
{
    static int devnull = -1;
    if (devnull < 0) devnull = open("/dev/null", O_WRONLY);
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2);
    dup2(devnull, 1);
    dup2(devnull, 2);
    fn(arg);
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
}

/* Where a target's scratch files go: the test data folder when a test runs us, else TMPDIR,
   else /tmp. The folder may not exist yet. */
static inline const char *fuzz_scratch_dir(void)
{
    const char *dir = getenv("SAMORDNA_TESTDATA");
    if (!dir) dir = getenv("TMPDIR");
    return dir ? dir : "/tmp";
}

/* For targets that read a file: writes the input to `path`, then runs fn(arg) quietly. */
static inline void fuzz_file_quietly(const char *path, const uint8_t *data, size_t size,
                                     void (*fn)(void *), void *arg)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    fuzz_quietly(fn, arg);
}

#endif
